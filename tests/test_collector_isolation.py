"""Department isolation on every list and detail endpoint, roles, and API token handling."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from sentinel.store.models import ApiToken
from tests.collector_helpers import World, audit_rows, bearer, envelope, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

# GET routes that are not department data (or are admin-only, checked separately); /agent/enroll answers
# only the collector's public key, which an enrolling agent needs before it has any identity
NOT_SCOPED = {"/api/v1/health", "/api/v1/me", "/api/v1/tokens", "/api/v1/audit", "/api/v1/openapi.json",
              "/api/v1/agent/enroll",
              # one object over the caller's own departments (tests/test_domestic.py::test_department_scope)
              "/api/v1/domestic/cloud"}


@pytest.fixture
def two(db, make_client):
    """Departments health and edu, each with a system, an agent, a report with failures and an assessment."""
    w = World(db)
    w.health_and_edu(school_level=2, school_s=2, school_a=1)
    admin = w.token("root", "admin")
    client = make_client(db)
    ids: dict[str, dict] = {}
    for dept, system in (("health", "his"), ("edu", "school")):
        agent = w.enroll(client, system, f"{system}-host")
        raw, headers = sign(agent.key, envelope(agent.agent_id, make_report(
            {"l3-ssh-root": "fail", "b": "pass"}, hostname=f"{system}-host",
            baseline_id="sentinel-test-l2" if system == "school" else "sentinel-test")))  # each its level's
        run = client.post("/api/v1/agent/reports", content=raw, headers=headers).json()
        sample = {"at": datetime.now(timezone.utc).isoformat(), "cpu_percent": 3.0, "memory_percent": 30.0,
                  "net_bytes_sent": 1, "net_bytes_recv": 2, "logins": 0}
        raw, headers = sign(agent.key, envelope(agent.agent_id, {"samples": [sample]}, kind="utilisation"))
        assert client.post("/api/v1/agent/reports", content=raw, headers=headers).status_code == 202
        assessment = client.post(f"/api/v1/systems/{w.systems[system]}/assessments", headers=bearer(admin),
                                 json={"clause": "8.1.10.1", "item": "a", "verdict": "符合", "note": dept}).json()
        attachment = client.post(f"/api/v1/systems/{w.systems[system]}/assessments/{assessment['id']}/attachments",
                                 headers=bearer(admin), files={"file": (f"{dept}.txt", dept.encode())}).json()
        et = client.post("/api/v1/enrollment-tokens", headers=bearer(admin),
                         json={"system_id": w.systems[system]}).json()
        findings = client.get("/api/v1/findings", params={"system_id": w.systems[system]}, headers=bearer(admin)).json()
        events = client.get("/api/v1/events", params={"system_id": w.systems[system]}, headers=bearer(admin)).json()
        host = client.get(f"/api/v1/agents/{agent.agent_id}", headers=bearer(admin)).json()["host_id"]
        website = _website(db, w.departments[dept], w.systems[system])
        notice = _notice(client, admin, w.departments[dept])
        ids[dept] = {**website, **notice, "department_id": w.departments[dept], "system_id": w.systems[system],
                     "host_id": host,
                     "agent_id": agent.agent_id, "run_id": run["run_id"], "finding_id": findings[0]["id"],
                     "event_id": events[0]["id"], "assessment_id": assessment["id"], "attachment_id": attachment["id"],
                     "enrollment_token": et["id"]}
    w.token("health-op", "dept_operator", ["health"])
    w.token("edu-ro", "readonly", ["edu"])
    w.token("auditor", "assessor", all_departments=True)
    return w, client, ids, admin


def _website(db, department_id: int, system_id: int) -> dict:
    """A declared website (issue 17) with a round, a finding and a baseline, stored as the monitor stores them
    (no page is fetched: these tests send nothing)."""
    from sqlalchemy import insert

    from sentinel.store.models import WebsiteBaseline, WebsiteFinding
    from sentinel.websites import monitor
    from sentinel.websites.sites import SiteDeclaration

    decl = SiteDeclaration.model_validate({"urls": [f"http://192.0.2.{department_id}/"]})
    wid = monitor.declare(db, department_id=department_id, system_id=system_id, name=f"portal-{department_id}",
                          decl=decl, actor="test")
    rid = monitor.begin(db, wid, "test", "test")
    monitor.fail_round(db, rid, "not run: this test fetches nothing")
    now = datetime.now(timezone.utc)
    with db.write() as conn:
        conn.execute(insert(WebsiteFinding.__table__).values(
            website_id=wid, system_id=system_id, department_id=department_id, rule="home.stale", subject=decl.home,
            subject_sha256=monitor.sha(decl.home), kind="veto", severity="critical", title={"zh": "t", "en": "t"},
            source="s", remediation={"zh": "r", "en": "r"}, evidence=[], first_seen=now, last_seen=now,
            first_round_id=rid, last_round_id=rid))
        conn.execute(insert(WebsiteBaseline.__table__).values(
            website_id=wid, department_id=department_id, url=decl.home, url_sha256=monitor.sha(decl.home),
            lines=["x"], sha256=monitor.sha("x"), reviewed_by="test", reviewed_at=now, note=""))
    return {"website_id": wid, "round_id": rid}


def _notice(client, admin: str, department_id: int) -> dict:
    """A 通报 to the department (its open finding) with an answer carrying a file (issue 17, the notice loop)."""
    notice = client.post("/api/v1/notices", json={"department_id": department_id}, headers=bearer(admin)).json()
    item = notice["items"][0]["id"]
    answer = client.post(f"/api/v1/notices/{notice['id']}/items/{item}/answers", headers=bearer(admin),
                         data={"text": "done"}, files=[("files", ("fix.txt", b"fixed"))]).json()
    return {"notice_id": notice["id"], "item_id": item, "answer_id": answer["id"],
            "file_id": answer["attachments"][0]["id"]}


def _get_routes(client) -> list[str]:
    return [p for p, ops in client.get("/api/v1/openapi.json").json()["paths"].items() if "get" in ops]


def _fill(path: str, row: dict) -> str:
    names = {"department_id": "department_id", "system_id": "system_id", "host_id": "host_id",
             "agent_id": "agent_id", "run_id": "run_id", "finding_id": "finding_id", "event_id": "event_id",
             "assessment_id": "assessment_id", "attachment_id": "attachment_id", "website_id": "website_id",
             "round_id": "round_id", "notice_id": "notice_id", "item_id": "item_id", "answer_id": "answer_id",
             "file_id": "file_id"}
    return re.sub(r"\{(\w+)\}", lambda m: str(row[names[m.group(1)]]), path)


# which column of a list item names its department (directly or through a system we know)
def _departments_of(path: str, items: list[dict], ids: dict) -> set[int]:
    by_system = {row["system_id"]: row["department_id"] for row in ids.values()}
    by_run = {row["run_id"]: row["department_id"] for row in ids.values()}
    out = set()
    for item in items:
        if "department_id" in item:
            out.add(item["department_id"])
        elif "system_id" in item:
            out.add(by_system[item["system_id"]])
        elif "run_id" in item:
            out.add(by_run[item["run_id"]])
        elif path.endswith("/departments"):
            out.add(item["id"])
        else:
            raise AssertionError(f"{path}: cannot tell the department of {item}")
    return out


def test_department_token_sees_only_its_department(two):
    w, client, ids, admin = two
    mine, theirs = ids["health"], ids["edu"]
    token = bearer(w.tokens["health-op"])
    routes = [p for p in _get_routes(client) if p not in NOT_SCOPED]
    assert len(routes) >= 15, routes
    for path in routes:
        if "{" not in path:
            r = client.get(path, headers=token)
            assert r.status_code == 200, (path, r.text)
            items = r.json()
            assert items, f"{path}: the department's own rows should be listed"
            assert _departments_of(path, items, ids) == {mine["department_id"]}, path
            everything = client.get(path, headers=bearer(admin)).json()
            assert _departments_of(path, everything, ids) == {mine["department_id"], theirs["department_id"]}, path
        else:
            own = client.get(_fill(path, mine), headers=token)
            assert own.status_code == 200, (path, own.text)
            other = client.get(_fill(path, theirs), headers=token)
            assert other.status_code == 404, (path, other.text)
            assert "not found" in other.json()["detail"]
            # a missing id answers exactly like another department's
            assert client.get(_fill(path, {k: 999999 if isinstance(v, int) else "nope" for k, v in theirs.items()}),
                              headers=token).status_code == 404


def test_list_filters_cannot_reach_other_departments(two):
    w, client, ids, _ = two
    token = bearer(w.tokens["edu-ro"])
    theirs = ids["health"]
    for path, params in (("/api/v1/systems", {"department_id": theirs["department_id"]}),
                         ("/api/v1/hosts", {"system_id": theirs["system_id"]}),
                         ("/api/v1/runs", {"host_id": theirs["host_id"]}),
                         ("/api/v1/findings", {"system_id": theirs["system_id"], "state": "all"}),
                         ("/api/v1/events", {"system_id": theirs["system_id"]}),
                         ("/api/v1/agents", {"system_id": theirs["system_id"]}),
                         ("/api/v1/enrollment-tokens", {"system_id": theirs["system_id"]})):
        r = client.get(path, params=params, headers=token)
        assert r.status_code == 200 and r.json() == [], path


def test_writes_into_other_departments_are_refused(two, db):
    w, client, ids, _ = two
    token = bearer(w.tokens["health-op"])
    theirs = ids["edu"]
    for method, path, body in (
        ("patch", f"/api/v1/systems/{theirs['system_id']}", {"owner": "me"}),
        ("post", f"/api/v1/agents/{theirs['agent_id']}/revoke", {"reason": "x"}),
        ("post", "/api/v1/enrollment-tokens", {"system_id": theirs["system_id"]}),
        ("post", f"/api/v1/systems/{theirs['system_id']}/assessments",
         {"clause": "8.1.10.1", "item": "a", "verdict": "不符合"}),
        ("post", "/api/v1/systems", {"name": "sneaky", "department_id": theirs["department_id"], "level": 2,
                                     "s_grade": 2, "a_grade": 1}),
    ):
        r = getattr(client, method)(path, json=body, headers=token)
        assert r.status_code in (403, 404), (path, r.status_code, r.text)
    edu = client.get(f"/api/v1/agents/{theirs['agent_id']}", headers=bearer(w.tokens["edu-ro"])).json()
    assert edu["state"] == "enrolled"


def test_roles(two, db):
    w, client, ids, admin = two
    op, ro, assessor = (bearer(w.tokens[k]) for k in ("health-op", "edu-ro", "auditor"))
    mine = ids["health"]
    # department operator: manages its own systems and enrollment, not departments or tokens
    lab = {"name": "lab", "department_id": mine["department_id"], "level": 4, "s_grade": 4, "a_grade": 3}
    r = client.post("/api/v1/systems", headers=op, json={**lab, "scan_scope": ["192.168.1.0/24"]})
    assert r.status_code == 422 and "outside the address plan of department health" in r.json()["detail"]
    r = client.post("/api/v1/systems", headers=op, json={**lab, "scan_scope": ["10.0.0.128/25"]})
    assert r.status_code == 201 and r.json()["label"] == "S4A3"
    # 定级 is not the department's to change (tests/test_collector_writes.py has the rest)
    r = client.patch(f"/api/v1/systems/{mine['system_id']}", headers=op, json={"level": 2, "s_grade": 2})
    assert r.status_code == 403 and "only an admin" in r.json()["detail"]
    r = client.patch(f"/api/v1/systems/{mine['system_id']}", headers=bearer(admin), json={"level": 2})
    assert r.status_code == 422 and "S3A2" in r.json()["detail"]
    r = client.patch(f"/api/v1/systems/{mine['system_id']}", headers=bearer(admin), json={"level": 2, "s_grade": 2})
    assert r.status_code == 200 and r.json()["label"] == "S2A2"
    r = client.patch(f"/api/v1/systems/{mine['system_id']}", headers=op, json={"owner": "李工"})
    assert r.status_code == 200 and r.json()["owner"] == "李工"
    assert client.post("/api/v1/departments", headers=op, json={"name": "x"}).status_code == 403
    assert client.post("/api/v1/tokens", headers=op, json={"name": "x", "role": "admin"}).status_code == 403
    assert client.get("/api/v1/audit", headers=op).status_code == 403
    assert client.get("/api/v1/tokens", headers=ro).status_code == 403
    # read-only: reads only
    assert client.post("/api/v1/enrollment-tokens", headers=ro,
                       json={"system_id": ids["edu"]["system_id"]}).status_code == 403
    assert client.post(f"/api/v1/systems/{ids['edu']['system_id']}/assessments", headers=ro,
                       json={"clause": "8.1.10.1", "item": "a", "verdict": "符合"}).status_code == 403
    # assessor with all departments: records verdicts anywhere, changes nothing else
    for row in ids.values():
        r = client.post(f"/api/v1/systems/{row['system_id']}/assessments", headers=assessor,
                        json={"clause": "8.1.10.2", "item": "b", "verdict": "部分符合", "note": "interviewed"})
        assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/agents/{mine['agent_id']}/revoke", headers=assessor, json={}).status_code == 403
    me = client.get("/api/v1/me", headers=assessor).json()
    assert me["role"] == "assessor" and me["all_departments"] is True
    denials = [e for e in audit_rows(db) if e.outcome == "denied"]
    assert len(denials) >= 7 and all(e.actor.startswith("token:") for e in denials)


def test_token_authentication(two, db):
    w, client, _, admin = two
    assert client.get("/api/v1/systems").status_code == 401
    assert client.get("/api/v1/systems", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/v1/systems", headers=bearer("sntapi_wrong")).status_code == 401
    r = client.post("/api/v1/tokens", headers=bearer(admin), json={"name": "temp", "role": "readonly",
                                                                    "all_departments": True})
    assert r.status_code == 201
    created = r.json()
    temp = bearer(created["token"])
    assert client.get("/api/v1/systems", headers=temp).status_code == 200
    listed = client.get("/api/v1/tokens", headers=bearer(admin)).json()
    assert all("token" not in t for t in listed) and created["id"] in [t["id"] for t in listed]
    assert client.post(f"/api/v1/tokens/{created['id']}/revoke", headers=bearer(admin)).status_code == 200
    r = client.get("/api/v1/systems", headers=temp)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    with db.write() as conn:
        conn.execute(update(ApiToken.__table__).where(ApiToken.name == "edu-ro").values(
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    r = client.get("/api/v1/systems", headers=bearer(w.tokens["edu-ro"]))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # tokens for nonsense scopes are refused
    for body in ({"name": "x", "role": "dept_operator"},
                 {"name": "x", "role": "readonly"},
                 {"name": "x", "role": "admin", "department_ids": [1]},
                 {"name": "x", "role": "readonly", "department_ids": [424242]},
                 {"name": "x", "role": "superuser", "all_departments": True}):
        assert client.post("/api/v1/tokens", headers=bearer(admin), json=body).status_code == 422, body
    audit = client.get("/api/v1/audit", headers=bearer(admin), params={"outcome": "denied"}).json()
    assert any("revoked" in a["detail"] for a in audit) and any("expired" in a["detail"] for a in audit)
