"""The agent endpoints' gate (sentinel/collector/gate.py) and aggregated refusals (audit.RefusalLog), issue 20
item 6: anonymous, unknown and revoked senders are refused from their headers, before the body is read;
sources and agents are rate-limited with 429 + Retry-After; a flood of refusals is one audit row per source
and reason per window, with a count. On SQLite and PostgreSQL; the first tests drive the app as ASGI to
see exactly what was read, the later ones a real uvicorn on 127.0.0.1."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi.testclient import TestClient

from sentinel.collector.app import create_app
from sentinel.collector.audit import RefusalLog, reason_key, record_refusal, repeat_count
from sentinel.collector.limits import RateLimiter
from sentinel.collector.settings import CollectorSettings
from sentinel.wiring import exporters
from tests.collector_helpers import World, audit_rows, bearer, envelope, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"
INVENTORY = {"os": {"hostname": "web-1", "os_id": "kylin", "os_version": "V10", "os_name": "Kylin V10",
                    "family": "rhel", "arch": "aarch64"}, "arch": "aarch64"}


def _world(db):
    w = World(db)
    w.department("health")
    w.system("his", "health")
    admin = w.token("root", "admin")
    return w, admin


def _app(db, tmp_path, **settings):
    return create_app(CollectorSettings(state_dir=tmp_path / "state", **settings), exporters=exporters(), db=db)


def _inventory(agent):
    return sign(agent.key, envelope(agent.agent_id, INVENTORY, kind="inventory"))


# ---- refused before the body is read (ASGI: every receive() is seen) ---------------------------------------


def _asgi_post(app, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes, int]:
    """POST /api/v1/agent/reports straight into the ASGI app; answers (status, headers, body, bytes of the
    request body the app asked for)."""
    asked = 0
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]
    sent: list[dict] = []

    async def receive():
        nonlocal asked
        if not chunks:
            await asyncio.sleep(3600)  # the client has nothing more; an app waiting here is a bug
        chunk = chunks.pop(0)
        asked += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": REPORTS, "raw_path": REPORTS.encode(), "query_string": b"", "root_path": "",
             "headers": raw_headers, "client": ("192.0.2.7", 40000), "server": ("127.0.0.1", 8470)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body_out, asked


def test_unknown_revoked_and_anonymous_are_refused_before_the_body_is_read(db, tmp_path):
    w, admin = _world(db)
    app = _app(db, tmp_path)
    with TestClient(app) as client:
        agent = w.enroll(client, "his", "web-1")
        gone = w.enroll(client, "his", "web-2")
        assert client.post(f"/api/v1/agents/{gone.agent_id}/revoke", json={"reason": "decommissioned"},
                           headers=bearer(admin)).status_code == 200
    big = b"x" * (3 << 20)  # what the anonymous senders sent
    raw, headers = _inventory(agent)
    cases = [
        ({}, 401, "missing X-Sentinel-Agent"),
        ({"X-Sentinel-Agent": "no-such-agent", "X-Sentinel-Signature": headers["X-Sentinel-Signature"]}, 401,
         "unknown agent"),
        ({"X-Sentinel-Agent": "x" * 500, "X-Sentinel-Signature": "c2ln"}, 401, "unknown agent"),
        ({"X-Sentinel-Agent": gone.agent_id, "X-Sentinel-Signature": headers["X-Sentinel-Signature"]}, 403,
         "revoked"),
        ({"X-Sentinel-Agent": agent.agent_id}, 401, "missing X-Sentinel-Signature"),
    ]
    for extra, status, words in cases:
        code, answer_headers, answer, asked = _asgi_post(app, {"Content-Type": "application/json", **extra}, big)
        assert code == status and words in json.loads(answer)["detail"], answer
        assert asked == 0, f"{words}: {asked} bytes of the body were read before refusing"
        assert answer_headers["connection"] == "close"  # so the server need not read the rest either
    # a known agent's report is read in full and stored as before
    code, _, answer, asked = _asgi_post(app, headers, raw)
    assert code == 202 and asked == len(raw), answer
    # the refusals are in the audit log (and counted)
    statuses = sorted(e.status_code for e in audit_rows(db, "report.ingest"))
    assert statuses == [401, 401, 401, 403]  # the two unknown-agent refusals are one row with a count of 2
    unknown = [e for e in audit_rows(db, "report.ingest") if "unknown agent" in e.detail]
    app.state.refusal_log.flush()
    assert [repeat_count(e.detail) for e in audit_rows(db, "report.ingest") if e.id == unknown[0].id] == [2]
    assert unknown[0].actor == "anonymous" and unknown[0].source_ip == "192.0.2.7"


# ---- a real server on loopback ------------------------------------------------------------------------------


@contextmanager
def serving(app, log_level: str = "warning"):
    """`app` under a real uvicorn on 127.0.0.1 (a free port), in a thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _http(port: int, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send `head` (and what there is of the body) on a fresh connection; read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head_out, _, rest = data.partition(b"\r\n\r\n")
    lines = head_out.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def test_an_anonymous_3_mib_body_is_refused_over_http_before_it_is_sent(db, tmp_path):
    """The client announces 3 MiB and sends only 64 KiB, then waits: the answer can only come from the headers."""
    _world(db)
    with serving(_app(db, tmp_path)) as port:
        head = (f"POST {REPORTS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {3 << 20}\r\n\r\n")
        status, headers, body = _http(port, head, b"{" + b" " * 65535)
        assert status == 401 and "missing X-Sentinel-Agent" in json.loads(body)["detail"]
        assert headers["connection"] == "close"
        status, _, body = _http(port, head.replace("Content-Type", "X-Sentinel-Agent: forged-id\r\nContent-Type"),
                                b"{")
        assert status == 401 and "unknown agent" in json.loads(body)["detail"]


def test_a_source_of_refusals_gets_429_with_retry_after_and_one_audit_row_per_reason(db, tmp_path):
    w, _ = _world(db)
    # slow refill (20 s a token); limited_delay 0: the 429s come at once (the delay is for floods, bench/)
    settings = dict(source_rate=0.05, source_burst=20, refusal_cost=4, limited_delay=0)
    app = _app(db, tmp_path, **settings)
    with TestClient(app) as client:
        agent = w.enroll(client, "his", "web-1")  # 1 token
        answers = [client.post(REPORTS, content=b"{}" * 1000, headers={"Content-Type": "application/json"})
                   for _ in range(8)]
        codes = [a.status_code for a in answers]
        # 19 tokens left: each refusal takes 1 + 4, so the fifth finds -1 and is answered 429 from then on
        assert codes == [401] * 4 + [429] * 4, codes
        limited = answers[-1]
        assert int(limited.headers["Retry-After"]) >= 1 and "retry after" in limited.json()["detail"]
        # while the source is limited even a good report waits (it is the same address)
        raw, headers = _inventory(agent)
        assert client.post(REPORTS, content=raw, headers=headers).status_code == 429
        app.state.refusal_log.flush()
        rows = audit_rows(db, "report.ingest")
        assert sorted((r.status_code, repeat_count(r.detail)) for r in rows) == [(401, 4), (429, 5)]
        assert all(r.source_ip == "testclient" for r in rows)
        counters = app.state.ingest_counters.snapshot().errors_total
        assert counters["rate_limited"] == 5 and counters["unknown_agent"] == 4


def test_each_agent_has_its_own_limit(db, tmp_path):
    w, _ = _world(db)
    app = _app(db, tmp_path, agent_rate=0.01, agent_burst=2)
    with TestClient(app) as client:
        busy = w.enroll(client, "his", "web-1")
        calm = w.enroll(client, "his", "web-2")
        codes = [client.post(REPORTS, content=raw, headers=headers).status_code
                 for raw, headers in (_inventory(busy) for _ in range(3))]
        assert codes == [202, 202, 429]
        raw, headers = _inventory(busy)
        limited = client.post(REPORTS, content=raw, headers=headers)
        assert limited.status_code == 429 and busy.agent_id in limited.json()["detail"]
        assert int(limited.headers["Retry-After"]) >= 1
        raw, headers = _inventory(calm)
        assert client.post(REPORTS, content=raw, headers=headers).status_code == 202
    entry = [r for r in audit_rows(db, "report.ingest") if r.status_code == 429]
    assert len(entry) == 1 and entry[0].actor == f"agent:{busy.agent_id}" and repeat_count(entry[0].detail) == 2


def test_the_limits_can_be_turned_off(db, tmp_path):
    _world(db)
    with TestClient(_app(db, tmp_path, source_rate=0, refusal_cost=100)) as client:
        codes = {client.post(REPORTS, content=b"{}").status_code for _ in range(30)}
    assert codes == {401}


# ---- the refusal log itself -----------------------------------------------------------------------------------


def test_refusal_log_windows_kinds_and_sources(db):
    now = [1000.0]
    log = RefusalLog(db, window=60, clock=lambda: now[0])

    def refuse(ip, detail, status=401):
        log.record(actor="anonymous", action="report.ingest", target="", source_ip=ip, status_code=status,
                   detail=detail, outcome="denied")

    for i in range(50):
        refuse("192.0.2.1", f"unknown agent 'id-{i}': enroll it first")  # one kind, whatever the id
    refuse("192.0.2.2", "unknown agent 'id-0': enroll it first")  # another source
    refuse("192.0.2.1", "missing X-Sentinel-Agent header")  # another reason
    for who in ("token:1:alice", "token:2:bob", "token:2:bob"):  # authenticated callers are kept apart
        log.record(actor=who, action="PATCH /api/v1/systems/1", target="", source_ip="192.0.2.3",
                   status_code=403, detail="this system belongs to another department", outcome="denied")
    log.flush()
    rows = audit_rows(db)
    assert sorted((r.source_ip, r.actor, repeat_count(r.detail)) for r in rows) == [
        ("192.0.2.1", "anonymous", 1), ("192.0.2.1", "anonymous", 50), ("192.0.2.2", "anonymous", 1),
        ("192.0.2.3", "token:1:alice", 1), ("192.0.2.3", "token:2:bob", 2)]
    first = next(r for r in rows if repeat_count(r.detail) == 50)
    assert first.detail.startswith("unknown agent 'id-0': enroll it first [repeated: 50 refusals")
    now[0] += 61  # the window is over: the next refusal opens a new row
    refuse("192.0.2.1", "unknown agent 'id-77': enroll it first")
    log.close()
    assert len(audit_rows(db)) == 6
    assert reason_key("stale report: sent_at 2026-12-02T10:00:00+00:00 is 400 s") == reason_key(
        "stale report: sent_at 2026-12-01T09:00:00+00:00 is 9000 s")


def test_window_zero_writes_a_row_per_refusal(db, tmp_path):
    _world(db)
    with TestClient(_app(db, tmp_path, audit_refusal_window=0)) as client:
        for _ in range(3):
            assert client.post(REPORTS, content=b"{}").status_code == 401
    assert [repeat_count(r.detail) for r in audit_rows(db, "report.ingest")] == [1, 1, 1]
    record_refusal(db, actor="cli:test", action="x", status_code=400, detail="d")  # no log left registered
    assert len(audit_rows(db, "x")) == 1


def test_rate_limiter_refills_and_bounds_its_table():
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=4, max_keys=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(4)] == [None] * 4
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") is None
    limiter.charge("a", 100)  # a refusal's surcharge, floored at -burst
    assert limiter.take("a") == pytest.approx(2.5)
    for key in ("b", "c", "d", "e"):
        limiter.take(key)
    assert len(limiter._buckets) <= 3


