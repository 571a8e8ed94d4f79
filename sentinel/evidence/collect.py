"""Build `SystemEvidence` for one system and time range from the collector's store.

Every report body comes from the agent's envelope the collector kept, re-serialised canonically and
checked against the run's stored digest before use, so the record an agency reads is the one in the
hash chain. The network is a 测评对象 through the latest full-scope scan in range. Anything the store
cannot back (a body that was not kept, no scan) is said in `SystemEvidence.notes` or raised as an
`EvidenceError`, never papered over.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Optional, TypeVar

from sqlalchemy import Connection, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from .. import scoring
from ..discovery import default_name
from ..levels import at_level
from ..model import BaselineRef, CheckResult, Evidence, HostReport, Severity, Status, Text
from ..store import domestic as domestic_store
from ..store import dr as dr_store
from ..store import envelopes
from ..store import zombie as zombie_store
from ..store.models import (
    Agent,
    CheckResultRow,
    Department,
    Finding,
    Host,
    ManualAssessment,
    Report,
    ReportSection,
    Run,
    ScanRun,
    ServiceFindingRow,
    System,
)
from ..zombie import ZombieSettings
from . import attachments as att
from .assemble import HostRun, NetworkReport, ScoredReport, build
from .digest import canonical_bytes, sha256_hex
from .gc_pause import paused_gc
from .model import (
    AttachmentRef,
    ChainEntry,
    CollectorIdentity,
    EvidenceError,
    FindingRecord,
    ManualAssessmentRecord,
    RunChain,
    SectionRecord,
    ServiceFindingRecord,
    SystemEvidence,
    SystemRef,
    TimeRange,
)
from .sections import SECTIONS, latest_sections

IN_CHUNK = 500  # bound IN (...) lists
T = TypeVar("T")


def _chunks(values: list[T], n: int = IN_CHUNK) -> Iterable[list[T]]:
    for i in range(0, len(values), n):
        yield values[i:i + n]


def find_system(session: Session, name: str) -> System:
    system: Optional[System] = session.exec(select(System).where(System.name == name)).first()
    if system is None:
        known = session.exec(select(System.name).order_by(System.name).limit(20)).all()
        hint = f" (known: {', '.join(known)})" if known else " (the store has no systems)"
        raise EvidenceError(f"system {name!r} not found{hint}")
    return system


def collect(session: Session, system_name: str, *, collector: CollectorIdentity, start: Optional[datetime] = None,
            end: Optional[datetime] = None, now: Optional[datetime] = None,
            zombie: Optional[ZombieSettings] = None) -> SystemEvidence:
    """`zombie`: the site's zombie-detection thresholds (the collector's `zombie` setting; default the defaults)."""
    with paused_gc():
        return _collect(session, system_name, collector=collector, start=start, end=end, now=now, zombie=zombie)


def _collect(session: Session, system_name: str, *, collector: CollectorIdentity, start: Optional[datetime],
             end: Optional[datetime], now: Optional[datetime],
             zombie: Optional[ZombieSettings] = None) -> SystemEvidence:
    now = now or datetime.now(timezone.utc)
    end = end or now
    for name, t in (("--from", start), ("--to", end)):
        if t is not None and t.tzinfo is None:
            raise EvidenceError(f"{name} {t.isoformat()}: give a time zone (e.g. 2026-01-01T00:00:00+08:00)")
    if start is not None and start > end:
        raise EvidenceError(f"time range: --from {start.isoformat()} is after --to {end.isoformat()}")
    system = find_system(session, system_name)
    assert system.id is not None  # a stored row
    system_id = system.id
    dept = session.get(Department, system.department_id)
    conn = session.connection()
    notes: list[str] = []

    hosts = {h.id: h for h in session.exec(select(Host).where(Host.system_id == system.id))}
    retired = _decommissioned(conn, hosts, end, notes)
    runs = _runs_in_range(session, system_id, start, end)
    finding_rows = [f for f in _finding_rows(session, system_id, start, end) if f.host_id not in retired]
    # Runs whose results a finding shows as its evidence before/after are read in full, like the latest ones.
    wanted = {(f.first_run_id, f.check_id) for f in finding_rows}
    wanted |= {(f.resolved_run_id, f.check_id) for f in finding_rows if f.resolved_run_id and f.resolved_at <= end}
    chain, raw, host_runs, names = _chain_and_reports(conn, runs, hosts, notes, full={r for r, _ in wanted})
    # Every run stays in the chain; a decommissioned host's reports are not part of the record.
    retired_runs = {run.id for run in runs if run.host_id in retired}
    host_runs = [r for r in host_runs if r.run_id not in retired_runs]
    if not runs:
        notes.append("no host reports in this time range")
    if runs and end >= now:
        _check_head(session, system, runs[-1])
    scans = _scans(conn, system, start, end, notes)

    assessments, blobs = _assessments(session, conn, system_id, end)
    in_range = {run.run_id: run.report for run in host_runs
                if isinstance(run.report, HostReport) and run.run_id is not None}
    findings = _findings(session, finding_rows, wanted, hosts, end, in_range, names)
    service_findings = _service_findings(conn, system_id, start, end, hosts)
    sysref = SystemRef(name=system.name, title=system.title, department=dept.name if dept else "",
                       department_title=dept.title if dept else "", level=system.level, s_grade=system.s_grade,
                       a_grade=system.a_grade, label=system.label, owner=system.owner,
                       zones=[str(z) for z in system.zones])
    ev = build(system=sysref, time_range=TimeRange(start=start, end=end), collector=collector,
               runs=host_runs + scans,
               assessments=assessments, findings=findings, service_findings=service_findings, chain=chain,
               raw_reports=raw, attachment_blobs=blobs, generated_at=now, notes=notes)
    ev.sections = section_records(latest_sections(session, system_id, end))
    if end >= now:
        ev.zombie = zombie_store.evaluate(conn, zombie or ZombieSettings(), now=now, system_ids=[system_id])[0]
    else:  # the verdict reads the hosts' latest inventories and reviews: it cannot be judged as of a past end
        ev.notes.append("zombie-system verdict (僵尸信息系统) not included: it is judged as of now, and the range "
                        "ends before")
    if end >= now:
        from ..domestic import default_rules

        ev.domestic = domestic_store.evidence(conn, default_rules(), system_id, now)
    else:  # the components are the hosts' latest inventories: not those of a past end
        ev.notes.append("国产化 components and rates not included: they are the hosts' latest inventories, and the "
                        "range ends before")
    if end >= now:
        ev.dr = dr_store.evaluate(conn, now=now, system_ids=[system_id])[0]
    else:  # the verdict is the hosts' latest runs judged as of now: not a past end's
        ev.notes.append("disaster-recovery verdict (数据备份恢复) not included: it is judged as of now from the hosts' "
                        "latest runs, and the range ends before")
    return ev


def section_records(rows: dict[str, ReportSection]) -> list[SectionRecord]:
    """Every chapter of the catalogue, in order, with its latest text (rows: key -> ReportSection) or None."""
    out = []
    for spec in SECTIONS:
        row = rows.get(spec.key)
        out.append(SectionRecord(key=spec.key, number=spec.number, title=spec.title,
                                 text=row.text if row else None, author=row.author if row else None,
                                 at=row.at if row else None))
    return out


def _decommissioned(conn: Connection, hosts: dict[int, Host], end: datetime, notes: list[str]) -> set[int]:
    """Hosts whose agents were all revoked by the range end: retired, so not 测评对象 (as in the
    collector's system assessment). A host that never had an agent is kept."""
    t = Agent.__table__
    agents: dict[int, list[Any]] = {}  # agent rows by host
    for part in _chunks(sorted(hosts)):
        for a in conn.execute(core_select(t.c.host_id, t.c.state, t.c.revoked_at).where(t.c.host_id.in_(part))):
            agents.setdefault(a.host_id, []).append(a)
    retired = {h for h, rows in agents.items()
               if all(a.revoked_at is not None and a.revoked_at <= end for a in rows)}
    if retired:
        names = ", ".join(sorted(hosts[h].hostname for h in retired))
        notes.append(f"decommissioned hosts (every agent revoked by the range end) left out of the record: {names}; "
                     "their runs stay in the hash chain")
    return retired


def _scans(conn: Connection, system: System, start: Optional[datetime], end: datetime,
           notes: list[str]) -> list[HostRun]:
    """Succeeded scans of the whole registered scope that started in the range: the network 测评对象
    (its record is the latest; partial scans say nothing about the rest of the network)."""
    t = ScanRun.__table__
    q = core_select(t).where(t.c.system_id == system.id, t.c.status == "succeeded", t.c.full_scope.is_(True),
                             t.c.started_at <= end)
    if start is not None:
        q = q.where(t.c.started_at >= start)
    out = []
    for scan in conn.execute(q.order_by(t.c.id)):
        try:
            report = NetworkReport(report_id=f"scan-{scan.id}", generated_at=scan.started_at,
                                   baseline=_zone_baseline(scan.zone_baseline, system.level),
                                   items=scan.items or [], results=scan.results or [], summary=scan.summary)
        except ValueError as exc:
            raise EvidenceError(f"scan {scan.id}: stored results are not readable: "
                                f"{str(exc).splitlines()[0]}") from None
        # by key at the system's level: a scan stored before keys (numbered at level 3) gets its keys, so it rolls
        # up with the hosts' items; one scored at another level is renumbered and its summary recomputed
        scored_at = (scan.args or {}).get("level") or 3
        leveled = at_level(report.items, report.results, system.level, f"network scan {scan.id}",
                           legacy_level=scored_at)
        report.items, report.results = leveled.items, leveled.results
        if scored_at != system.level:
            report.summary = scoring.summarize(leveled.items, leveled.results)
            left = "; ".join(f"{o.key} (level {', '.join(map(str, o.levels))}: {', '.join(o.checks)})"
                             for o in leveled.outside)
            notes.append(f"scan {scan.id} was scored at level {scored_at}: its items are shown as level "
                         f"{system.level} numbers them" + (f"; left out, not requirements of level {system.level}: "
                                                            f"{left}" if left else ""))
        grant = (scan.args or {}).get("credential_probes")
        if grant:  # opt-in logins were tried (issue 19 item 4): the record says so, who enabled them and when
            tried = "; ".join(f"{k}: {', '.join(v)}" for k, v in (grant.get("credentials") or {}).items())
            notes.append(f"scan {scan.id} ran the credential probes ({tried}), enabled for this system by "
                         f"{grant.get('enabled_by')} at {grant.get('enabled_at')}")
        out.append(HostRun(object=scan.zone or "network", report=report,
                           received_at=scan.finished_at or scan.started_at, addresses=list(scan.targets or []),
                           zone=scan.zone, kind="zone", scan_run_id=scan.id))
    if not out:
        notes.append("no succeeded network scan of the whole registered scope in this time range, so the network "
                     "is not a 测评对象 here")
    return out


def _zone_baseline(ref: Optional[str], level: int) -> BaselineRef:
    """BaselineRef of a scan's zone baseline ("id@version"), titled from the shipped file when it loads."""
    if not ref:
        return BaselineRef(id="network", version="", level=level, title=Text(zh="网络扫描", en="network scan"))
    ident, _, version = ref.partition("@")
    try:
        from sentinel.network.zones import load_zone_baseline

        zb = load_zone_baseline(ident)
        # the level shown is the one the scan's items are numbered at: the system's (see _scans)
        return BaselineRef(id=ident, version=version or zb.version, level=level, title=zb.title)
    except Exception:  # a site's own zone file may not be on this machine: name it, level of the system
        return BaselineRef(id=ident, version=version, level=level, title=Text(zh=ident, en=ident))


def _runs_in_range(session: Session, system_id: int, start: Optional[datetime], end: datetime) -> list[Run]:
    """Runs in the range as one contiguous stretch of the chain (by id), even if clocks stepped back."""
    lo = select(func.min(Run.id)).where(Run.system_id == system_id)
    if start is not None:
        lo = lo.where(Run.received_at >= start)
    hi = select(func.max(Run.id)).where(Run.system_id == system_id, Run.received_at <= end)
    first, last = session.exec(lo).one(), session.exec(hi).one()
    if first is None or last is None or first > last:
        return []
    return list(session.exec(select(Run).where(Run.system_id == system_id, col(Run.id) >= first, col(Run.id) <= last)
                             .order_by(Run.id)))


def _check_head(session: Session, system: System, last: Run) -> None:
    """The newest run exported must be the system's chain head, unless runs arrived since it was read."""
    session.refresh(system)
    if last.chain_hash == system.chain_head:
        return
    later = session.exec(select(Run.id).where(Run.system_id == system.id, col(Run.id) > last.id).limit(1)).first()
    if later is None:
        raise EvidenceError(f"system {system.name}: the last run's chain hash {last.chain_hash[:12]} is not the "
                            f"system's chain head {system.chain_head[:12]}; the store is inconsistent")


def object_label(host: Optional[Host], host_id: int, kind: str, instance: str, name: str = "") -> str:
    """The 测评对象 name the record shows: a host's OS is the host; another object its stored name (or, for
    runs stored without one, the host's name with the product and instance)."""
    hostname = host.hostname if host else f"host-{host_id}"
    if kind == "os":
        return hostname
    return name or default_name(hostname, kind, instance)


_Names = dict[tuple[int, str, str], str]  # (host id, object kind, object instance) -> the record's name for it


def _chain_and_reports(conn: Connection, runs: list[Run], hosts: dict[int, Host], notes: list[str],
                       full: set[int]) -> tuple[RunChain, dict[str, bytes], list[HostRun], _Names]:
    # report ids are unique per agent only (migration 0004), so a kept report is found by (agent, report id)
    kept: dict[tuple[str, str], tuple[Optional[bytes], str, str]] = {}
    ids = sorted({r.report_id for r in runs})
    rt, at = Report.__table__, Agent.__table__
    for part in _chunks(ids):
        for row in conn.execute(core_select(rt.c.report_id, rt.c.envelope, rt.c.signature, rt.c.agent_id)
                                .where(rt.c.report_id.in_(part))):
            kept[(row.agent_id, row.report_id)] = (row.envelope, row.signature, row.agent_id)
    agent_ids = sorted({v[2] for v in kept.values()})
    keys: dict[str, str] = {}
    for part in _chunks(agent_ids):
        keys.update({r.id: r.public_key for r in conn.execute(core_select(at.c.id, at.c.public_key)
                                                              .where(at.c.id.in_(part)))})

    entries: list[ChainEntry] = []
    raw: dict[str, bytes] = {}
    host_runs: list[HostRun] = []
    missing: list[int] = []
    untimed: list[int] = []
    newest: dict[tuple[int, str, str], int] = {}
    # the last one per host, baseline and object instance is what the record shows (as assemble.latest_runs);
    # each object's name is its latest run's, so the record and the findings name it alike
    names: _Names = {}
    for run in sorted(runs, key=lambda r: (r.received_at, r.id)):
        assert run.id is not None  # a stored row
        newest[(run.host_id, run.baseline_id, run.object_instance)] = run.id
        names[(run.host_id, run.object_kind, run.object_instance)] = object_label(
            hosts.get(run.host_id), run.host_id, run.object_kind, run.object_instance, run.object_name)
    full = full | set(newest.values())
    for run in runs:
        assert run.id is not None  # a stored row
        host = hosts.get(run.host_id)
        obj = names[(run.host_id, run.object_kind, run.object_instance)]
        stored = kept.get((run.agent_id, run.report_id))
        entry = ChainEntry(run_id=run.id, report_id=run.report_id, object=obj, received_at=run.received_at,
                           digest=run.digest, prev_chain_hash=run.prev_chain_hash, chain_hash=run.chain_hash)
        if stored is None or stored[0] is None:
            missing.append(run.id)
            entries.append(entry)
            continue
        try:
            envelope = envelopes.unpack(stored[0])
            body = json.loads(envelope)["body"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"run {run.id} (report {run.report_id}): stored envelope is not a report "
                                f"envelope ({exc})") from None
        body_bytes = canonical_bytes(body)
        if sha256_hex(body_bytes) != run.digest:
            raise EvidenceError(f"run {run.id} (report {run.report_id}, {obj}): the stored envelope's body does not "
                                "hash to the run's digest; the store was altered")
        entry.body, entry.envelope = f"reports/{run.id}.json", f"reports/{run.id}.envelope.json"
        entry.agent_id, entry.signature, entry.agent_key = stored[2], stored[1], keys.get(stored[2])
        raw[entry.body], raw[entry.envelope] = body_bytes, envelope
        entries.append(entry)
        model = HostReport if run.id in full else ScoredReport
        if model is HostReport and "generated_at" not in body:
            # The report gives no time of its own: show the one the collector recorded for the run at ingest,
            # and say so, rather than the export's clock (HostReport's default).
            body = {**body, "generated_at": run.finished_at}
            untimed.append(run.id)
        report = model.model_validate(body)
        # An agent's item verdicts are its claim: the record shows what the results give (the collector
        # checked at ingest that items and results are the baseline's; sentinel/collector/judge.py).
        report.items = scoring.rejudged_items(report.items, report.results)
        host_runs.append(HostRun(object=obj, report=report, received_at=run.received_at,
                                 run_id=run.id, addresses=list(host.addresses) if host else [],
                                 hostname=host.hostname if host else None))
    if untimed:
        notes.append(f"{len(untimed)} report(s) without generated_at (run {', '.join(map(str, untimed[:10]))}"
                     f"{' ...' if len(untimed) > 10 else ''}): shown with the time the collector recorded for the run")
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        notes.append(f"{len(missing)} run(s) without a kept report body (collector keep_envelopes off): {shown}; "
                     "their chain links are listed but their content cannot be shown or re-hashed")
    chain = RunChain(anchor=entries[0].prev_chain_hash, head=entries[-1].chain_hash, entries=entries) \
        if entries else RunChain()
    return chain, raw, host_runs, names


def _assessments(session: Session, conn: Connection, system_id: int,
                 end: datetime) -> tuple[list[ManualAssessmentRecord], dict[str, bytes]]:
    rows = list(session.exec(select(ManualAssessment).where(ManualAssessment.system_id == system_id,
                                                             ManualAssessment.at <= end)
                             .order_by(ManualAssessment.id)))
    files = att.for_assessments(conn, [r.id for r in rows], with_content=True)
    out: list[ManualAssessmentRecord] = []
    blobs: dict[str, bytes] = {}
    for r in rows:
        assert r.id is not None  # a stored row
        refs: list[AttachmentRef] = []
        used: set[str] = set()
        for info, content in files.get(r.id, []):
            name = info.name
            n = 1
            while name in used:  # the same file name attached twice: keep both
                n += 1
                stem, dot, ext = info.name.rpartition(".")
                name = f"{stem}-{n}.{ext}" if dot and stem else f"{info.name}-{n}"
            used.add(name)
            path = f"attachments/{r.id}/{name}"
            refs.append(AttachmentRef(name=info.name, sha256=info.sha256, size=info.size, path=path))
            assert content is not None  # asked for with_content=True
            blobs[path] = content
        out.append(ManualAssessmentRecord(id=r.id, clause=r.clause, item=r.item, verdict=r.verdict, note=r.note,
                                          assessor=r.assessor, at=r.at, attachments=refs))
    return out, blobs


def _result(row: CheckResultRow, remediation: Text) -> CheckResult:
    return CheckResult(check_id=row.check_id, clause=row.clause, item=row.item, title=Text(**row.title),
                       status=Status(row.status), severity=Severity(row.severity), high_risk=row.high_risk,
                       observed=row.observed,
                       expected=row.expected, reason=row.reason, evidence=row.evidence,
                       remediation=remediation, waiver=row.waiver, duration_ms=row.duration_ms,
                       # the baseline's advisory mark kept with the row (migration 0007): scoring.risk_level and
                       # the problem and high-risk lists leave an advisory failure out, the exports mark it
                       advisory=Text(**row.advisory) if row.advisory else None)


def _finding_rows(session: Session, system_id: int, start: Optional[datetime], end: datetime) -> list[Any]:
    """Findings overlapping the range, as plain rows (thousands of them need no ORM identity map)."""
    t = Finding.__table__
    q = core_select(t).where(t.c.system_id == system_id, t.c.first_seen <= end)
    if start is not None:
        q = q.where((t.c.resolved_at.is_(None)) | (t.c.resolved_at >= start))
    return list(session.connection().execute(q.order_by(t.c.id)).all())


def _findings(session: Session, rows: list[Any], wanted: set[tuple[int, str]], hosts: dict[int, Host], end: datetime,
              reports: dict[int, HostReport], names: _Names) -> list[FindingRecord]:
    """Findings with their before/after results: from the chained bodies already read for runs in range,
    else from the check_results table (runs before the range)."""
    results: dict[tuple[int, str], CheckResult] = {}
    for run_id, rep in reports.items():
        for r in rep.results:
            if (run_id, r.check_id) in wanted:
                results[(run_id, r.check_id)] = r
    missing = {k for k in wanted if k not in results}
    stored: dict[tuple[int, str], CheckResultRow] = {}
    run_ids = sorted({r for r, _ in missing})
    check_ids = sorted({c for _, c in missing})
    for part in _chunks(run_ids):
        for row in session.exec(select(CheckResultRow).where(col(CheckResultRow.run_id).in_(part),
                                                             col(CheckResultRow.check_id).in_(check_ids))):
            if (row.run_id, row.check_id) in missing:
                stored[(row.run_id, row.check_id)] = row

    def result(run_id: Optional[int], check_id: str, remediation: Text) -> Optional[CheckResult]:
        if run_id is None:
            return None
        if (run_id, check_id) in results:
            return results[(run_id, check_id)]
        row = stored.get((run_id, check_id))
        return _result(row, remediation) if row is not None else None

    out = []
    for f in rows:
        resolved = f.resolved_at is not None and f.resolved_at <= end  # fixed after the range: open as of its end
        title, remediation = Text(**f.title), Text(**f.remediation)
        # Risk level by the one formula in sentinel.scoring, from the failure this finding records.
        failing = CheckResult.model_construct(check_id=f.check_id, clause=f.clause, item=f.item, title=title,
                                              status=Status.FAIL, severity=Severity(f.severity),
                                              high_risk=f.high_risk, expected="", remediation=remediation,
                                              waiver=None, observed=None, reason=None, evidence=[],
                                              duration_ms=0.0)  # every field given: no default resolution
        risk = scoring.risk_level(failing)
        assert risk is not None  # a failing check that counts always has one
        host = hosts.get(f.host_id)
        if f.resolution not in (None, "fixed", "waived", "advisory"):
            raise EvidenceError(f"finding {f.id}: unknown resolution {f.resolution!r} in the store")
        # Constructed, not validated: every value is typed above or by the store's column types and checks,
        # and thousands of findings made validation a noticeable part of a large export.
        out.append(FindingRecord.model_construct(
            id=f.id, object=names.get((f.host_id, f.object_kind, f.object_instance))
            or object_label(host, f.host_id, f.object_kind, f.object_instance), check_id=f.check_id, clause=f.clause,
            item=f.item, title=title, severity=failing.severity, high_risk=f.high_risk,
            risk=risk,
            first_seen=f.first_seen, last_seen=f.last_seen, resolved_at=f.resolved_at if resolved else None,
            resolution=f.resolution if resolved else None, occurrences=f.occurrences, remediation=remediation,
            before=result(f.first_run_id, f.check_id, remediation),
            after=result(f.resolved_run_id, f.check_id, remediation) if resolved else None,
            first_run_id=f.first_run_id, resolved_run_id=f.resolved_run_id if resolved else None))
    return out


def _service_findings(conn: Connection, system_id: int, start: Optional[datetime], end: datetime,
                      hosts: dict[int, Host]) -> list[ServiceFindingRecord]:
    """Service findings of the system's scans overlapping the range (first seen by its end, not closed before
    its start); one closed after the end is open as of the end, like host findings."""
    t = ServiceFindingRow.__table__
    q = core_select(t).where(t.c.system_id == system_id, t.c.first_seen <= end)
    if start is not None:
        q = q.where((t.c.closed_at.is_(None)) | (t.c.closed_at >= start))
    out = []
    for row in conn.execute(q.order_by(t.c.id)):
        closed = row.closed_at is not None and row.closed_at <= end
        try:
            results = [CheckResult.model_validate(r) for r in row.check_results or []]
            evidence = [Evidence.model_validate(e) for e in row.evidence or []]
        except ValueError as exc:
            raise EvidenceError(f"service finding {row.id} ({row.host}:{row.port}/{row.proto}): stored results are "
                                f"not readable: {str(exc).splitlines()[0]}") from None
        # Risk by the one formula in sentinel.scoring, over the checks that failed on this service.
        problems = [r for r in results if scoring.risk_level(r) is not None]
        levels = {scoring.risk_level(r) for r in problems}
        risk = next((level for level in ("high", "medium", "low") if level in levels), None)
        host = hosts.get(row.host_id) if row.host_id is not None else None
        version = " ".join(p for p in (row.product, row.version) if p) or None
        out.append(ServiceFindingRecord(
            id=row.id, host=row.host, hostname=host.hostname if host else None, port=row.port, proto=row.proto,
            service=row.service, version=version, zone=row.zone, forbidden=row.forbidden,
            high_risk=list(row.high_risk or []), risk=risk,
            problems=problems, evidence=evidence,
            banner=row.banner, first_seen=row.first_seen, last_seen=row.last_seen,
            closed_at=row.closed_at if closed else None, first_scan_id=row.first_scan_id,
            last_scan_id=row.last_scan_id, closed_scan_id=row.closed_scan_id if closed else None))
    return out
