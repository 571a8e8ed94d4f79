"""The agent: makes envelopes, spools them, and delivers them signed, oldest first, exactly once.

Every envelope goes through the spool, whether the collector is up or not, so there is one delivery path
and a crash between "report made" and "report stored" loses nothing. An envelope stays in the spool until
the collector answers 2xx (stored, or the same body again) or 409 (that report id is already stored).
The envelope is made and signed when the report is made, and the spool keeps exactly those bytes and that
signature: delivery sends them unchanged, so editing a waiting report on disk cannot make it genuine (an
entry whose signature no longer verifies with the agent's key is moved to `rejected/`, never sent).
`sent_at` is therefore the time the report was made; the collector accepts it from up to its
`report_max_age_seconds` in the past (a report spooled through a long outage) to its clock skew ahead
(docs/wire.md). Spool entries written by an older agent (unsigned) are enveloped and signed when sent, as
that version did.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from apscheduler.schedulers.background import BackgroundScheduler

from .. import signing
from ..backoff import Backoff
from ..plugins import MetricsExposition
from ..scoring import failing_figures
from .client import CollectorClient, Outcome
from .config import AgentSettings, BaselineSchedule
from .enroll import EnrollError, Identity, ca_for, load_identity, private_dir
from .exporter import AgentExporter
from .objects import NoBaselineLog
from .objects import plan as plan_objects
from .runner import ObjectChild, RunError, inventory_isolated, run_isolated, stop_all
from .sampler import Sampler
from .scheduler import build_scheduler
from .spool import Spool, SpoolError

log = logging.getLogger("sentinel.agent")

KINDS = ("host_report", "inventory", "utilisation")


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FlushResult:
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    remaining: int = 0
    blocked: Optional[str] = None  # why delivery stopped before the spool was empty
    retry_after: Optional[float] = None  # when the collector asked to be tried again (its Retry-After), seconds
    answers: list[dict[str, Any]] = field(default_factory=list)  # collector answers for delivered envelopes

    @property
    def complete(self) -> bool:
        return self.blocked is None


class Agent:
    """`metrics`: the /metrics exposition the composition root plugs in, needed when `metrics_port` is set."""

    def __init__(self, settings: AgentSettings, identity: Optional[Identity] = None, *,
                 metrics: Optional[MetricsExposition] = None) -> None:
        self.settings = settings
        self.identity = identity or load_identity(settings)
        try:
            self._key = signing.load_private_key(settings.key_file)
        except (OSError, ValueError) as exc:  # SigningKeyError says which file and why, never the key
            raise EnrollError(f"{exc}; enroll again with --force") from None
        self._sign = signing.sign
        self._verify = signing.verify
        self._public = self._key.public_key()
        url = settings.collector_url or self.identity.collector_url
        self.client = CollectorClient(url, ca_file=ca_for(settings), timeout=settings.request_timeout)
        self.spool = Spool(settings.spool_dir, settings.spool_max_count, settings.spool_max_bytes)
        self.sampler = Sampler(settings.sample_ring)
        self._flush_lock = threading.Lock()
        self._kick = threading.Event()
        self._stopping = threading.Event()
        self._deliverer: Optional[threading.Thread] = None
        self._scheduler: Optional[BackgroundScheduler] = None
        self._lock_fd: Optional[int] = None
        self.exporter = None  # the optional agent /metrics (exporter.py), when metrics_port is set
        if settings.metrics_port is not None:
            if metrics is None:
                raise ValueError("metrics_port is set, but this agent was built without a metrics exposition")
            self.exporter = AgentExporter(settings, self.identity, metrics, spool=self.spool)
        self._root = str(settings.host_root) if settings.host_root else None  # checks read this mounted root
        self._no_baseline = NoBaselineLog()
        self._object_child: Optional[ObjectChild] = None  # the objects job's check child, while the job runs

    # ---- envelopes -------------------------------------------------------------------------------
    def enqueue(self, kind: str, body: dict[str, Any], report_id: Optional[str] = None) -> str:
        """Spool an envelope for delivery; returns its report id."""
        if kind not in KINDS:
            raise ValueError(f"unknown envelope kind {kind!r}")
        report_id = report_id or str(uuid.uuid4())
        raw = self._envelope(report_id, kind, body)
        # Signed now, spooled as signed: what is delivered is exactly what was made.
        self.spool.put({"report_id": report_id, "kind": kind, "signature": self._sign(self._key, raw),
                        "envelope": raw.decode("utf-8")})
        self._kick.set()
        return report_id

    def _envelope(self, report_id: str, kind: Optional[str], body: Any) -> bytes:
        envelope = {"report_id": report_id, "agent_id": self.identity.agent_id, "sent_at": rfc3339_now(),
                    "kind": kind, "body": body}
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _signed(self, entry, stored: dict[str, Any]) -> Optional[tuple[bytes, str, str]]:
        """(raw, signature, kind) to send for a spool entry; None if it was moved to rejected/ instead."""
        if "envelope" not in stored and "body" in stored:  # an entry spooled by an older, unsigned agent
            log.warning("spool entry %s predates signed spooling; enveloped and signed now", entry.report_id)
            raw = self._envelope(str(stored.get("report_id", entry.report_id)), stored.get("kind"), stored["body"])
            return raw, self._sign(self._key, raw), str(stored.get("kind"))
        envelope, signature = stored.get("envelope"), stored.get("signature")
        raw = envelope.encode("utf-8") if isinstance(envelope, str) else b""
        if not isinstance(signature, str) or not self._verify(self._public, raw, signature):
            self.spool.reject(entry, "the spooled envelope's signature does not verify with this agent's key: it "
                                     "was changed after it was made (or made under an earlier enrollment); not sent")
            return None
        return raw, signature, str(stored.get("kind"))

    def run_baseline(self, schedule: BaselineSchedule,
                     target: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
        """Run one baseline in a child process and spool its report; None (logged) if it produced none.
        `target`: the 测评对象 it judges (ObjectRef as JSON data), for an object baseline (run by the objects job's
        child while the job runs)."""
        report_id = str(uuid.uuid4())
        child = self._object_child
        try:
            if child is not None and target is not None:
                report = child.run(schedule.baseline, report_id, self.settings.time_budget, target)
            else:
                report = run_isolated(schedule.baseline, report_id, self.settings.time_budget,
                                      nice=self.settings.check_nice, ionice_idle=self.settings.check_ionice_idle,
                                      root=self._root, target=target)
        except RunError as exc:
            self._run_failed(exc)
            return None
        try:
            self.enqueue("host_report", report, report_id=report_id)
        except SpoolError as exc:
            log.error("report %s of baseline %s could not be spooled: %s", report_id, schedule.baseline, exc)
            return None
        if self.exporter is not None and target is None:  # the agent's /metrics shows the host's OS report
            self.exporter.save(report)
        summary = report.get("summary", {})
        on = f" on {target.get('name') or target.get('kind')}" if target else ""
        log.info("baseline %s%s: report %s spooled (score %s, %s failing)", schedule.baseline, on, report_id,
                 summary.get("score"), failing_figures(report.get("results", []))[0])
        return report

    def run_objects(self) -> list[dict[str, Any]]:
        """Find the host's 测评对象 besides its OS and run each one's baseline, one report per object
        (sentinel/agent/objects.py decides which, docs/objects.md)."""
        cfg = self.settings.objects
        if not cfg.discover and not cfg.pin:
            return []
        found: dict[str, Any] = {"level": cfg.level, "objects": []}
        reports = []
        # one check child for the whole job (discovery and every object, each in a fork of it): one interpreter
        # start instead of one per object
        child = ObjectChild(nice=self.settings.check_nice, ionice_idle=self.settings.check_ionice_idle,
                            root=self._root)
        self._object_child = child  # run_baseline's (subclasses override it with its signature)
        try:
            if cfg.discover:
                level_of = self.settings.baselines[0].baseline if cfg.level is None else None
                try:
                    found = child.discover(min(self.settings.time_budget, 300), level=cfg.level, level_of=level_of)
                except RunError as exc:  # pinned objects still run
                    self._run_failed(exc)
            hostname = found.get("hostname") or socket.gethostname()
            for planned in plan_objects(found, cfg, hostname):
                if planned.baseline is None:
                    self._no_baseline(planned)
                    continue
                report = self.run_baseline(BaselineSchedule(baseline=planned.baseline, interval=cfg.interval),
                                           target=planned.target.model_dump(mode="json"))
                if report is not None:
                    reports.append(report)
        finally:
            self._object_child = None
            child.close()
        return reports

    def send_inventory(self) -> None:
        try:
            inventory = inventory_isolated(min(self.settings.time_budget, 300), nice=self.settings.check_nice,
                                           ionice_idle=self.settings.check_ionice_idle, root=self._root)
            self.enqueue("inventory", inventory)
        except RunError as exc:
            self._run_failed(exc)
        except SpoolError as exc:
            log.error("inventory not spooled: %s", exc)

    def _run_failed(self, exc: RunError) -> None:
        if self._stopping.is_set():
            log.info("%s (the agent is stopping)", exc)
        else:
            log.error("%s", exc)

    def take_sample(self) -> None:
        try:
            self.sampler.sample()
        except OSError as exc:
            log.warning("utilisation sample failed: %s", exc)

    def send_utilisation(self) -> None:
        samples = self.sampler.drain()
        if not samples:
            return
        try:
            self.enqueue("utilisation", {"samples": samples})
        except SpoolError as exc:
            log.error("utilisation samples not spooled: %s", exc)

    # ---- delivery --------------------------------------------------------------------------------
    def flush(self) -> FlushResult:
        """Deliver spooled envelopes oldest first; stops at the first one that must wait."""
        result = FlushResult()
        with self._flush_lock:
            for entry in self.spool.pending():
                if self._stopping.is_set() and self._deliverer is not None:
                    result.blocked = "agent stopping"
                    break
                stored = self.spool.read(entry)
                if stored is None:
                    continue
                signed = self._signed(entry, stored)
                if signed is None:
                    result.rejected += 1
                    continue
                raw, signature, kind = signed
                answer = self.client.send(raw, self.identity.agent_id, signature)
                if answer.outcome is Outcome.DELIVERED:
                    self.spool.remove(entry)
                    result.delivered += 1
                    result.answers.append(answer.data or {})
                    log.info("delivered %s %s (%s)", kind, entry.report_id, answer.status)
                elif answer.outcome is Outcome.DUPLICATE:
                    self.spool.remove(entry)
                    result.duplicates += 1
                    # this agent never sends two bodies under one id, so retrying cannot help
                    log.warning("%s %s: collector already holds this report id (409: %s); removed from the spool",
                                kind, entry.report_id, answer.detail)
                elif answer.outcome is Outcome.REJECTED:
                    self.spool.reject(entry, f"HTTP {answer.status}: {answer.detail}")
                    result.rejected += 1
                elif answer.outcome is Outcome.UNAUTHORIZED:
                    result.blocked = (f"collector refuses this agent (HTTP {answer.status}: {answer.detail}); "
                                      "reports stay spooled; enroll again if the agent was revoked")
                    break
                else:
                    status = "" if answer.status is None else f"HTTP {answer.status}: "
                    result.blocked = status + answer.detail
                    result.retry_after = answer.retry_after
                    break
            result.remaining = len(self.spool.pending())
        if result.blocked:
            log.warning("delivery paused with %d envelope(s) spooled: %s", result.remaining, result.blocked)
        return result

    def _deliver_loop(self) -> None:
        # doubling from retry_min up to retry_max, jittered so agents that lost the collector together do not
        # come back in lockstep; it never gives up (the spool keeps the reports)
        backoff = Backoff(initial_delay=self.settings.retry_min, max_delay=self.settings.retry_max)
        delay, failures = 0.0, 0
        while not self._stopping.is_set():
            self._kick.wait(timeout=delay if delay else self.settings.retry_max)
            self._kick.clear()
            if self._stopping.is_set():
                break
            try:
                outcome = self.flush()
            except SpoolError as exc:
                log.error("spool: %s", exc)
                outcome = FlushResult(blocked=str(exc))
            if outcome.complete:
                delay, failures = 0.0, 0
            elif outcome.retry_after is not None:
                # the collector said when it will take the next report (429/503 Retry-After, already bounded):
                # sooner is refused again, later only slows a full spool's drain against the per-agent limit
                delay = min(outcome.retry_after, self.settings.retry_max)
            else:
                failures += 1
                delay = backoff.delay(failures)

    # ---- lifecycle -------------------------------------------------------------------------------
    def _take_lock(self) -> int:
        private_dir(self.settings.state_dir)
        fd = os.open(self.settings.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EnrollError(f"another agent is running with state directory {self.settings.state_dir}") from None
        self._lock_fd = fd
        return fd

    def start(self) -> None:
        """Start delivery and the schedule (each baseline once now, then on its interval)."""
        lock_fd = self._take_lock()
        if self.exporter is not None:
            try:
                self.exporter.start()
            except OSError:
                os.close(lock_fd)
                self._lock_fd = None
                raise
        self._deliverer = threading.Thread(target=self._deliver_loop, name="sentinel-deliver", daemon=True)
        self._deliverer.start()
        self._scheduler = build_scheduler(self.settings, self)
        self._scheduler.start()
        pending, size = self.spool.stats()
        log.info("agent %s started: collector %s, %d baseline(s) scheduled, %d envelope(s) (%d bytes) spooled",
                 self.identity.agent_id, self.client.url, len(self.settings.baselines), pending, size)
        self._kick.set()

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        stop_all()
        if self._deliverer is not None:
            self._deliverer.join(timeout=self.settings.request_timeout + 5)
        self.client.close()
        if self.exporter is not None:
            self.exporter.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("agent stopped")

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def close(self) -> None:
        self.client.close()

    def run_once(self) -> tuple[list[dict[str, Any]], FlushResult]:
        """One cycle without the scheduler: inventory, a utilisation sample, each baseline, each object, then
        delivery."""
        self._take_lock()
        try:
            self.send_inventory()
            self.take_sample()
            self.send_utilisation()
            reports = [r for r in (self.run_baseline(s) for s in self.settings.baselines) if r is not None]
            reports += self.run_objects()
            return reports, self.flush()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
