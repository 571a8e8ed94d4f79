"""Network scans run by the collector: per-system schedules (APScheduler) and scans triggered through the API.

The scope of every scan is the system's registered `scan_scope`; a trigger may narrow the targets to part of
it, never widen them: `ensure_in_scope` refuses anything outside before a packet is sent (the API answers
422, audited; a scheduled scan that somehow fell outside writes a `scan.refused` audit entry).

A scan never overlaps itself for a system:
- in this process, each system's scheduled job has `max_instances=1` and `coalesce=True`;
- across processes (several workers, several collectors on one database), the database holds at most one
  `running` scan run per system (sentinel/collector/scan_ingest.py). A second trigger while one runs is
  refused with 409 naming the running scan; a scheduled firing while one runs is skipped (logged): it is
  not queued, the next firing scans again;
- a schedule's firing is claimed in the database (`scan_schedules.claimed_at`), so processes sharing the
  database run it once per interval, not once each.

Nothing is sent unless the collector's `scans` setting is on (`SENTINEL_COLLECTOR_SCANS=true`): a collector
only probes networks where its operator said so. Off, schedules can be stored but do not run, and a trigger
is refused (403) after its scope check.

Rate limits come from the collector settings (`scan_rate` packets/s -> nmap --max-rate, `scan_max_hosts`
hosts in parallel -> --max-hostgroup, `scan_concurrency` systems at once, `scan_timeout` per nmap run).
"""
from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Row, or_, select, update

from sentinel.checks.network.discovery import NmapError, NmapMissing, RateLimit, ScanOptions
from sentinel.checks.network.scope import Scope, ScopeError, ensure_in_scope, merge_ranges, parse_ports
from sentinel.network.engine import CredentialGrant, credential_list
from sentinel.network.zones import ZoneBaseline, load_zone_baseline, shipped

from ..baseline import BaselineError
from ..store.db import Database
from ..store.models import ScanSchedule, System
from . import address_plan, audit
from .scan_ingest import Claim, ScanBusy, ScanGone, begin_scan, fail_interrupted, fail_scan, finish_scan, runner_id
from .schedule import IntervalJob, JobScheduler, first_run
from .settings import CollectorSettings

log = logging.getLogger("sentinel.collector.scans")

T_SCHED, T_SYSTEM = ScanSchedule.__table__, System.__table__
DEFAULT_ZONE_BASELINE = "zone-egov-default"
SCHEDULER_ACTOR = "scheduler"


class ScanRequestError(ValueError):
    """A scan cannot be planned as asked (no scope, bad zone baseline or zone, bad ports)."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A system's scan settings as stored (defaults when the system has no schedule row)."""

    enabled: bool = False
    interval_seconds: Optional[int] = None
    jitter_seconds: int = 0
    zone_baseline: str = DEFAULT_ZONE_BASELINE
    zone: Optional[str] = None
    scanner_zone: Optional[str] = None
    tcp_ports: Optional[str] = None
    udp_ports: Optional[str] = None
    version_detection: bool = True
    claimed_at: Optional[datetime] = None

    @classmethod
    def from_row(cls, row) -> ScheduleSpec:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


@dataclass
class ScanPlan:
    system_id: int
    system: str
    targets: list[str]
    full_scope: bool
    scope: Scope
    options: ScanOptions
    baseline: ZoneBaseline
    zone: Optional[str]
    scanner_zone: Optional[str]
    credential_grant: Optional[CredentialGrant] = None  # the system's credential probes were on: who, when
    level: Optional[int] = None  # the system's level, which the scan scores at (None: the zone baseline's)

    def args(self) -> dict:
        out: dict = {"options": self.options.model_dump(mode="json")}
        if self.level is not None:
            out["level"] = self.level
        if self.credential_grant is not None:  # the scan run says who enabled the logins it tries, and when
            out["credential_probes"] = {**self.credential_grant.model_dump(mode="json"),
                                        "credentials": credential_list()}
        return out


