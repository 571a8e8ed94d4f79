"""The collector's /metrics and ingest counters, `sentinel up` scraped by a real Prometheus, and event push from
a real ingest to a real Alertmanager and a webhook receiver (all on 127.0.0.1).

Prometheus and Alertmanager are the Debian packages (`prometheus`, `prometheus-alertmanager`), started by the
tests on free loopback ports with temporary storage (tests/obs_support.py)."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from sentinel import signing
from sentinel.collector.app import create_app
from sentinel.collector.metrics import KINDS, REASONS, rejection_reason
from sentinel.collector.settings import CollectorSettings
from sentinel.exporters.alertmanager import AlertmanagerClient
from sentinel.exporters.webhooks import generic_signature
from sentinel.store.db import Database
from sentinel.store.models import Event
from sentinel.wiring import exporters
from tests.collector_helpers import World, bearer, envelope, install_test_baselines, make_report, sign
from tests.obs_support import LOOPBACK, Receiver, alertmanager, eventually, free_port, need, prometheus

pytest_plugins = ["tests.dbfixtures"]

REPORTS = "/api/v1/agent/reports"
HOOK_SECRET = "hook-signing-secret-for-tests"


@pytest.fixture
def sqlite_db(tmp_path, _sqlite_template):
    path = tmp_path / "sentinel.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def world(sqlite_db):
    w = World(sqlite_db)
    w.department("财政局")
    w.system("非税收入管理系统", "财政局")
    w.token("root", "admin")
    return w


def _app(db, tmp_path, **settings):
    install_test_baselines(tmp_path / "state")  # the baselines make_report's reports are judged by
    return create_app(CollectorSettings(state_dir=tmp_path / "state", **settings), exporters=exporters(), db=db)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _promtool_check(body: bytes) -> None:
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


# ---- /metrics and the ingest counters ---------------------------------------------------------------------


def test_metrics_show_stored_state_and_move_with_every_accept_and_reject(world, tmp_path):
    db = world.db
    with TestClient(_app(db, tmp_path, max_body_bytes=64 * 1024, metrics_cache_seconds=0)) as client:
        agent = world.enroll(client, "非税收入管理系统", "web-1")
        other = world.enroll(client, "非税收入管理系统", "web-2")
        scrape = bearer((tmp_path / "state" / "metrics-token").read_text().strip())  # made at start
        before = _samples(client.get("/metrics", headers=scrape).text)
        # every kind and reason is exposed from the start, at 0, so increase() sees the first one
        for kind in KINDS:
            assert before[("sentinel_ingest_reports_total", (("kind", kind),))] == 0
        for reason in REASONS:
            assert before[("sentinel_ingest_errors_total", (("reason", reason),))] == 0

        def post(raw, headers, status):
            r = client.post(REPORTS, content=raw, headers=headers)
            assert r.status_code == status, r.text
            return r

        env = envelope(agent.agent_id, make_report({"a": "fail", "b": "pass"}))
        post(*sign(agent.key, env), 202)
        post(*sign(agent.key, env), 200)  # the same report again: answered as before, counted as accepted
        inventory = {"os": {"hostname": "web-1", "os_id": "kylin", "os_version": "V10", "os_name": "Kylin V10",
                            "family": "rhel", "arch": "aarch64"}, "arch": "aarch64"}
        post(*sign(agent.key, envelope(agent.agent_id, inventory, kind="inventory")), 202)
        sample = {"at": datetime.now(timezone.utc).isoformat(), "cpu_percent": 1.0, "memory_percent": 2.0,
                  "net_bytes_sent": 0, "net_bytes_recv": 0, "logins": 0}
        post(*sign(agent.key, envelope(agent.agent_id, {"samples": [sample]}, kind="utilisation")), 202)

        # one refusal of each reason, through the real endpoint
        raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"})))
        post(raw, {**headers, "X-Sentinel-Signature": signing.sign(other.key, raw)}, 401)  # signature
        post(*sign(agent.key, {**env, "body": make_report({"a": "pass"})}), 409)  # replay: same id, other body
        old = datetime.now(timezone.utc) - timedelta(days=15)  # older than report_max_age_seconds
        post(*sign(agent.key, envelope(agent.agent_id, make_report({"a": "pass"}), sent_at=old)), 400)  # stale
        # (a known agent and a signature header: without them the gate refuses before the body is read)
        post(b"{not json", {"X-Sentinel-Agent": agent.agent_id, "Content-Type": "application/json",
                            "X-Sentinel-Signature": signing.sign(agent.key, b"{not json")}, 422)  # schema
        post(b"x" * (70 * 1024), {"X-Sentinel-Agent": agent.agent_id, "X-Sentinel-Signature": "c2ln"},
             413)  # size (refused by the body limit)
        post(*sign(agent.key, envelope("agent-unknown", make_report({"a": "pass"}))), 401)  # unknown_agent
        post(*sign(other.key, envelope(agent.agent_id, make_report({"a": "pass"})), agent_id=other.agent_id),
             400)  # agent_mismatch
        admin = world.tokens["root"]
        assert client.post(f"/api/v1/agents/{other.agent_id}/revoke", json={"reason": "gone"},
                           headers=bearer(admin)).status_code == 200
        post(*sign(other.key, envelope(other.agent_id, make_report({"a": "pass"}))), 403)  # revoked

        response = client.get("/metrics", headers=scrape)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = _samples(response.text)

    accepted = {k: after[("sentinel_ingest_reports_total", (("kind", k),))] for k in KINDS}
    assert accepted == {"host_report": 2, "inventory": 1, "utilisation": 1}
    rejected = {r: after[("sentinel_ingest_errors_total", (("reason", r),))] for r in REASONS}
    assert rejected == {**dict.fromkeys(REASONS, 1), "other": 0, "rate_limited": 0}  # 429s: test_collector_gate.py
    # and the stored state: the report's score and failing check, labelled with names
    sl = (("department", "财政局"), ("host", "web-1"), ("system", "非税收入管理系统"))
    assert after[("sentinel_host_score", sl)] == 50.0  # the collector's scoring: 8.1.4.1.a 不符合, b 符合
    assert after[("sentinel_host_failing_checks", tuple(sorted(sl + (("severity", "medium"),))))] == 1
    assert after[("sentinel_up", ())] == 1
    _promtool_check(response.content)


def test_rejection_reasons_are_a_closed_vocabulary():
    assert rejection_reason(413, "request body exceeds the limit") == "size"
    assert rejection_reason(401, "missing X-Sentinel-Agent header") == "unknown_agent"
    assert rejection_reason(401, "missing X-Sentinel-Signature header") == "signature"
    assert rejection_reason(400, "something new") == "other"
    assert rejection_reason(418, "teapot") == "other"


def test_metrics_needs_a_token_by_default(world, tmp_path):
    """Issue 20: /metrics names every department's systems and scores, and used to be open by default."""
    with TestClient(_app(world.db, tmp_path)) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "Bearer" in refused.json()["detail"]
        made = tmp_path / "state" / "metrics-token"
        assert made.stat().st_mode & 0o777 == 0o600
        generated = made.read_text().strip()
        assert len(generated) >= 32
        assert client.get("/metrics", headers=bearer(generated)).status_code == 200
    # the same token on the next start (Prometheus keeps its copy), from a chosen file too
    with TestClient(_app(world.db, tmp_path)) as client:
        assert client.get("/metrics", headers=bearer(generated)).status_code == 200
    chosen = tmp_path / "prometheus-token"
    chosen.write_text("chosen-token-0123456789abcdef\n")
    with TestClient(_app(world.db, tmp_path, metrics_token_file=chosen)) as client:
        assert client.get("/metrics", headers=bearer(generated)).status_code == 401
        assert client.get("/metrics", headers=bearer("chosen-token-0123456789abcdef")).status_code == 200
    # open only when asked for by name
    with TestClient(_app(world.db, tmp_path, metrics_open=True)) as client:
        assert client.get("/metrics").status_code == 200


