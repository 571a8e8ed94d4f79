"""The background scheduler a collector service runs its jobs in (network scans: scanner.py, website monitoring:
websites.py): an APScheduler BackgroundScheduler started and stopped with the service, interval jobs kept in
step with what the store says should run (added, replaced when their interval changes, removed), and one-off
jobs run now in the same pools.

APScheduler is imported where it is used, so it loads only in a collector that runs such a service.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import Row, Select

from ..store.db import Database

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler


@dataclass(frozen=True)
class IntervalJob:
    """One job the store asks for: `func(*args)` every `interval` seconds (plus up to `jitter`), first at `first`."""

    func: Callable[..., object]
    args: tuple[Any, ...]
    interval: int
    first: datetime
    name: str
    executor: str = "default"
    jitter: int = 0


def first_run(now: datetime, claimed: Optional[datetime], interval: int) -> datetime:
    """When a (re)scheduled job first fires: now if no process ever claimed a firing, else one interval after the
    last claim (and not before now), so a reload or a restart neither repeats nor skips a firing."""
    return now if claimed is None else max(now, claimed + timedelta(seconds=interval))


class JobScheduler:
    """One service's BackgroundScheduler: thread pools by executor name (`pools`, plus "sync": one thread for
    the reloads) and the interval jobs it runs, by job id, as read from `db`. Thread-safe; start and stop may be
    called repeatedly."""

    def __init__(self, db: Database, pools: Mapping[str, int], log: logging.Logger) -> None:
        self.db = db
        self.pools = dict(pools)
        self.log = log
        self._lock = threading.Lock()
        self._scheduler: Optional[BackgroundScheduler] = None
        self._jobs: dict[str, tuple[int, int]] = {}  # job id -> (interval, jitter) it was scheduled with

    @property
    def started(self) -> bool:
        return self._scheduler is not None

    @property
    def scheduler(self) -> Optional[BackgroundScheduler]:
        return self._scheduler

    def start(self) -> bool:
        """Start the scheduler; False when it was running already."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        if logging.getLogger("apscheduler.executors").level == logging.NOTSET:
            # one INFO line per job run (every schedule reload) is noise; job errors still show
            logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        with self._lock:
            if self._scheduler is not None:
                return False
            executors = {name: ThreadPoolExecutor(size) for name, size in self.pools.items()}
            executors["sync"] = ThreadPoolExecutor(1)
            scheduler = BackgroundScheduler(
                executors=executors, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
                timezone=timezone.utc)
            scheduler.start()
            self._scheduler = scheduler
        return True

    def keep_synced(self, sync: Callable[[], None], seconds: float, job_id: str, name: str) -> None:
        """Run `sync` now, then every `seconds` in the "sync" pool."""
        sync()
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.add_job(sync, "interval", seconds=seconds, id=job_id, executor="sync", name=name)

    def stop(self) -> bool:
        """Shut the scheduler down without waiting for running jobs; False when it was not running."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._jobs.clear()
        if scheduler is None:
            return False
        scheduler.shutdown(wait=False)
        return True

    def sync(self, query: Select[Any], jobs: Callable[[Sequence[Row[Any]], datetime], Mapping[str, IntervalJob]],
             what: str) -> None:
        """Make the interval jobs those that `jobs` makes of the rows of `query` (by job id) and the time now: new
        ones added, ones whose interval or jitter changed replaced, the others removed. A failed read is logged
        ("could not read the `what`") and changes nothing."""
        if self._scheduler is None:
            return
        try:
            with self.db.read() as conn:
                rows = conn.execute(query).all()
            wanted = jobs(rows, datetime.now(timezone.utc))
        except Exception:
            self.log.exception("could not read the %s", what)
            return
        from apscheduler.jobstores.base import JobLookupError
        from apscheduler.triggers.interval import IntervalTrigger

        with self._lock:
            scheduler = self._scheduler
            if scheduler is None:
                return
            for job_id in list(self._jobs):
                if job_id not in wanted:
                    self._jobs.pop(job_id, None)
                    try:
                        scheduler.remove_job(job_id)
                    except JobLookupError:  # not scheduled here
                        pass
            for job_id, job in wanted.items():
                if self._jobs.get(job_id) == (job.interval, job.jitter):
                    continue
                trigger = IntervalTrigger(seconds=job.interval, jitter=job.jitter or None)
                scheduler.add_job(job.func, trigger, args=list(job.args), id=job_id, name=job.name,
                                  next_run_time=job.first, replace_existing=True, executor=job.executor)
                self._jobs[job_id] = (job.interval, job.jitter)

    def next_run(self, job_id: str) -> Optional[datetime]:
        scheduler = self._scheduler
        job = scheduler.get_job(job_id) if scheduler is not None else None
        return job.next_run_time if job is not None else None

    def run_now(self, func: Callable[..., object], job_id: str, name: str, args: Sequence[Any] = (),
                kwargs: Optional[Mapping[str, Any]] = None) -> bool:
        """Run a one-off job now in the default pool; False when the scheduler is not running (stop() ran)."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        scheduler.add_job(func, args=list(args), kwargs=dict(kwargs or {}), id=job_id, name=name,
                          next_run_time=datetime.now(timezone.utc))
        return True
