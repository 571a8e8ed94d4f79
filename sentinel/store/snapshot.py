"""Read a `MetricsSnapshot` (sentinel/metrics_model.py) from the store, for the collector's /metrics.

A handful of grouped queries in one read transaction, whatever the number of hosts; nothing is computed
from raw evidence at scrape time. What each figure means:

- host figures come from the host's latest OS run (highest run id), whatever its baseline: score, pass ratio,
  conclusion and high-risk count are that run's record as the system assessment scored it (`HostPart.figures`:
  its items with the system's manual verdicts, the figures the evidence exports show for the host; the run's
  own figures while its body cannot be read, when the evidence cannot show its record either);
- system score, pass ratio, conclusion and high-risk count are the system assessment's
  (sentinel/store/assessment.py): the latest report of each host and baseline plus the latest full-scope
  network scan, rolled up item by item by sentinel.scoring, so an unresolved high-risk finding on any host or
  port makes the system 差. When a report body the roll-up needs cannot be read, score, pass ratio and
  conclusion are None (not known) rather than a figure that silently leaves a host out; the assessment API
  names what is missing;
- each other 测评对象 of a host (a database, middleware or web server instance) is an object series of its host,
  from its latest run, scored as the host's (its record in the assessment);
- failing checks by severity and clause count the latest run of every object of the hosts (host checks only:
  the OS and the other objects), leaving out waived
  and advisory results (advisory evidence decides nothing, sentinel/scoring.py `counted`);
- high-risk findings = failing, counted checks naming a 高风险判定指引 case in the records (`Summary.high_risk`);
  findings open/fixed count the rectification trail's rows of its current hosts by sentinel/store/findings.py
  `state`;
- a host is up while one of its enrolled agents reported within `silent_after`; hosts whose agents are
  all revoked are left out (decommissioned); its agent version is the one its latest inventory names;
- network figures: open and forbidden services (and certificates) are the open service findings, None while
  the system has no succeeded scan (None means "not known", never "none"); scan figures come from the
  scan runs (duration and time of the latest finished one, its outcome, the latest success, failures ever),
  None while the system has none;
- zombie figures are sentinel/zombie.py's verdicts over the daily roll-up and the hosts' latest upkeep facts
  (sentinel/store/zombie.py: `window_days` rows per host, never the samples), with the review that stands on each;
- disaster-recovery figures are sentinel/dr.py's verdicts over the hosts' latest results of the three backup
  checks (sentinel/store/dr.py: three rows per host), the newest backups as timestamps.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Optional

from sqlalchemy import Connection, and_, func, select

from ..metrics_model import (
    AGENT_VERSION_PATTERN,
    MAX_OBJECTS_PER_HOST,
    CertificateMetrics,
    CheckSeries,
    DomesticMetrics,
    DRMetrics,
    ExposedService,
    HostMetrics,
    IngestMetrics,
    MetricsSnapshot,
    ObjectMetrics,
    ScanMetrics,
    SystemMetrics,
    WebsiteMetrics,
    ZombieMetrics,
)
from ..model import Severity, Status
from ..zombie import ZombieSettings
from . import domestic as domestic_store
from . import dr as dr_store
from . import zombie as zombie_store
from .assessment import assess
from .db import Database
from .findings import counts as finding_counts
from .models import (
    Agent,
    CheckResultRow,
    Department,
    Finding,
    Host,
    ManualAssessment,
    NoticeItem,
    Run,
    ScanRun,
    ServiceFindingRow,
    System,
    Website,
    WebsiteFinding,
    WebsiteRound,
    WebsiteVisit,
    ZombieReview,
)

DEFAULT_SILENT_AFTER = timedelta(hours=2)  # twice the agent's default one-hour run interval

_SEVERITIES = {s.value for s in Severity}
_STATUSES = {s.value for s in Status}
_VERSION = re.compile(AGENT_VERSION_PATTERN)


def build_snapshot(db: Database, *, silent_after: timedelta = DEFAULT_SILENT_AFTER, per_check: bool = False,
                   ingest: Optional[IngestMetrics] = None, now: Optional[datetime] = None,
                   zombie: Optional[ZombieSettings] = None) -> MetricsSnapshot:
    now = now or datetime.now(timezone.utc)
    D, S, H, A = Department.__table__, System.__table__, Host.__table__, Agent.__table__
    R, C, F = Run.__table__, CheckResultRow.__table__, Finding.__table__
    with db.read() as conn:
        systems = conn.execute(
            select(S.c.id, S.c.name, S.c.level, S.c.label, D.c.name.label("department"))
            .join(D, D.c.id == S.c.department_id).order_by(D.c.name, S.c.name)).all()

        # hosts with at least one enrolled agent, and when any of their agents was last heard from
        enrolled = (select(A.c.host_id, func.max(A.c.last_seen).label("agent_seen"))
                    .where(A.c.state == "enrolled").group_by(A.c.host_id).subquery())
        hosts = conn.execute(
            select(H.c.id, H.c.system_id, H.c.hostname, H.c.os_name, H.c.last_seen, enrolled.c.agent_seen,
                   H.c.inventory["agent_version"].as_string().label("agent_version"))
            .join(enrolled, enrolled.c.host_id == H.c.id).order_by(H.c.hostname)).all()

        # the latest run of each 测评对象 of a host: its OS (whatever the baseline) and each other object instance
        latest_ids = (select(func.max(R.c.id)).group_by(R.c.host_id, R.c.object_kind, R.c.object_instance)
                      .scalar_subquery())
        runs: dict[int, Any] = {}  # host id -> its OS's latest run
        object_runs: dict[int, list[Any]] = defaultdict(list)  # host id -> its other objects' latest runs
        for r in conn.execute(
                select(R.c.id, R.c.host_id, R.c.baseline_id, R.c.score, R.c.pass_rate, R.c.conclusion, R.c.high_risk,
                       R.c.summary, R.c.started_at, R.c.finished_at, R.c.object_kind, R.c.object_instance,
                       R.c.object_name).where(R.c.id.in_(latest_ids)).order_by(R.c.object_kind, R.c.object_instance)):
            if r.object_kind == "os":
                runs[r.host_id] = r
            else:
                object_runs[r.host_id].append(r)

        # non-waived results of the latest runs, counted by run, status, severity, clause and advisory mark
        advisory = C.c.advisory.is_not(None)
        counts = conn.execute(
            select(C.c.run_id, C.c.status, C.c.severity, C.c.clause, advisory.label("advisory"),
                   func.count().label("n"))
            .where(and_(C.c.run_id.in_(latest_ids), C.c.waiver.is_(None)))
            .group_by(C.c.run_id, C.c.status, C.c.severity, C.c.clause, advisory)).all()

        # findings of current hosts only: a decommissioned host's trail stays stored, as in the evidence's record
        open_ = F.c.resolved_at.is_(None)
        findings = conn.execute(
            select(F.c.system_id, open_.label("open"), F.c.resolution, func.count().label("n"))
            .where(F.c.host_id.in_(select(enrolled.c.host_id)))
            .group_by(F.c.system_id, open_, F.c.resolution)).all()

        assessments = assess(conn, [s.id for s in systems], now=now)
        scan_figures, services = _scan_figures(conn)
        websites = _website_figures(conn, now)
        notices = _notice_figures(conn)
        domestic = _domestic_figures(conn)
        zombies = {v.system_id: v for v in zombie_store.evaluate(conn, zombie or ZombieSettings(), now=now,
                                                                 evidence=False)}
        dr = {v.system_id: _dr(v) for v in dr_store.evaluate(conn, now=now, evidence=False)}

        checks: dict[int, list[Any]] = defaultdict(list)  # result rows
        if per_check:
            for r in conn.execute(select(C.c.run_id, C.c.check_id, C.c.clause, C.c.severity, C.c.status,
                                         C.c.duration_ms, advisory.label("advisory"))
                               .where(C.c.run_id.in_(latest_ids)).order_by(C.c.id)):
                checks[r.run_id].append(r)

    per_run_status: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_run_failing: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_run_clause: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in counts:
        per_run_status[r.run_id][r.status] += r.n
        if r.status == Status.FAIL.value and r.severity in _SEVERITIES and not r.advisory:
            per_run_failing[r.run_id][r.severity] += r.n
            per_run_clause[r.run_id][r.clause] += r.n

    grouped: dict[int, list[tuple[Optional[str], Optional[str], int]]] = defaultdict(list)
    for r in findings:
        grouped[r.system_id].append((None if r.open else "resolved", r.resolution, r.n))
    # by the trail's one tally, which the evidence covers and the rectification report count with too
    sys_findings = {system_id: finding_counts(rows) for system_id, rows in grouped.items()}

    hosts_by_system: dict[int, list[Any]] = defaultdict(list)  # host rows
    for h in hosts:
        hosts_by_system[h.system_id].append(h)

    out = []
    for s in systems:
        a = assessments[s.id]
        records = {part.run_id: part.figures for part in a.hosts}  # the hosts' records, as the assessment scored them
        host_metrics = []
        statuses: dict[str, int] = defaultdict(int)
        failing: dict[Severity, int] = defaultdict(int)
        by_clause: dict[str, int] = defaultdict(int)
        zv = zombies.get(s.id)
        host_zombie = {hv.host_id: hv for hv in zv.hosts} if zv else {}
        for h in hosts_by_system.get(s.id, []):
            run = runs.get(h.id)
            seen = max((t for t in (h.agent_seen, h.last_seen) if t is not None), default=None)
            hm = {"name": h.hostname, "os": h.os_name or None, "last_report": seen,
                  "up": seen is not None and now - seen <= silent_after, "agent_version": _version(h.agent_version)}
            judged = host_zombie.get(h.id)
            if judged is not None:
                hm.update(zombie_verdict=judged.verdict.value, idle_days=judged.idle_days)
            if run is not None:
                for k, v in per_run_status[run.id].items():
                    statuses[k] += v
                for k, v in per_run_failing[run.id].items():
                    failing[Severity(k)] += v
                for k, v in per_run_clause[run.id].items():
                    by_clause[k] += v
                # the host's record as the assessment scored it; the run's own figures (no manual verdicts)
                # only while its body cannot be read, when no other surface shows the host's record either
                record = records.get(run.id)
                figures = ((record.score, record.pass_rate, record.conclusion, record.high_risk) if record else
                           (run.score, run.pass_rate, run.conclusion, run.high_risk))
                hm.update(score=figures[0], pass_ratio=figures[1], conclusion=figures[2],
                          failing_checks=dict(per_run_failing[run.id]), high_risk_findings=figures[3],
                          run_duration_seconds=max(0.0, (run.finished_at - run.started_at).total_seconds()),
                          baseline=run.baseline_id,
                          checks=[CheckSeries(check_id=c.check_id, clause=c.clause, severity=c.severity,
                                              status=c.status, duration_seconds=c.duration_ms / 1000.0,
                                              advisory=bool(c.advisory))
                                  for c in checks.get(run.id, []) if c.severity in _SEVERITIES
                                  and c.status in _STATUSES])
            objects = []
            for o in object_runs.get(h.id, [])[:MAX_OBJECTS_PER_HOST]:  # bounded series per host (metrics_model)
                for k, v in per_run_failing[o.id].items():  # the system's figures count every object's checks
                    failing[Severity(k)] += v
                for k, v in per_run_clause[o.id].items():
                    by_clause[k] += v
                record = records.get(o.id)
                figures = ((record.score, record.pass_rate, record.conclusion, record.high_risk) if record else
                           (o.score, o.pass_rate, o.conclusion, o.high_risk))
                objects.append(ObjectMetrics(
                    kind=o.object_kind, instance=o.object_instance, name=o.object_name, baseline=o.baseline_id,
                    score=figures[0], pass_ratio=figures[1], conclusion=figures[2], high_risk_findings=figures[3],
                    failing_checks={Severity(k): v for k, v in per_run_failing[o.id].items()},
                    run_duration_seconds=max(0.0, (o.finished_at - o.started_at).total_seconds())))
            host_metrics.append(HostMetrics(**hm, objects=objects))
        f = sys_findings.get(s.id, {})
        known = a.complete and (bool(a.hosts) or a.network is not None)  # nothing assessed yet: not known
        svc = services.get(s.id)
        out.append(SystemMetrics(
            department=s.department, name=s.name, level=s.level, label=s.label,
            score=a.summary.score if known else None, pass_ratio=a.summary.pass_rate if known else None,
            conclusion=a.summary.conclusion if known else None,
            failing_checks=dict(failing), failing_checks_by_clause=dict(by_clause),
            high_risk_findings=a.summary.high_risk, findings_open=f.get("open", 0),
            findings_fixed=f.get("fixed", 0), hosts=host_metrics,
            services_open=svc.open if svc else None, services_forbidden=svc.forbidden_count if svc else None,
            forbidden_services=svc.forbidden if svc else [], certificates=svc.certificates if svc else [],
            domestic=domestic.get(s.id), dr=dr.get(s.id),
            scan=scan_figures.get(s.id), zombie=_zombie(zv), websites=websites.get(s.id, []),
            notice_problems={"open": 0, "fixed": 0, "overdue": 0, **notices.get(s.id, {})}))
    return MetricsSnapshot(generated_at=now, systems=out, ingest=ingest)


def store_marker(db: Database) -> str:
    """A fingerprint of everything `build_snapshot` reads: the same value means the store holds what it held (new or
    changed runs, scans, findings, verdicts, agents, hosts and systems all move it). A collector that restarts on
    an unchanged store serves its kept /metrics rendering at once (sentinel/collector/metrics_stored.py)."""
    D, S, H, A = Department.__table__, System.__table__, Host.__table__, Agent.__table__
    R, F, M = Run.__table__, Finding.__table__, ManualAssessment.__table__
    SR, SF = ScanRun.__table__, ServiceFindingRow.__table__
    WS, WR, WV, WF = Website.__table__, WebsiteRound.__table__, WebsiteVisit.__table__, WebsiteFinding.__table__
    with db.read() as conn:
        parts: list[Any] = [
            conn.execute(select(D.c.id, D.c.name).order_by(D.c.id)).all(),
            conn.execute(select(S.c.id, S.c.name, S.c.level, S.c.label, S.c.department_id).order_by(S.c.id)).all(),
            conn.execute(select(func.count(), func.max(A.c.id), func.max(A.c.last_seen),
                                func.count().filter(A.c.state == "enrolled"))).one(),
            conn.execute(select(func.count(), func.max(H.c.id), func.max(H.c.last_seen))).one(),
            conn.execute(select(func.count(), func.max(R.c.id))).one(),
            conn.execute(select(func.count(), func.max(SR.c.id), func.max(SR.c.finished_at),
                                func.count().filter(SR.c.status == "running"))).one(),
            conn.execute(select(func.count(), func.max(M.c.id))).one(),
            # zombie verdicts: the reviews (new samples move the agents' last_seen above)
            conn.execute(select(func.count(), func.max(ZombieReview.__table__.c.id))).one(),
            conn.execute(select(func.count(), func.max(F.c.id), func.max(F.c.last_seen), func.max(F.c.resolved_at),
                                func.count().filter(F.c.resolved_at.is_(None)))).one(),
            conn.execute(select(func.count(), func.max(SF.c.id), func.max(SF.c.last_seen), func.max(SF.c.closed_at),
                                func.count().filter(SF.c.closed_at.is_(None)))).one(),
            # websites: declarations, rounds, visits (the availability window), the findings trail
            conn.execute(select(func.count(), func.max(WS.c.updated_at))).one(),
            conn.execute(select(func.max(WR.c.id), func.max(WR.c.finished_at))).one(),
            conn.execute(select(func.max(WV.c.id))).one(),
            conn.execute(select(func.count(), func.max(WF.c.id), func.max(WF.c.last_seen), func.max(WF.c.resolved_at),
                                func.count().filter(WF.c.resolved_at.is_(None)))).one(),
            # the 通报 loop: new items, and each verification (it moves verified_at and the states)
            conn.execute(select(func.count(), func.max(NoticeItem.__table__.c.id),
                                func.max(NoticeItem.__table__.c.verified_at),
                                func.count().filter(NoticeItem.__table__.c.state == "overdue"))).one(),
        ]
    text = json.dumps([[list(r) for r in p] if isinstance(p, list) else list(p) for p in parts], default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _notice_figures(conn: Connection) -> dict[int, dict[str, int]]:
    """Each system's notified problems by state: a problem listed in several notices counts once, by its latest
    item (the state its last verification gave)."""
    NI = NoticeItem.__table__
    latest = select(func.max(NI.c.id)).group_by(NI.c.source, NI.c.source_id)
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for r in conn.execute(select(NI.c.system_id, NI.c.state, func.count().label("n")).where(NI.c.id.in_(latest))
                          .group_by(NI.c.system_id, NI.c.state)):
        out[r.system_id][r.state] = r.n
    return out


def _website_figures(conn: Connection, now: datetime, days: int = 7) -> dict[int, list[WebsiteMetrics]]:
    """Each system's websites: the latest succeeded round (vetoed, when, how long, certificates), open findings
    by kind, and the share of the last `days` days' availability visits that opened."""
    WS, WR, WV, WF = Website.__table__, WebsiteRound.__table__, WebsiteVisit.__table__, WebsiteFinding.__table__
    latest: dict[int, Any] = {r.website_id: r for r in conn.execute(
        select(WR.c.website_id, WR.c.finished_at, WR.c.duration_ms, WR.c.vetoed, WR.c.results)
        .where(WR.c.id.in_(select(func.max(WR.c.id)).where(WR.c.status == "succeeded").group_by(WR.c.website_id))))}
    open_by: dict[int, dict[str, int]] = defaultdict(dict)
    for r in conn.execute(select(WF.c.website_id, WF.c.kind, func.count().label("n"))
                          .where(WF.c.resolved_at.is_(None)).group_by(WF.c.website_id, WF.c.kind)):
        open_by[r.website_id][r.kind] = r.n
    visits: dict[int, Any] = {r.website_id: r for r in conn.execute(
        select(WV.c.website_id, func.count().label("n"), func.count().filter(WV.c.ok.is_(True)).label("ok"))
        .where(WV.c.at > now - timedelta(days=days)).group_by(WV.c.website_id))}
    out: dict[int, list[WebsiteMetrics]] = defaultdict(list)
    for w in conn.execute(select(WS.c.id, WS.c.system_id, WS.c.name, WS.c.declaration).order_by(WS.c.name)):
        last, v = latest.get(w.id), visits.get(w.id)
        certs = []
        for verdict in (last.results or []) if last is not None else []:
            not_after = (verdict.get("observed") or {}).get("not_after") if verdict.get("rule") == "tls.certificate" \
                else None
            if not_after:
                certs.append((str(verdict.get("subject", "")), datetime.fromisoformat(not_after)))
        out[w.system_id].append(WebsiteMetrics(
            name=w.name, url=str((w.declaration.get("urls") or [""])[0]),
            vetoed=bool(last.vetoed) if last is not None else None,
            last_round=last.finished_at if last is not None else None,
            last_round_duration_seconds=(last.duration_ms or 0) / 1000 if last is not None else None,
            availability_ratio=v.ok / v.n if v is not None and v.n else None, open_findings=open_by.get(w.id, {}),
            certificates=certs))
    return out