def test_metrics_token_is_checked_when_set(world, tmp_path):
    token = "metrics-token-0123456789abcdef"
    with TestClient(_app(world.db, tmp_path, metrics_token=token)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer("metrics-token-wrong-123456789")).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 401
        ok = client.get("/metrics", headers=bearer(token))
        assert ok.status_code == 200 and 'system="非税收入管理系统"' in ok.text
        # OpenMetrics when asked for, as Prometheus does
        om = client.get("/metrics", headers={**bearer(token), "Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
    # a set token wins over metrics_open and no token file is made
    with TestClient(_app(world.db, tmp_path / "other", metrics_token=token, metrics_open=True)) as client:
        assert client.get("/metrics").status_code == 401
    assert not (tmp_path / "other" / "state" / "metrics-token").exists()
    with pytest.raises(ValueError, match="metrics_token"):
        CollectorSettings(state_dir=tmp_path, metrics_token="short")
    assert token not in repr(CollectorSettings(state_dir=tmp_path, metrics_token=token))


# ---- sentinel up, scraped by a real Prometheus ------------------------------------------------------------


def test_sentinel_up_is_scraped_by_a_real_prometheus(tmp_path):
    port = free_port()
    state = tmp_path / "up"
    log = tmp_path / "up.log"
    argv = [sys.executable, "-m", "sentinel.cli", "up", "--state-dir", str(state), "--host", LOOPBACK,
            "--port", str(port), "--interval", "3600"]
    base = f"http://{LOOPBACK}:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        http = httpx.Client(base_url=base, timeout=10, trust_env=False)

        def first_run():
            if proc.poll() is not None:
                raise AssertionError(f"sentinel up exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            token_file = state / "admin-token"
            if not token_file.exists():
                return None
            try:
                runs = http.get("/api/v1/runs", headers=bearer(token_file.read_text().strip())).json()
            except httpx.HTTPError:
                return None
            return runs if isinstance(runs, list) and runs else None

        run = eventually(first_run, timeout=60, interval=0.3, what="the first run of sentinel up")[0]
        assert run["score"] is not None, run
        admin = bearer((state / "admin-token").read_text().strip())
        assessment = http.get(f"/api/v1/systems/{run['system_id']}/assessment", headers=admin).json()
        assert assessment["system"] == "this-host" and not assessment["errors"], assessment
        system_score = assessment["summary"]["score"]
        assert system_score is not None
        assert "/metrics" in log.read_text(), "sentinel up does not say where its metrics are"

        assert http.get("/metrics").status_code == 401, "sentinel up serves /metrics without its token"
        token_file = state / "metrics-token"
        assert str(token_file) in log.read_text(), "sentinel up does not say where its metrics token is"
        live = http.get("/metrics", headers=bearer(token_file.read_text().strip()))
        assert live.status_code == 200
        _promtool_check(live.content)

        config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: sentinel-up
    authorization: {{credentials_file: "{token_file}"}}
    static_configs: [{{targets: ["{LOOPBACK}:{port}"]}}]
"""
        (tmp_path / "prom").mkdir()
        with prometheus(tmp_path / "prom", config) as prom_base:
            api = httpx.Client(base_url=prom_base, timeout=10, trust_env=False)

            def query(promql: str):
                data = api.get("/api/v1/query", params={"query": promql}).json()
                assert data["status"] == "success", data
                return data["data"]["result"]

            host = eventually(lambda: query('sentinel_host_score{department="local",system="this-host"}'),
                              timeout=20, what="the host score in Prometheus")
            assert len(host) == 1 and float(host[0]["value"][1]) == pytest.approx(run["score"])
            system = query('sentinel_system_score{department="local",system="this-host"}')
            assert float(system[0]["value"][1]) == pytest.approx(system_score, abs=0.01)
            assert float(query('up{job="sentinel-up"}')[0]["value"][1]) == 1
            info = query('sentinel_system_info{system="this-host"}')[0]["metric"]
            assert info["level"] == "3" and info["label"] == "S3A3"
            # the agent's own reports were counted by the collector that stored them
            assert float(query('sentinel_ingest_reports_total{kind="host_report"}')[0]["value"][1]) >= 1
            api.close()
        http.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---- event push: real ingest -> real Alertmanager and a webhook ----------------------------------------------


@pytest.fixture(scope="module")
def am(tmp_path_factory):
    with alertmanager(tmp_path_factory.mktemp("alertmanager")) as base:
        client = AlertmanagerClient(base)
        yield base, client
        client.close()


def _alerting(tmp_path: Path, receivers: list[dict], **extra) -> Path:
    path = tmp_path / "alerting.yml"
    doc = {"retry": {"max_attempts": 2, "initial_delay_seconds": 0.1, "max_delay_seconds": 0.2},
           "receivers": receivers, "routes": [{"receivers": [r["name"] for r in receivers]}], **extra}
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


def _events(db) -> list:
    with db.read() as conn:
        return conn.execute(select(Event.__table__).order_by(Event.id)).all()


def _alerts(client: AlertmanagerClient, system: str, alertname: str = "SentinelHighRiskFinding") -> list[dict]:
    return client.get_alerts(filters=(f'alertname="{alertname}"', f'system="{system}"'))


def _high_risk_report(status: str) -> dict:
    """l3-ssh-root is the test baseline's high-risk check (case L3-CES1-11)."""
    return make_report({"l3-ssh-root": status, "l3-pass-age": "pass"})


def test_high_risk_finding_fires_and_resolves_in_alertmanager_and_webhook(world, tmp_path, am, monkeypatch):
    am_base, am_client = am
    hook = Receiver(responses=[(200, {"ok": True})])
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    config = _alerting(tmp_path, [
        {"name": "am", "type": "alertmanager", "url": am_base, "resend_interval_seconds": 0.5},
        {"name": "hook", "type": "webhook", "url": hook.url("/sentinel"), "secret": "${TEST_HOOK_SECRET}"}])
    app = _app(world.db, tmp_path, alerting_config=config, events_poll_seconds=0.1)
    app.state.events_publisher.oneshot_hold = 1.5  # drift notices resolve in Alertmanager after this
    system = "非税收入管理系统"
    try:
        with TestClient(app) as client:
            agent = world.enroll(client, system, "db-01")
            r = client.post(REPORTS, **_signed(agent, _high_risk_report("fail")))
            assert r.status_code == 202, r.text

            firing = eventually(lambda: _alerts(am_client, system), what="the high-risk alert in Alertmanager")[0]
            # the rule's identity (one alert per system and fact); host and check are in the annotations
            assert firing["annotations"]["host"] == "db-01" and firing["annotations"]["check"] == "l3-ssh-root"
            assert set(firing["labels"]) == {"alertname", "department", "system", "level", "severity", "grade"}
            # graded by the table (a high-risk finding on a level-3 system: 较大), not as a national grade-I
            # incident because ingest stores it as `critical`
            assert firing["labels"]["department"] == "财政局" and firing["labels"]["grade"] == "较大"
            assert firing["labels"]["severity"] == "medium"
            assert firing["status"]["state"] == "active"
            eventually(lambda: all(e.delivered for e in _events(world.db)), what="events marked delivered")
            rows = _events(world.db)
            assert {e.kind for e in rows} == {"high_risk_finding", "drift"}
            assert all(e.delivered_at is not None and e.attempts == 1 and e.last_error is None for e in rows)

            posts = hook.wait_for(2)
            first = next(p for p in posts if p.json()["event"]["kind"] == "high_risk_finding")
            assert first.json()["status"] == "firing" and first.json()["event"]["host"] == "db-01"
            # the message can say what was seen and what to do (the baseline's 整改建议)
            payload = first.json()["event"]["payload"]
            assert payload["reason"] and payload["remediation"]["zh"] and payload["level"] == 3, payload
            ts = int(first.headers["X-Sentinel-Timestamp"])
            assert first.headers["X-Sentinel-Signature"] == generic_signature(HOOK_SECRET, ts, first.body)

            # one-shot drift notices end by themselves in Alertmanager
            eventually(lambda: _alerts(am_client, system, "SentinelDrift"), what="drift notice")
            eventually(lambda: not _alerts(am_client, system, "SentinelDrift"), timeout=10,
                       what="drift notice ended after the hold")
            assert _alerts(am_client, system), "the high-risk alert must stay while it is open"

            r = client.post(REPORTS, **_signed(agent, _high_risk_report("pass")))
            assert r.status_code == 202 and r.json()["fixed"] == ["l3-ssh-root"]
            eventually(lambda: not _alerts(am_client, system), what="the alert resolved in Alertmanager")
            resolved = eventually(lambda: [p for p in hook.requests if p.json()["status"] == "resolved"
                                           and p.json()["event"]["kind"] == "high_risk_finding"],
                                  what="resolution at the webhook")[0]
            assert resolved.json()["key"] == first.json()["key"]
            eventually(lambda: all(e.delivered for e in _events(world.db)), what="resolution marked delivered")
            assert len(_events(world.db)) == 4
    finally:
        hook.close()


def _signed(agent, report: dict) -> dict:
    raw, headers = sign(agent.key, envelope(agent.agent_id, report))
    return {"content": raw, "headers": headers}


def test_a_collector_restart_keeps_firing_alerts_alive(world, tmp_path, am):
    am_base, am_client = am
    config = _alerting(tmp_path, [{"name": "am", "type": "alertmanager", "url": am_base,
                                   "resend_interval_seconds": 0.5}])  # endsAt = last push + 2 s
    world.department("卫健委")
    system = "全民健康信息平台"  # a system of its own: the Alertmanager is shared with the other tests
    world.system(system, "卫健委")
    app = _app(world.db, tmp_path, alerting_config=config, events_poll_seconds=0.1)
    with TestClient(app) as client:
        agent = world.enroll(client, system, "app-01")
        assert client.post(REPORTS, **_signed(agent, _high_risk_report("fail"))).status_code == 202
        eventually(lambda: _alerts(am_client, system), what="alert in Alertmanager")
        eventually(lambda: all(e.delivered for e in _events(world.db)), what="events delivered")
    stopped = time.monotonic()  # no more pushes: without a restore the alert ends ~2 s from here

    again = _app(world.db, tmp_path, alerting_config=config, events_poll_seconds=0.1)
    with TestClient(again):
        publisher = again.state.events_publisher
        time.sleep(max(0.0, stopped + 3.5 - time.monotonic()))
        alert = _alerts(am_client, system)
        assert alert and alert[0]["status"]["state"] == "active", "the restart resolved the alert by silence"
        ends = datetime.fromisoformat(alert[0]["endsAt"].replace("Z", "+00:00"))
        assert ends > datetime.now(timezone.utc)
        assert publisher.stats["restored"] >= 1
        assert publisher.stats["dispatched"] == 0, "delivered events were sent again"


def test_a_dead_webhook_never_slows_ingest_and_leaves_events_undelivered(world, tmp_path):
    # a peer that accepts connections and never answers: each delivery attempt hangs until its timeout
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind((LOOPBACK, 0))
    blackhole.listen(64)
    url = f"http://{LOOPBACK}:{blackhole.getsockname()[1]}/hook"
    config = _alerting(tmp_path, [{"name": "dead", "type": "webhook", "url": url, "timeout_seconds": 2}],
                       retry={"max_attempts": 1})
    app = _app(world.db, tmp_path, alerting_config=config, events_poll_seconds=0.05)
    try:
        with TestClient(app) as client:
            agent = world.enroll(client, "非税收入管理系统", "web-1")
            took = []
            for i in range(8):
                # the high-risk finding opens and resolves in turn, the score stays (item a: one of two fails)
                report = make_report({"l3-ssh-root": "fail" if i % 2 == 0 else "pass",
                                      "a": "pass" if i % 2 == 0 else "fail", "b": "pass"})
                start = time.monotonic()
                r = client.post(REPORTS, **_signed(agent, report))
                took.append(time.monotonic() - start)
                assert r.status_code == 202, r.text
            # the first report also loads the baselines and the catalogue (cold start, seconds on a loaded
            # machine); every report raises an event for the dead webhook, so waiting for it would show in all
            assert max(took[1:]) < 1.0, f"ingest waited for the webhook: {took}"
            publisher = app.state.events_publisher
            eventually(lambda: publisher.stats["dispatched"] >= 1, what="events handed to the dead webhook")
            failed = eventually(lambda: [e for e in _events(world.db) if e.attempts >= 1], timeout=15,
                                what="a failed delivery round recorded")
            assert all(not e.delivered and "dead" in e.last_error for e in failed)
            publisher.close(timeout=0.2)  # give up on the queue now rather than at the app's shutdown
    finally:
        blackhole.close()


def test_without_alerting_config_events_stay_undelivered(world, tmp_path):
    app = _app(world.db, tmp_path)
    assert app.state.events_publisher is None
    with TestClient(app) as client:
        agent = world.enroll(client, "非税收入管理系统", "web-1")
        assert client.post(REPORTS, **_signed(agent, _high_risk_report("fail"))).status_code == 202
    rows = _events(world.db)
    assert rows and all(not e.delivered and e.attempts == 0 for e in rows)


def test_a_bad_alerting_config_stops_the_collector_naming_the_field(world, tmp_path):
    from sentinel.events.dispatch import DispatchConfigError

    bad = tmp_path / "alerting.yml"
    bad.write_text("receivers:\n  - {name: am, type: alertmanager, url: 'ftp://x'}\n", encoding="utf-8")
    with pytest.raises(DispatchConfigError, match=r"receivers\.0"):
        _app(world.db, tmp_path, alerting_config=bad)
