"""The delivery queue of the event path: one bounded queue and one thread per receiver, one retry policy.

What an exporter plugs in here is small and typed:

- a `Sender` makes one attempt to deliver one event (a chat robot, a generic webhook) and says whether a
  failure may pass (`DeliveryError.retryable`); a `DeliveryWorker` queues events for it and retries with the
  dispatch configuration's `retry:` (`Backoff`): the one retry policy of that path.
- a `Receiver` is what the `Dispatcher` routes to: a `DeliveryWorker` around a sender, or a receiver that
  keeps its alerts alive itself (`keeps_state = True`: Alertmanager, which needs every firing alert re-sent
  until it resolves, de-duplicates by itself, and is told again what still fires after a restart).
- a `ReceiverFactory` (events/dispatch.py) builds a receiver from its configuration (`ReceiverConfig`); the
  composition root (the CLI commands that build a collector or `sentinel up`) hands the factories of
  `sentinel.exporters` to the dispatcher by receiver type, so nothing in the core imports an exporter.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Protocol

from ..backoff import Backoff  # the one backoff of every retry loop (re-exported for the exporters)
from .model import AlertEvent, GradeMap

log = logging.getLogger("sentinel.events.delivery")

ResultCallback = Callable[[AlertEvent, str, bool, Optional[str]], None]  # (event, receiver, ok, error)


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable



class Deduplicator:
    """Suppresses an event whose key was sent in the same state (firing/resolved) within `window` seconds.

    A change of state always passes, so a resolution is never swallowed and a re-fire after it is told.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._seen: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, resolved: bool) -> bool:
        now = self._clock()
        with self._lock:
            prev = self._seen.get(key)
            if prev is not None and prev[0] == resolved and now - prev[1] < self.window:
                return False
            self._seen[key] = (resolved, now)
            if len(self._seen) > 10000:  # prune expired keys now and then
                self._seen = {k: v for k, v in self._seen.items() if now - v[1] < self.window}
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)


_WAKE = object()  # put on a worker's queue to wake it for shutdown
DEFAULT_BACKOFF = Backoff()  # frozen: one shared default is safe


