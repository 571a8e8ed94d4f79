"""Drift, findings (the rectification trail) and events across successive reports."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from sentinel.collector import drift
from sentinel.model import CheckResult, Severity, Status, Text
from sentinel.store.models import Event, Finding
from tests.collector_helpers import bearer, envelope, his_site, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


def _result(check_id: str, status: str, waiver=None) -> CheckResult:
    return CheckResult(check_id=check_id, clause="8.1.4.1", item="a", title=Text(zh="x", en="x"),
                       status=Status(status), severity=Severity.LOW, expected="", remediation=Text(zh="x", en="x"),
                       waiver=waiver)


def test_plan_rules():
    results = [_result("new", "fail"), _result("still", "fail"), _result("fixed", "pass"),
               _result("unknown", "error"), _result("na", "not_applicable"), _result("waived", "fail", "ok"),
               _result("clean", "pass"), _result("dup", "pass"), _result("dup", "fail")]
    open_findings = {"still": 1, "fixed": 2, "unknown": 3, "na": 4, "waived": 5, "absent": 6}
    plan = drift.plan(results, open_findings)
    assert [results[i].check_id for i in plan.opened] == ["new", "dup"]  # a repeated id counts by its last result
    assert plan.seen_again == [1]
    assert plan.fixed == {2: "fixed"} and plan.waived == {5: "waived"}
    assert plan.new_failures(results) == ["dup", "new"] and plan.fixed_checks() == ["fixed"]


def test_score_dropped():
    assert drift.score_dropped(90, 80, 5) and drift.score_dropped(90, 85, 5)
    assert not drift.score_dropped(90, 86, 5) and not drift.score_dropped(None, 10, 5)
    assert not drift.score_dropped(90, None, 5)


@pytest.fixture
def agent_env(db, make_client):
    site = his_site(db, make_client)
    return site.client, site.agent, site.admin


def _send(client, agent, statuses, **kw):
    r = client.post("/api/v1/agent/reports", content=(s := sign(agent.key, envelope(
        agent.agent_id, make_report(statuses, **kw))))[0], headers=s[1])
    assert r.status_code == 202, r.text
    return r.json()


def _findings(db, check_id):
    with db.read() as conn:
        return conn.execute(select(Finding.__table__).where(Finding.check_id == check_id)
                            .order_by(Finding.id)).all()


def _events(db):
    with db.read() as conn:
        return conn.execute(select(Event.__table__).order_by(Event.id)).all()


def test_findings_lifecycle(agent_env, db):
    client, agent, admin = agent_env
    r1 = _send(client, agent, {"ssh.root": "fail", "pam.faillock": "pass", "audit.rules": "fail"})
    assert r1["new_failures"] == ["audit.rules", "ssh.root"] and r1["fixed"] == []
    [f] = _findings(db, "ssh.root")
    assert f.resolved_at is None and f.occurrences == 1 and f.first_run_id == r1["run_id"]
    first_seen = f.first_seen

    r2 = _send(client, agent, {"ssh.root": "fail", "pam.faillock": "pass", "audit.rules": "error"})
    assert r2["new_failures"] == [] and r2["fixed"] == []
    [f] = _findings(db, "ssh.root")
    assert f.resolved_at is None and f.occurrences == 2 and f.last_run_id == r2["run_id"]
    assert f.first_seen == first_seen and f.last_seen >= first_seen
    [a] = _findings(db, "audit.rules")  # an error does not resolve a finding
    assert a.resolved_at is None and a.occurrences == 1

    r3 = _send(client, agent, {"ssh.root": "pass", "pam.faillock": "pass", "audit.rules": "pass"})
    assert r3["fixed"] == ["audit.rules", "ssh.root"] and r3["new_failures"] == []
    [f] = _findings(db, "ssh.root")
    assert f.resolved_at is not None and f.resolution == "fixed" and f.resolved_run_id == r3["run_id"]

    # failing again opens a new finding: the old one stays as history of the first episode
    r4 = _send(client, agent, {"ssh.root": "fail"})
    assert r4["new_failures"] == ["ssh.root"]
    old, new = _findings(db, "ssh.root")
    assert old.resolved_at is not None and new.resolved_at is None and new.first_run_id == r4["run_id"]

    history = client.get("/api/v1/findings", params={"check_id": "ssh.root", "state": "all"},
                         headers=bearer(admin)).json()
    assert [h["id"] for h in history] == [old.id, new.id]
    open_now = client.get("/api/v1/findings", headers=bearer(admin)).json()
    assert sorted(f["check_id"] for f in open_now) == ["ssh.root"]
    resolved = client.get("/api/v1/findings", params={"state": "resolved"}, headers=bearer(admin)).json()
    assert sorted(f["check_id"] for f in resolved) == ["audit.rules", "ssh.root"]


def test_waiver_resolves_as_waived(agent_env, db):
    client, agent, _ = agent_env
    _send(client, agent, {"telnet": "fail"})
    # the waiver is the site baseline's (the collector's copy decides it, not the agent)
    r = _send(client, agent, {"telnet": "fail"}, baseline_id="sentinel-test-site")
    assert r["fixed"] == [] and r["new_failures"] == []
    [f] = _findings(db, "telnet")
    assert f.resolution == "waived" and f.resolved_at is not None
    assert _send(client, agent, {"telnet": "fail"}, baseline_id="sentinel-test-site")["new_failures"] == []
    assert len(_findings(db, "telnet")) == 1


def test_events(agent_env, db):
    client, agent, admin = agent_env
    # l3-ssh-root is the test baseline's high-risk check (case L3-CES1-11); scores are the collector's own
    hr_id, case = "l3-ssh-root", "L3-CES1-11"
    _send(client, agent, {hr_id: "pass", "b": "pass"})
    assert _events(db) == []  # nothing failing, nothing fixed, no previous score
    r = _send(client, agent, {hr_id: "fail", "b": "fail"})
    kinds = {e.kind: e for e in _events(db)}
    assert set(kinds) == {"high_risk_finding", "score_drop", "drift"}
    hr = kinds["high_risk_finding"]
    assert hr.severity == "critical" and hr.check_id == hr_id and hr.run_id == r["run_id"] and not hr.delivered
    assert hr.payload["case"] == case and hr.payload["system"] == "his" and hr.payload["host"] == "web-1"
    assert hr.payload["system_label"] == "S3A2" and hr.payload["department"] == "health"
    drop = kinds["score_drop"]
    assert drop.payload["previous_score"] == 100.0 and drop.payload["score"] == 0.0
    assert drop.severity == "critical"  # the conclusion fell to 差
    assert kinds["drift"].payload["new_failures"] == ["b", hr_id] and kinds["drift"].severity == "warning"
    again = _send(client, agent, {hr_id: "fail", "b": "pass"})
    latest = [e for e in _events(db) if e.run_id == again["run_id"]]
    # still failing is not news; the score rose (0 -> 50); b fixed is drift
    assert [e.kind for e in latest] == ["drift"] and latest[0].severity == "info"
    assert latest[0].payload["fixed"] == ["b"]
    # the same condition keeps its fingerprint (for de-duplication by the publishers)
    assert drift.fingerprint("high_risk_finding", hr.host_id, hr_id) == hr.fingerprint
    fixed = _send(client, agent, {hr_id: "pass", "b": "pass"})
    resolved = [e for e in _events(db) if e.run_id == fixed["run_id"] and e.kind == "high_risk_finding"]
    assert len(resolved) == 1 and resolved[0].payload["resolved"] is True
    assert resolved[0].fingerprint == hr.fingerprint and resolved[0].severity == hr.severity
    from sentinel.events.model import AlertEvent

    assert AlertEvent.from_row(resolved[0]).resolved and not AlertEvent.from_row(hr).resolved
    listed = client.get("/api/v1/events", params={"kind": "high_risk_finding"}, headers=bearer(admin)).json()
    assert [e["id"] for e in listed] == [resolved[0].id, hr.id]  # newest first
    assert client.get(f"/api/v1/events/{hr.id}", headers=bearer(admin)).json()["summary"].startswith("his/web-1")


def test_plan_advisory_opens_nothing_and_closes_an_old_finding():
    adv = Text(zh="参考", en="advisory")
    results = [_result("adv.new", "fail"), _result("adv.old", "fail"), _result("adv.na", "not_applicable")]
    for r in results:
        r.advisory = adv
    plan = drift.plan(results, {"adv.old": 7, "adv.na": 8})
    assert plan.opened == [] and plan.seen_again == [] and plan.new_failures(results) == []
    assert plan.advisory == {7: "adv.old"} and plan.fixed == {} and plan.waived == {}  # n/a shows nothing


def test_an_advisory_failure_is_no_finding_through_the_api(agent_env, db):
    """Issue 14: the test baseline marks adv.a advisory; its failure opens no finding, raises no drift or
    high-risk event, is not in the run's `failed` count, and is shown with the results as advisory."""
    client, agent, admin = agent_env
    r = _send(client, agent, {"adv.a": "fail", "ssh.root": "fail", "b": "pass"})
    assert r["new_failures"] == ["ssh.root"]
    assert _findings(db, "adv.a") == []
    open_now = client.get("/api/v1/findings", headers=bearer(admin)).json()
    assert [f["check_id"] for f in open_now] == ["ssh.root"]
    [drift_event] = [e for e in _events(db) if e.kind == "drift"]
    assert drift_event.payload["new_failures"] == ["ssh.root"]
    run = client.get(f"/api/v1/runs/{r['run_id']}", headers=bearer(admin)).json()
    assert run["failed"] == 1
    assert run["summary"]["counts"]["fail"] == 2 and run["summary"]["advisory"]["fail"] == 1
    results = {x["check_id"]: x for x in client.get(f"/api/v1/runs/{r['run_id']}/results",
                                                    headers=bearer(admin)).json()}
    assert results["adv.a"]["advisory"] == {"zh": "测试参考项", "en": "advisory test check"}
    assert results["ssh.root"]["advisory"] is None
    # still failing: still nothing
    again = _send(client, agent, {"adv.a": "fail", "ssh.root": "fail"})
    assert again["new_failures"] == [] and _findings(db, "adv.a") == []


