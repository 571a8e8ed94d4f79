"""Network scans in the store: claiming a scan (never two at once for a system), storing its results as
service findings diffed against what was open before, and the events the diff raises.

A scan run is a `scan_runs` row in state `running` from the moment it is claimed. The partial unique index
`uq_scan_runs_running` lets the database refuse a second running scan of the same system, whichever
collector process asks, so the guard holds across workers and machines sharing the database. A running
row whose process is gone (same machine, pid not alive) or which outlived `stale_after` is marked failed
when the next scan is claimed, so a crash never blocks a system's scans for good.

Storing a finished scan (`finish_scan`), in one transaction:
- the system's open service findings are the previous state; `carry_first_seen` keeps their first_seen;
- `diff_findings` gives the events (new open port, closed port, version change, new forbidden port); a
  previously open finding the scan did not cover (an address outside its targets, or a port it did not scan)
  is left open, since a partial scan says nothing about the rest; a covered one no longer open gets `closed_at`;
- a forbidden port that closes (or is no longer forbidden) resolves its `new_forbidden_port` alert (same
  fingerprint, `"resolved": true`), and a success after a failed scan resolves the `scan_failed` alert.

Event severities (the events table's critical | warning | info): new forbidden port -> critical when it is
a high-risk case (高风险判定指引), else warning; new open ports -> warning, one notice per scan of the
system listing them all (a first scan finds dozens at once: one fact, one alert); closed port and version
change -> info; scan failed -> warning.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from sentinel.checks.network.findings import ServiceFinding
from sentinel.network.diff import ScanEvent, carry_first_seen, diff_findings
from sentinel.network.engine import ScanReport

from ..model import Severity
from ..store.db import Database
from ..store.models import Department, Event, Host, ScanRun, ServiceFindingRow, System
from . import audit, drift

log = logging.getLogger("sentinel.collector.scans")

T_RUN, T_SF, T_EVENT = ScanRun.__table__, ServiceFindingRow.__table__, Event.__table__
T_SYSTEM, T_DEPT, T_HOST = System.__table__, Department.__table__, Host.__table__

#: check severities of sentinel.network.diff.ScanEvent -> the events table's severities
EVENT_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "warning", Severity.MEDIUM: "warning",
                  Severity.LOW: "info"}
SCAN_FAILED = "scan_failed"
_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# Column widths of service_findings for values a scanned service controls (banners, nmap's product strings).
_WIDTHS = {"host": 64, "state": 32, "service": 64, "nmap_service": 64, "product": 200, "version": 200,
           "extrainfo": 500, "tunnel": 16, "zone": 64}
_FINDING_COLUMNS = ("host", "port", "proto", "state", "service", "nmap_service", "product", "version", "extrainfo",
                    "tunnel", "starttls", "banner", "tls", "ssh", "http", "exposure", "plaintext_management", "zone",
                    "forbidden", "high_risk", "errors", "evidence", "first_seen", "last_seen")


class ScanBusy(Exception):
    """A scan of the system is already running."""

    def __init__(self, system: str, run_id: int, started_at: datetime, runner: str) -> None:
        self.run_id = run_id
        super().__init__(f"a scan of system {system} is already running (scan {run_id}, started "
                         f"{started_at.isoformat(timespec='seconds')} by {runner}); it was not started again")


class ScanGone(Exception):
    """The scan run is no longer `running` (taken over as abandoned) or does not exist."""


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(runner: str, started_at: datetime, now: datetime, stale_after: timedelta) -> Optional[str]:
    """Why a running scan is abandoned, or None if it may still be running."""
    host, _, pid = runner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
        return f"abandoned: collector process {runner} is gone"
    if now - started_at > stale_after:
        return f"abandoned: still running after {stale_after.total_seconds():.0f} s"
    return None


@dataclass(frozen=True)
class Claim:
    run_id: int
    system_id: int
    department_id: int
    started_at: datetime


def begin_scan(db: Database, *, system_id: int, triggered_by: str, actor: str, targets: list[str],
               full_scope: bool, scope: dict, args: dict, zone_baseline: Optional[str], zone: Optional[str],
               scanner_zone: Optional[str], stale_after: timedelta, source_ip: Optional[str] = None,
               now: Optional[datetime] = None) -> Claim:
    """Insert the `running` row of a new scan with its `scan.start` audit entry, or raise ScanBusy.
    Abandoned running rows are failed first."""
    now = now or datetime.now(timezone.utc)
    try:
        with db.write() as conn:
            system = conn.execute(select(T_SYSTEM.c.name, T_SYSTEM.c.department_id)
                                  .where(T_SYSTEM.c.id == system_id)).first()
            if system is None:
                raise LookupError(f"system {system_id} not found")
            running = conn.execute(select(T_RUN.c.id, T_RUN.c.runner, T_RUN.c.started_at)
                                   .where(T_RUN.c.system_id == system_id, T_RUN.c.status == "running")).first()
            if running is not None:
                why = is_stale(running.runner, running.started_at, now, stale_after)
                if why is None:
                    raise ScanBusy(system.name, running.id, running.started_at, running.runner)
                log.warning("scan %s of system %s: %s", running.id, system.name, why)
                _mark_failed(conn, running.id, running.started_at, now, why)
            pk = conn.execute(insert(T_RUN).values(
                system_id=system_id, department_id=system.department_id, triggered_by=triggered_by,
                requested_by=actor[:200], status="running", runner=runner_id(), started_at=now, targets=targets,
                full_scope=full_scope, scope=scope, args=args, zone_baseline=zone_baseline, zone=zone,
                scanner_zone=scanner_zone, warnings=[], items=[], results=[])).inserted_primary_key
            assert pk is not None  # a single-row INSERT always reports the new row's key
            run_id = pk[0]
            audit.record(conn, actor=actor, action="scan.start", target=f"system:{system_id}:{system.name}",
                         source_ip=source_ip, detail=f"scan {run_id} ({triggered_by}): targets {', '.join(targets)}")
    except IntegrityError:
        # another process inserted its running row between our check and insert (PostgreSQL)
        with db.read() as conn:
            row = conn.execute(select(T_RUN.c.id, T_RUN.c.runner, T_RUN.c.started_at, T_SYSTEM.c.name)
                               .join(T_SYSTEM, T_SYSTEM.c.id == T_RUN.c.system_id)
                               .where(T_RUN.c.system_id == system_id, T_RUN.c.status == "running")).first()
        if row is None:
            raise
        raise ScanBusy(row.name, row.id, row.started_at, row.runner) from None
    return Claim(run_id=run_id, system_id=system_id, department_id=system.department_id, started_at=now)


def _mark_failed(conn, run_id: int, started_at: datetime, now: datetime, error: str) -> None:
    conn.execute(update(T_RUN).where(T_RUN.c.id == run_id, T_RUN.c.status == "running").values(
        status="failed", finished_at=now, duration_ms=max(0.0, (now - started_at).total_seconds() * 1000),
        error=error[:4000]))


def fail_scan(db: Database, run_id: int, error: str, now: Optional[datetime] = None) -> None:
    """Mark a running scan failed and raise the system's `scan_failed` alert."""
    now = now or datetime.now(timezone.utc)
    with db.write() as conn:
        row = conn.execute(select(T_RUN.c.started_at, T_RUN.c.status, T_RUN.c.system_id).where(T_RUN.c.id == run_id)
                           ).first()
        if row is None or row.status != "running":
            log.warning("scan %s: not running any more; its failure (%s) is not recorded again", run_id, error)
            return
        _mark_failed(conn, run_id, row.started_at, now, error)
        ctx = _system_context(conn, row.system_id)
        conn.execute(insert(T_EVENT).values(**_event_base(ctx, now, None), kind=SCAN_FAILED, severity="warning",
                                            check_id=None, fingerprint=drift.fingerprint(SCAN_FAILED, row.system_id),
                                            summary=f"{ctx['system']}: network scan {run_id} failed: {error}"[:4000],
                                            payload={**ctx["payload"], "scan_run_id": run_id, "error": error,
                                                     "subject": "network scan"}))


