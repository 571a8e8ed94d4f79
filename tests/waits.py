"""Waiting in tests for the thing itself, not for a guessed time."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(predicate: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.005) -> T:
    """Poll `predicate` (the real state: a queue's length, a row, a flag) until it is truthy and return it;
    fail naming `what` after `timeout` seconds. The timeout only bounds a broken run; a passing run waits
    exactly as long as the state takes to arrive."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)
