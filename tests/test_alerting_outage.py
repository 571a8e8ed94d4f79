"""A collector outage, end to end: a real Prometheus with the shipped rules scrapes sentinel's /metrics and
sends to a real Alertmanager with the shipped config (receivers pointed at a local webhook). Stop the
/metrics server: one outage alert pages, the compliance alerts stay firing (last known state) and are held
back by the inhibition, and nobody is told "resolved"."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from sentinel.exporters.prometheus import make_registry, render
from tests.obs_support import (
    MetricsServer,
    Receiver,
    alertmanager,
    eventually,
    prometheus,
    realistic_snapshot,
    shipped_am_config,
)

pytest_plugins = ["tests.dbfixtures"]

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "sentinel-rules.yml"
SYSTEM = "预算一体化平台"  # realistic_snapshot: 2 high-risk findings, 1 forbidden service


def _fast_rules(tmp: Path) -> Path:
    """The shipped rules with `for:` cut to seconds, so the test does not wait minutes; nothing else changed."""
    text = re.sub(r"for: \d+[mh]\b", "for: 3s", RULES.read_text(encoding="utf-8"))
    path = tmp / "sentinel-rules.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _am_config(receiver: Receiver, tmp: Path) -> str:
    """The shipped Alertmanager config, its relay URL pointed at the local receiver, its waits cut to 1 s."""
    text = shipped_am_config(tmp, receiver.url("/relay"))
    text = re.sub(r"group_wait: \d+[sm]", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \d+[sm]", "group_interval: 1s", text)
    return text


def _notified(receiver: Receiver) -> list[tuple[str, str, str]]:
    """(status, alertname, system) of every alert in every webhook notification so far."""
    out = []
    for r in list(receiver.requests):
        for a in r.json()["alerts"]:
            out.append((a["status"], a["labels"]["alertname"], a["labels"].get("system", "")))
    return out


@pytest.fixture
def stack(tmp_path):
    now = datetime.now(timezone.utc)  # certificate rules compare with the real clock
    registry = make_registry(lambda: realistic_snapshot(now))
    server = MetricsServer(lambda accept: render(registry, accept))
    hook = Receiver(responses=[(200, {})])
    (tmp_path / "am").mkdir()
    (tmp_path / "prom").mkdir()
    with alertmanager(tmp_path / "am", _am_config(hook, tmp_path)) as am_base:
        am_port = am_base.rsplit(":", 1)[1]
        config = f"""
