"""The Alertmanager-webhook relay, end to end: a real Alertmanager (Debian package) with the shipped
deploy/alertmanager/alertmanager.yml (its relay URL pointed at a collector on loopback, its token and CA
files put where a deployment puts them) notifies a real collector served over TLS with its own CA; the
collector relays each notification to the chat robots its dispatch configuration routes it to (by the
Alertmanager receiver, `relayed_from`), signed, and never back to an Alertmanager."""
from __future__ import annotations

import re
import shutil
import ssl
import threading
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from sentinel.collector.app import create_app
from sentinel.collector.settings import CollectorSettings
from sentinel.collector.tls import init_pki
from sentinel.exporters.webhooks import dingtalk_sign
from sentinel.store.db import Database
from sentinel.wiring import exporters
from tests.obs_support import LOOPBACK, Receiver, alertmanager, eventually, free_port, shipped_am_config

pytest_plugins = ["tests.dbfixtures"]

TOKEN = "relay-token-for-the-relay-test"
ROBOT_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"  # made up for the test
ROBOT_SECRET = "SEC" + "fedcba9876543210" * 4  # made up for the test


@pytest.fixture
def sqlite_db(tmp_path, _sqlite_template):
    path = tmp_path / "sentinel.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def _alert(alertname: str, **labels: str) -> dict:
    now = datetime.now(timezone.utc)
    ends = now + timedelta(minutes=10)
    return {"labels": {"alertname": alertname, **labels},
            "annotations": {"summary": f"{alertname} summary", "description": "from the rules"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(), "endsAt": ends.isoformat()}


def _serve(app, port: int, tls: Path):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on",
                                           ssl_certfile=str(tls / "server.crt"), ssl_keyfile=str(tls / "server.key")))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, what="the collector listening")
    return server, thread


