"""Issue 13: /metrics showed an always-empty check-duration histogram and an always-empty `agent_version`.
Both are now filled from what agents send, through the collector's real enrollment, ingest and /metrics (on
SQLite and PostgreSQL), and the scrape passes `promtool check metrics`:

- `sentinel_check_duration_seconds{probe}`: each stored host report's result durations, by the probe type the
  collector's baseline gives each check; a report sent again is not counted twice;
- `sentinel_host_info{agent_version}`: the version named by the host's latest inventory (the agent's own
  `sentinel.agent.inventory.collect()` puts sentinel.__version__ there); a malformed one is refused naming
  the field."""
from __future__ import annotations

import subprocess

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sentinel import __version__
from sentinel.agent import inventory
from sentinel.collector.app import create_app
from sentinel.collector.settings import CollectorSettings
from sentinel.wiring import exporters
from tests.collector_helpers import World, bearer, envelope, install_test_baselines, make_report, sign
from tests.obs_support import need

pytest_plugins = ["tests.dbfixtures"]

REPORTS = "/api/v1/agent/reports"


@pytest.fixture
def site(db, tmp_path):
    world = World(db)
    world.department("财政局")
    world.system("非税收入管理系统", "财政局")
    install_test_baselines(tmp_path / "state")
    app = create_app(CollectorSettings(state_dir=tmp_path / "state", metrics_cache_seconds=0), exporters=exporters(),
                     db=db)
    with TestClient(app) as client:
        agent = world.enroll(client, "非税收入管理系统", "web-1")
        scrape = bearer((tmp_path / "state" / "metrics-token").read_text().strip())
        yield client, agent, scrape


def _scrape(client, scrape) -> tuple[bytes, list]:
    response = client.get("/metrics", headers=scrape)
    assert response.status_code == 200, response.text
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=response.content, capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return response.content, [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def _post(client, agent, body, kind="host_report", status=202):
    raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind=kind))
    r = client.post(REPORTS, content=raw, headers=headers)
    assert r.status_code == status, r.text
    return r


def test_check_duration_histogram_is_filled_by_stored_reports(site):
    client, agent, scrape = site
    _, before = _scrape(client, scrape)
    assert not [s for s in before if s.name.startswith("sentinel_check_duration_seconds")]

    report = make_report({"a": "fail", "b": "pass", "c": "pass"})
    for result, ms in zip(report["results"], (0.4, 30.0, 7000.0), strict=True):  # 0.4 ms, 30 ms, 7 s
        result["duration_ms"] = ms
    raw, headers = sign(agent.key, envelope(agent.agent_id, report))
    assert client.post(REPORTS, content=raw, headers=headers).status_code == 202
    assert client.post(REPORTS, content=raw, headers=headers).status_code == 200  # again: not counted again

    _, samples = _scrape(client, scrape)
    hist = {(s.name, s.labels.get("le")): s.value for s in samples
            if s.name.startswith("sentinel_check_duration_seconds") and s.labels.get("probe") == "config.value"}
    assert hist[("sentinel_check_duration_seconds_count", None)] == 3
    assert hist[("sentinel_check_duration_seconds_sum", None)] == pytest.approx(7.0304)
    assert hist[("sentinel_check_duration_seconds_bucket", "0.001")] == 1
    assert hist[("sentinel_check_duration_seconds_bucket", "0.05")] == 2
    assert hist[("sentinel_check_duration_seconds_bucket", "5.0")] == 2
    assert hist[("sentinel_check_duration_seconds_bucket", "30.0")] == 3
    assert hist[("sentinel_check_duration_seconds_bucket", "+Inf")] == 3


def _agent_version(samples) -> str:
    [info] = [s for s in samples if s.name == "sentinel_host_info" and s.labels["host"] == "web-1"]
    return info.labels["agent_version"]


def test_agent_version_comes_from_the_latest_inventory(site):
    client, agent, scrape = site
    _post(client, agent, make_report({"a": "pass"}))
    _, samples = _scrape(client, scrape)
    assert _agent_version(samples) == "", "no inventory yet: not known"

    body = inventory.collect()  # what the agent really sends
    assert body["agent_version"] == __version__
    _post(client, agent, body, kind="inventory")
    _, samples = _scrape(client, scrape)
    assert _agent_version(samples) == __version__

    _post(client, agent, {**body, "agent_version": "0.2.0rc1+kylin"}, kind="inventory")  # an upgraded agent
    _, samples = _scrape(client, scrape)
    assert _agent_version(samples) == "0.2.0rc1+kylin"

    refused = _post(client, agent, {**body, "agent_version": 'x"}\n'}, kind="inventory", status=422)
    assert "agent_version" in refused.json()["detail"]
    _, samples = _scrape(client, scrape)
    assert _agent_version(samples) == "0.2.0rc1+kylin", "a refused inventory changes nothing"


def test_counts_past_a_32_bit_integer_are_refused_not_a_500(site):
    """logins and packages_count are INTEGER columns: 2**31 was accepted by the wire model and then failed
    the PostgreSQL insert (HTTP 500; found by test_collector_fuzz). The largest INTEGER is stored."""
    client, agent, _ = site
    sample = {"at": "2026-11-23T08:00:00+00:00", "cpu_percent": 1.0, "memory_percent": 2.0, "net_bytes_sent": 0,
              "net_bytes_recv": 0, "logins": 2 ** 31}
    refused = _post(client, agent, {"samples": [sample]}, kind="utilisation", status=422)
    assert "logins" in refused.json()["detail"]
    _post(client, agent, {"samples": [{**sample, "logins": 2 ** 31 - 1}]}, kind="utilisation")
    body = {**inventory.collect(), "packages_count": 2 ** 31}
    assert "packages_count" in _post(client, agent, body, kind="inventory", status=422).json()["detail"]
    _post(client, agent, {**body, "packages_count": 2 ** 31 - 1}, kind="inventory")