global: {{scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 1s}}
rule_files: ["{_fast_rules(tmp_path / 'prom')}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
scrape_configs:
  - job_name: sentinel
    static_configs: [{{targets: ["127.0.0.1:{server.port}"]}}]
"""
        with prometheus(tmp_path / "prom", config) as prom_base:
            yield server, hook, httpx.Client(base_url=prom_base, timeout=10, trust_env=False), \
                httpx.Client(base_url=am_base, timeout=10, trust_env=False)
    hook.close()


def _prom_alerts(prom: httpx.Client) -> dict[tuple[str, str], str]:
    data = prom.get("/api/v1/alerts").json()["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("system", "")): a["state"] for a in data}


def test_stopping_the_collector_pages_once_and_resolves_nothing(stack):
    server, hook, prom, am = stack
    up_alerts = {("firing", "SentinelHighRiskFinding", SYSTEM), ("firing", "SentinelForbiddenServiceOpen", SYSTEM)}
    eventually(lambda: up_alerts <= set(_notified(hook)), timeout=40,
               what="the high-risk finding and the forbidden port notified while the collector is up")
    # every `for:` has run out and Alertmanager has told what was firing before the outage
    eventually(lambda: _prom_alerts(prom) and "pending" not in _prom_alerts(prom).values(), timeout=20,
               what="no pending alert")
    time.sleep(4)
    before = len(hook.requests)

    server.close()  # the collector stops: scrapes are refused from now on

    def paged_at() -> int:
        """How many requests the receiver had got once the outage page arrived (0: not yet)."""
        for i, r in enumerate(list(hook.requests)[before:], start=before):
            if any(a["status"] == "firing" and a["labels"]["alertname"] == "SentinelCollectorDown"
                   for a in r.json()["alerts"]):
                return i + 1
        return 0
    paged = eventually(paged_at, timeout=40, what="the outage paged")
    # give every rule several evaluations and Alertmanager several group intervals with the collector gone
    eventually(lambda: len(prom.get("/api/v1/query", params={"query": "up == 0"}).json()["data"]["result"]) and
               _prom_alerts(prom).get(("SentinelCollectorDown", "")) == "firing", timeout=20)
    time.sleep(8)

    states = _prom_alerts(prom)
    for kept in ("SentinelHighRiskFinding", "SentinelForbiddenServiceOpen"):
        assert states.get((kept, SYSTEM)) == "firing", f"{kept} did not keep its last known state: {states}"
    after = _notified(hook)[before:]
    assert not [n for n in after if n[0] == "resolved"], f"'resolved' sent during the outage: {after}"
    # once the outage page is out, everything else is held back (an alert whose `for:` ran out in the
    # seconds between the stop and the page may still have been told, as it should)
    since_page = [(a["status"], a["labels"]["alertname"]) for r in list(hook.requests)[paged:]
                  for a in r.json()["alerts"]]
    assert {n[1] for n in since_page} <= {"SentinelCollectorDown"}, f"not held back by the outage: {since_page}"

    # in Alertmanager the compliance alerts are active but inhibited by the outage alert
    alerts = am.get("/api/v2/alerts", params={"filter": 'alertname="SentinelHighRiskFinding"'}).json()
    mine = [a for a in alerts if a["labels"].get("system") == SYSTEM]
    assert mine and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in mine), \
        json.dumps(mine, ensure_ascii=False)


# ---- the same with the real collector: its /metrics over HTTP, stopped for real ----------------------------

@pytest.fixture
def sqlite_db(tmp_path, _sqlite_template):
    import shutil

    from sentinel.store.db import Database

    path = tmp_path / "sentinel.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def test_stopping_the_real_collector_pages_once_and_resolves_nothing(sqlite_db, tmp_path):
    """A seeded collector (a real ingest of a report with a high-risk finding) served by uvicorn on loopback,
    scraped with its metrics token by a real Prometheus with the shipped rules; the shipped Alertmanager
    config. Stop the collector: one outage page, the high-risk alert stays firing, nothing "resolved"."""
    import threading

    import uvicorn
    from fastapi.testclient import TestClient

    from tests.collector_helpers import World
    from tests.obs_support import free_port
    from tests.test_obs_collector import _app, _high_risk_report, _signed

    world = World(sqlite_db)
    world.department("财政局")
    system = "非税收入管理系统"
    world.system(system, "财政局")
    token = "metrics-token-for-the-outage-test"
    app = _app(sqlite_db, tmp_path, metrics_token=token)
    with TestClient(app) as client:
        agent = world.enroll(client, system, "db-01")
        r = client.post("/api/v1/agent/reports", **_signed(agent, _high_risk_report("fail")))
        assert r.status_code == 202, r.text

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(sqlite_db, tmp_path, metrics_token=token), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, what="the collector listening")
    (tmp_path / "token").write_text(token)
    hook = Receiver(responses=[(200, {})])
    (tmp_path / "am").mkdir()
    (tmp_path / "prom").mkdir()
    try:
        with alertmanager(tmp_path / "am", _am_config(hook, tmp_path)) as am_base:
            config = f"""
global: {{scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 1s}}
rule_files: ["{_fast_rules(tmp_path / 'prom')}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["{am_base.split('//')[1]}"]}}]}}]
scrape_configs:
  - job_name: sentinel
    authorization: {{credentials_file: "{tmp_path / 'token'}"}}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
            with prometheus(tmp_path / "prom", config) as prom_base:
                prom = httpx.Client(base_url=prom_base, timeout=10, trust_env=False)
                eventually(lambda: ("firing", "SentinelHighRiskFinding", system) in _notified(hook), timeout=40,
                           what="the high-risk finding paged while the collector is up")
                eventually(lambda: "pending" not in _prom_alerts(prom).values(), timeout=20, what="no pending")
                time.sleep(4)
                before = len(hook.requests)

                server.should_exit = True  # the collector stops
                thread.join(timeout=20)
                assert not thread.is_alive()

                eventually(lambda: any(n[:2] == ("firing", "SentinelCollectorDown")
                                       for n in _notified(hook)[before:]), timeout=40, what="the outage paged")
                time.sleep(8)
                assert _prom_alerts(prom).get(("SentinelHighRiskFinding", system)) == "firing"
                after = _notified(hook)[before:]
                assert not [n for n in after if n[0] == "resolved"], f"'resolved' sent during the outage: {after}"
                prom.close()
    finally:
        server.should_exit = True
        hook.close()
