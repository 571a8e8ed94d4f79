"""The one backoff of every retry loop: exponential delays, capped, with jitter.

Used by the agent's delivery loop, the event delivery queue (chat webhooks, Alertmanager) and the network
probes' retries, so they all wait alike and are configured alike. The jitter spreads a crowd of senders
that failed together (a collector restart, a receiver outage) so they do not retry in lockstep.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay after failed attempt n (1-based): initial_delay * factor**(n-1), moved by up to +-jitter of
    itself, never above max_delay. `max_attempts` is how many attempts a bounded loop makes in all (a loop
    that retries for as long as it runs, like the agent's spool drain, does not ask `exhausted`)."""

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 60.0
    factor: float = 2.0
    jitter: float = 0.1  # fraction of the delay, +-

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.initial_delay <= self.max_delay:
            raise ValueError("backoff delays must satisfy 0 <= initial_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def delay(self, attempt: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        try:
            base = min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1))
        except OverflowError:  # a long outage: the cap long since reached
            base = self.max_delay
        if not self.jitter:
            return float(base)
        return min(float(self.max_delay), max(0.0, float(base) * (1 + uniform(-self.jitter, self.jitter))))

    def exhausted(self, attempt: int) -> bool:
        """True when attempt number `attempt` was the last one a bounded loop may make."""
        return attempt >= self.max_attempts