def credential_grant(system) -> Optional[CredentialGrant]:
    """The system row's credential-probe switch as a grant, None while it is off. A switch set in the database
    by hand (the API always records who and when) still counts as on, and says that nobody was recorded."""
    if not system.credential_probes:
        return None
    return CredentialGrant(enabled_by=system.credential_probes_by or "unrecorded (set outside the API)",
                           enabled_at=system.credential_probes_at)


def system_scope(name: str, cidrs: list[str]) -> Scope:
    if not cidrs:
        raise ScanRequestError(f"system {name} has no scan_scope registered: nothing may be scanned "
                               "(set the system's scan_scope first)")
    try:
        return Scope.from_cli(cidrs, name=name)
    except ValueError as exc:
        raise ScanRequestError(f"system {name}: scan_scope: {exc}") from None


def zone_baseline(ref: str, settings: CollectorSettings) -> ZoneBaseline:
    """A shipped zone baseline by id, or a site file `<state_dir>/zone-baselines/<id>.yaml` (which may extend a
    shipped one). Ids only: an API caller never names a path on the collector."""
    site = Path(settings.state_dir) / "zone-baselines" / f"{ref}.yaml"
    try:
        if ref in shipped():
            return load_zone_baseline(ref)
        if site.is_file():
            return load_zone_baseline(site)
    except BaselineError as exc:
        raise ScanRequestError(f"zone baseline {ref}: {exc}") from None
    raise ScanRequestError(f"zone baseline {ref!r} is neither shipped ({', '.join(sorted(shipped()))}) nor a site "
                           f"file {site}")


def check_zones(baseline: ZoneBaseline, zone: Optional[str], scanner_zone: Optional[str]) -> None:
    for what, name in (("zone", zone), ("scanner_zone", scanner_zone)):
        if name is not None:
            try:
                baseline.zone(name)
            except KeyError as exc:
                raise ScanRequestError(f"{what}: {exc.args[0]}") from None


def plan_scan(system_id: int, system: str, cidrs: list[str], spec: ScheduleSpec, settings: CollectorSettings,
              targets: Optional[list[str]] = None, tcp_ports: Optional[str] = None,
              udp_ports: Optional[str] = None, credentials: Optional[CredentialGrant] = None,
              level: Optional[int] = None) -> ScanPlan:
    """Everything a scan needs, validated; raises ScanRequestError, or ScopeError for targets/ports outside
    the system's scope (before any packet; the caller audits it). `credentials`: the system's credential
    probes are on (never otherwise: no caller of a scan may ask for them itself). `level`: the system's level,
    the one its findings are scored at (clauses are the catalogue's for it)."""
    scope = system_scope(system, cidrs)
    tcp = tcp_ports if tcp_ports is not None else spec.tcp_ports
    udp = udp_ports if udp_ports is not None else spec.udp_ports
    try:
        options = ScanOptions(
            tcp_ports=parse_ports(tcp) if tcp else None, udp=bool(udp), udp_ports=parse_ports(udp) if udp else None,
            version_detection=spec.version_detection, credential_probes=credentials is not None,
            rate=RateLimit(packets_per_second=settings.scan_rate, max_hosts=settings.scan_max_hosts),
            timeout=float(settings.scan_timeout))
    except ValueError as exc:
        raise ScanRequestError(f"ports: {exc}") from None
    baseline = zone_baseline(spec.zone_baseline, settings)
    check_zones(baseline, spec.zone, spec.scanner_zone)
    chosen = list(targets) if targets else [str(n) for n in scope.networks] + [str(h) for h in scope.hosts]
    ensure_in_scope(chosen, scope, ports=merge_ranges(options.effective_tcp_ports() + options.effective_udp_ports()))
    # "full": the whole scope on the system's own ports; only such a scan stands for the system's network
    full = not targets and tcp_ports is None and udp_ports is None
    return ScanPlan(system_id=system_id, system=system, targets=chosen, full_scope=full, scope=scope,
                    options=options, baseline=baseline, zone=spec.zone, scanner_zone=spec.scanner_zone,
                    credential_grant=credentials, level=level)


