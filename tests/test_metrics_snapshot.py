"""sentinel/store/snapshot.py: the metrics snapshot read from a real migrated store (SQLite and PostgreSQL),
rendered and accepted by promtool. Rows are written directly so each figure's source is visible in the test."""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert

from exporters.prometheus import make_registry, render
from sentinel.store.db import Database
from sentinel.store.models import Agent, CheckResultRow, Department, Finding, Host, Run, System
from sentinel.store.snapshot import build_snapshot
from tests.obs_support import need

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
TEXT = {"zh": "检查", "en": "check"}


pytest_plugins = ["tests.dbfixtures"]  # `db`: an empty migrated store, on SQLite and on PostgreSQL


def _seed(db: Database) -> None:
    t = NOW - timedelta(days=10)
    with db.write() as c:
        c.execute(insert(Department.__table__), [
            {"id": 1, "name": "财政局", "title": "", "created_at": t},
            {"id": 2, "name": "卫健委", "title": "", "created_at": t}])
        c.execute(insert(System.__table__), [
            {"id": 1, "name": "非税收入管理系统", "department_id": 1, "title": "", "level": 3, "s_grade": 3,
             "a_grade": 3, "label": "S3A3", "owner": "", "zones": [], "scan_scope": [], "chain_head": "0" * 64,
             "created_at": t, "updated_at": t},
            {"id": 2, "name": "互联网医院", "department_id": 2, "title": "", "level": 2, "s_grade": 2, "a_grade": 1,
             "label": "S2A1", "owner": "", "zones": [], "scan_scope": [], "chain_head": "0" * 64,
             "created_at": t, "updated_at": t}])
        host = {"system_id": 1, "department_id": 1, "addresses": [], "os_id": "kylin", "os_version": "V10",
                "os_name": "Kylin V10", "arch": "x86_64", "first_seen": t}
        c.execute(insert(Host.__table__), [
            {**host, "id": 1, "hostname": "app-01", "last_seen": NOW - timedelta(minutes=10)},
            {**host, "id": 2, "hostname": "db-01", "last_seen": NOW - timedelta(minutes=30)},
            {**host, "id": 3, "hostname": "old-01", "last_seen": t},  # its only agent is revoked
            {**host, "id": 4, "hostname": "new-01", "last_seen": NOW - timedelta(hours=5)}])  # silent, no run yet
        agent = {"system_id": 1, "department_id": 1, "enrolled_at": t}
        c.execute(insert(Agent.__table__), [
            {**agent, "id": "a1", "host_id": 1, "public_key": "k1", "state": "enrolled",
             "last_seen": NOW - timedelta(minutes=5)},
            {**agent, "id": "a2", "host_id": 2, "public_key": "k2", "state": "enrolled",
             "last_seen": NOW - timedelta(minutes=30)},
            {**agent, "id": "a3", "host_id": 3, "public_key": "k3", "state": "revoked", "last_seen": t},
            {**agent, "id": "a4", "host_id": 4, "public_key": "k4", "state": "enrolled",
             "last_seen": NOW - timedelta(hours=5)}])
        run = {"system_id": 1, "department_id": 1, "baseline_id": "dengbao-l3-linux", "baseline_version": "1",
               "baseline_level": 3, "received_at": NOW, "checks_total": 4, "digest": "d", "prev_chain_hash": "p",
               "chain_hash": "c"}
        c.execute(insert(Run.__table__), [
            {**run, "id": 1, "report_id": "r1", "agent_id": "a1", "host_id": 1, "score": 50.0, "pass_rate": 0.5,
             "conclusion": "差", "failed": 2, "high_risk": 0, "started_at": NOW - timedelta(days=1),
             "finished_at": NOW - timedelta(days=1), "summary": {"risk_counts": {"high": 0, "medium": 2, "low": 0}}},
            {**run, "id": 2, "report_id": "r2", "agent_id": "a1", "host_id": 1, "score": 80.0, "pass_rate": 0.6,
             "conclusion": "良", "failed": 2, "high_risk": 0, "started_at": NOW - timedelta(minutes=6),
             "finished_at": NOW - timedelta(minutes=6) + timedelta(seconds=42),
             "summary": {"risk_counts": {"high": 0, "medium": 1, "low": 1}}},
            {**run, "id": 3, "report_id": "r3", "agent_id": "a2", "host_id": 2, "score": 90.0, "pass_rate": 0.75,
             "conclusion": "差", "failed": 1, "high_risk": 1, "started_at": NOW - timedelta(minutes=31),
             "finished_at": NOW - timedelta(minutes=30),
             "summary": {"risk_counts": {"high": 1, "medium": 0, "low": 0}}}])
        res = {"item": "a", "title": TEXT, "expected": "x", "evidence": [], "duration_ms": 5.0, "waiver": None,
               "high_risk": None}
        c.execute(insert(CheckResultRow.__table__), [
            # the old run of app-01: must not count
            {**res, "run_id": 1, "check_id": "c.old", "clause": "8.1.4.1", "status": "fail", "severity": "critical"},
            # latest run of app-01: 3 pass, 1 fail (high), 1 fail waived, 1 error, 1 n/a
            {**res, "run_id": 2, "check_id": "c.p1", "clause": "8.1.4.1", "status": "pass", "severity": "high"},
            {**res, "run_id": 2, "check_id": "c.p2", "clause": "8.1.4.2", "status": "pass", "severity": "low"},
            {**res, "run_id": 2, "check_id": "c.p3", "clause": "8.1.4.3", "status": "pass", "severity": "low"},
            {**res, "run_id": 2, "check_id": "c.f1", "clause": "8.1.4.1", "status": "fail", "severity": "high"},
            {**res, "run_id": 2, "check_id": "c.w1", "clause": "8.1.4.2", "status": "fail", "severity": "medium",
             "waiver": "accepted by the CISO"},
            {**res, "run_id": 2, "check_id": "c.e1", "clause": "8.1.4.4", "status": "error", "severity": "medium"},
            {**res, "run_id": 2, "check_id": "c.n1", "clause": "8.1.4.5", "status": "not_applicable",
             "severity": "low"},
            # latest run of db-01: 3 pass, 1 fail (critical, high risk)
            {**res, "run_id": 3, "check_id": "c.p1", "clause": "8.1.4.1", "status": "pass", "severity": "high"},
            {**res, "run_id": 3, "check_id": "c.p2", "clause": "8.1.4.2", "status": "pass", "severity": "low"},
            {**res, "run_id": 3, "check_id": "c.p3", "clause": "8.1.4.3", "status": "pass", "severity": "low"},
            {**res, "run_id": 3, "check_id": "c.hr", "clause": "8.1.4.1", "status": "fail", "severity": "critical",
             "high_risk": "6.4.1.1"}])
        finding = {"system_id": 1, "department_id": 1, "clause": "8.1.4.1", "item": "a", "title": TEXT,
                   "remediation": TEXT, "severity": "high", "first_seen": t, "last_seen": NOW, "first_run_id": 1,
                   "last_run_id": 3, "occurrences": 1, "high_risk": None, "resolved_at": None,
                   "resolution": None}
        c.execute(insert(Finding.__table__), [
            {**finding, "host_id": 2, "check_id": "c.hr", "high_risk": "6.4.1.1"},  # open, high risk
            {**finding, "host_id": 1, "check_id": "c.f1"},  # open
            {**finding, "host_id": 1, "check_id": "c.x1", "resolved_at": NOW, "resolution": "fixed"},
            {**finding, "host_id": 1, "check_id": "c.x2", "resolved_at": NOW, "resolution": "fixed"},
            {**finding, "host_id": 2, "check_id": "c.x3", "resolved_at": NOW, "resolution": "fixed",
             "high_risk": "6.4.1.2"},  # a fixed high-risk finding no longer counts as high risk
            {**finding, "host_id": 1, "check_id": "c.x4", "resolved_at": NOW, "resolution": "waived"}])


