"""Enrollment that trusts nothing it can check (issue 20, items 1 and 5), through the HTTP API on SQLite and
PostgreSQL: weak Ed25519 keys and signatures are refused, the agent proves it holds its key, and a known
host is re-enrolled only with an admin's re-enrollment token, audited."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert, select

from sentinel import signing
from sentinel.store.models import Agent, EnrollmentToken, Host
from tests.collector_helpers import World, audit_rows, bearer, counts, enroll_body, envelope, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

ENROLL = "/api/v1/agent/enroll"
REPORTS = "/api/v1/agent/reports"
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
IDENTITY = bytes.fromhex("01" + "00" * 31)

# Every small-order point: the canonical encodings of the 8 points of order 1, 2, 4 and 8 (both signs of x)
# and the non-canonical y = p and y = p + 1.
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scalar(key) -> int:
    """The secret scalar a of an Ed25519 private key (RFC 8032 5.1.5), so tests can build odd signatures."""
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def forged_for_identity_key() -> bytes:
    """A signature of ANY message under the identity key 01 00..00, made without any private key:
    R = [r]B and S = r satisfy [S]B = R + [h]A because A is the identity. (r*B is a public key.)"""
    helper = signing.generate_key()
    r_point = helper.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return r_point + (_scalar(helper) % L).to_bytes(32, "little")


def small_order_r_signature(key, message: bytes) -> bytes:
    """A signature by the real `key` whose R is the identity point: S = h*a makes [S]B - [h]A the identity.
    OpenSSL accepts it (it only compares R's bytes with the point it computes)."""
    a = _scalar(key)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = int.from_bytes(hashlib.sha512(IDENTITY + pub + message).digest(), "little") % L
    return IDENTITY + (h * a % L).to_bytes(32, "little")


@pytest.fixture
def world(db, make_client):
    w = World(db)
    w.department("health")
    w.department("edu")
    w.system("his", "health")
    w.client = make_client(db)
    w.admin = w.token("root", "admin")
    w.operator = w.token("ops", "dept_operator", ["health"])
    w.collector_key = w.client.get(ENROLL).json()["collector_public_key"]
    return w


def _agents(db) -> dict:
    with db.read() as conn:
        return {a.id: a for a in conn.execute(select(Agent.__table__)).all()}


def _token_unused(db) -> bool:
    with db.read() as conn:
        return all(t.used_at is None for t in conn.execute(select(EnrollmentToken.__table__)).all())


# ---- item 1: weak keys and proof of possession ---------------------------------------------------

def test_enrollment_info_names_the_collector_key(world):
    r = world.client.get(ENROLL)
    assert r.status_code == 200
    signing.load_public_key_b64(r.json()["collector_public_key"])
    assert "SHA-256" in r.json()["proof"]


def test_identity_key_with_a_forged_proof_is_refused(world, db):
    """The attack of issue 20 item 1: the identity key, and a 'proof' made without any private key.
    OpenSSL alone accepts that proof; the collector must refuse the key."""
    token = world.enrollment_token("his")
    challenge = signing.enrollment_challenge(token, world.collector_key, "db-1", b64(IDENTITY))
    forged = forged_for_identity_key()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged, challenge)  # cryptography accepts the forgery
    body = dict(enroll_body(world.client, token, signing.generate_key(), "db-1"), public_key=b64(IDENTITY),
                proof=b64(forged))
    r = world.client.post(ENROLL, json=body)
    assert r.status_code == 422, r.text
    assert "public_key" in r.json()["detail"] and "small-order" in r.json()["detail"]
    assert _agents(db) == {} and _token_unused(db)
    assert audit_rows(db, "agent.enroll")[-1].status_code == 422


@pytest.mark.parametrize("point", SMALL_ORDER, ids=lambda p: p.hex()[:6] + ".." + p.hex()[-2:])
def test_every_small_order_key_is_refused(world, db, point):
    body = dict(enroll_body(world.client, world.enrollment_token("his"), signing.generate_key(), "db-1"),
                public_key=b64(point), proof=b64(forged_for_identity_key()))
    r = world.client.post(ENROLL, json=body)
    assert r.status_code == 422 and "public_key" in r.json()["detail"], r.text
    assert _agents(db) == {}