def check_plan(conn, department_id: int, system: str, cidrs: list[str]) -> None:
    """A stored scope that reaches outside its department's address plan is never scanned (a scope from
    before the plan, or a block taken out of it since): ScanRequestError naming the networks outside."""
    from ..store.models import Department

    department = conn.execute(select(Department.__table__.c.name).where(Department.__table__.c.id == department_id)
                              ).scalar() or str(department_id)
    try:
        address_plan.check_scope(conn, department_id, department, cidrs)
    except address_plan.OutsidePlan as exc:
        raise ScanRequestError(f"system {system} is not scanned: its {exc}") from None


def load_schedule(conn, system_id: int) -> ScheduleSpec:
    row = conn.execute(select(T_SCHED).where(T_SCHED.c.system_id == system_id)).first()
    return ScheduleSpec.from_row(row) if row is not None else ScheduleSpec()


def set_schedule(ctx, system_id: int, spec, settings: CollectorSettings):
    """Store a system's scan settings (`ScanScheduleIn`; API and CLI), audited in the caller's transaction.
    The zone baseline and zones are checked first (ApiError 422)."""
    from . import operations
    from .auth import ADMIN
    from .errors import ApiError

    system = operations.visible_system(ctx, system_id)
    # admin only, like the scope itself: a schedule decides when and how the network is scanned, and
    # disabling it would take the system out of its scans (issue 20)
    ctx.principal.require_department(system.department_id, ADMIN)
    try:
        check_zones(zone_baseline(spec.zone_baseline, settings), spec.zone, spec.scanner_zone)
    except ScanRequestError as exc:
        raise ApiError(422, str(exc)) from None
    row = ctx.session.get(ScanSchedule, system_id)
    values = spec.model_dump()
    before = {k: getattr(row, k) for k in values} if row is not None else None
    now = datetime.now(timezone.utc)
    if row is None:
        row = ScanSchedule(system_id=system_id, department_id=system.department_id, updated_at=now,
                           updated_by=ctx.principal.actor, **values)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at, row.updated_by = now, ctx.principal.actor
    ctx.session.add(row)
    ctx.session.flush()
    when = f"every {spec.interval_seconds} s (+0-{spec.jitter_seconds} s)" if spec.enabled else "disabled"
    ctx.audit("scan_schedule.update", f"system:{system.id}:{system.name}",
              f"{when}, zone baseline {spec.zone_baseline}, zone {spec.zone}, scanner zone {spec.scanner_zone}, "
              f"tcp {spec.tcp_ports or 'default'}, udp {spec.udp_ports or 'none'}; "
              + json.dumps({"before": {k: before[k] for k in values if before[k] != values[k]} if before else None,
                            "after": {k: v for k, v in values.items() if before is None or before[k] != v}},
                           ensure_ascii=False))
    return system