def test_snapshot_from_the_store(db: Database):
    _seed(db)
    snap = build_snapshot(db, now=NOW)
    by_name = {s.name: s for s in snap.systems}
    a, b = by_name["非税收入管理系统"], by_name["互联网医院"]
    assert (a.department, a.name, a.level, a.label) == ("财政局", "非税收入管理系统", 3, "S3A3")
    hosts = {h.name: h for h in a.hosts}
    assert set(hosts) == {"app-01", "db-01", "new-01"}, "a host whose agents are all revoked is left out"

    app = hosts["app-01"]
    assert (app.score, app.pass_ratio, app.conclusion, app.baseline) == (80.0, 0.6, "good", "dengbao-l3-linux")
    assert app.failing_checks == {"low": 0, "medium": 0, "high": 1, "critical": 0}, "latest run, waiver excluded"
    assert app.run_duration_seconds == 42 and app.up and app.last_report == NOW - timedelta(minutes=5)
    assert hosts["db-01"].high_risk_findings == 1
    new = hosts["new-01"]
    assert not new.up and new.score is None and new.conclusion is None

    assert a.score == 85.0  # mean of 80 and 90
    assert a.pass_ratio == round(6 / 9, 4)  # pass 6 of pass+fail+error 9 (waived and n/a left out)
    assert a.conclusion == "poor", "a high-risk finding on one host caps the system"
    assert a.failing_checks == {"low": 0, "medium": 0, "high": 1, "critical": 1}
    assert a.failing_checks_by_clause == {"8.1.4.1": 2}
    assert (a.high_risk_findings, a.findings_open, a.findings_fixed) == (1, 2, 3)
    assert a.services_open is None and a.scan is None, "no scan data is not 'nothing open'"

    assert (b.name, b.score, b.conclusion, b.hosts) == ("互联网医院", None, None, [])
    assert all(h.checks == [] for h in a.hosts), "per-check rows are read only on request"


def test_snapshot_renders_promtool_clean_with_per_check_series(db: Database):
    _seed(db)
    body, _ = render(make_registry(lambda: build_snapshot(db, now=NOW, per_check=True), per_check=True))
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode()
    text = body.decode()
    assert 'sentinel_system_score{department="财政局",system="非税收入管理系统"} 85.0' in text
    assert ('sentinel_check_result{check="c.hr",clause="8.1.4.1",department="财政局",host="db-01",'
            'severity="critical",status="fail",system="非税收入管理系统"} 1.0') in text
    assert "sentinel_system_open_services" not in text.replace("# HELP sentinel_system_open_services", "") \
        .replace("# TYPE sentinel_system_open_services", "")


def test_empty_store(db: Database):
    snap = build_snapshot(db, now=NOW)
    assert snap.systems == []
    body, _ = render(make_registry(lambda: snap))
    assert b"sentinel_up 1.0" in body
