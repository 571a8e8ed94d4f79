"""sentinel/store/snapshot.py: the metrics snapshot read from a real migrated store (SQLite and PostgreSQL),
rendered and accepted by promtool. Rows are written directly so each figure's source is visible in the test."""
from __future__ import annotations

import json
import subprocess
import zlib
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert

from sentinel.exporters.prometheus import make_registry, render
from sentinel.store.assessment import canonical_digest, clear_cache, system_assessment
from sentinel.store.db import Database
from sentinel.store.models import (
    Agent,
    CheckResultRow,
    Department,
    Finding,
    Host,
    Report,
    Run,
    ScanRun,
    ServiceFindingRow,
    System,
)
from sentinel.store.snapshot import build_snapshot
from tests.obs_support import need

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
TEXT = {"zh": "检查", "en": "check"}
# item weights of the seeded reports: 8.1.4.1a key, 8.1.4.2a important, the rest general
WEIGHTS = {"8.1.4.1": 1.0, "8.1.4.2": 0.7, "8.1.4.3": 0.4, "8.1.4.4": 1.0, "8.1.4.5": 0.4, "8.1.4.8": 0.7}


def _item(clause: str, verdict: str) -> dict:
    return {"clause": clause, "item": "a", "control": TEXT, "text": TEXT, "weight": WEIGHTS[clause],
            "verdict": verdict, "checks": []}


# Items of the latest report of each host, as the host engine judged them from the results seeded below
# (sentinel.scoring.item_verdict); the bodies are kept as the agents' envelopes, like the collector does.
ITEMS = {
    2: [_item("8.1.4.1", "部分符合"), _item("8.1.4.2", "符合"), _item("8.1.4.3", "符合"), _item("8.1.4.4", "待核查"),
        _item("8.1.4.5", "不适用")],
    3: [_item("8.1.4.1", "部分符合"), _item("8.1.4.2", "符合"), _item("8.1.4.3", "符合")],
}


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
        results = [
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
             "high_risk": "6.4.1.1"}]
        c.execute(insert(CheckResultRow.__table__), results)
        for run_id in (2, 3):  # the kept bodies of the latest runs; the old run 1 is not needed
            body = {"items": ITEMS[run_id], "results": [{k: v for k, v in r.items() if k != "run_id"}
                                                        for r in results if r["run_id"] == run_id]}
            digest = canonical_digest(body)
            c.execute(Run.__table__.update().where(Run.__table__.c.id == run_id).values(digest=digest))
            envelope = json.dumps({"report_id": f"r{run_id}", "kind": "host_report", "body": body}).encode()
            c.execute(insert(Report.__table__).values(
                report_id=f"r{run_id}", kind="host_report", agent_id="a1" if run_id == 2 else "a2",
                host_id=1 if run_id == 2 else 2, department_id=1, digest=digest, sent_at=NOW, received_at=NOW,
                outcome={}, signature="s", envelope=zlib.compress(envelope)))
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
    # the host's record scored from its kept body (8.1.4.1a 部分符合, 8.1.4.2a and 8.1.4.3a 符合, as for the
    # system below), as the evidence scores it; the run row's 80.0 is this fixture's, not what its results give
    assert (app.score, app.pass_ratio, app.conclusion, app.baseline) == (76.19, 0.6, "fair", "dengbao-l3-linux")
    assert app.failing_checks == {"low": 0, "medium": 0, "high": 1, "critical": 0}, "latest run, waiver excluded"
    assert app.run_duration_seconds == 42 and app.up and app.last_report == NOW - timedelta(minutes=5)
    assert hosts["db-01"].high_risk_findings == 1
    new = hosts["new-01"]
    assert not new.up and new.score is None and new.conclusion is None

    # the system roll-up, not the mean of the host scores (85): per item over both hosts, 8.1.4.1a is
    # 部分符合 (0.5 x 1.0), 8.1.4.2a and 8.1.4.3a 符合 (0.7 + 0.4), 8.1.4.4a 待核查 and 8.1.4.5a 不适用 unscored
    assert a.score == round(100 * (0.5 * 1.0 + 0.7 + 0.4) / (1.0 + 0.7 + 0.4), 2) == 76.19
    assert a.pass_ratio == round(6 / 9, 4)  # pass 6 of pass+fail+error 9 (waived and n/a left out)
    assert a.conclusion == "poor", "a high-risk finding on one host caps the system"
    assessment = system_assessment(db, 1, now=NOW)
    assert (assessment.summary.score, assessment.summary.conclusion, assessment.complete) == (76.19, "差", True)
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
    assert 'sentinel_system_score{department="财政局",system="非税收入管理系统"} 76.19' in text
    assert ('sentinel_check_result{advisory="false",check="c.hr",clause="8.1.4.1",department="财政局",host="db-01",'
            'severity="critical",status="fail",system="非税收入管理系统"} 1.0') in text
    assert "sentinel_system_open_services" not in text.replace("# HELP sentinel_system_open_services", "") \
        .replace("# TYPE sentinel_system_open_services", "")


