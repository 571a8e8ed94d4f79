"""Website monitoring run by the collector: each enabled website's rounds and availability visits on their
intervals (APScheduler), and rounds triggered through the API.

As scans (sentinel/collector/scanner.py): nothing is fetched unless the collector's `websites.enabled` is on;
a firing is claimed in the database (`websites.claimed_at`, `visit_claimed_at`) so processes sharing it run
each once per interval; the database holds at most one running round per website (a second trigger is 409).
A round fetches only URLs on the website's declaration (sentinel/websites/sites.py).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import or_, select, update

from ..store.db import Database
from ..store.models import Website
from ..websites import monitor
from .settings import CollectorSettings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("sentinel.collector.websites")
T_SITE = Website.__table__
SCHEDULER_ACTOR = "scheduler"


class WebsiteService:
    def __init__(self, db: Database, settings: CollectorSettings) -> None:
        self.db = db
        self.settings = settings
        self.config = settings.websites
        self._lock = threading.Lock()
        self._scheduler: Optional[BackgroundScheduler] = None
        self._jobs: dict[str, int] = {}  # job id -> interval

    @property
    def runs_schedules(self) -> bool:
        return self.config.enabled and self.config.schedules

    def start(self) -> None:
        if not self.config.enabled:  # nothing may be fetched: no scheduler, no threads
            return
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        with self._lock:
            if self._scheduler is not None:
                return
            scheduler = BackgroundScheduler(
                executors={"default": ThreadPoolExecutor(self.config.concurrency),
                           "visits": ThreadPoolExecutor(4), "sync": ThreadPoolExecutor(1)},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
                timezone=timezone.utc)
            scheduler.start()
            self._scheduler = scheduler
        if self.runs_schedules:
            self.sync()
            scheduler.add_job(self.sync, "interval", seconds=self.config.sync_seconds, id="websites-sync",
                              executor="sync", name="reload websites")

    def stop(self) -> None:
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
            self._jobs.clear()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        try:
            with self.db.write() as conn:
                from ..store.models import WebsiteRound

                t = WebsiteRound.__table__
                conn.execute(update(t).where(t.c.status == "running", t.c.runner == monitor.runner_id()).values(
                    status="failed", error="interrupted: the collector stopped during the round",
                    finished_at=datetime.now(timezone.utc)))
        except Exception:
            log.exception("could not mark this process's running website rounds failed")

    def sync(self) -> None:
        """(Re)load the enabled websites: one round job and one visit job each, at their intervals."""
        if self._scheduler is None or not self.runs_schedules:
            return
        try:
            with self.db.read() as conn:
                rows = conn.execute(select(T_SITE.c.id, T_SITE.c.interval_seconds, T_SITE.c.visit_seconds,
                                           T_SITE.c.claimed_at, T_SITE.c.visit_claimed_at)
                                    .where(T_SITE.c.enabled.is_(True))).all()
        except Exception:
            log.exception("could not read the websites")
            return
        from apscheduler.jobstores.base import JobLookupError
        from apscheduler.triggers.interval import IntervalTrigger

        now = datetime.now(timezone.utc)
        wanted: dict[str, tuple[int, Optional[datetime], Any, str]] = {}
        for r in rows:
            wanted[f"website-round-{r.id}"] = (r.interval_seconds, r.claimed_at, (self.run_scheduled, r.id), "default")
            wanted[f"website-visit-{r.id}"] = (r.visit_seconds, r.visit_claimed_at, (self.visit_scheduled, r.id),
                                               "visits")
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None:
                return
            for job_id in list(self._jobs):
                if job_id not in wanted:
                    self._jobs.pop(job_id, None)
                    try:
                        scheduler.remove_job(job_id)
                    except JobLookupError:
                        pass
            for job_id, (interval, claimed, (func, wid), executor) in wanted.items():
                if self._jobs.get(job_id) == interval:
                    continue
                due = now if claimed is None else max(now, claimed + timedelta(seconds=interval))
                scheduler.add_job(func, IntervalTrigger(seconds=interval), args=[wid], id=job_id, name=job_id,
                                  next_run_time=due, replace_existing=True, executor=executor)
                self._jobs[job_id] = interval

    def next_run(self, website_id: int) -> Optional[datetime]:
        scheduler = self._scheduler
        job = scheduler.get_job(f"website-round-{website_id}") if scheduler is not None else None
        return job.next_run_time if job is not None else None

    def _claim(self, website_id: int, column: str, interval_column: str, now: datetime) -> bool:
        """Take this firing unless another process took it within half an interval."""
        with self.db.write() as conn:
            row = conn.execute(select(T_SITE.c[interval_column]).where(T_SITE.c.id == website_id,
                                                                      T_SITE.c.enabled.is_(True))).first()
            if row is None:
                return False
            cutoff = now - timedelta(seconds=row[0] / 2)
            taken = conn.execute(update(T_SITE).where(
                T_SITE.c.id == website_id, or_(T_SITE.c[column].is_(None), T_SITE.c[column] <= cutoff)
            ).values({column: now})).rowcount
        return taken == 1

    def run_scheduled(self, website_id: int) -> None:
        try:
            if not self._claim(website_id, "claimed_at", "interval_seconds", datetime.now(timezone.utc)):
                return
            monitor.run_round(self.db, website_id, triggered_by="schedule", actor=SCHEDULER_ACTOR)
        except monitor.RoundBusy as exc:
            log.warning("scheduled round skipped: %s", exc)
        except Exception:
            log.exception("scheduled round of website %s failed", website_id)

    def visit_scheduled(self, website_id: int) -> None:
        try:
            if self._claim(website_id, "visit_claimed_at", "visit_seconds", datetime.now(timezone.utc)):
                monitor.visit(self.db, website_id)
        except Exception:
            log.exception("availability visit of website %s failed", website_id)

    def submit(self, website_id: int, round_id: int, actor: str) -> None:
        """Run a claimed round now in the pool."""
        self.start()
        scheduler = self._scheduler
        if scheduler is None:
            raise RuntimeError("the website service is stopping")
        scheduler.add_job(monitor.run_round, args=[self.db, website_id],
                          kwargs={"triggered_by": "api", "actor": actor, "round_id": round_id},
                          id=f"website-now-{round_id}", name=f"website round {round_id}",
                          next_run_time=datetime.now(timezone.utc))
