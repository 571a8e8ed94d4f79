"""Event push from the collector: new rows of the `events` table go to `sentinel.events.dispatch.Dispatcher`.

A background thread of the collector process (started with the app, `install()`):

- polls events not yet tried, in id order, every `events_poll_seconds` and dispatches them; the receivers'
  answers come back through `on_result` and set `delivered`/`delivered_at`, or `attempts` and `last_error`,
  in one short write per poll. Retrying is the receivers' own (one policy per delivery path: the delivery
  queue's `retry:` for chats, the re-sends of a receiver that keeps state for Alertmanager); a row that a
  receiver gave up on stays undelivered with the reason, and a later success of a receiver that keeps
  state (Alertmanager came back) still marks it delivered.
- never sits on the ingest path: ingestion writes event rows and returns; chats and Alertmanager are
  reached from the dispatcher's own threads, so a dead webhook only delays itself.
- keeps Alertmanager in step across restarts: Alertmanager forgets an alert whose `endsAt` passes, and the
  publisher's set of firing alerts lives in memory. At start it is rebuilt from the table (the latest event
  of each condition that is still firing), so a restart does not resolve alerts by silence.
- ends one-shot notices: `drift`, `score_drop` and the scan notices never get a resolving event, so in
  Alertmanager they fire for `ONESHOT_HOLD` (an hour) after their latest occurrence and then resolve,
  instead of piling up.
- runs once per store: with several worker processes or replicas, a lease (an advisory lock on
  PostgreSQL, a file lock next to the SQLite file) lets one of them publish; another takes over when it stops.

Without `alerting_config` nothing runs: events stay undelivered in the table (and in the API) and nothing
else changes.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Connection, make_url

from ..events.delivery import Receiver
from ..events.dispatch import DispatchConfig, DispatchConfigError, Dispatcher, ReceiverKinds
from ..events.model import SHARED_IDENTITY, AlertEvent
from ..store.db import Database
from ..store.models import Event, System
from . import relay
from .lifespan import around_lifespan

log = logging.getLogger("sentinel.collector.events")

E = Event.__table__
S = System.__table__

#: kinds whose condition is later cleared by a resolving event of the same fingerprint (the collector's
#: ingest and scan_ingest write those); the others are one-shot notices (drift, score_drop, new_open_port,
#: closed_port, version_change) that resolve in Alertmanager after ONESHOT_HOLD. A producer of a new
#: condition kind adds it here.
STATEFUL_KINDS = frozenset({"high_risk_finding", "new_forbidden_port", "scan_failed",
                            "website_security", "website_veto"})  # resolved when the website finding is
ONESHOT_HOLD = 3600.0
BATCH = 200
SWEEP = 30.0
LEASE_RETRY = 15.0
_ERROR_MAX = 2000


class PublisherLease:
    """One publisher per store. PostgreSQL: a session advisory lock (keyed by the schema, so stores sharing a
    database do not block each other) held on a connection of its own. SQLite: an flock on a file next to
    the database, which every process on this machine sees (SQLite is single-machine anyway)."""

    _NAMESPACE = 22239

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Optional[Connection] = None
        self._fd: Optional[int] = None
        if db.is_sqlite:
            path = Path(make_url(db.url).database or "")
            self.path: Optional[Path] = path.with_name(path.name + ".events-publisher.lock")
        else:
            self.path = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    def acquire(self) -> bool:
        if self.held:
            return True
        if self.path is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        conn = self.db.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, hashtext(current_schema()))"),
                               {"ns": self._NAMESPACE}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def alive(self) -> bool:
        """Still held? A PostgreSQL lock goes with its connection (server restart, network cut)."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception as exc:
            log.warning("event publisher lease lost (%s)", type(exc).__name__)
            self._drop_conn()
            return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:ns, hashtext(current_schema()))"),
                                   {"ns": self._NAMESPACE})
                self._conn.commit()
            except Exception:  # noqa: S110  closing the session below drops the lock anyway
                pass
            self._drop_conn()

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()  # never hand a connection that holds a session lock back to the pool
            conn.close()
        except Exception:  # noqa: S110  a broken connection is dropped either way; the lease is gone
            pass


@dataclass
class _Round:
    """The delivery of one event row: the receivers it was queued to and what they answered."""

    event: AlertEvent
    waiting: set[str]
    failed: dict[str, str] = field(default_factory=dict)


