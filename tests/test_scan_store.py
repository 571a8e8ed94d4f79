"""Network scans in the store, on SQLite and PostgreSQL: migration 0002, one running scan per system (taking over
abandoned ones), and storing scan results as service findings diffed against the open ones (first/last seen,
closed_at, events with their severities). Scans here are synthetic ScanReports scored by the real scorer;
tests/test_scan_collector.py runs real scans in the namespace lab."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from sentinel.checks.network.discovery import ScanOptions
from sentinel.checks.network.findings import ServiceFinding, SSHInfo
from sentinel.checks.network.scope import parse_ports
from sentinel.collector.scan_ingest import ScanBusy, ScanGone, begin_scan, fail_scan, finding_from_row, finish_scan
from sentinel.store.db import Database, current_revision, downgrade, upgrade
from sentinel.store.models import AuditEntry, Department, Event, Host, ScanRun, ServiceFindingRow, System
from tests.dbfixtures import pg_url
from tests.scan_helpers import NET
from tests.scan_helpers import scan_report as _report

pytest_plugins = ["tests.dbfixtures"]

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
H5, H6 = "10.9.0.5", "10.9.0.6"
STALE = timedelta(hours=3)


def _system(db: Database, name: str = "his", with_host: bool = True) -> int:
    with db.write() as c:
        dept = c.execute(insert(Department.__table__).values(name=f"d-{name}", title="", created_at=T0)
                         ).inserted_primary_key[0]
        sid = c.execute(insert(System.__table__).values(
            name=name, department_id=dept, title="", level=3, s_grade=3, a_grade=3, label="S3A3", owner="",
            zones=[], scan_scope=[NET], chain_head="0" * 64, created_at=T0, updated_at=T0)).inserted_primary_key[0]
        if with_host:
            c.execute(insert(Host.__table__).values(
                system_id=sid, department_id=dept, hostname="app-05", addresses=[H5, "fe80::1"], os_id="debian",
                os_version="12", os_name="Debian", arch="x86_64", first_seen=T0, last_seen=T0))
    return sid


def _begin(db, sid, runner_now=None, **kw):
    args = dict(system_id=sid, triggered_by="schedule", actor="scheduler", targets=[NET], full_scope=True,
                scope={"networks": [NET]}, args={}, zone_baseline="zone-egov-default", zone=None, scanner_zone=None,
                stale_after=STALE, now=runner_now)
    args.update(kw)
    return begin_scan(db, **args)


def _finding(host: str, port: int, service: str, product=None, version=None, **kw) -> ServiceFinding:
    return ServiceFinding(host=host, port=port, service=service, product=product, version=version, **kw)


def _rows(db, table, *where, order=None):
    with db.read() as c:
        return c.execute(select(table).where(*where).order_by(order if order is not None else table.c.id)).all()


# ---- migration ----------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_url(request.getfixturevalue("pg_schemas").create("sentinel_scanmigr"))


def test_migration_0002_up_down_up_keeps_the_rest(empty_url):
    db = Database(empty_url)
    try:
        assert upgrade(db, "0001") == "0001"
        sid = _system(db)
        assert upgrade(db, "0002") == "0002"
        claim = _begin(db, sid)
        finish_scan(db, claim.run_id, _report([_finding(H5, 22, "ssh")], [NET], T0))
        assert downgrade(db, "0001") == "0001"
        tables = set(inspect(db.engine).get_table_names())
        assert not tables & {"scan_runs", "scan_schedules", "service_findings"}
        with db.read() as c:  # only 0001's columns: the model's table has columns of later revisions
            assert len(c.execute(select(System.__table__.c.id, System.__table__.c.name)).all()) == 1, \
                "0001's data is untouched"
        assert upgrade(db, "0002") == "0002" == current_revision(db)
        assert _rows(db, ScanRun.__table__) == []
    finally:
        db.dispose()


# ---- one running scan per system ----------------------------------------------------------------------------


def test_one_running_scan_per_system(db):
    sid, other = _system(db), _system(db, "school", with_host=False)
    first = _begin(db, sid)
    with pytest.raises(ScanBusy, match=rf"scan {first.run_id}, started .* by {socket.gethostname()}:{os.getpid()}"):
        _begin(db, sid, triggered_by="api", actor="token:1:ops")
    assert _begin(db, other).run_id != first.run_id, "another system scans at the same time"
    # the guard is the database's own: a second running row for the system cannot be written at all
    with pytest.raises(IntegrityError):
        with db.write() as c:
            c.execute(insert(ScanRun.__table__).values(
                system_id=sid, department_id=1, triggered_by="cli", requested_by="x", status="running", runner="x",
                started_at=T0, targets=[], full_scope=True, scope={}, args={}, warnings=[], items=[], results=[]))
    fail_scan(db, first.run_id, "NmapError: boom")
    again = _begin(db, sid)
    assert again.run_id > first.run_id
    starts = [r.detail for r in _rows(db, AuditEntry.__table__, AuditEntry.__table__.c.action == "scan.start")]
    assert starts == [f"scan {first.run_id} (schedule): targets {NET}", f"scan {first.run_id + 1} (schedule): "
                      f"targets {NET}", f"scan {again.run_id} (schedule): targets {NET}"]


def test_abandoned_running_scans_are_taken_over(db):
    sid = _system(db)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid of this machine that no longer runs
    stale = _begin(db, sid, runner_now=T0)
    with db.write() as c:
        c.execute(ScanRun.__table__.update().where(ScanRun.__table__.c.id == stale.run_id)
                  .values(runner=f"{socket.gethostname()}:{dead.pid}", started_at=datetime.now(timezone.utc)))
    fresh = _begin(db, sid)
    old = _rows(db, ScanRun.__table__, ScanRun.__table__.c.id == stale.run_id)[0]
    assert (old.status, old.error) == ("failed", f"abandoned: collector process {socket.gethostname()}:{dead.pid} "
                                                 "is gone")
    # a scan running elsewhere is left alone until it outlives stale_after
    with db.write() as c:
        c.execute(ScanRun.__table__.update().where(ScanRun.__table__.c.id == fresh.run_id)
                  .values(runner="other-host:1", started_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
    with pytest.raises(ScanBusy):
        _begin(db, sid)
    with db.write() as c:
        c.execute(ScanRun.__table__.update().where(ScanRun.__table__.c.id == fresh.run_id)
                  .values(started_at=datetime.now(timezone.utc) - STALE - timedelta(seconds=1)))
    _begin(db, sid)
    taken = _rows(db, ScanRun.__table__, ScanRun.__table__.c.id == fresh.run_id)[0]
    assert taken.status == "failed" and taken.error == "abandoned: still running after 10800 s"
    # the results of a scan that was taken over are not stored
    with pytest.raises(ScanGone, match="failed"):
        finish_scan(db, fresh.run_id, _report([], [NET], T0))


# ---- storing results: diff, first/last seen, closed, events ---------------------------------------------------


def _ssh(version: str) -> dict:
    return {"ssh": SSHInfo(banner=f"SSH-2.0-OpenSSH_{version}", protocol="2.0", software=f"OpenSSH_{version}")}


def test_findings_diff_first_last_seen_and_events(db):
    sid = _system(db)
    t1, t2 = T0, T0 + timedelta(hours=1)
    c1 = _begin(db, sid, runner_now=t1)
    stored = finish_scan(db, c1.run_id, _report([
        _finding(H5, 22, "ssh", "OpenSSH", "7.4", **_ssh("7.4")),
        _finding(H5, 23, "telnet", "Linux telnetd"),
        _finding(H6, 6379, "redis", "Redis key-value store", "6.0.16")], [NET], t1))
    assert (stored.opened, stored.seen_again, stored.closed) == (3, 0, 0)
    SF, E = ServiceFindingRow.__table__, Event.__table__
    rows = {(r.host, r.port): r for r in _rows(db, SF)}
    assert set(rows) == {(H5, 22), (H5, 23), (H6, 6379)}
    assert all(r.first_seen == r.last_seen == t1 and r.first_scan_id == c1.run_id for r in rows.values())
    assert rows[(H5, 22)].host_id == rows[(H5, 23)].host_id is not None, "the registered host with that address"
    assert rows[(H6, 6379)].host_id is None
    telnet = rows[(H5, 23)]
    assert telnet.forbidden and telnet.high_risk == ["6.4.1.2", "6.4.3.1"] and telnet.plaintext_management
    assert {r["check_id"] for r in telnet.check_results if r["status"] == "fail"} == {
        "net-plaintext-mgmt", "net-plaintext-transport", "net-forbidden-port"}
    assert finding_from_row(telnet).results[0].check_id == "net-plaintext-mgmt"  # rows convert back for the diff
    events = [(e.kind, e.severity, e.payload["subject"]) for e in _rows(db, E)]
    # the first scan: one notice for the system's three open ports (not one each), an alert per forbidden one
    assert events == [("new_open_port", "warning", "new open ports"),
                      ("new_forbidden_port", "critical", f"{H5}:23/tcp"),
                      ("new_forbidden_port", "critical", f"{H6}:6379/tcp")]
    notice = _rows(db, E)[0]
    assert notice.host_id is None and notice.payload["count"] == 3
    assert [(p["host"], p["port"], p["proto"]) for p in notice.payload["ports"]] == [
        (H5, 22, "tcp"), (H5, 23, "tcp"), (H6, 6379, "tcp")]
    assert notice.summary.startswith("his: 3 new open ports: ") and f"{H6}:6379/tcp" in notice.summary
    # its Alertmanager identity is the system's: no host or port among the labels
    from sentinel.events.model import AlertEvent, GradeMap, event_labels

    labels = event_labels(AlertEvent.from_row(notice), GradeMap())
    assert labels["alertname"] == "SentinelNewOpenPort" and labels["system"] == "his"
    assert not {"host", "port"} & set(labels) and labels["subject"] == "new open ports"
    run1 = _rows(db, ScanRun.__table__)[0]
    assert (run1.status, run1.services_open, run1.services_forbidden, run1.events, run1.conclusion) == (
        "succeeded", 3, 2, 5, "差")
    assert run1.high_risk == run1.summary["high_risk"] > 0 and run1.items and run1.results

    # Scan 2 covers only H5: telnet stopped, ssh upgraded; H6 is not covered, so its redis stays open.
    c2 = _begin(db, sid, runner_now=t2, targets=[H5], full_scope=False)
    stored = finish_scan(db, c2.run_id, _report([_finding(H5, 22, "ssh", "OpenSSH", "8.0", **_ssh("8.0"))],
                                                [H5], t2))
    assert (stored.opened, stored.seen_again, stored.closed) == (0, 1, 1)
    rows = {(r.host, r.port): r for r in _rows(db, SF)}
    ssh, telnet, redis = rows[(H5, 22)], rows[(H5, 23)], rows[(H6, 6379)]
    assert (ssh.first_seen, ssh.last_seen, ssh.last_scan_id, ssh.version) == (t1, t2, c2.run_id, "8.0")
    assert (telnet.closed_at, telnet.closed_scan_id, telnet.last_seen) == (t2, c2.run_id, t1)
    assert (redis.closed_at, redis.last_seen) == (None, t1)
    all_events = _rows(db, E)  # in id order; ids are not 1-based on PostgreSQL (sequences outlive DELETE)
    new = [(e.kind, e.severity, e.summary, e.payload.get("resolved", False)) for e in all_events[3:]]
    assert new == [
        ("version_change", "info", f"his: {H5}:22/tcp: OpenSSH 7.4 -> OpenSSH 8.0", False),
        ("closed_port", "info", f"his: port {H5}:23/tcp closed (was Linux telnetd)", False),
        ("new_forbidden_port", "critical", f"his: forbidden service on {H5}:23/tcp resolved (closed)", True)]
    assert all_events[5].fingerprint == all_events[1].fingerprint, "the resolution names the alert it ends"

    # Port 23 opens again: a new episode (row), first seen now; the old row keeps its history.
    t3 = t2 + timedelta(hours=1)
    c3 = _begin(db, sid, runner_now=t3)
    finish_scan(db, c3.run_id, _report([_finding(H5, 22, "ssh", "OpenSSH", "8.0", **_ssh("8.0")),
                                        _finding(H5, 23, "telnet", "Linux telnetd"),
                                        _finding(H6, 6379, "redis", "Redis key-value store", "6.0.16")], [NET], t3))
    episodes = [(r.first_seen, r.closed_at) for r in _rows(db, SF, SF.c.port == 23)]
    assert episodes == [(t1, t2), (t3, None)]
    assert [r.first_seen for r in _rows(db, SF, SF.c.port == 6379)] == [t1], "still the same open redis"

    # A scan of the whole network on port 22 only says nothing about the other ports: nothing else closes.
    t4, seen = t3 + timedelta(hours=1), len(_rows(db, E))
    c4 = _begin(db, sid, runner_now=t4, full_scope=False)
    stored = finish_scan(db, c4.run_id, _report([_finding(H5, 22, "ssh", "OpenSSH", "8.0", **_ssh("8.0"))], [NET], t4,
                                                options=ScanOptions(tcp_ports=parse_ports("22"))))
    assert (stored.opened, stored.seen_again, stored.closed, stored.events) == (0, 1, 0, [])
    assert [(r.port, r.last_seen) for r in _rows(db, SF, SF.c.closed_at.is_(None), order=SF.c.port)] == [
        (22, t4), (23, t3), (6379, t3)]
    assert len(_rows(db, E)) == seen


def test_failed_scan_raises_and_resolves_its_alert(db):
    sid = _system(db)
    c1 = _begin(db, sid)
    fail_scan(db, c1.run_id, "NmapMissing: the nmap binary was not found on PATH")
    run = _rows(db, ScanRun.__table__)[0]
    assert run.status == "failed" and run.finished_at is not None and run.error.startswith("NmapMissing")
    c2 = _begin(db, sid)
    finish_scan(db, c2.run_id, _report([], [NET], T0))
    E = Event.__table__
    failed = [(e.kind, e.severity, e.payload.get("resolved", False), e.fingerprint) for e in _rows(db, E)]
    assert [f[:3] for f in failed] == [("scan_failed", "warning", False), ("scan_failed", "warning", True)]
    assert failed[0][3] == failed[1][3]
    fail_scan(db, c2.run_id, "late failure")  # no longer running: not recorded twice
    assert _rows(db, ScanRun.__table__, ScanRun.__table__.c.id == c2.run_id)[0].status == "succeeded"


def test_open_filtered_neither_counts_open_nor_closes_nor_resolves(db):
    from sentinel.checks.network.findings import Exposure

    sid = _system(db)
    udp = ScanOptions(tcp_ports=parse_ports("22"), udp=True, udp_ports=parse_ports("11211"))
    t1, t2 = T0, T0 + timedelta(hours=1)
    answered = _finding(H5, 11211, "memcached", proto="udp",
                        exposure=Exposure(protocol="memcached", unauthenticated=True, detail="stats over UDP"))
    c1 = _begin(db, sid, runner_now=t1)
    finish_scan(db, c1.run_id, _report([answered], [NET], t1, options=udp))
    SF, E = ServiceFindingRow.__table__, Event.__table__
    raised = [(e.kind, e.payload.get("resolved", False)) for e in _rows(db, E)]
    assert raised == [("new_open_port", False), ("new_forbidden_port", False)]
    # the next scan gets no answer at all (a firewall now drops UDP): undetermined, not closed, not resolved
    silent = _finding(H5, 11211, "memcached", proto="udp", state="open|filtered")
    c2 = _begin(db, sid, runner_now=t2)
    stored = finish_scan(db, c2.run_id, _report([silent], [NET], t2, options=udp))
    assert (stored.closed, stored.events) == (0, [])
    assert len(_rows(db, E)) == 2, "no closed_port event and no resolution of the forbidden-port alert"
    (row,) = _rows(db, SF)
    assert row.closed_at is None and row.state == "open|filtered"
    run2 = _rows(db, ScanRun.__table__)[-1]
    assert (run2.services_open, run2.services_forbidden) == (0, 0)
    assert run2.args["coverage"]["udp_ports"] == "11211"  # what the run covered is kept with it