def _domestic_figures(conn: Connection) -> dict[int, DomesticMetrics]:
    """Each system's 国产化 counts from its hosts' latest inventories (sentinel/store/domestic.py)."""
    from ..domestic import CATEGORIES, default_rules

    found = domestic_store.hosts(conn, default_rules())
    comps: dict[int, dict[str, dict[str, int]]] = defaultdict(
        lambda: {c: {"domestic": 0, "foreign": 0, "unrecognised": 0} for c in CATEGORIES})
    for h in found:
        for c in h.components:
            comps[h.system_id][c.category][c.origin] += 1
    return {r.system_id: DomesticMetrics(hosts={c.category: c.hosts for c in r.categories},
                                         domestic_hosts={c.category: c.hosts_domestic for c in r.categories},
                                         components=comps[r.system_id], gm_tls=dict(r.gm_tls.states))
            for r in domestic_store.by_system(conn, found) if r.system_id is not None}


def _dr(v: Any) -> DRMetrics:
    """A system's DR figures from its verdict (sentinel/dr.py SystemDR): the weakest host's (the stalest newest
    backup, the fewest copies), so a system is as safe as its least-backed-up host."""
    hosts = v.hosts
    local = [h.newest_local for h in hosts if h.newest_local is not None]
    offsite = [h.newest_offsite for h in hosts if h.newest_offsite is not None]
    copies = [h.copy_count for h in hosts if h.copy_count is not None]
    offsite_copies = [h.offsite_count for h in hosts if h.offsite_count is not None]
    states = {state: sum(1 for h in hosts if h.replication == state) for state in ("streaming", "broken", "unknown")}
    return DRMetrics(verdict=v.verdict, rpo_seconds=None if v.rpo_hours is None else v.rpo_hours * 3600,
                     newest_local=min(local) if local else None, newest_offsite=min(offsite) if offsite else None,
                     copies=min(copies) if copies else None,
                     offsite_copies=min(offsite_copies) if offsite_copies else None,
                     replication_hosts=states, replication_lag_seconds=v.replication_lag_seconds)