def test_a_limited_source_is_held_back_with_its_body_unread(db, tmp_path):
    """Past its limit a source waits (limited_delay) for its 429, unless too many already wait."""
    from sentinel.collector import gate

    called = []

    async def inner(scope, receive, send):  # the app behind the gate: must never be reached here
        called.append(scope["path"])

    settings = CollectorSettings(state_dir=tmp_path / "state", source_rate=0.001, source_burst=1, refusal_cost=0,
                                 limited_delay=30)
    guard = gate.AgentGate(inner, db=db, settings=settings)
    scope = {"type": "http", "method": "POST", "path": "/api/v1/agent/enroll", "headers": [],
             "client": ("192.0.2.9", 1), "query_string": b""}
    sent: list[dict] = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    async def scenario():
        await guard(scope, receive, send)  # the one token: let through
        assert called == ["/api/v1/agent/enroll"]
        held = asyncio.ensure_future(guard(scope, receive, send))
        done, _ = await asyncio.wait({held}, timeout=1)
        assert not done and not sent, "a limited source was answered at once"
        held.cancel()
        guard._delayed = asyncio.Semaphore(0)  # every waiting slot taken: answered at once
        await asyncio.wait_for(guard(scope, receive, send), 10)
        assert sent[0]["status"] == 429 and dict(sent[0]["headers"])[b"retry-after"]

    asyncio.run(scenario())


def test_a_revoked_agent_is_refused_even_while_the_gate_remembers_it_enrolled(db, tmp_path):
    """The gate remembers found agents for a while (gate.STATE_SECONDS); ingest reads the state again."""
    w, admin = _world(db)
    app = _app(db, tmp_path)
    with TestClient(app) as client:
        agent = w.enroll(client, "his", "web-1")
        raw, headers = _inventory(agent)
        assert client.post(REPORTS, content=raw, headers=headers).status_code == 202  # now remembered
        assert client.post(f"/api/v1/agents/{agent.agent_id}/revoke", json={"reason": "stolen"},
                           headers=bearer(admin)).status_code == 200
        raw, headers = _inventory(agent)
        refused = client.post(REPORTS, content=raw, headers=headers)
        assert refused.status_code == 403 and "revoked" in refused.json()["detail"]
    assert [r.status_code for r in audit_rows(db, "report.ingest")] == [403]