def test_non_canonical_key_is_refused(world, db):
    # y = p + 3 encodes the same y as 3 (a field element >= p); RFC 8032 refuses it, OpenSSL loads it
    point = (P + 3).to_bytes(32, "little")
    body = dict(enroll_body(world.client, world.enrollment_token("his"), signing.generate_key(), "db-1"),
                public_key=b64(point))
    r = world.client.post(ENROLL, json=body)
    assert r.status_code == 422 and "canonical" in r.json()["detail"], r.text


def test_proof_of_possession_is_required(world, db):
    token = world.enrollment_token("his")
    key = signing.generate_key()
    good = enroll_body(world.client, token, key, "db-1")
    missing = {k: v for k, v in good.items() if k != "proof"}
    r = world.client.post(ENROLL, json=missing)
    assert r.status_code == 422 and "proof" in r.text
    # someone who knows only the public key (and a token) cannot enroll it: the proof is by another key
    stranger = enroll_body(world.client, token, signing.generate_key(), "db-1")
    r = world.client.post(ENROLL, json=dict(stranger, public_key=good["public_key"]))
    assert r.status_code == 401 and "proof" in r.json()["detail"], r.text
    # a proof is bound to its hostname, its token and this collector
    r = world.client.post(ENROLL, json=dict(good, hostname="db-2", os=good["os"] | {"hostname": "db-2"}))
    assert r.status_code == 401 and "proof" in r.json()["detail"]
    other = world.enrollment_token("his")
    r = world.client.post(ENROLL, json=dict(good, token=other))
    assert r.status_code == 401
    elsewhere = enroll_body(world.client, token, key, "db-1",
                            collector_key=signing.public_key_b64(signing.generate_key()))
    r = world.client.post(ENROLL, json=elsewhere)
    assert r.status_code == 401
    r = world.client.post(ENROLL, json=dict(good, proof="!!"))
    assert r.status_code == 401
    assert _agents(db) == {} and _token_unused(db)  # a refused proof does not spend the token
    refused = audit_rows(db, "agent.enroll")[-1]  # repeated refusals may share one row (collector/audit.py)
    assert refused.status_code == 401 and refused.outcome == "denied"
    r = world.client.post(ENROLL, json=good)
    assert r.status_code == 201, r.text


def test_small_order_r_and_large_s_signatures_are_refused(world, db):
    """A report signed by the agent's real key but with a small-order R (OpenSSL accepts it) or with
    S + L (OpenSSL refuses it already) is not stored."""
    agent = world.enroll(world.client, "his", "db-1")
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"check.01": "pass"}, hostname="db-1")))
    odd = small_order_r_signature(agent.key, raw)
    agent.key.public_key().verify(odd, raw)  # cryptography accepts it
    r = world.client.post(REPORTS, content=raw, headers=dict(headers, **{"X-Sentinel-Signature": b64(odd)}))
    assert r.status_code == 401 and "signature" in r.json()["detail"], r.text
    good = base64.b64decode(headers["X-Sentinel-Signature"])
    big_s = good[:32] + (int.from_bytes(good[32:], "little") + L).to_bytes(32, "little")
    r = world.client.post(REPORTS, content=raw, headers=dict(headers, **{"X-Sentinel-Signature": b64(big_s)}))
    assert r.status_code == 401
    assert counts(db)["reports"] == 0
    assert world.client.post(REPORTS, content=raw, headers=headers).status_code == 202


def test_weak_key_enrolled_before_the_fix_cannot_report(world, db):
    """An agent row stored with the identity key (as an older collector let it be): a forged report is
    refused, not stored, and the answer is a 4xx (never a 500)."""
    now = datetime.now(timezone.utc)
    with db.write() as conn:
        host = conn.execute(insert(Host.__table__).values(
            system_id=world.systems["his"], department_id=world.departments["health"], hostname="weak-1",
            addresses=[], os_id="", os_version="", os_name="", arch="", first_seen=now,
            last_seen=now)).inserted_primary_key[0]
        conn.execute(insert(Agent.__table__).values(
            id="weak-agent", host_id=host, system_id=world.systems["his"], department_id=world.departments["health"],
            public_key=b64(IDENTITY), state="enrolled", enrolled_at=now))
    raw = json.dumps(envelope("weak-agent", make_report({"check.01": "pass"}, hostname="weak-1"))).encode()
    headers = {"Content-Type": "application/json", "X-Sentinel-Agent": "weak-agent",
               "X-Sentinel-Signature": b64(forged_for_identity_key())}
    r = world.client.post(REPORTS, content=raw, headers=headers)
    assert r.status_code in (401, 403), r.text
    assert "key" in r.json()["detail"]
    assert counts(db)["reports"] == 0


