"""The list routes' optional filters (routers/*.py, all through deps.where_given), through the HTTP API on
SQLite and PostgreSQL: a filter given narrows the list to rows with that value, a filter left out does not
narrow it, and a false/zero-like value given (delivered=false) is a filter, not "left out"."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from sentinel.store.models import Event
from tests.collector_helpers import (
    HIGH_RISK_CHECK,
    TEST_BASELINE_ID,
    TEST_L2_ID,
    World,
    audit_rows,
    bearer,
    envelope,
    make_report,
    sign,
)

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


@pytest.fixture
def site(db, make_client):
    """health (system his, level 3, host web-1) and edu (system school, level 2, host web-2), each host with
    one report (on the level's test baseline) whose high-risk failure opens a finding and an event; an admin token."""
    w = World(db)
    w.health_and_edu(school_level=2, school_s=2, school_a=2)
    admin = bearer(w.token("root", "admin"))
    client = make_client(db)
    agents = {"his": w.enroll(client, "his", "web-1"), "school": w.enroll(client, "school", "web-2")}
    for system, hostname, baseline in (("his", "web-1", TEST_BASELINE_ID), ("school", "web-2", TEST_L2_ID)):
        agent = agents[system]
        body = make_report({HIGH_RISK_CHECK: "fail", "a": "pass"}, hostname=hostname, baseline_id=baseline)
        raw, headers = sign(agent.key, envelope(agent.agent_id, body))
        r = client.post("/api/v1/agent/reports", content=raw, headers=headers)
        assert r.status_code == 202, r.text
    return w, client, admin, agents


def _ids(client, admin, path: str, key: str = "id", **params) -> list:
    r = client.get(f"/api/v1/{path}", headers=admin, params=params)
    assert r.status_code == 200, r.text
    return sorted(row[key] for row in r.json())


def test_directory_lists_filter_by_what_is_given(site):
    w, client, admin, agents = site
    his, school = w.systems["his"], w.systems["school"]
    health, edu = w.departments["health"], w.departments["edu"]
    assert _ids(client, admin, "systems") == sorted([his, school])
    assert _ids(client, admin, "systems", level=2) == [school]
    assert _ids(client, admin, "systems", department_id=health) == [his]
    assert _ids(client, admin, "systems", department_id=health, level=2) == []
    hosts = {row["system_id"]: row["id"] for row in client.get("/api/v1/hosts", headers=admin).json()}
    assert _ids(client, admin, "hosts", system_id=school) == [hosts[school]]
    assert _ids(client, admin, "hosts", department_id=health) == [hosts[his]]
    assert _ids(client, admin, "hosts", system_id=school, department_id=health) == []
    assert _ids(client, admin, "agents") == sorted(a.agent_id for a in agents.values())
    assert _ids(client, admin, "agents", system_id=his) == [agents["his"].agent_id]
    assert _ids(client, admin, "agents", host_id=hosts[school]) == [agents["school"].agent_id]
    assert _ids(client, admin, "agents", state="enrolled", system_id=his) == [agents["his"].agent_id]
    assert _ids(client, admin, "agents", state="revoked") == []
    assert _ids(client, admin, "address-plan", "cidr", department_id=edu) == ["10.1.0.0/24"]
    assert _ids(client, admin, "address-plan", "cidr") == ["10.0.0.0/24", "10.1.0.0/24"]
    assert _ids(client, admin, "enrollment-tokens", "system_id", system_id=school) == [school]
    assert _ids(client, admin, "enrollment-tokens", "system_id") == sorted([his, school])


def test_result_lists_and_audit_filter_by_what_is_given(site, db):
    w, client, admin, agents = site
    his, school = w.systems["his"], w.systems["school"]
    runs = {row["system_id"]: row for row in client.get("/api/v1/runs", headers=admin).json()}
    assert _ids(client, admin, "runs", system_id=his) == [runs[his]["id"]]
    assert _ids(client, admin, "runs", host_id=runs[school]["host_id"]) == [runs[school]["id"]]
    assert _ids(client, admin, "runs", "system_id", baseline_id=TEST_L2_ID) == [school]
    assert _ids(client, admin, "runs", baseline_id="other-baseline") == []
    assert _ids(client, admin, f"runs/{runs[his]['id']}/results", "check_id", status="fail") == [HIGH_RISK_CHECK]
    assert _ids(client, admin, f"runs/{runs[his]['id']}/results", "check_id") == sorted([HIGH_RISK_CHECK, "a"])
    assert _ids(client, admin, "findings", "system_id", check_id=HIGH_RISK_CHECK) == sorted([his, school])
    assert _ids(client, admin, "findings", "system_id", system_id=school) == [school]
    assert _ids(client, admin, "findings", check_id="a") == []
    events = _ids(client, admin, "events", system_id=his, kind="high_risk_finding")
    assert len(events) == 1
    with db.session(write=True) as s:
        s.exec(update(Event).where(Event.id == events[0]).values(delivered=True))
    everything = _ids(client, admin, "events")
    assert events[0] in everything and len(everything) >= 2
    assert _ids(client, admin, "events", delivered=True) == events
    assert _ids(client, admin, "events", delivered=False) == [e for e in everything if e != events[0]]
    client.get("/api/v1/audit", headers=bearer("sntapi_not-a-token"))  # a denied call, audited
    denied = {row.id for row in audit_rows(db) if row.outcome == "denied"}
    assert denied and set(_ids(client, admin, "audit", outcome="denied")) == denied
    created = {row.id for row in audit_rows(db, "system.create")}
    assert len(created) == 2 and set(_ids(client, admin, "audit", action="system.create")) == created
