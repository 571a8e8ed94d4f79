"""Manual assessments (人工核查): verdicts on requirement items recorded by assessors, with history."""
from __future__ import annotations

import pytest

from tests.collector_helpers import World, audit_rows, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


@pytest.fixture
def env(db, make_client):
    w = World(db)
    w.department("health")
    w.system("his", "health")
    w.token("assessor", "assessor", ["health"])
    return w, make_client(db), bearer(w.tokens["assessor"])


def test_record_and_list_assessments(env, db):
    w, client, token = env
    url = f"/api/v1/systems/{w.systems['his']}/assessments"
    posted = []
    for clause, item, verdict, note in (("8.1.10.1", "a", "待核查", "document missing"),
                                        ("8.1.10.1", "b", "符合", "policy v2 reviewed"),
                                        ("8.1.10.1", "a", "部分符合", "policy found, not approved"),
                                        ("8.1.6.2", "c", "不适用", "no wireless")):
        r = client.post(url, headers=token, json={"clause": clause, "item": item, "verdict": verdict, "note": note})
        assert r.status_code == 201, r.text
        posted.append(r.json())
    first = posted[0]
    assert first["assessor"].startswith("token:") and first["verdict"] == "待核查" and first["at"]
    history = client.get(url, headers=token).json()
    assert [h["id"] for h in history] == [p["id"] for p in posted]
    latest = client.get(url, params={"latest": True}, headers=token).json()
    assert [(x["clause"], x["item"], x["verdict"]) for x in latest] == [
        ("8.1.10.1", "a", "部分符合"), ("8.1.10.1", "b", "符合"), ("8.1.6.2", "c", "不适用")]
    only = client.get(url, params={"clause": "8.1.6.2"}, headers=token).json()
    assert [x["item"] for x in only] == ["c"]
    detail = client.get(f"/api/v1/assessments/{first['id']}", headers=token).json()
    assert detail == first
    assert len([e for e in audit_rows(db, "assessment.create") if e.outcome == "ok"]) == 4


@pytest.mark.parametrize("body, field", [
    ({"clause": "8.1.10.1", "item": "a", "verdict": "pass"}, "verdict"),
    ({"clause": "eight", "item": "a", "verdict": "符合"}, "clause"),
    ({"clause": "8.1.10.1", "item": "aa", "verdict": "符合"}, "item"),
    ({"clause": "8.1.10.1", "item": "a", "verdict": "符合", "note": "x" * 5000}, "note"),
    ({"clause": "8.1.10.1", "item": "a", "verdict": "符合", "extra": 1}, "extra"),
])
def test_invalid_assessments(env, body, field):
    w, client, token = env
    r = client.post(f"/api/v1/systems/{w.systems['his']}/assessments", headers=token, json=body)
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_unknown_system(env):
    _, client, token = env
    r = client.post("/api/v1/systems/4242/assessments", headers=token,
                    json={"clause": "8.1.10.1", "item": "a", "verdict": "符合"})
    assert r.status_code == 404