def test_alertmanager_notifications_reach_the_routed_robots_through_the_collector(sqlite_db, tmp_path):
    state = tmp_path / "state"
    init_pki(state / "tls", names=[LOOPBACK])
    (state / "relay-token").write_text(TOKEN + "\n")
    port = free_port()
    relay_url = f"https://{LOOPBACK}:{port}/api/v1/alertmanager/webhook"
    am_config = shipped_am_config(tmp_path, relay_url, tls_dir=state / "tls", token=TOKEN)
    am_config = re.sub(r"group_wait: \d+[sm]", "group_wait: 1s", am_config)
    am_config = re.sub(r"group_interval: \d+[sm]", "group_interval: 1s", am_config)
    robots = Receiver()  # answers {"errcode": 0}: what DingTalk says, and a 200 for the generic webhooks
    (tmp_path / "am").mkdir()
    try:
        with alertmanager(tmp_path / "am", am_config) as am_base:
            dispatch = {
                "retry": {"max_attempts": 2, "initial_delay_seconds": 0.1},
                "receivers": [
                    # the collector's own push: the relay must never send Alertmanager's alerts back there
                    {"name": "am", "type": "alertmanager", "url": am_base},
                    {"name": "oncall-ding", "type": "dingtalk", "secret": ROBOT_SECRET,
                     "url": robots.url(f"/robot/send?access_token={ROBOT_TOKEN}")},
                    {"name": "finance-hook", "type": "webhook", "url": robots.url("/finance")},
                    {"name": "ops-hook", "type": "webhook", "url": robots.url("/ops")}],
                "routes": [{"receivers": ["am"], "continue": True},
                           {"relayed_from": ["oncall-urgent"], "receivers": ["oncall-ding"]},
                           {"relayed_from": ["finance-team"], "receivers": ["finance-hook"]}],
                "default_receivers": ["ops-hook"]}
            (tmp_path / "alerting.yml").write_text(yaml.safe_dump(dispatch, allow_unicode=True))
            settings = CollectorSettings(state_dir=state, alerting_config=tmp_path / "alerting.yml",
                                         events_poll_seconds=0.2)
            server, thread = _serve(create_app(settings, exporters=exporters(), db=sqlite_db), port, state / "tls")
            try:
                ca = ssl.create_default_context(cafile=str(state / "tls" / "ca.crt"))
                collector = httpx.Client(verify=ca, timeout=10, trust_env=False)
                notice = {"version": "4", "receiver": "ops-default", "status": "firing", "alerts": []}
                assert collector.post(relay_url, json=notice).status_code == 401
                assert collector.post(relay_url, json=notice,
                                      headers={"Authorization": "Bearer " + "x" * 30}).status_code == 401
                bad = collector.post(relay_url, json={"alerts": []}, headers={"Authorization": f"Bearer {TOKEN}"})
                assert bad.status_code == 422 and "version 4" in bad.text

                am = httpx.Client(base_url=am_base, timeout=10, trust_env=False)
                # as Prometheus sends the shipped rules' alerts: a 重大 finding of 财政局 pages on-call and the
                # department (two Alertmanager receivers), a 一般 notice of 公安局 goes to ops-default
                high = _alert("SentinelHighRiskFinding", department="财政局", system="非税收入管理系统", level="4",
                              severity="high", grade="重大")
                stale = _alert("SentinelScanStale", department="公安局", system="视频监控联网平台", level="3",
                               severity="low", grade="一般")
                assert am.post("/api/v2/alerts", json=[high, stale]).status_code == 200

                def by_path() -> dict[str, list]:
                    out: dict[str, list] = {}
                    for r in list(robots.requests):
                        out.setdefault(urllib.parse.urlsplit(r.path).path, []).append(r)
                    return out
                def all_told():
                    paths = by_path()
                    return paths if {"/robot/send", "/finance", "/ops"} <= set(paths) else None
                got = eventually(all_told, timeout=30, what="each robot told")

                ding = got["/robot/send"][0]
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(ding.path).query))
                assert query["access_token"] == ROBOT_TOKEN
                assert urllib.parse.quote_plus(query["sign"]) == dingtalk_sign(ROBOT_SECRET, int(query["timestamp"]))
                text = ding.json()["markdown"]["text"]
                assert "SentinelHighRiskFinding summary" in text and "财政局" in text and "非税收入管理系统" in text
                finance = got["/finance"][0].json()
                assert finance["status"] == "firing" and finance["event"]["kind"] == "prometheus_alert"
                assert finance["event"]["payload"]["receiver"] == "finance-team"
                assert finance["event"]["payload"]["alertname"] == "SentinelHighRiskFinding"
                ops = got["/ops"][0].json()
                assert ops["event"]["payload"]["alertname"] == "SentinelScanStale"
                assert ops["event"]["department"] == "公安局"

                # resolved in Alertmanager: the department's robot hears it (send_resolved)
                ended = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
                assert am.post("/api/v2/alerts", json=[{**high, "endsAt": ended}]).status_code == 200
                eventually(lambda: any(r.json()["status"] == "resolved" for r in by_path().get("/finance", [])),
                           timeout=30, what="the resolution relayed")

                # nothing the relay handled went back to Alertmanager as a pushed alert
                pushed = am.get("/api/v2/alerts", params={"filter": 'source="sentinel"'}).json()
                assert pushed == [], pushed
                am.close()
                collector.close()
            finally:
                server.should_exit = True
                thread.join(timeout=20)
    finally:
        robots.close()


def test_the_relay_needs_alerting_config(sqlite_db, tmp_path):
    """Without a dispatch configuration there is nothing to relay to: no route, no token made."""
    from fastapi.testclient import TestClient

    state = tmp_path / "state"
    app = create_app(CollectorSettings(state_dir=state), exporters=exporters(), db=sqlite_db)
    with TestClient(app) as client:
        r = client.post("/api/v1/alertmanager/webhook", json={"version": "4", "alerts": []})
        assert r.status_code in (404, 405)
    assert not (state / "relay-token").exists()