class ScanService:
    """The collector's scans: an APScheduler BackgroundScheduler with one job per scheduled system, plus
    one-off jobs for triggered scans, all run in a pool of `scan_concurrency` threads."""

    def __init__(self, db: Database, settings: CollectorSettings) -> None:
        self.db = db
        self.settings = settings
        self.runner = runner_id()
        self._schedule = JobScheduler(db, {"default": settings.scan_concurrency}, log)
        self.stale_after = timedelta(seconds=3 * settings.scan_timeout + 300)  # two nmap passes + probes

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._schedule.start() and self.runs_schedules:
            self._schedule.keep_synced(self.sync, self.settings.scan_sync_seconds, "scan-sync",
                                       "reload scan schedules")

    def stop(self) -> None:
        if not self._schedule.stop():
            return
        _stop_own_nmap()
        try:
            n = fail_interrupted(self.db, self.runner, "interrupted: the collector stopped during the scan")
            if n:
                log.warning("%d running scan(s) marked failed: the collector is stopping", n)
        except Exception:  # the database may be gone already; a later claim fails them as abandoned
            log.exception("could not mark this process's running scans failed")

    @property
    def started(self) -> bool:
        return self._schedule.started

    @property
    def runs_schedules(self) -> bool:
        return self.settings.scans and self.settings.scan_schedules

    # ---- schedules -------------------------------------------------------------------------------------

    def sync(self) -> None:
        """(Re)load the enabled schedules: add, replace or remove this process's jobs to match."""
        if self.runs_schedules:
            self._schedule.sync(select(T_SCHED.c.system_id, T_SCHED.c.interval_seconds, T_SCHED.c.jitter_seconds,
                                       T_SCHED.c.claimed_at)
                                .where(T_SCHED.c.enabled.is_(True), T_SCHED.c.interval_seconds.is_not(None)),
                                self._jobs, "scan schedules")

    def _jobs(self, rows: Sequence[Row[Any]], now: datetime) -> dict[str, IntervalJob]:
        wanted = {}
        for r in rows:
            jitter = min(r.jitter_seconds, r.interval_seconds // 2)  # jitter never doubles the interval
            due = first_run(now, r.claimed_at, r.interval_seconds)
            # random spreads the first runs over time; nothing secret depends on it
            first = due + timedelta(seconds=random.uniform(0, jitter)) if jitter else due  # noqa: S311
            wanted[f"scan-{r.system_id}"] = IntervalJob(self.run_scheduled, (r.system_id,), r.interval_seconds, first,
                                                        f"scan system {r.system_id}", jitter=jitter)
        return wanted

    def next_run(self, system_id: int) -> Optional[datetime]:
        return self._schedule.next_run(f"scan-{system_id}")

    def _claim_schedule(self, system_id: int, now: datetime) -> Optional[ScheduleSpec]:
        with self.db.write() as conn:
            spec = load_schedule(conn, system_id)
            if not spec.enabled or not spec.interval_seconds:
                return None
            cutoff = now - timedelta(seconds=spec.interval_seconds / 2)
            taken = conn.execute(update(T_SCHED).where(
                T_SCHED.c.system_id == system_id, T_SCHED.c.enabled.is_(True),
                or_(T_SCHED.c.claimed_at.is_(None), T_SCHED.c.claimed_at <= cutoff)).values(claimed_at=now)).rowcount
        return spec if taken == 1 else None

    def run_scheduled(self, system_id: int) -> None:
        """The scheduled job of one system: claim this firing, then scan (in this thread)."""
        now = datetime.now(timezone.utc)
        try:
            spec = self._claim_schedule(system_id, now)
            if spec is None:
                log.info("scheduled scan of system %s: taken by another collector process or disabled", system_id)
                return
            with self.db.read() as conn:
                system = conn.execute(select(T_SYSTEM.c.name, T_SYSTEM.c.level, T_SYSTEM.c.scan_scope,
                                             T_SYSTEM.c.department_id,
                                             T_SYSTEM.c.credential_probes, T_SYSTEM.c.credential_probes_by,
                                             T_SYSTEM.c.credential_probes_at)
                                      .where(T_SYSTEM.c.id == system_id)).first()
                if system is None:
                    return
                try:
                    check_plan(conn, system.department_id, system.name, list(system.scan_scope))
                    plan_error = None
                except ScanRequestError as exc:
                    plan_error = exc
            try:
                if plan_error is not None:
                    self._audit_refusal(SCHEDULER_ACTOR, system_id, system.name, plan_error, None)
                    raise plan_error
                plan = plan_scan(system_id, system.name, list(system.scan_scope), spec, self.settings,
                                 credentials=credential_grant(system), level=system.level)
            except ScopeError as exc:
                self._audit_refusal(SCHEDULER_ACTOR, system_id, system.name, exc, None)
                log.error("scheduled scan of system %s refused: %s", system.name, exc)
                return
            except ScanRequestError as exc:
                log.error("scheduled scan of system %s cannot run: %s", system.name, exc)
                claim = self._begin(plan=None, system_id=system_id, system=system.name, actor=SCHEDULER_ACTOR,
                                    triggered_by="schedule", spec=spec)
                if claim is not None:
                    fail_scan(self.db, claim.run_id, str(exc))
                return
            claim = self._begin(plan, system_id, system.name, SCHEDULER_ACTOR, "schedule", spec)
            if claim is not None:
                self.execute(claim, plan, SCHEDULER_ACTOR)
        except Exception:
            log.exception("scheduled scan of system %s failed", system_id)

    def _begin(self, plan: Optional[ScanPlan], system_id: int, system: str, actor: str, triggered_by: str,
               spec: ScheduleSpec, source_ip: Optional[str] = None) -> Optional[Claim]:
        try:
            return self.begin(plan, system_id, actor, triggered_by, spec, source_ip)
        except ScanBusy as exc:
            log.warning("scheduled scan of system %s skipped: %s", system, exc)
            return None

    # ---- one scan --------------------------------------------------------------------------------------

    def begin(self, plan: Optional[ScanPlan], system_id: int, actor: str, triggered_by: str, spec: ScheduleSpec,
              source_ip: Optional[str] = None) -> Claim:
        """Record the scan as running (raises ScanBusy if one already runs) with its audit entry."""
        return begin_scan(
            self.db, system_id=system_id, triggered_by=triggered_by, actor=actor,
            targets=plan.targets if plan else [], full_scope=plan.full_scope if plan else True,
            scope=plan.scope.model_dump(mode="json") if plan else {}, args=plan.args() if plan else {},
            zone_baseline=spec.zone_baseline, zone=spec.zone, scanner_zone=spec.scanner_zone,
            stale_after=self.stale_after, source_ip=source_ip)

    def submit(self, claim: Claim, plan: ScanPlan, actor: str) -> None:
        """Run a claimed scan now in the scan pool (a one-off job)."""
        self.start()
        if not self._schedule.run_now(self.execute, f"scan-now-{claim.run_id}",
                                      f"scan {claim.run_id} of system {plan.system}", args=(claim, plan, actor)):
            raise RuntimeError("the scan service is stopping")  # stop() ran since start()

    def execute(self, claim: Claim, plan: ScanPlan, actor: str) -> None:
        """Scan, then store the results; any failure is recorded on the scan run with its reason."""
        from sentinel.network.engine import run_scan

        try:
            report = run_scan(plan.targets, plan.scope, plan.options, zone_baseline=plan.baseline, zone=plan.zone,
                              scanner_zone=plan.scanner_zone, credential_grant=plan.credential_grant, level=plan.level,
                              audit=lambda refused: self._audit_refusal(actor, plan.system_id, plan.system,
                                                                        "; ".join(refused), claim.run_id))
        except ScopeError as exc:
            fail_scan(self.db, claim.run_id, str(exc))
            return
        except (NmapMissing, NmapError, KeyError, ValueError, OSError) as exc:
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            fail_scan(self.db, claim.run_id, f"{type(exc).__name__}: {detail}")
            return
        except Exception as exc:  # a bug must still end the run, not leave it `running`
            log.exception("scan %s of system %s", claim.run_id, plan.system)
            fail_scan(self.db, claim.run_id, f"internal error: {type(exc).__name__}: {exc}")
            return
        try:
            stored = finish_scan(self.db, claim.run_id, report)
        except ScanGone as exc:
            log.warning("%s", exc)
            return
        except Exception as exc:
            log.exception("storing scan %s of system %s", claim.run_id, plan.system)
            fail_scan(self.db, claim.run_id, f"storing the results failed: {type(exc).__name__}: {exc}")
            return
        log.info("scan %s of system %s: %d open (%d new, %d closed), %d event(s)", claim.run_id, plan.system,
                 stored.opened + stored.seen_again, stored.opened, stored.closed, len(stored.events))

    def _audit_refusal(self, actor: str, system_id: int, system: str, detail, run_id: Optional[int]) -> None:
        audit.record_refusal(self.db, actor=actor, action="scan.refused", target=f"system:{system_id}:{system}",
                             status_code=422, detail=(f"scan {run_id}: " if run_id else "") + str(detail))


def _stop_own_nmap() -> None:
    """Stop the nmap processes this collector process started (its own children only)."""
    import psutil

    try:
        children = [p for p in psutil.Process().children(recursive=True) if p.name() == "nmap"]
    except psutil.Error:
        return
    for p in children:
        try:
            p.terminate()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=5)