def fail_interrupted(db: Database, runner: str, error: str) -> int:
    """Fail every scan this process (`runner`) still has running, e.g. on shutdown. Returns how many."""
    now = datetime.now(timezone.utc)
    with db.read() as conn:
        ids = list(conn.execute(select(T_RUN.c.id).where(T_RUN.c.status == "running", T_RUN.c.runner == runner))
                   .scalars())
    for run_id in ids:
        fail_scan(db, run_id, error, now)
    return len(ids)


# ---- conversions -----------------------------------------------------------------------------------


def finding_from_row(row: Any) -> ServiceFinding:
    data = {name: getattr(row, name) for name in _FINDING_COLUMNS}
    data["results"] = row.check_results
    return ServiceFinding.model_validate(data)


def _finding_values(f: ServiceFinding) -> dict:
    data = f.model_dump(mode="json", include=set(_FINDING_COLUMNS) - {"first_seen", "last_seen"})
    for name, width in _WIDTHS.items():
        if isinstance(data.get(name), str):
            data[name] = data[name][:width]
    data["check_results"] = [r.model_dump(mode="json") for r in f.results]
    data["first_seen"], data["last_seen"] = f.first_seen, f.last_seen
    return data


def _networks(targets: Iterable[str]) -> list:
    out = []
    for t in targets:
        try:
            out.append(ipaddress.ip_network(t, strict=False))
        except ValueError:
            continue  # the collector only scans addresses and CIDRs; anything else covers nothing
    return out


