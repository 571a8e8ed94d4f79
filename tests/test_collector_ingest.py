"""Report ingestion through the HTTP API: acceptance, idempotency, and every refusal of docs/wire.md."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sentinel import signing
from sentinel.collector.audit import repeat_count
from sentinel.collector.ingest import canonical_digest, chain
from sentinel.store import envelopes
from sentinel.store.models import ZERO_HASH, Agent, Host, Report, Run, UtilisationSample
from tests.collector_helpers import (
    audit_rows,
    bearer,
    counts,
    envelope,
    his_site,
    known_baselines,
    make_report,
    sign,
    sixty_results,
)

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"


@pytest.fixture
def setup(db, make_client):
    site = his_site(db, make_client, max_body_bytes=256 * 1024)
    return site.world, site.client, site.agent, site.admin


def post(client, raw: bytes, headers: dict):
    return client.post(REPORTS, content=raw, headers=headers)


def test_signed_report_is_stored_and_visible(setup, db):
    world, client, agent, admin = setup
    body = make_report(sixty_results())
    env = envelope(agent.agent_id, body)
    r = post(client, *sign(agent.key, env))
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["report_id"] == env["report_id"] and isinstance(answer["run_id"], int)
    failing = sorted(k for k, v in sixty_results().items() if v == "fail")
    assert answer["new_failures"] == failing and answer["fixed"] == []

    runs = client.get("/api/v1/runs", headers=bearer(admin)).json()
    assert [run["report_id"] for run in runs] == [env["report_id"]]
    run = client.get(f"/api/v1/runs/{answer['run_id']}", headers=bearer(admin)).json()
    assert run["baseline_id"] == "sentinel-test" and run["checks_total"] == 60
    assert run["failed"] == len(failing) and run["score"] == body["summary"]["score"] == 50.0
    assert run["summary"]["checks_total"] == 60 and "agent_claimed" not in run["summary"]
    assert run["digest"] == canonical_digest(body)
    assert run["prev_chain_hash"] == ZERO_HASH and run["chain_hash"] == chain(ZERO_HASH, run["digest"])

    results = client.get(f"/api/v1/runs/{answer['run_id']}/results", headers=bearer(admin)).json()
    assert len(results) == 60
    first = results[0]
    assert first["check_id"] == "check.00" and first["status"] == "fail"
    assert first["observed"] == {"value": 0, "lines": ["line 0"]}
    assert first["evidence"][0]["source"] == "/etc/login.defs" and first["title"]["zh"] == "检查 check.00"
    only_fail = client.get(f"/api/v1/runs/{answer['run_id']}/results?status=fail", headers=bearer(admin)).json()
    assert sorted(x["check_id"] for x in only_fail) == failing

    findings = client.get("/api/v1/findings", headers=bearer(admin)).json()
    assert sorted(f["check_id"] for f in findings) == failing

    with db.read() as conn:
        stored = conn.execute(select(Report.__table__)).one()
        agent_row = conn.execute(select(Agent.__table__)).one()
    # the agent's signed bytes are kept and still verify with its key
    raw = envelopes.unpack(stored.envelope)
    assert signing.verify(signing.load_public_key_b64(agent_row.public_key), raw, stored.signature)
    assert stored.source_ip == "testclient" and agent_row.last_seen is not None


def test_hash_chain_links_runs_of_a_system(setup, db):
    world, client, agent, admin = setup
    other = world.enroll(client, "his", "web-2")
    digests = []
    for who in (agent, other, agent):
        body = make_report({"a": "pass", "b": "fail"}, hostname="x")
        r = post(client, *sign(who.key, envelope(who.agent_id, body)))
        assert r.status_code == 202
        digests.append(canonical_digest(body))
    with db.read() as conn:
        runs = conn.execute(select(Run.__table__).order_by(Run.id)).all()
        head = conn.execute(select(Host.__table__.c.id)).all()
    assert len(head) == 2
    prev = ZERO_HASH
    for run, digest in zip(runs, digests, strict=True):
        assert run.digest == digest and run.prev_chain_hash == prev
        assert run.chain_hash == hashlib.sha256((prev + digest).encode()).hexdigest()
        prev = run.chain_hash
    system = client.get(f"/api/v1/systems/{agent.system_id}", headers=bearer(admin)).json()
    assert system["label"] == "S3A2"


def test_idempotent_resend_with_fresh_envelope(setup, db):
    _, client, agent, _ = setup
    body = make_report(sixty_results())
    env = envelope(agent.agent_id, body)
    first = post(client, *sign(agent.key, env))
    assert first.status_code == 202
    before = counts(db)
    # exact same bytes again, and then re-signed with a new sent_at (what a spool does): same answer
    again = post(client, *sign(agent.key, env))
    env2 = dict(env, sent_at=(datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat())
    resent = post(client, *sign(agent.key, env2))
    for r in (again, resent):
        assert r.status_code == 200, r.text
        assert r.json() == first.json()
    assert counts(db) == before


def _refusal_counts(db, client) -> dict:
    """Audit rows of report.ingest by id, with the number of refusals each stands for (repeats of one kind
    from one address share a row: audit.RefusalLog, flushed here so the counts are current)."""
    client.app.state.refusal_log.flush()
    return {e.id: (repeat_count(e.detail), e) for e in audit_rows(db, "report.ingest")}


def _refused(db, client, raw, headers, status, words):
    before = counts(db)
    audit_before = _refusal_counts(db, client)
    r = post(client, raw, headers)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert counts(db) == before, "a refused report must store nothing"
    after = _refusal_counts(db, client)
    grown = [e for i, (n, e) in after.items() if n != audit_before.get(i, (0,))[0]]
    assert len(grown) == 1 and sum(n for n, _ in after.values()) == sum(n for n, _ in audit_before.values()) + 1
    assert grown[0].status_code == status and grown[0].outcome in ("denied", "rejected")
    assert grown[0].source_ip == "testclient"
    return r


def test_forged_signature(setup, db):
    _, client, agent, _ = setup
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"})))
    forged = signing.sign(signing.generate_key(), raw)
    _refused(db, client, raw, {**headers, "X-Sentinel-Signature": forged}, 401, ["signature"])
    # a valid signature over other bytes: the body was altered after signing
    tampered = raw.replace(b'"pass"', b'"fail"')
    _refused(db, client, tampered, headers, 401, ["signature"])
    _refused(db, client, raw, {**headers, "X-Sentinel-Signature": "not base64!"}, 401, ["signature"])
    no_sig = {k: v for k, v in headers.items() if k != "X-Sentinel-Signature"}
    _refused(db, client, raw, no_sig, 401, ["X-Sentinel-Signature"])


def test_replay_with_different_body(setup, db):
    _, client, agent, _ = setup
    env = envelope(agent.agent_id, make_report({"a": "pass"}))
    assert post(client, *sign(agent.key, env)).status_code == 202
    changed = dict(env, body=make_report({"a": "fail"}))
    _refused(db, client, *sign(agent.key, changed), 409, ["already stored"])


def test_stale_and_future_timestamps(setup, db):
    """sent_at is when the agent made and signed the report (sent unchanged from its spool): up to
    report_max_age_seconds (default 14 days) old is accepted, further back or beyond the skew ahead is not."""
    _, client, agent, _ = setup
    now = datetime.now(timezone.utc)
    for delta, words in ((timedelta(days=14, minutes=5), ["stale", "older than"]),
                         (-timedelta(seconds=400), ["stale", "ahead"])):
        env = envelope(agent.agent_id, make_report({"a": "pass"}), sent_at=now - delta)
        _refused(db, client, *sign(agent.key, env), 400, words)
    spooled = envelope(agent.agent_id, make_report({"a": "pass"}), sent_at=now - timedelta(days=3))
    assert post(client, *sign(agent.key, spooled)).status_code == 202


def test_oversized_body(setup, db):
    _, client, agent, _ = setup
    big = make_report({f"c{i}": "pass" for i in range(600)})
    raw, headers = sign(agent.key, envelope(agent.agent_id, big))
    assert len(raw) > 256 * 1024
    _refused(db, client, raw, headers, 413, ["exceeds"])

    # no Content-Length (chunked): the limit is enforced while the body streams in
    def chunks():
        for i in range(0, len(raw), 8192):
            yield raw[i:i + 8192]

    before = counts(db)
    r = client.post(REPORTS, content=chunks(), headers=headers)
    assert r.status_code == 413 and counts(db) == before


def test_malformed_json_and_schema_errors(setup, db):
    _, client, agent, _ = setup
    headers = {"Content-Type": "application/json", "X-Sentinel-Agent": agent.agent_id, "X-Sentinel-Signature": "x"}
    _refused(db, client, b'{"report_id": "r1", ', headers, 422, ["malformed JSON"])
    _refused(db, client, b"\xff\xfe\x00garbage", headers, 422, ["malformed JSON"])
    _refused(db, client, b'{"a": NaN}', headers, 422, ["malformed JSON"])
    huge = sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"})))[0].replace(
        b'"duration_ms": 1234.5', b'"duration_ms": 1e999')
    _refused(db, client, huge, headers, 422, ["out of range"])
    _refused(db, client, b"[1, 2]", headers, 422, ["expected a JSON object"])
    env = envelope(agent.agent_id, make_report({"a": "pass"}))
    del env["sent_at"]
    _refused(db, client, *sign(agent.key, env), 422, ["sent_at"])
    body = make_report({"a": "pass", "b": "fail"})
    body["results"][1]["status"] = "maybe"
    r = _refused(db, client, *sign(agent.key, envelope(agent.agent_id, body)), 422, ["body.results.1.status"])
    assert r.json()["errors"][0]["loc"] == "body.results.1.status"
    env = envelope(agent.agent_id, make_report({"a": "pass"}), kind="weather")
    _refused(db, client, *sign(agent.key, env), 422, ["kind"])
    body = make_report({"x" * 200: "pass"})
    _refused(db, client, *sign(agent.key, envelope(agent.agent_id, body)), 422, ["body.results.0.check_id"])


def test_unknown_agent(setup, db):
    _, client, agent, _ = setup
    stranger = signing.generate_key()
    env = envelope("no-such-agent", make_report({"a": "pass"}))
    _refused(db, client, *sign(stranger, env), 401, ["unknown agent"])
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"})))
    _refused(db, client, raw, {k: v for k, v in headers.items() if k != "X-Sentinel-Agent"}, 401,
             ["X-Sentinel-Agent"])


def test_agent_header_must_match_envelope(setup, db):
    world, client, agent, _ = setup
    other = world.enroll(client, "his", "web-2")
    env = envelope(other.agent_id, make_report({"a": "pass"}))
    # signed by `agent` and sent under its header, but claiming to be `other` inside
    _refused(db, client, *sign(agent.key, env, agent_id=agent.agent_id), 400, ["differs"])


def test_revoked_agent(setup, db):
    _, client, agent, admin = setup
    r = client.post(f"/api/v1/agents/{agent.agent_id}/revoke", json={"reason": "decommissioned"},
                    headers=bearer(admin))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    _refused(db, client, *sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"}))), 403, ["revoked"])
    assert any(e.action == "agent.revoke" and e.outcome == "ok" for e in audit_rows(db))


def test_inventory_and_utilisation(setup, db):
    _, client, agent, admin = setup
    inventory = {"os": {"hostname": "web-1", "os_id": "kylin", "os_version": "V10", "os_name": "Kylin V10",
                        "family": "rhel", "arch": "aarch64"},
                 "arch": "aarch64", "cpu_model": "Kunpeng 920", "cpu_count": 64, "memory_bytes": 256 * 2**30,
                 "packages_count": 1432, "addresses": ["10.0.0.5"], "boot_time": "2026-01-01T00:00:00Z"}
    r = post(client, *sign(agent.key, envelope(agent.agent_id, inventory, kind="inventory")))
    assert r.status_code == 202 and r.json()["run_id"] is None
    host = client.get("/api/v1/hosts", headers=bearer(admin)).json()[0]
    assert host["os_id"] == "kylin" and host["arch"] == "aarch64" and host["addresses"] == ["10.0.0.5"]
    assert host["inventory"]["cpu_model"] == "Kunpeng 920" and host["inventory"]["boot_time"]

    now = datetime.now(timezone.utc)
    samples = [{"at": (now - timedelta(minutes=i)).isoformat(), "cpu_percent": 1.5, "memory_percent": 40.0,
                "net_bytes_sent": 10**12, "net_bytes_recv": 5, "logins": 0} for i in range(5)]
    r = post(client, *sign(agent.key, envelope(agent.agent_id, {"samples": samples}, kind="utilisation")))
    assert r.status_code == 202
    with db.read() as conn:
        stored = conn.execute(select(UtilisationSample.__table__)).all()
    assert len(stored) == 5 and stored[0].net_bytes_sent == 10**12 and stored[0].at.tzinfo is not None
    listed = client.get(f"/api/v1/hosts/{host['id']}/utilisation", headers=bearer(admin),
                        params={"since": (now - timedelta(minutes=2, seconds=30)).isoformat()}).json()
    assert len(listed) == 3 and listed[0]["at"] > listed[-1]["at"] and listed[0]["net_bytes_sent"] == 10**12
    bad = [{**samples[0], "cpu_percent": 150}]
    _refused(db, client, *sign(agent.key, envelope(agent.agent_id, {"samples": bad}, kind="utilisation")), 422,
             ["body.samples.0.cpu_percent"])


def test_nul_characters_are_stored_safely(setup, db):
    _, client, agent, admin = setup
    body = make_report({"a": "fail"})
    body["results"][0]["evidence"][0]["excerpt"] = "binary\x00data"
    body["results"][0]["observed"] = {"k\x00": "v\x00"}
    env = envelope(agent.agent_id, body)
    r = post(client, *sign(agent.key, env))
    assert r.status_code == 202, r.text
    results = client.get(f"/api/v1/runs/{r.json()['run_id']}/results", headers=bearer(admin)).json()
    assert results[0]["evidence"][0]["excerpt"] == "binary\ufffddata"
    # the digest covers what the agent sent, so a resend is still recognised
    assert post(client, *sign(agent.key, env)).status_code == 200


def test_body_report_id_must_match(setup, db):
    _, client, agent, _ = setup
    body = make_report({"a": "pass"})
    body["report_id"] = "something-else"
    _refused(db, client, *sign(agent.key, envelope(agent.agent_id, body)), 422, ["report_id"])


def test_wire_example_is_valid_json_schema(setup):
    _, client, _, _ = setup
    spec = client.get("/api/v1/openapi.json").json()
    schema = spec["paths"]["/api/v1/agent/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"report_id", "agent_id", "sent_at", "kind", "body"}
    json.dumps(spec)


def test_concurrent_reports_keep_one_chain(setup, db):
    """Reports of one system arriving at once: every run stored once, the chain never forks."""
    import threading

    from sentinel.collector.ingest import Ingestor
    from sentinel.store.models import System

    world, client, agent, _ = setup
    agents = [agent] + [world.enroll(client, "his", f"web-{i}") for i in range(2, 5)]
    ingestor = Ingestor(db, max_body_bytes=1 << 20, skew_seconds=300, baselines=known_baselines())
    payloads = []
    for i in range(24):
        who = agents[i % len(agents)]
        payloads.append(sign(who.key, envelope(who.agent_id, make_report({"a": "fail" if i % 3 else "pass"}))))
    chunks = [payloads[k::4] for k in range(4)]
    for k in range(4):  # each thread starts with another thread's first envelope: the two race
        chunks[k].insert(0, payloads[(k + 1) % 4])
    answers: list[int] = []
    lock = threading.Lock()

    def deliver(chunk):
        for raw, headers in chunk:
            status, _ = ingestor.handle(raw, headers["X-Sentinel-Agent"], headers["X-Sentinel-Signature"], "127.0.0.1")
            with lock:
                answers.append(status)

    threads = [threading.Thread(target=deliver, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] * 4 + [202] * 24
    with db.read() as conn:
        runs = conn.execute(select(Run.__table__).order_by(Run.id)).all()
        head = conn.execute(select(System.__table__.c.chain_head)).scalar_one()
    assert len(runs) == 24
    prev = ZERO_HASH
    for run in runs:
        assert run.prev_chain_hash == prev and run.chain_hash == chain(prev, run.digest)
        prev = run.chain_hash
    assert head == prev