# ---- item 5: host identity on re-enrollment ------------------------------------------------------

def test_known_hostname_is_refused_without_an_admins_allowance(world, db):
    first = world.enroll(world.client, "his", "db-1")
    r = world.client.post(ENROLL, json=enroll_body(world.client, world.enrollment_token("his"),
                                                   signing.generate_key(), "db-1"))
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "db-1" in detail and "already known" in detail and "--reenroll" in detail
    agents = _agents(db)
    assert list(agents) == [first.agent_id] and agents[first.agent_id].state == "enrolled"
    refused = audit_rows(db, "agent.enroll")[-1]
    assert refused.status_code == 409 and refused.outcome == "rejected"
    # the old agent keeps reporting
    raw, headers = sign(first.key, envelope(first.agent_id, make_report({"check.01": "pass"}, hostname="db-1")))
    assert world.client.post(REPORTS, content=raw, headers=headers).status_code == 202


def test_admin_reenrollment_token_replaces_the_hosts_agent(world, db):
    first = world.enroll(world.client, "his", "db-1")
    r = world.client.post("/api/v1/enrollment-tokens", headers=bearer(world.admin),
                          json={"system_id": world.systems["his"], "reenroll_hostname": "db-1"})
    assert r.status_code == 201, r.text
    assert r.json()["reenroll_hostname"] == "db-1"
    token = r.json()["token"]
    # the token re-enrolls that host only
    r = world.client.post(ENROLL, json=enroll_body(world.client, token, signing.generate_key(), "db-2"))
    assert r.status_code == 403 and "db-1" in r.json()["detail"]
    r = world.client.post(ENROLL, json=enroll_body(world.client, token, signing.generate_key(), "db-1"))
    assert r.status_code == 201, r.text
    second = r.json()["agent_id"]
    agents = _agents(db)
    assert agents[first.agent_id].state == "revoked" and "re-enrollment" in agents[first.agent_id].revoked_reason
    assert agents[second].state == "enrolled" and agents[second].host_id == agents[first.agent_id].host_id
    with db.read() as conn:
        assert len(conn.execute(select(Host.__table__)).all()) == 1
    entry = audit_rows(db, "agent.reenroll")[-1]
    assert entry.actor == f"agent:{second}" and first.agent_id in entry.detail and "token" in entry.detail
    assert audit_rows(db, "agent.revoke")[-1].target == f"agent:{first.agent_id}"
    created = audit_rows(db, "enrollment_token.create")[-1]
    assert "re-enrollment of host db-1" in created.detail


def test_only_an_admin_may_allow_reenrollment(world, db):
    world.enroll(world.client, "his", "db-1")
    spec = {"system_id": world.systems["his"], "reenroll_hostname": "db-1"}
    r = world.client.post("/api/v1/enrollment-tokens", headers=bearer(world.operator), json=spec)
    assert r.status_code == 403, r.text
    # an ordinary token is still the operator's to make
    r = world.client.post("/api/v1/enrollment-tokens", headers=bearer(world.operator),
                          json={"system_id": world.systems["his"]})
    assert r.status_code == 201
    r = world.client.post("/api/v1/enrollment-tokens", headers=bearer(world.admin),
                          json=dict(spec, reenroll_hostname="no-such-host"))
    assert r.status_code == 422 and "no-such-host" in r.json()["detail"]


def test_cli_reenroll_token(world, db, capsys):
    """`sentinel enroll-token create --reenroll HOST` makes the allowance from the command line."""
    from sentinel.cli import main

    world.enroll(world.client, "his", "db-1")
    code = main(["enroll-token", "create", "--system", "his", "--reenroll", "db-1", "--database-url", db.url])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "may re-enroll host db-1" in out.err
    secret = out.out.strip().splitlines()[-1]
    r = world.client.post(ENROLL, json=enroll_body(world.client, secret, signing.generate_key(), "db-1"))
    assert r.status_code == 201, r.text