def _zombie(v: Optional[Any]) -> Optional[ZombieMetrics]:
    """The system's verdict and the review standing on it (a lapsed review counts as none)."""
    if v is None:
        return None
    review: Optional[Literal["confirmed", "dismissed"]] = None
    if v.review is not None and v.review.current:
        review = "confirmed" if v.review.decision == "confirm" else "dismissed"
    return ZombieMetrics(verdict=v.verdict.value, review=review)


def _version(value: Optional[str]) -> Optional[str]:
    """The agent version in the host's latest inventory; None when its agent predates the field, or when an
    inventory stored before the collector checked the field holds something else there."""
    return value if value is not None and _VERSION.fullmatch(value) else None


class _Services:
    def __init__(self) -> None:
        self.open = 0
        self.forbidden: list[ExposedService] = []
        self.certificates: list[CertificateMetrics] = []

    @property
    def forbidden_count(self) -> int:
        return len(self.forbidden)


def _scan_figures(conn: Connection) -> tuple[dict[int, ScanMetrics], dict[int, _Services]]:
    """Scan run figures per system, and its open service findings (for systems with a succeeded scan)."""
    SR, SF = ScanRun.__table__, ServiceFindingRow.__table__
    finished = conn.execute(
        select(SR.c.system_id, SR.c.id, SR.c.status, SR.c.started_at, SR.c.finished_at, SR.c.duration_ms)
        .where(SR.c.id.in_(select(func.max(SR.c.id)).where(SR.c.status != "running").group_by(SR.c.system_id)))
    ).all()
    stats = {r.system_id: r for r in conn.execute(
        select(SR.c.system_id, func.max(SR.c.finished_at).filter(SR.c.status == "succeeded").label("last_success"),
               func.count().filter(SR.c.status == "failed").label("failures"))
        .group_by(SR.c.system_id))}
    scans: dict[int, ScanMetrics] = {}
    for r in finished:
        st = stats.get(r.system_id)
        scans[r.system_id] = ScanMetrics(
            last_duration_seconds=r.duration_ms / 1000.0 if r.duration_ms is not None else None,
            last_run=r.finished_at or r.started_at, last_success=st.last_success if st else None,
            last_run_success=r.status == "succeeded", failures_total=st.failures if st else 0)
    services: dict[int, _Services] = {sid: _Services() for sid, st in stats.items() if st.last_success is not None}
    for f in conn.execute(select(SF.c.system_id, SF.c.host, SF.c.port, SF.c.proto, SF.c.service, SF.c.forbidden,
                                 SF.c.tls)
                          .where(SF.c.closed_at.is_(None)).order_by(SF.c.system_id, SF.c.host, SF.c.proto, SF.c.port)):
        svc = services.get(f.system_id)
        if svc is None:
            continue
        svc.open += 1
        if f.forbidden:
            svc.forbidden.append(ExposedService(host=f.host, port=f.port, protocol=f.proto, service=f.service or ""))
        not_after = (f.tls or {}).get("not_after")
        if not_after and f.port:
            when = datetime.fromisoformat(not_after.replace("Z", "+00:00"))
            svc.certificates.append(CertificateMetrics(host=f.host, port=f.port, not_after=when if when.tzinfo
                                                       else when.replace(tzinfo=timezone.utc)))
    return scans, services
