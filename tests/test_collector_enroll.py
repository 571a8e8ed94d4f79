"""Agent enrollment: one-time expiring tokens bound to a system, key registration, re-enrollment."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from sentinel import signing
from sentinel.store.models import Agent, EnrollmentToken, Host
from tests.collector_helpers import World, audit_rows, bearer, enroll_body

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

ENROLL = "/api/v1/agent/enroll"


@pytest.fixture
def world(db, make_client):
    w = World(db)
    w.department("health")
    w.system("his", "health")
    w.client = make_client(db)
    return w


def _request(world, token: str, key=None, hostname: str = "db-1") -> dict:
    return enroll_body(world.client, token, key or signing.generate_key(), hostname)


def test_enrollment_round_trip(world, db):
    token = world.enrollment_token("his")
    r = world.client.post(ENROLL, json=_request(world, token))
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["system"] == "his" and answer["department"] == "health"
    signing.load_public_key_b64(answer["collector_public_key"])  # a usable Ed25519 key
    with db.read() as conn:
        agent = conn.execute(select(Agent.__table__)).one()
        host = conn.execute(select(Host.__table__)).one()
        tok = conn.execute(select(EnrollmentToken.__table__)).one()
    assert agent.id == answer["agent_id"] and agent.state == "enrolled" and agent.host_id == host.id
    assert host.hostname == "db-1" and host.os_id == "debian" and host.system_id == world.systems["his"]
    assert tok.used_by_agent == agent.id and tok.used_at is not None
    assert token not in str(tok) and tok.token_hash != token  # stored hashed
    entry = audit_rows(db, "agent.enroll")[-1]
    assert entry.outcome == "ok" and entry.actor == f"agent:{agent.id}"


def test_token_is_one_time(world, db):
    token = world.enrollment_token("his")
    assert world.client.post(ENROLL, json=_request(world, token)).status_code == 201
    r = world.client.post(ENROLL, json=_request(world, token, hostname="db-2"))
    assert r.status_code == 401 and "already used" in r.json()["detail"]
    refused = audit_rows(db, "agent.enroll")[-1]
    assert refused.outcome == "denied" and refused.status_code == 401


def test_expired_and_unknown_tokens(world, db):
    token = world.enrollment_token("his")
    with db.write() as conn:
        conn.execute(update(EnrollmentToken.__table__).values(
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    r = world.client.post(ENROLL, json=_request(world, token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    r = world.client.post(ENROLL, json=_request(world, "sntenr_not-a-real-token"))
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    with db.read() as conn:
        assert conn.execute(select(Agent.__table__)).all() == []
    assert [e.status_code for e in audit_rows(db, "agent.enroll")] == [401, 401]


def test_bad_public_key_and_duplicate_key(world, db):
    req = _request(world, world.enrollment_token("his"))
    r = world.client.post(ENROLL, json=dict(req, public_key="AAAA"))
    assert r.status_code == 422 and "public_key" in r.json()["detail"]
    key = signing.generate_key()
    assert world.client.post(ENROLL, json=_request(world, world.enrollment_token("his"), key)).status_code == 201
    r = world.client.post(ENROLL, json=_request(world, world.enrollment_token("his"), key, hostname="db-2"))
    assert r.status_code == 409 and "already registered" in r.json()["detail"]
    r = world.client.post(ENROLL, json={"token": "x"})
    assert r.status_code == 422
    assert audit_rows(db)[-1].status_code == 422




def test_enrollment_tokens_api(world, db):
    admin = world.token("root", "admin")
    system_id = world.systems["his"]
    r = world.client.post("/api/v1/enrollment-tokens", json={"system_id": system_id, "ttl_seconds": 600},
                          headers=bearer(admin))
    assert r.status_code == 201, r.text
    secret = r.json()["token"]
    assert secret.startswith("sntenr_")
    listed = world.client.get("/api/v1/enrollment-tokens", headers=bearer(admin)).json()
    assert listed[0]["id"] == r.json()["id"] and "token" not in listed[0] and listed[0]["used_at"] is None
    assert world.client.post(ENROLL, json=_request(world, secret)).status_code == 201
    listed = world.client.get("/api/v1/enrollment-tokens", headers=bearer(admin)).json()
    assert listed[0]["used_by_agent"] is not None