def _port_set(ranges) -> frozenset[int]:
    return frozenset(p for r in ranges for p in range(r.start, r.end + 1))


def _covered(host: str, networks: list) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in networks)


def _host_ids(conn, system_id: int) -> dict[str, int]:
    """Address -> id of the system's registered host that reported it (inventory addresses)."""
    out: dict[str, int] = {}
    for hid, addresses in conn.execute(select(T_HOST.c.id, T_HOST.c.addresses).where(T_HOST.c.system_id == system_id)):
        for a in addresses or []:
            try:
                out.setdefault(str(ipaddress.ip_address(str(a).split("/")[0])), hid)
            except ValueError:
                continue
    return out


def _system_context(conn, system_id: int) -> dict:
    s = conn.execute(select(T_SYSTEM.c.name, T_SYSTEM.c.label, T_SYSTEM.c.department_id,
                            T_DEPT.c.name.label("department"))
                     .join(T_DEPT, T_DEPT.c.id == T_SYSTEM.c.department_id).where(T_SYSTEM.c.id == system_id)).one()
    return {"system_id": system_id, "department_id": s.department_id, "system": s.name,
            "payload": {"department": s.department, "system": s.name, "system_label": s.label}}


def _event_base(ctx: dict, now: datetime, host_id: Optional[int]) -> dict:
    return {"department_id": ctx["department_id"], "system_id": ctx["system_id"], "host_id": host_id, "run_id": None,
            "created_at": now, "delivered": False, "attempts": 0}


# ---- storing a finished scan ---------------------------------------------------------------------------


@dataclass
class Stored:
    run_id: int
    opened: int
    seen_again: int
    closed: int
    events: list[ScanEvent]


