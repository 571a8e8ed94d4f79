"""The cyclic garbage collector paused while large evidence is collected, rendered or verified.

An export builds and drops hundreds of thousands of small objects (parsed reports, rows, cells). Each
allocation burst triggers the cycle collector, which rescans everything still alive: measured on a
100-host system, that was about 45% of collecting the evidence. Nothing here makes reference cycles
that matter, so the collector is paused for the duration and left to catch up afterwards.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
