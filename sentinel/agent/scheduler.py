"""The agent's schedule (APScheduler 3.x, background thread).

Baseline runs share a one-thread executor, so two baselines never run checks at the same time on the
host; each runs once at start and then every `interval` seconds plus up to `jitter` seconds, so agents
started together (a fleet rebooted at once) spread their load on the hosts and the collector. A run
that is late is still done once (coalesced), never skipped. Sampling, utilisation and inventory jobs use
the default executor and cannot be held up by a long baseline run.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import AgentSettings, BaselineSchedule

log = logging.getLogger(__name__)


class Jobs(Protocol):
    """What the schedule runs (the agent daemon, sentinel/agent/daemon.py, is one): the scheduler knows
    the jobs, not the daemon, so the daemon imports the scheduler and not the other way round."""

    def run_baseline(self, schedule: BaselineSchedule) -> Any: ...

    def take_sample(self) -> Any: ...

    def send_utilisation(self) -> Any: ...

    def send_inventory(self) -> Any: ...

    def run_objects(self) -> Any: ...


def build_scheduler(settings: AgentSettings, agent: Jobs) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(3), "checks": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone.utc,
    )
    now = datetime.now(timezone.utc)
    for index, schedule in enumerate(settings.baselines):
        jitter = settings.jitter if schedule.jitter is None else schedule.jitter
        jitter = min(jitter, schedule.interval / 2)  # jitter never doubles the interval
        scheduler.add_job(agent.run_baseline, IntervalTrigger(seconds=schedule.interval, jitter=jitter or None),
                          args=[schedule], id=f"baseline-{index}", name=f"baseline {schedule.baseline}",
                          executor="checks", next_run_time=now)
    objects = settings.objects
    if objects.discover or objects.pin:  # after the OS baselines on the same executor: never two runs at once
        jitter = min(settings.jitter if objects.jitter is None else objects.jitter, objects.interval / 2)
        scheduler.add_job(agent.run_objects, IntervalTrigger(seconds=objects.interval, jitter=jitter or None),
                          id="objects", name="objects (databases, middleware, web servers)", executor="checks",
                          next_run_time=now + timedelta(seconds=1))
    scheduler.add_job(agent.take_sample, IntervalTrigger(seconds=settings.sample_interval), id="sample",
                      name="utilisation sample", next_run_time=now)
    scheduler.add_job(agent.send_utilisation, IntervalTrigger(seconds=settings.utilisation_interval),
                      id="utilisation", name="utilisation envelope",
                      next_run_time=now + timedelta(seconds=settings.utilisation_interval))
    scheduler.add_job(agent.send_inventory, IntervalTrigger(seconds=settings.inventory_interval), id="inventory",
                      name="inventory", next_run_time=now)
    return scheduler