def finish_scan(db: Database, run_id: int, report: ScanReport, now: Optional[datetime] = None) -> Stored:
    """Store a finished scan's findings against the system's open ones; raises ScanGone if the run is no
    longer running (another process failed it as abandoned: its results are then not stored)."""
    now = now or datetime.now(timezone.utc)
    at = report.finished_at
    with db.write() as conn:
        run = conn.execute(select(T_RUN.c.system_id, T_RUN.c.status, T_RUN.c.started_at, T_RUN.c.args)
                           .where(T_RUN.c.id == run_id)).first()
        if run is None or run.status != "running":
            raise ScanGone(f"scan {run_id} is {'unknown' if run is None else run.status}; its results are not stored")
        system_id = run.system_id
        ctx = _system_context(conn, system_id)
        open_rows = conn.execute(select(T_SF).where(T_SF.c.system_id == system_id, T_SF.c.closed_at.is_(None))).all()
        by_key = {(r.host, r.proto, r.port): r for r in open_rows}
        previous = [finding_from_row(r) for r in open_rows]
        current = carry_first_seen(previous, list(report.findings))
        # Only what this scan looked at can have closed: an address inside its targets, on a port it scanned.
        networks = _networks(report.targets)
        ports = {"tcp": _port_set(report.options.effective_tcp_ports()),
                 "udp": _port_set(report.options.effective_udp_ports())}
        covered = [f for f in previous if _covered(f.host, networks) and f.port in ports[f.proto]]
        covered_keys = {f.key for f in covered}
        events = diff_findings(covered, current, at=at, scanned_hosts=sorted({f.host for f in covered}))
        host_ids = _host_ids(conn, system_id)

        seen_keys = set()
        inserts, opened, seen_again = [], 0, 0
        for f in current:
            seen_keys.add(f.key)
            values = {**_finding_values(f), "host_id": host_ids.get(f.host), "last_scan_id": run_id}
            old = by_key.get(f.key)
            if old is None:
                opened += 1
                inserts.append({**values, "system_id": system_id, "department_id": ctx["department_id"],
                                "first_scan_id": run_id, "closed_at": None, "closed_scan_id": None})
            else:
                seen_again += 1
                values.pop("first_seen")  # an open finding keeps when it was first seen
                conn.execute(update(T_SF).where(T_SF.c.id == old.id).values(**values))
        if inserts:
            conn.execute(insert(T_SF), inserts)
        closing = [r for key, r in by_key.items() if key not in seen_keys and key in covered_keys]
        if closing:
            conn.execute(update(T_SF).where(T_SF.c.id.in_([r.id for r in closing]))
                         .values(closed_at=at, closed_scan_id=run_id))

        rows = _events(ctx, run_id, events, current, by_key, closing, host_ids, now)
        previous_run = conn.execute(select(T_RUN.c.status).where(T_RUN.c.system_id == system_id, T_RUN.c.id < run_id,
                                                                  T_RUN.c.status != "running")
                                    .order_by(T_RUN.c.id.desc()).limit(1)).scalar()
        if previous_run == "failed":
            rows.append({**_event_base(ctx, now, None), "kind": SCAN_FAILED, "severity": "warning", "check_id": None,
                         "fingerprint": drift.fingerprint(SCAN_FAILED, system_id),
                         "summary": f"{ctx['system']}: network scan {run_id} succeeded again",
                         "payload": {**ctx["payload"], "scan_run_id": run_id, "resolved": True,
                                     "subject": "network scan"}})
        if rows:
            conn.execute(insert(T_EVENT), rows)

        s = report.summary
        conn.execute(update(T_RUN).where(T_RUN.c.id == run_id).values(
            status="succeeded", finished_at=at, duration_ms=report.duration_ms,
            args={**(run.args or {}), "nmap": [n.model_dump(mode="json") for n in report.nmap],
                  "coverage": report.coverage.model_dump(mode="json") if report.coverage else None,
                  # the level scored at, and the results of checks that level does not have (not scored)
                  "level": report.level, "not_scored": [n.model_dump(mode="json") for n in report.not_scored]},
            zone_baseline=report.zone_baseline, warnings=list(report.errors), hosts_up=len(report.hosts_up),
            # open|filtered findings are stored (with their state) but are not open services
            services_open=sum(1 for f in current if f.determined),
            services_forbidden=sum(1 for f in current if f.forbidden),
            high_risk=s.high_risk, events=len(events),
            items=[i.model_dump(mode="json") for i in report.items],
            results=[r.model_dump(mode="json") for r in report.results],
            summary=s.model_dump(mode="json"), score=s.score, conclusion=s.conclusion))
    return Stored(run_id=run_id, opened=opened, seen_again=seen_again, closed=len(closing), events=events)


