"""Website monitoring run by the collector: each enabled website's rounds and availability visits on their
intervals (APScheduler), and rounds triggered through the API.

As scans (sentinel/collector/scanner.py): nothing is fetched unless the collector's `websites.enabled` is on;
a firing is claimed in the database (`websites.claimed_at`, `visit_claimed_at`) so processes sharing it run
each once per interval; the database holds at most one running round per website (a second trigger is 409).
A round fetches only URLs on the website's declaration (sentinel/websites/sites.py).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import Row, or_, select, update

from ..store.db import Database
from ..store.models import Website
from ..websites import monitor
from .schedule import IntervalJob, JobScheduler, first_run
from .settings import CollectorSettings

log = logging.getLogger("sentinel.collector.websites")
T_SITE = Website.__table__
SCHEDULER_ACTOR = "scheduler"


class WebsiteService:
    def __init__(self, db: Database, settings: CollectorSettings) -> None:
        self.db = db
        self.settings = settings
        self.config = settings.websites
        self._schedule = JobScheduler(db, {"default": self.config.concurrency, "visits": 4}, log)

    @property
    def runs_schedules(self) -> bool:
        return self.config.enabled and self.config.schedules

    @property
    def started(self) -> bool:
        return self._schedule.started

    def start(self) -> None:
        if not self.config.enabled:  # nothing may be fetched: no scheduler, no threads
            return
        if self._schedule.start() and self.runs_schedules:
            self._schedule.keep_synced(self.sync, self.config.sync_seconds, "websites-sync", "reload websites")

    def stop(self) -> None:
        self._schedule.stop()
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
        if self.runs_schedules:
            self._schedule.sync(select(T_SITE.c.id, T_SITE.c.interval_seconds, T_SITE.c.visit_seconds,
                                       T_SITE.c.claimed_at, T_SITE.c.visit_claimed_at)
                                .where(T_SITE.c.enabled.is_(True)),
                                self._jobs, "websites")

    def _jobs(self, rows: Sequence[Row[Any]], now: datetime) -> dict[str, IntervalJob]:
        wanted = {}
        for r in rows:
            for job_id, func, interval, claimed, executor in (
                    (f"website-round-{r.id}", self.run_scheduled, r.interval_seconds, r.claimed_at, "default"),
                    (f"website-visit-{r.id}", self.visit_scheduled, r.visit_seconds, r.visit_claimed_at, "visits")):
                wanted[job_id] = IntervalJob(func, (r.id,), interval, first_run(now, claimed, interval), job_id,
                                             executor=executor)
        return wanted

    def next_run(self, website_id: int) -> Optional[datetime]:
        return self._schedule.next_run(f"website-round-{website_id}")

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
        if not self._schedule.run_now(monitor.run_round, f"website-now-{round_id}", f"website round {round_id}",
                                      args=(self.db, website_id),
                                      kwargs={"triggered_by": "api", "actor": actor, "round_id": round_id}):
            raise RuntimeError("the website service is stopping")