class EventsPublisher:
    def __init__(self, db: Database, config: DispatchConfig, kinds: ReceiverKinds, *, poll_interval: float = 2.0,
                 batch: int = BATCH, oneshot_hold: float = ONESHOT_HOLD, lease_retry: float = LEASE_RETRY,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.db = db
        self.config = config
        self.kinds = kinds
        self.poll_interval = poll_interval
        self.batch = batch
        self.oneshot_hold = oneshot_hold
        self.lease_retry = lease_retry
        self._clock = clock
        self._max_inflight = max(10, config.queue_size // 2)  # leave room in the receivers' queues
        self.lease = PublisherLease(db)
        self.dispatcher: Optional[Dispatcher] = None
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._rounds: dict[int, _Round] = {}
        #: rows given up on only by receivers that keep state: their later success still delivers the row
        self._late: dict[int, set[str]] = {}
        self._done: list[tuple[int, Optional[str]]] = []  # (id, error or None if delivered)
        self._oneshots: dict[str, tuple[AlertEvent, datetime]] = {}  # key -> (latest event, when it resolves)
        self._levels: dict[int, int] = {}  # system id -> protection level, for events that do not carry it
        self._high = 0  # highest event id handled
        self._next_sweep = 0.0  # monotonic time of the next read of all undelivered rows
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.stats = {"dispatched": 0, "delivered": 0, "failed": 0, "restored": 0, "expired": 0}

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sentinel-events", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)
        self._step_down(timeout)

    @property
    def leader(self) -> bool:
        return self.dispatcher is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.poll_interval
            try:
                if self.dispatcher is None:
                    if self.lease.acquire():
                        self._lead()
                    else:
                        delay = self.lease_retry
                elif not self.lease.alive():
                    self._step_down()
                    continue
                if self.dispatcher is not None:
                    self._cycle()
            except Exception as exc:  # the store is unreachable, or a bug: log, wait, try again
                log.error("event publisher: %s: %s", type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                delay = max(delay, 5.0)
            self._wake.wait(delay)
            self._wake.clear()

    def _lead(self) -> None:
        self.dispatcher = Dispatcher(self.config, self.kinds, on_result=self._on_result)
        log.info("event publisher started: %d receiver(s)", len(self.config.receivers))
        try:
            self._restore()
        except Exception:
            self._step_down(0)
            raise

    def _step_down(self, timeout: float = 5.0) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close(timeout)
            self.dispatcher = None
            try:
                self._apply_results()
                self._write_done()
            except Exception as exc:
                log.warning("event publisher: final delivery marks not written: %s", exc)
        self._rounds.clear()
        self._late.clear()
        self._oneshots.clear()
        self._high, self._next_sweep = 0, 0.0
        self.lease.release()

    # ---- one cycle -------------------------------------------------------------------------------

    def _cycle(self) -> None:
        self._apply_results()
        self._write_done()
        self._expire_oneshots()
        self._poll()
        self._write_done()

    def _on_result(self, event: AlertEvent, receiver: str, ok: bool, error: Optional[str]) -> None:
        # called on the receivers' threads: hand over, never touch the store there
        self._results.put((event, receiver, ok, error))
        self._wake.set()

    def _apply_results(self) -> None:
        while True:
            try:
                event, receiver, ok, error = self._results.get_nowait()
            except queue.Empty:
                return
            if event.id is None:
                continue  # a restored alert or an expiry: its row is settled already
            ids = [event.id]
            if self.dispatcher is not None and self.dispatcher.worker(receiver).keeps_state:
                # it pushes the latest state of a key: it answers for earlier events of that key too
                ids += [i for i, r in self._rounds.items()
                        if i < event.id and r.event.key == event.key and receiver in r.waiting]
                if ok:
                    ids += [i for i, names in self._late.items() if i <= event.id and receiver in names
                            and i not in ids]
            for event_id in ids:
                late = self._late.get(event_id)
                if late is not None and ok and receiver in late:
                    late.discard(receiver)
                    if not late:  # the only receivers that had given up have it now
                        del self._late[event_id]
                        self._done.append((event_id, None))
                        self.stats["delivered"] += 1
                    continue
                rnd = self._rounds.get(event_id)
                if rnd is None or receiver not in rnd.waiting:
                    continue
                rnd.waiting.discard(receiver)
                if not ok:
                    rnd.failed[receiver] = error or "failed"
                if not rnd.waiting:
                    self._finish(event_id, rnd)

    def _finish(self, event_id: int, rnd: _Round) -> None:
        del self._rounds[event_id]
        if not rnd.failed:
            self._done.append((event_id, None))
            self.stats["delivered"] += 1
            return
        error = "; ".join(f"{name}: {why}" for name, why in sorted(rnd.failed.items()))
        self._fail(event_id, error)
        assert self.dispatcher is not None
        if all(self.dispatcher.worker(n).keeps_state for n in rnd.failed):
            self._late[event_id] = set(rnd.failed)  # it keeps pushing: its success will still count

    def _fail(self, event_id: int, error: str) -> None:
        """The receivers gave up (their retry policy is spent) or the row cannot be sent: left undelivered
        with the reason; never tried again by the publisher."""
        self.stats["failed"] += 1
        self._done.append((event_id, error))
        log.error("event %d not delivered: %s", event_id, error)

    def _write_done(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        now = self._clock()
        try:
            with self.db.write() as conn:
                for event_id, error in done:
                    # attempts: 1 once tried, whatever the receivers' own retries were (their policy)
                    if error is None:
                        conn.execute(update(E).where(E.c.id == event_id).values(
                            delivered=True, delivered_at=now, attempts=1, last_error=None))
                    else:
                        conn.execute(update(E).where(E.c.id == event_id).values(
                            attempts=1, last_error=error[:_ERROR_MAX]))
        except Exception:
            self._done = done + self._done  # written at the next cycle
            raise

    # ---- reading and sending ---------------------------------------------------------------------

    def _poll(self) -> None:
        """New rows (above the highest id handled) each cycle; all rows not yet tried every SWEEP seconds,
        which also picks up a row whose transaction committed after a higher id's (possible on PostgreSQL
        with concurrent ingests)."""
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP
        after = 0 if sweep else self._high
        while len(self._rounds) < self._max_inflight and not self._stop.is_set():
            with self.db.read() as conn:
                rows = conn.execute(
                    select(E).where(E.c.delivered.is_(False), E.c.attempts == 0, E.c.id > after)
                    .order_by(E.c.id).limit(self.batch)).all()
            for row in rows:
                if len(self._rounds) >= self._max_inflight:
                    return
                self._high = max(self._high, row.id)
                if row.id in self._rounds:
                    continue
                self._send(row)
            if len(rows) < self.batch:
                return
            after = rows[-1].id

    def _event(self, row: Any) -> AlertEvent:
        """The row as an alert, with its system's protection level: the graded-response table grades by it
        (sentinel/events/grading.py). Host-report events carry it; the others (scans) get it from the store."""
        event = AlertEvent.from_row(row)
        sid = getattr(row, "system_id", None)
        base = self.config.link_base_url
        if base and sid is not None:
            # a link back to what the collector holds about it (the API answers whoever may see the system)
            url = f"{base.rstrip('/')}/api/v1/events?system_id={sid}&kind={event.kind}"
            event = event.model_copy(update={"url": url})
        if event.level is None and sid is not None:
            if sid not in self._levels:
                with self.db.read() as conn:
                    level = conn.execute(select(S.c.level).where(S.c.id == sid)).scalar()
                if level is None:
                    return event  # system gone: graded as the highest level could be
                self._levels[sid] = int(level)  # a system's level changes rarely; a restart re-reads it
            event = event.model_copy(update={"level": self._levels[sid]})
        return event

    def _send(self, row: Any) -> None:
        assert self.dispatcher is not None
        try:
            event = self._event(row)
        except (ValueError, ValidationError) as exc:
            # the row itself is unusable: nothing can do better later
            self._fail(row.id, f"cannot make an alert of this event: {exc}")
            return
        routed = self.dispatcher.route(event)
        if not routed:
            self._fail(row.id, "no route matches and there are no default receivers")
            return
        drops = {n: self._drops(n) for n in routed}
        queued = self.dispatcher.dispatch(event)
        # not queued: a full queue, or for a chat the same state sent within the dedup window (done). Only
        # this thread submits, so a grown drop count is this event's.
        full = {n: "queue full" for n in routed if n not in queued and self._drops(n) > drops[n]}
        self.stats["dispatched"] += 1
        self._track_oneshot(event, routed)
        if not queued:
            if full:
                self._fail(row.id, "; ".join(f"{n}: {why}" for n, why in sorted(full.items())))
            else:
                self._done.append((row.id, None))  # de-duplicated: this state was just sent
                self.stats["delivered"] += 1
            return
        self._rounds[row.id] = _Round(event=event, waiting=set(queued), failed=full)

    def _drops(self, name: str) -> int:
        assert self.dispatcher is not None
        stats = getattr(self.dispatcher.worker(name), "stats", {})
        return int(stats.get("dropped", 0))

    def _keepers(self, event: AlertEvent) -> list[Receiver]:
        """The receivers of this event that keep their alerts alive themselves (Alertmanager)."""
        assert self.dispatcher is not None
        return self.dispatcher.keeping_state(self.dispatcher.route(event))

    # ---- firing set across restarts, and one-shot notices ------------------------------------------

    def _track_oneshot(self, event: AlertEvent, routed: list[str]) -> None:
        if event.kind in STATEFUL_KINDS or event.resolved:
            return
        assert self.dispatcher is not None
        if self.dispatcher.keeping_state(routed):
            self._oneshots[event.key] = (event, event.created_at + timedelta(seconds=self.oneshot_hold))

    def _expire_oneshots(self) -> None:
        now = self._clock()
        for key, (event, until) in list(self._oneshots.items()):
            if until > now:
                continue
            del self._oneshots[key]
            resolved = event.model_copy(update={"resolved": True, "created_at": now, "id": None})
            for am in self._keepers(event):
                if event.kind in SHARED_IDENTITY:
                    # the rule's alert too (score_drop = SentinelSystemScoreDropped): an explicit resolution
                    # would end it while the rule still sees the drop; stop re-sending and let it lapse
                    # (endsAt) unless the rule keeps it up
                    am.forget(event.key)
                else:
                    am.submit(resolved)
            self.stats["expired"] += 1

    def _restore(self) -> None:
        """Alertmanager is told again about what is still firing: the latest event of each stateful
        condition unless it resolved, and one-shot notices younger than the hold. Only delivered rows:
        the undelivered ones are about to be dispatched anyway."""
        now = self._clock()
        latest = (select(func.max(E.c.id)).where(E.c.kind.in_(sorted(STATEFUL_KINDS)))
                  .group_by(E.c.fingerprint).scalar_subquery())
        recent = now - timedelta(seconds=self.oneshot_hold)
        with self.db.read() as conn:
            stateful = conn.execute(select(E).where(E.c.id.in_(latest), E.c.delivered.is_(True))
                                    .order_by(E.c.id)).all()
            oneshots = conn.execute(select(E).where(E.c.kind.not_in(sorted(STATEFUL_KINDS)),
                                                    E.c.created_at >= recent, E.c.delivered.is_(True))
                                    .order_by(E.c.id)).all()
        for row in list(stateful) + list(oneshots):
            try:
                event = self._event(row)
            except (ValueError, ValidationError):
                continue
            if event.resolved:
                continue
            ams = self._keepers(event)
            for am in ams:
                am.submit(event.model_copy(update={"id": None}))
            if ams:
                self.stats["restored"] += 1
                if event.kind not in STATEFUL_KINDS:
                    self._oneshots[event.key] = (event, event.created_at + timedelta(seconds=self.oneshot_hold))
        if self.stats["restored"]:
            log.info("event publisher: %d firing alert(s) restored for Alertmanager", self.stats["restored"])


def install(app, kinds: ReceiverKinds) -> Optional[EventsPublisher]:
    """Run an EventsPublisher with the app (started and stopped by its lifespan) when `alerting_config` is
    set, and the Alertmanager-webhook relay (relay.py). `kinds` builds the receivers by type (the exporters
    the composition root plugs in). The configuration is read now, so a bad file (or a receiver type no
    exporter builds) stops the collector at start, naming file and field."""
    settings = app.state.settings
    app.state.events_publisher = None
    if settings.alerting_config is None:
        return None
    config = DispatchConfig.from_yaml(settings.alerting_config)
    unknown = sorted({rc.type for rc in config.receivers} - set(kinds))
    if unknown:
        raise DispatchConfigError(f"{settings.alerting_config}: receivers: no exporter for type(s) {unknown}")
    relay.install(app, config, kinds)
    publisher = EventsPublisher(app.state.db, config, kinds, poll_interval=settings.events_poll_seconds)
    app.state.events_publisher = publisher
    around_lifespan(app, start=publisher.start, stop=publisher.close)
    return publisher