class DeliveryWorker:
    """Delivers events for one sender in its own daemon thread: bounded queue in, scheduled retries.

    It is the one retry policy of a chat or webhook receiver: nobody above it (the collector's event
    publisher) tries again, they record what it answered."""

    keeps_state = False

    def __init__(self, sender: Sender, *, queue_size: int = 1000, backoff: Backoff = DEFAULT_BACKOFF,
                 on_result: Optional[ResultCallback] = None,
                 on_give_up: Optional[Callable[[AlertEvent], None]] = None) -> None:
        self.sender = sender
        self.backoff = backoff
        self._on_result = on_result
        self._on_give_up = on_give_up
        self._queue: queue.Queue[AlertEvent] = queue.Queue(maxsize=queue_size)
        self._retries: list[tuple[float, int, int, AlertEvent]] = []  # (due, seq, attempt, event)
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._busy = 0
        self._lock = threading.Lock()
        self.stats = {"delivered": 0, "failed": 0, "dropped": 0, "retried": 0}
        self._thread = threading.Thread(target=self._run, name=f"sentinel-webhook-{sender.name}", daemon=True)
        self._thread.start()

    def submit(self, event: AlertEvent) -> bool:
        """Queue an event; never blocks. False (and a warning) when the queue is full or the worker stopped."""
        if self._stop.is_set():
            return False
        with self._lock:
            self._busy += 1
            self._idle.clear()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._done()
            self.stats["dropped"] += 1
            log.warning("webhook %s (%s): queue full, dropped event %s", self.sender.name, self.sender.safe_url,
                        event.key)
            return False
        return True

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @property
    def name(self) -> str:
        return self.sender.name

    def wait_idle(self, timeout: float) -> bool:
        """True once everything submitted is delivered or given up (for tests and orderly shutdown)."""
        return self._idle.wait(timeout)

    def forget(self, key: str) -> None:
        """Nothing to forget: a chat is told each state once and keeps no firing set."""

    def _next(self) -> Optional[tuple[int, AlertEvent]]:
        """The next job to try: a due retry first, else a new event (waiting at most until the next retry)."""
        now = time.monotonic()
        if self._retries and self._retries[0][0] <= now:
            _, _, attempt, event = heapq.heappop(self._retries)
            return attempt, event
        wait = min(0.5, self._retries[0][0] - now) if self._retries else 0.5
        try:
            item = self._queue.get(timeout=max(wait, 0.001))
        except queue.Empty:
            return None
        return None if item is _WAKE else (1, item)

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            job = self._next()
            if job is None:
                if self._stop.is_set():
                    break
                continue
            attempt, event = job
            try:
                self.sender.send(event)
            except DeliveryError as exc:
                if exc.retryable and attempt < self.backoff.max_attempts and not self._stop.is_set():
                    delay = self.backoff.delay(attempt)
                    self.stats["retried"] += 1
                    log.info("webhook %s (%s): attempt %d failed (%s), retrying in %.1fs", self.sender.name,
                             self.sender.safe_url, attempt, exc, delay)
                    heapq.heappush(self._retries, (time.monotonic() + delay, next(self._seq), attempt + 1, event))
                    continue
                self.stats["failed"] += 1
                log.error("webhook %s (%s): giving up on event %s after %d attempt(s): %s", self.sender.name,
                          self.sender.safe_url, event.key, attempt, exc)
                self._report(event, False, str(exc))
                if self._on_give_up:
                    self._on_give_up(event)
            except Exception as exc:  # a bug in formatting must not kill the worker
                self.stats["failed"] += 1
                log.exception("webhook %s: cannot deliver event %s: %s", self.sender.name, event.key,
                              type(exc).__name__)
                self._report(event, False, f"{type(exc).__name__}: {exc}")
            else:
                self.stats["delivered"] += 1
                log.info("webhook %s (%s): delivered event %s (%s)", self.sender.name, self.sender.safe_url,
                         event.key, "resolved" if event.resolved else "firing")
                self._report(event, True, None)
            self._done()
        # anything left when stopping was not delivered
        for _, _, _, event in self._retries:
            self._report(event, False, "stopped before delivery")
            self._done()
        self._retries.clear()
        self.sender.close()

    def _report(self, event: AlertEvent, ok: bool, error: Optional[str]) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(event, self.sender.name, ok, error)
        except Exception:
            log.exception("webhook %s: result callback failed", self.sender.name)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events; deliver what is queued within `timeout`, then give up on the rest."""
        self._stop.set()
        try:
            self._queue.put_nowait(_WAKE)  # type: ignore[arg-type]  # an idle worker notices at once
        except queue.Full:
            pass  # busy: it checks the stop flag between deliveries
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("webhook %s: still busy after %.1fs at shutdown; abandoning its queue", self.sender.name,
                        timeout)


class Sender(Protocol):
    """One chat robot or webhook: one attempt per call, raising DeliveryError (retryable or not)."""

    name: str

    @property
    def safe_url(self) -> str: ...  # the URL with its credentials masked, for logs

    def send(self, event: AlertEvent) -> None: ...

    def close(self) -> None: ...


class Receiver(Protocol):
    """What the dispatcher routes events to. `submit` never blocks; `on_result` (given at build time) hears
    the outcome of every submitted state. `keeps_state`: the receiver keeps its firing alerts alive itself
    (re-sends, de-duplicates, answers for the latest state of a key), so it is given every state, never
    de-duplicated by the dispatcher, told again what still fires after a restart, and told when a one-shot
    notice has run out."""

    keeps_state: bool

    @property
    def name(self) -> str: ...

    def submit(self, event: AlertEvent) -> bool: ...

    def forget(self, key: str) -> None: ...

    def wait_idle(self, timeout: float) -> bool: ...

    def close(self, timeout: float = 5.0) -> None: ...


@dataclass(frozen=True)
class ReceiverContext:
    """What the dispatcher gives every receiver it builds."""

    grades: GradeMap
    retry: Backoff
    queue_size: int
    timezone: str
    on_result: Optional[ResultCallback] = None
    #: a delivery that failed for good: the dispatcher forgets it in its de-duplicator, so a repeat may pass
    on_give_up: Optional[Callable[[AlertEvent], None]] = None

    def worker(self, sender: Sender) -> DeliveryWorker:
        """The core's queue and retry policy around a one-attempt sender."""
        return DeliveryWorker(sender, queue_size=self.queue_size, backoff=self.retry, on_result=self.on_result,
                              on_give_up=self.on_give_up)
