"""The collector's audit log (who did what to what, from where, and how it ended).

Successful changes are recorded in the same transaction as the change, so the log never claims
something that was rolled back. Refusals are recorded in a transaction of their own, since the
refused work is rolled back. Accepted agent reports are recorded in the `reports` ledger (with
source address and time) rather than here, to keep the ingest path to one transaction.
Repeated refusals of one kind from one address share a row with a count (RefusalLog, below).
"""
from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import insert, update

from ..store.db import Database
from ..store.models import AuditEntry

log = logging.getLogger("sentinel.collector.audit")

_table = AuditEntry.__table__


def record(conn, *, actor: str, action: str, target: str = "", source_ip: Optional[str] = None,
           outcome: str = "ok", status_code: Optional[int] = None, detail: str = "") -> Optional[int]:
    """Add one row in the caller's transaction; answers its id."""
    result = conn.execute(insert(_table).values(
        at=datetime.now(timezone.utc), actor=actor[:200], action=action[:64], target=target[:500],
        source_ip=source_ip, outcome=outcome, status_code=status_code, detail=detail[:4000]))
    return result.inserted_primary_key[0] if result.inserted_primary_key else None


def record_refusal(db: Database, *, actor: str, action: str, target: str = "", source_ip: Optional[str] = None,
                   status_code: int, detail: str, outcome: Optional[str] = None) -> None:
    """Log a refused request in its own transaction. A failure to write is logged, not raised: the
    caller is already answering with the refusal."""
    outcome = outcome or ("denied" if status_code in (401, 403) else "rejected")
    aggregated = _logs.get(db)
    if aggregated is not None:
        aggregated.record(actor=actor, action=action, target=target, source_ip=source_ip, status_code=status_code,
                          detail=detail, outcome=outcome)
        return
    try:
        with db.write() as conn:
            record(conn, actor=actor, action=action, target=target, source_ip=source_ip, outcome=outcome,
                   status_code=status_code, detail=detail)
    except Exception:  # the database may be the very thing failing
        log.exception("could not write audit entry: %s %s %s -> %s %s", actor, action, target, status_code, detail)


# ---- repeated refusals: one row per source, action and reason per window ---------------------------------

_REPEAT = re.compile(r" \[repeated: (\d+) refusals like this from this address, (\S+) to (\S+)\]$")
# what varies between refusals of one kind: quoted values (agent ids, hostnames), numbers, times
_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|\d[\w:.+-]*")


def _accountable(actor: str) -> str:
    """The actor, when it is an authenticated one (token:..., cli:...); else "" (see RefusalLog)."""
    return actor[:200] if actor.startswith(("token:", "cli:")) else ""


def reason_key(detail: str) -> str:
    """The kind of a refusal, from its detail with the values that vary between requests taken out:
    "unknown agent 'x1': enroll it first" and "unknown agent 'x2': ..." are one kind."""
    return _VARYING.sub("_", detail)[:200]


def repeat_count(detail: str) -> int:
    """How many refusals an audit row stands for (1 unless RefusalLog aggregated repeats into it)."""
    m = _REPEAT.search(detail)
    return int(m.group(1)) if m else 1


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Window:
    started: float  # monotonic
    first_at: datetime
    last_at: datetime
    detail: str  # the first refusal's detail, as written
    row_id: Optional[int] = None  # None while the first row is being written (or if that failed)
    count: int = 1
    written: int = 1  # the count the row shows


class RefusalLog:
    """Aggregates refusals so that a flood of them costs one audit row per (source, action, status, kind of
    reason) and window, not one write per request (issue 20: four anonymous senders made every refusal a
    write, and the writes slowed every signed report).

    The first refusal of a kind opens a window and is written at once, as before. Later ones in the same
    window only count; the row's detail gets " [repeated: N refusals like this from this address, T1 to
    T2]" when the count is written: every `flush_seconds` while repeats come in (a background thread,
    started at the first repeat), when the window is over, and on close() (the app's shutdown). A crash
    loses at most the repeats counted since the last flush; the first refusal of each kind is never lost.
    Refusals of authenticated callers (API tokens, the CLI) are kept apart by caller, so a row never
    stands for two people; other actors (anonymous, an agent id or hostname a request claims) are not
    identities and a flood may claim a new one in every request: those share rows, which keep the first
    refusal's actor and target."""

    def __init__(self, db: Database, window: float, *, flush_seconds: float = 5.0, max_windows: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.window = window
        self.flush_seconds = min(flush_seconds, window) if window > 0 else flush_seconds
        self.max_windows = max_windows
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[tuple, _Window] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def record(self, *, actor: str, action: str, target: str, source_ip: Optional[str], status_code: int,
               detail: str, outcome: str) -> None:
        key = (source_ip, _accountable(actor), action[:64], status_code, reason_key(detail))
        now, at = self._clock(), datetime.now(timezone.utc)
        with self._lock:
            current = self._open.get(key)
            if current is not None and now - current.started < self.window:
                current.count += 1
                current.last_at = at
                self._start_flusher()
                return
            ended = self._take_ended(now)
            current = self._open[key] = _Window(started=now, first_at=at, last_at=at, detail=detail[:3800])
        self._write_counts(ended)
        try:
            with self.db.write() as conn:
                current.row_id = record(conn, actor=actor, action=action, target=target, source_ip=source_ip,
                                            outcome=outcome, status_code=status_code, detail=current.detail)
        except Exception:  # the database may be the very thing failing
            log.exception("could not write audit entry: %s %s %s -> %s %s", actor, action, target, status_code,
                          detail)

    def _take_ended(self, now: float) -> list[_Window]:
        """(Under the lock) remove and return the windows that are over, or the oldest when too many are open."""
        ended = [k for k, w in self._open.items() if now - w.started >= self.window]
        if len(self._open) - len(ended) >= self.max_windows:
            ended = list(self._open)[: len(self._open) // 2 + 1]
        return [self._open.pop(k) for k in ended]

    def _write_counts(self, windows: list[_Window]) -> None:
        todo = [(w, w.count) for w in windows if w.row_id is not None and w.count != w.written]
        if not todo:
            return
        try:
            with self.db.write() as conn:
                for w, count in todo:
                    conn.execute(update(_table).where(_table.c.id == w.row_id).values(
                        detail=f"{w.detail} [repeated: {count} refusals like this from this address, "
                               f"{_iso(w.first_at)} to {_iso(w.last_at)}]"))
        except Exception:
            log.exception("could not write the counts of %d repeated refusals to the audit log", len(todo))
            return
        for w, count in todo:
            w.written = count

    def flush(self) -> None:
        """Write every count now (ended windows are closed, open ones brought up to date)."""
        with self._lock:
            ended = self._take_ended(self._clock())
            still_open = list(self._open.values())
        self._write_counts(ended + still_open)

    def _start_flusher(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="audit-refusal-counts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


_logs: weakref.WeakKeyDictionary[Database, RefusalLog] = weakref.WeakKeyDictionary()


def aggregate_refusals(db: Database, window: float) -> Optional[RefusalLog]:
    """Make every later record_refusal() on `db` go through one RefusalLog (window > 0), or write a row per
    refusal (window 0). Called by create_app; an app built again on the same database shares the log."""
    if window <= 0:
        old = _logs.pop(db, None)
        if old is not None:
            old.close()
        return None
    current = _logs.get(db)
    if current is None or current.window != window:
        if current is not None:
            current.close()
        current = _logs[db] = RefusalLog(db, window)
    return current