def _events(ctx: dict, run_id: int, events: list[ScanEvent], current: list[ServiceFinding], before: dict,
            closing: list, host_ids: dict[str, int], now: datetime) -> list[dict]:
    rows = []
    system = ctx["system"]
    opened = [e for e in events if e.kind == "new_open_port"]
    if opened:
        rows.append(_opened_ports_event(ctx, run_id, opened, now))
    for e in events:
        if e.kind == "new_open_port":
            continue  # in the one notice above
        subject = f"{e.host}:{e.port}/{e.proto}"
        if e.kind == "new_forbidden_port":
            fp = drift.fingerprint(e.kind, ctx["system_id"], e.host, e.proto, e.port)
        else:  # one notice per scan: closed ports and version changes are not conditions that stay
            fp = drift.fingerprint(e.kind, ctx["system_id"], e.host, e.proto, e.port, run_id)
        change = {"closed_port": f"port {subject} closed (was {e.before or 'unknown service'})",
                  "version_change": f"{subject}: {e.before or '?'} -> {e.after or '?'}",
                  "new_forbidden_port": f"forbidden service open on {subject} ({e.after or e.service or 'unknown'})",
                  }[e.kind]
        rows.append({**_event_base(ctx, now, host_ids.get(e.host)), "kind": e.kind,
                     "severity": EVENT_SEVERITY[e.severity], "check_id": None, "fingerprint": fp,
                     "summary": f"{system}: {change}",
                     "payload": {**ctx["payload"], "host": e.host, "scan_run_id": run_id, "subject": subject,
                                 "port": e.port, "proto": e.proto, "service": e.service, "before": e.before,
                                 "after": e.after, "scan_severity": e.severity.value}})
    # A forbidden port that closed, or is no longer forbidden, resolves its alert.
    now_open = {f.key for f in current}
    now_forbidden = {f.key for f in current if f.forbidden}
    undetermined = {f.key for f in current if not f.determined}  # open|filtered: says nothing either way
    closed_keys = {(r.host, r.proto, r.port) for r in closing}
    for key, old in sorted(before.items()):
        if not old.forbidden or key in now_forbidden or key in undetermined:
            continue
        if key not in closed_keys and key not in now_open:
            continue  # not covered by this scan: still open as far as anyone knows
        host, proto, port = key
        how = "closed" if key in closed_keys else "no longer forbidden"
        severity = "critical" if old.high_risk else "warning"  # as the alert it resolves was raised
        rows.append({**_event_base(ctx, now, host_ids.get(host)), "kind": "new_forbidden_port", "severity": severity,
                     "check_id": None, "fingerprint": drift.fingerprint("new_forbidden_port", ctx["system_id"], host,
                                                                        proto, port),
                     "summary": f"{system}: forbidden service on {host}:{port}/{proto} resolved ({how})",
                     "payload": {**ctx["payload"], "host": host, "scan_run_id": run_id,
                                 "subject": f"{host}:{port}/{proto}", "port": port, "proto": proto,
                                 "service": old.service, "resolved": True, "resolution": how}})
    return rows


#: ports named in a grouped new-open-port notice's summary; the payload lists them all
_SUMMARY_PORTS = 10


def _opened_ports_event(ctx: dict, run_id: int, opened: list[ScanEvent], now: datetime) -> dict:
    """One notice per scan for the ports it found newly open, not one per port: a system's first scan finds
    its whole inventory at once, and tens of notices of one fact buried the ones that matter (issue 13).
    The notice is the system's (no host, subject `new open ports`), so its identity in Alertmanager
    (SentinelNewOpenPort + department, system, severity, grade) is one per system; the ports are in the
    summary (the first few) and in the payload's `ports` (all of them). A forbidden one keeps its own
    `new_forbidden_port` alert as well: that one is a condition, resolved when the port closes."""
    system = ctx["system"]
    worst = max(opened, key=lambda e: _SEVERITY_RANK[e.severity])
    ports = [{"host": e.host, "port": e.port, "proto": e.proto, "service": e.service, "after": e.after}
             for e in opened]
    named = ", ".join(f"{e.host}:{e.port}/{e.proto} ({e.after or 'unknown service'})"
                      for e in opened[:_SUMMARY_PORTS])
    more = f" and {len(opened) - _SUMMARY_PORTS} more" if len(opened) > _SUMMARY_PORTS else ""
    what = "new open port" if len(opened) == 1 else f"{len(opened)} new open ports"
    return {**_event_base(ctx, now, None), "kind": "new_open_port", "severity": EVENT_SEVERITY[worst.severity],
            "check_id": None, "fingerprint": drift.fingerprint("new_open_port", ctx["system_id"], run_id),
            "summary": f"{system}: {what}: {named}{more}",
            "payload": {**ctx["payload"], "scan_run_id": run_id, "subject": "new open ports", "count": len(opened),
                        "ports": ports, "hosts": sorted({e.host for e in opened}),
                        "scan_severity": worst.severity.value}}
