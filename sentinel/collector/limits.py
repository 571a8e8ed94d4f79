"""Request body size limit, enforced while the body streams in (not only by Content-Length), and the rate
limiter of the agent endpoints (per source address and per agent; sentinel/collector/gate.py uses it)."""
from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A 413; an HTTPException so FastAPI's body parsing passes it on to the app's handler."""

    def __init__(self, limit: int, detail: Optional[str] = None) -> None:
        super().__init__(status_code=413, detail=detail or f"request body exceeds the limit of {limit} bytes")


@dataclass(frozen=True)
class RouteLimit:
    """A limit of its own for one route (an upload), instead of the collector's max_body_bytes."""

    method: str
    path: re.Pattern
    limit: int
    detail: str  # the 413's reason, naming the limit the caller has to keep to


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, routes: Sequence[RouteLimit] = ()) -> None:
        self.app = app
        self.limit = limit
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        limit, detail = self.limit, None
        for route in self.routes:
            if scope.get("method") == route.method and route.path.fullmatch(scope.get("path", "")):
                limit, detail = route.limit, route.detail
                break
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit, detail)  # refuse before reading a byte of it
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, detail)
            return message

        await self.app(scope, limited, send)


class RateLimiter:
    """Token buckets by key (a source address, an agent id): `rate` tokens a second up to `burst`.

    `take(key, cost)` spends tokens and answers None, or, when the bucket holds too few, spends nothing and
    answers the seconds until it will (the 429's Retry-After). `charge(key, cost)` spends without asking,
    down to a floor of -burst: a refused request is charged after its answer, so a sender of refused
    requests runs dry sooner than one of good ones. At most `max_keys` buckets are kept: a full table
    forgets the buckets that are full again (they hold nothing a new bucket would not), then the oldest,
    so many addresses cannot make the limiter grow without bound. Thread-safe; `rate <= 0` turns it off.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 65536,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last refill]

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _bucket(self, key: str, now: float) -> list[float]:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            self._buckets.move_to_end(key)
        return bucket

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items() if tokens + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str, cost: float = 1.0) -> Optional[float]:
        if not self.enabled:
            return None
        with self._lock:
            bucket = self._bucket(key, self._clock())
            if bucket[0] >= cost:
                bucket[0] -= cost
                return None
            return (cost - bucket[0]) / self.rate

    def charge(self, key: str, cost: float) -> None:
        if not self.enabled or cost <= 0:
            return
        with self._lock:
            bucket = self._bucket(key, self._clock())
            bucket[0] = max(-self.burst, bucket[0] - cost)


def retry_after(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110); never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(seconds)))