def test_a_finding_from_before_the_check_became_advisory_is_resolved_as_advisory(agent_env, db):
    """A store upgraded to 0007 keeps the findings opened while a check counted (l3-ac-inactive-lock, cron...);
    the first report that carries the check as advisory closes them as `advisory`, not as fixed."""
    client, agent, admin = agent_env
    first = _send(client, agent, {"ssh.root": "fail"})
    [template] = _findings(db, "ssh.root")
    row = {k: v for k, v in template._mapping.items() if k != "id"}
    with db.write() as conn:  # as a collector before issue 14 stored it: adv.a counted and failed
        conn.execute(Finding.__table__.insert().values({**row, "check_id": "adv.a", "first_run_id": first["run_id"],
                                                        "last_run_id": first["run_id"]}))
    r = _send(client, agent, {"adv.a": "fail", "ssh.root": "fail"})
    assert r["fixed"] == [] and r["new_failures"] == []
    [f] = _findings(db, "adv.a")
    assert f.resolution == "advisory" and f.resolved_at is not None and f.resolved_run_id == r["run_id"]
    resolved = client.get("/api/v1/findings", params={"state": "resolved"}, headers=bearer(admin)).json()
    assert [(x["check_id"], x["resolution"]) for x in resolved] == [("adv.a", "advisory")]