def test_empty_store(db: Database):
    snap = build_snapshot(db, now=NOW)
    assert snap.systems == []
    body, _ = render(make_registry(lambda: snap))
    assert b"sentinel_up 1.0" in body


NET_ITEM = {"clause": "8.1.4.8", "item": "a", "control": TEXT, "text": TEXT, "weight": 0.7, "verdict": "不符合",
            "checks": ["net-plaintext-transport"]}
NET_RESULT = {"check_id": "net-plaintext-transport", "clause": "8.1.4.8", "item": "a", "title": TEXT,
              "status": "fail", "severity": "high", "high_risk": None, "observed": {"service": "telnet"},
              "expected": "TLS", "reason": "10.0.0.5:23/tcp: telnet without TLS", "evidence": [],
              "remediation": TEXT, "waiver": None, "duration_ms": 0.0}


def _seed_scans(db: Database) -> None:
    run = {"system_id": 1, "department_id": 1, "requested_by": "scheduler", "runner": "c:1", "targets": ["10.0.0.0/24"],
           "scope": {}, "args": {}, "warnings": [], "items": [], "results": [], "error": None, "services_open": 0}
    with db.write() as c:
        c.execute(insert(ScanRun.__table__), [
            {**run, "id": 1, "triggered_by": "schedule", "status": "failed", "full_scope": True,
             "started_at": NOW - timedelta(days=2), "finished_at": NOW - timedelta(days=2), "duration_ms": 5000.0,
             "error": "NmapError: nmap exited with 1"},
            {**run, "id": 2, "triggered_by": "schedule", "status": "succeeded", "full_scope": True,
             "started_at": NOW - timedelta(hours=1), "finished_at": NOW - timedelta(hours=1) + timedelta(seconds=30),
             "duration_ms": 30000.0, "items": [NET_ITEM], "results": [NET_RESULT], "services_open": 2},
            # a later scan of part of the scope failed: the latest run failed, the network part stays scan 2
            {**run, "id": 3, "triggered_by": "api", "status": "failed", "full_scope": False,
             "targets": ["10.0.0.6"], "started_at": NOW - timedelta(minutes=10),
             "finished_at": NOW - timedelta(minutes=10) + timedelta(seconds=2), "duration_ms": 2000.0,
             "error": "ScopeError"}])
        sf = {"system_id": 1, "department_id": 1, "proto": "tcp", "state": "open", "plaintext_management": False,
              "forbidden": False, "high_risk": [], "check_results": [], "errors": [], "evidence": [],
              "first_seen": NOW - timedelta(days=3), "last_seen": NOW - timedelta(hours=1), "first_scan_id": 2,
              "last_scan_id": 2, "tls": None, "closed_at": None, "closed_scan_id": None}
        c.execute(insert(ServiceFindingRow.__table__), [
            {**sf, "host": "10.0.0.5", "port": 23, "service": "telnet", "forbidden": True, "plaintext_management": True,
             "high_risk": ["6.4.1.2", "6.4.3.1"]},
            {**sf, "host": "10.0.0.6", "port": 443, "service": "https",
             "tls": {"protocols": ["TLSv1.3"], "not_after": (NOW + timedelta(days=30)).isoformat()}},
            {**sf, "host": "10.0.0.5", "port": 21, "service": "ftp", "forbidden": True, "high_risk": ["6.4.3.1"],
             "closed_at": NOW - timedelta(hours=1), "closed_scan_id": 2}])  # closed: no longer counts


