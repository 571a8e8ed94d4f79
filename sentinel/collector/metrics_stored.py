"""The stored state's part of the collector's /metrics: read and rendered in the background, kept on disk.

At 10,000 hosts, reading the store and rolling every system up takes seconds, and rendering 160,000 series most of
a second (bench/RESULTS.md): more than a scrape may wait, and Prometheus gives up after 10 s. So one thread reads the
store and renders that part in every format (`StoredPart`), again every `refresh_seconds` (never busy more than half
the time: a read that took 8 s waits 8 s before the next), and a scrape answers with the last one, followed by the
live families rendered for it (this process's counters; `sentinel_snapshot_timestamp_seconds` says when the state
shown was read, and the rule SentinelSnapshotStale fires when that is old).

- The first scrape after a start waits up to `first_wait` seconds for the first read. Each read is also written
  (zstd, atomically) to `<state_dir>/metrics-stored/`, with a fingerprint of the store taken before the read
  (`sentinel.store.snapshot.store_marker`); a collector that starts on a store whose fingerprint is still the same
  serves that part at once, its time still the time it was read, while the first read of its own runs.
- When a read fails, scrapes keep the last part that was read, with `sentinel_up 0` (the log says why): the last
  known state stays visible and SentinelStateUnreadable fires. With no part at all they answer the live families
  with `sentinel_up 0`, as before.
- `refresh_seconds == 0` reads the store for every scrape, in the scrape (small sites, tests).
- No scrape for `idle_seconds` stops the thread; the next scrape starts it again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

import zstandard

from ..atomicfile import write_atomic
from ..metrics_model import MetricsSnapshot

log = logging.getLogger("sentinel.collector.metrics")

FORMATS = ("openmetrics", "text")
FIRST_WAIT = 8.0  # under Prometheus's default 10 s scrape timeout


@dataclass(frozen=True)
class StoredPart:
    read_at: datetime  # when the store was read (the snapshot's generated_at)
    took: float  # seconds the read and the rendering took
    bodies: dict[str, bytes]  # format -> the stored families, rendered (no OpenMetrics `# EOF`)


@dataclass(frozen=True)
class Served:
    part: Optional[StoredPart]  # None: no read has worked yet
    up: bool  # the last read worked
    errors: int  # reads that failed, since this process started


class StoredMetrics:
    def __init__(self, read: Callable[[], MetricsSnapshot],
                 render: Callable[[MetricsSnapshot, Sequence[str]], dict[str, bytes]], *,
                 refresh_seconds: float, marker: Callable[[], str], identity: str,
                 keep_dir: Optional[Path] = None, first_wait: Optional[float] = None,
                 idle_seconds: Optional[float] = None, formats: Sequence[str] = FORMATS) -> None:
        self._read, self._render, self._marker = read, render, marker
        self._refresh = refresh_seconds
        self._identity = identity  # what else the rendering depends on (version, options): kept parts must match
        self._dir = keep_dir
        self._first_wait = FIRST_WAIT if first_wait is None else first_wait
        self._idle = idle_seconds if idle_seconds is not None else max(10 * refresh_seconds, 300.0)
        self._formats = tuple(formats)
        self._cond = threading.Condition()
        self._part: Optional[StoredPart] = None
        self._up = True
        self._errors = 0
        self._attempts = 0
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._asked = time.monotonic()
        self._sync = threading.Lock()  # refresh_seconds == 0: one read at a time

    # ---- what a scrape asks ----------------------------------------------------------------------------------

    def get(self) -> Served:
        if self._refresh == 0:
            with self._sync:
                self._build(keep=False)
            with self._cond:
                return Served(self._part, self._up, self._errors)
        with self._cond:
            self._asked = time.monotonic()
            if self._thread is None and not self._stop.is_set():
                if self._part is None:
                    self._part = self._load()
                self._thread = threading.Thread(target=self._run, name="sentinel-metrics-read", daemon=True)
                self._thread.start()
            if self._part is None:
                deadline = time.monotonic() + self._first_wait
                while self._part is None and self._attempts == 0 and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
            return Served(self._part, self._up, self._errors)

    def stop(self) -> None:
        """Stop the reading thread (the app's lifespan end); a read under way finishes first."""
        self._stop.set()
        with self._cond:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=120)

    # ---- the reading thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                took = self._build(keep=self._dir is not None)
                with self._cond:
                    if time.monotonic() - self._asked > self._idle:
                        return  # nobody scrapes: stop reading; the next scrape starts again
                self._stop.wait(max(self._refresh - took, took))
        finally:
            with self._cond:
                self._thread = None

    def _build(self, keep: bool) -> float:
        start = time.perf_counter()
        try:
            marker = self._marker() if keep else ""
            snap = self._read()
            bodies = self._render(snap, self._formats)
        except Exception as exc:  # a scrape must answer: the last part stays, shown with sentinel_up 0
            log.error("metrics: reading stored state failed: %s: %s", type(exc).__name__, exc)
            with self._cond:
                self._errors += 1
                self._up = False
                self._attempts += 1
                self._cond.notify_all()
            return time.perf_counter() - start
        took = time.perf_counter() - start
        part = StoredPart(read_at=snap.generated_at, took=took, bodies=bodies)
        with self._cond:
            self._part, self._up = part, True
            self._attempts += 1
            self._cond.notify_all()
        if keep:
            self._save(part, marker)
        return took

    # ---- kept on disk ----------------------------------------------------------------------------------------

    def _save(self, part: StoredPart, marker: str) -> None:
        assert self._dir is not None
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            digests = {}
            for fmt, body in part.bodies.items():
                write_atomic(self._dir / f"{fmt}.zst", zstandard.ZstdCompressor(level=3).compress(body), mode=0o600)
                digests[fmt] = hashlib.sha256(body).hexdigest()
            meta = {"identity": self._identity, "marker": marker, "read_at": part.read_at.isoformat(),
                    "took": part.took, "sha256": digests}
            write_atomic(self._dir / "stored.json", json.dumps(meta).encode("utf-8"), mode=0o600)  # last: names them
        except OSError as exc:  # serving goes on from memory; only a restart loses the head start
            log.warning("metrics: could not keep the rendered state in %s: %s", self._dir, exc)

    def _load(self) -> Optional[StoredPart]:
        """The part kept by an earlier process, if it was made from this very store state; else None."""
        if self._dir is None:
            return None
        try:
            meta = json.loads((self._dir / "stored.json").read_bytes())
            if meta.get("identity") != self._identity or set(meta.get("sha256", {})) != set(self._formats):
                return None
            if meta.get("marker") != self._marker():
                log.info("metrics: the store changed since the kept rendering; reading it afresh")
                return None
            bodies = {}
            for fmt, digest in meta["sha256"].items():
                body = zstandard.ZstdDecompressor().decompress((self._dir / f"{fmt}.zst").read_bytes())
                if hashlib.sha256(body).hexdigest() != digest:
                    return None
                bodies[fmt] = body
            return StoredPart(read_at=datetime.fromisoformat(meta["read_at"]), took=float(meta["took"]),
                              bodies=bodies)
        except FileNotFoundError:
            return None
        except Exception as exc:  # an unreadable kept part is only a lost head start
            log.warning("metrics: ignoring the kept rendering in %s: %s: %s", self._dir, type(exc).__name__, exc)
            return None
