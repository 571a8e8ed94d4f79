"""What an assessor's token can and cannot do (docs/security.md, issue 20's threat model), through the HTTP API on
SQLite and PostgreSQL.

An assessor records manual verdicts (and their attachments and report chapters) in the departments its token
names. It changes nothing else: no system, grading, scope, agent, enrollment, scan, token or address plan,
and it cannot rewrite or remove a verdict already recorded (a new verdict is added to the history, under
its own name). Another department's systems answer 404, exactly as missing ones.
"""
from __future__ import annotations

import pytest

from tests.collector_helpers import World, audit_rows, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

VERDICT = {"clause": "8.1.10.1", "item": "a", "verdict": "部分符合", "note": "policy found, not approved"}


@pytest.fixture
def env(db, make_client):
    w = World(db)
    w.health_and_edu()
    admin = w.token("root", "admin")
    w.token("assessor", "assessor", ["health"])
    client = make_client(db)
    agent = w.enroll(client, "his", "his-host")
    return w, client, agent, bearer(admin), bearer(w.tokens["assessor"])


def test_an_assessor_records_verdicts_in_its_departments_only(env, db):
    w, client, _, admin, token = env
    mine, theirs = w.systems["his"], w.systems["school"]
    r = client.post(f"/api/v1/systems/{mine}/assessments", headers=token, json=VERDICT)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["assessor"].startswith("token:") and "assessor" in first["assessor"]
    attached = client.post(f"/api/v1/systems/{mine}/assessments/{first['id']}/attachments", headers=token,
                           files={"file": ("interview.txt", "访谈记录".encode())})
    assert attached.status_code == 201, attached.text
    assert client.put(f"/api/v1/systems/{mine}/report-sections/topology", headers=token,
                      json={"text": "网络拓扑"}).status_code == 200

    # another department's system answers as a missing one would
    for method, path, kw in (("post", f"/api/v1/systems/{theirs}/assessments", {"json": VERDICT}),
                             ("put", f"/api/v1/systems/{theirs}/report-sections/topology", {"json": {"text": "x"}}),
                             ("get", f"/api/v1/systems/{theirs}/assessments", {})):
        r = getattr(client, method)(path, headers=token, **kw)
        assert r.status_code == 404 and "not found" in r.json()["detail"], (path, r.text)
        missing = getattr(client, method)(path.replace(str(theirs), "999999"), headers=token, **kw)
        assert missing.status_code == 404 and missing.json()["detail"] == r.json()["detail"].replace(
            str(theirs), "999999"), (path, missing.text)
    assert client.get(f"/api/v1/systems/{theirs}/assessments", headers=admin).json() == []


def test_an_assessor_changes_nothing_but_verdicts(env, db):
    w, client, agent, admin, token = env
    mine = w.systems["his"]
    before = client.get(f"/api/v1/systems/{mine}", headers=admin).json()
    for method, path, body in (
        ("patch", f"/api/v1/systems/{mine}", {"owner": "assessor"}),
        ("patch", f"/api/v1/systems/{mine}", {"level": 2, "s_grade": 2, "a_grade": 2}),
        ("patch", f"/api/v1/systems/{mine}", {"scan_scope": ["10.0.0.0/8"]}),
        ("post", f"/api/v1/agents/{agent.agent_id}/revoke", {"reason": "x"}),
        ("post", "/api/v1/enrollment-tokens", {"system_id": mine}),
        ("post", f"/api/v1/systems/{mine}/scans", {"targets": ["10.0.0.5"]}),
        ("put", f"/api/v1/systems/{mine}/scan-schedule", {"enabled": False}),
        ("post", "/api/v1/systems", {"name": "mine2", "department_id": w.departments["health"], "level": 3,
                                     "s_grade": 3, "a_grade": 2}),
        ("post", "/api/v1/departments", {"name": "x"}),
        ("post", "/api/v1/tokens", {"name": "x", "role": "admin"}),
        ("post", "/api/v1/address-plan", {"department_id": w.departments["health"], "cidr": "10.20.0.0/16"}),
    ):
        r = getattr(client, method)(path, json=body, headers=token)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    assert client.get("/api/v1/audit", headers=token).status_code == 403
    assert client.get(f"/api/v1/systems/{mine}", headers=admin).json() == before
    assert client.get(f"/api/v1/agents/{agent.agent_id}", headers=admin).json()["state"] == "enrolled"
    denied = [e for e in audit_rows(db) if e.outcome == "denied" and "assessor" in e.actor]
    assert denied and all(e.status_code == 403 for e in denied)  # audited (repeats may share a row)


def test_a_recorded_verdict_cannot_be_rewritten_or_removed(env, db):
    w, client, _, admin, token = env
    url = f"/api/v1/systems/{w.systems['his']}/assessments"
    first = client.post(url, headers=token, json=VERDICT).json()
    for method in ("put", "patch", "delete"):
        r = client.request(method.upper(), f"/api/v1/assessments/{first['id']}", headers=token,
                           json={**VERDICT, "verdict": "符合"})
        assert r.status_code == 405, (method, r.status_code, r.text)
        r = client.request(method.upper(), f"{url}/{first['id']}", headers=token, json={**VERDICT, "verdict": "符合"})
        assert r.status_code in (404, 405), (method, r.status_code, r.text)
    # a changed mind is a new verdict; the first stays in the history, with who recorded each and when
    second = client.post(url, headers=token, json={**VERDICT, "verdict": "符合", "note": "approved since"}).json()
    history = client.get(url, headers=admin).json()
    assert [(h["id"], h["verdict"]) for h in history] == [(first["id"], "部分符合"), (second["id"], "符合")]
    assert all(h["assessor"] == first["assessor"] for h in history)
    assert [a.detail for a in audit_rows(db, "assessment.create")] == ["8.1.10.1a 部分符合", "8.1.10.1a 符合"]