def test_snapshot_network_scans(db: Database):
    _seed(db)
    _seed_scans(db)
    snap = build_snapshot(db, now=NOW)
    a, b = (next(s for s in snap.systems if s.name == n) for n in ("非税收入管理系统", "互联网医院"))
    # the latest full-scope scan's network item joins the roll-up: 8.1.4.8a 不符合 (weight 0.7)
    assert a.score == round(100 * (0.5 * 1.0 + 0.7 + 0.4) / (1.0 + 0.7 + 0.4 + 0.7), 2) == 57.14
    assert a.pass_ratio == round(6 / 10, 4) and a.conclusion == "poor"
    assert (a.services_open, a.services_forbidden) == (2, 1)
    assert [(f.host, f.port, f.protocol, f.service) for f in a.forbidden_services] == [
        ("10.0.0.5", 23, "tcp", "telnet")]
    assert [(c.host, c.port, c.not_after) for c in a.certificates] == [("10.0.0.6", 443, NOW + timedelta(days=30))]
    # high-risk findings are the records' failing checks that name a case, as the system assessment counts them:
    # db-01's c.hr; the scan's failing check names none (the service rows' cases are this fixture's own)
    assert a.high_risk_findings == system_assessment(db, 1, now=NOW).summary.high_risk == 1
    assert a.scan is not None
    assert (a.scan.last_duration_seconds, a.scan.last_run, a.scan.last_run_success) == (
        2.0, NOW - timedelta(minutes=10) + timedelta(seconds=2), False)
    assert (a.scan.last_success, a.scan.failures_total) == (NOW - timedelta(hours=1) + timedelta(seconds=30), 2)
    assert (b.services_open, b.scan) == (None, None), "no scan: not known"

    assessment = system_assessment(db, 1, now=NOW)
    assert assessment.network is not None and assessment.network.scan_run_id == 2
    assert [(i.clause, i.verdict.value) for i in assessment.items] == [
        ("8.1.4.1", "部分符合"), ("8.1.4.2", "符合"), ("8.1.4.3", "符合"), ("8.1.4.4", "待核查"), ("8.1.4.5", "不适用"),
        ("8.1.4.8", "不符合")]

    body, _ = render(make_registry(lambda: snap))
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode()
    text = body.decode()
    sl = 'department="财政局",system="非税收入管理系统"'
    assert f"sentinel_system_open_services{{{sl}}} 2.0" in text
    assert f"sentinel_system_forbidden_services{{{sl}}} 1.0" in text
    assert f"sentinel_scan_failures_total{{{sl}}} 2.0" in text
    assert f"sentinel_scan_last_run_success{{{sl}}} 0.0" in text


def test_system_figures_unknown_without_a_readable_report_body(db: Database):
    _seed(db)
    with db.write() as c:
        c.execute(delete(Report.__table__).where(Report.__table__.c.report_id == "r3"))
        c.execute(Report.__table__.update().where(Report.__table__.c.report_id == "r2").values(
            envelope=zlib.compress(json.dumps({"body": {"items": [], "results": []}}).encode())))
    clear_cache()  # bodies verified earlier in this process are trusted from memory by their digest
    a = next(s for s in build_snapshot(db, now=NOW).systems if s.name == "非税收入管理系统")
    assert (a.score, a.pass_ratio, a.conclusion) == (None, None, None), "not a score that leaves hosts out"
    assert {h.name: h.score for h in a.hosts} == {"app-01": 80.0, "db-01": 90.0, "new-01": None}
    assessment = system_assessment(db, 1, now=NOW)
    assert not assessment.complete
    assert [e.split(":", 1)[0] for e in assessment.errors] == ["host app-01 run 2 (dengbao-l3-linux)",
                                                              "host db-01 run 3 (dengbao-l3-linux)"]
    assert "does not hash to the run's digest" in assessment.errors[0]
    assert "was not kept" in assessment.errors[1]
    assert [h.included for h in assessment.hosts] == [False, False]


def test_a_scrape_keeps_every_body_it_read_for_the_next(db: Database, monkeypatch):
    """The parsed-body cache grows to hold every latest run one assessment reads: smaller, read in order, it
    evicted each body before the next scrape needed it, so every scrape parsed the whole store again."""
    from sentinel.store import assessment

    _seed(db)
    clear_cache()
    monkeypatch.setattr(assessment._cache, "size", 1)  # fewer than the store's latest runs
    parsed = []
    real = assessment._parse
    monkeypatch.setattr(assessment, "_parse", lambda envelope, digest: parsed.append(digest) or real(envelope, digest))
    first = build_snapshot(db, now=NOW)
    assert len(parsed) >= 2, "the seeded store has several readable latest runs"
    read, parsed[:] = len(parsed), []
    second = build_snapshot(db, now=NOW)
    assert parsed == [], f"the second scrape parsed {len(parsed)} of {read} bodies again"
    assert [s.score for s in second.systems] == [s.score for s in first.systems]
