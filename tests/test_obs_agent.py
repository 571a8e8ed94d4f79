"""The agent side of situational awareness: `host_root` (checking a mounted root, as the Kubernetes DaemonSet does)
and the agent's own /metrics (`metrics_port`), against a real collector on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.agent.config import BaselineSchedule, ConfigError, load_settings
from sentinel.agent.daemon import Agent
from sentinel.agent.enroll import Identity
from sentinel.agent.enroll import enroll as do_enroll
from sentinel.agent.exporter import AgentExporter
from sentinel.allinone import DEPARTMENT, SYSTEM, LocalCollector
from sentinel.collector.metrics import metrics_token_path
from sentinel.wiring import exporters
from tests.collector_helpers import bearer, make_report
from tests.obs_support import LOOPBACK, eventually, free_port, need

ROOT = "debian12-hardened"
ROOT_HOSTNAME = "debian12-web01"  # the root's /etc/hostname, not this machine's


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10, trust_env=False)


def test_host_root_and_metrics_port_are_checked_at_load(tmp_path):
    with pytest.raises(ConfigError, match="host_root"):
        load_settings(None, default_file=False, state_dir=tmp_path, host_root="relative/root")
    with pytest.raises(ConfigError, match="host_root"):
        load_settings(None, default_file=False, state_dir=tmp_path, host_root=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="metrics_port"):
        load_settings(None, default_file=False, state_dir=tmp_path, metrics_port=70000)
    config = tmp_path / "agent.yaml"
    config.write_text(f"host_root: {tmp_path}\nmetrics_port: 22239\n", encoding="utf-8")
    settings = load_settings(config)
    assert settings.host_root == tmp_path and settings.metrics_port == 22239
    assert settings.metrics_address == "127.0.0.1"


def test_agent_exporter_before_and_after_the_first_report(tmp_path):
    settings = load_settings(None, default_file=False, state_dir=tmp_path, metrics_port=free_port())
    identity = Identity(agent_id="a1", collector_url="http://127.0.0.1:1", system="门户网站", department="财政局",
                        enrolled_at=datetime.now(timezone.utc))
    exporter = AgentExporter(settings, identity, exporters().metrics)
    exporter.start()
    url = f"http://{LOOPBACK}:{exporter.port}/metrics"
    try:
        before = _samples(_get(url).text)
        assert before[("sentinel_up", ())] == 1, "no report yet is not a failure to read state"
        assert before[("sentinel_system_info", (("department", "财政局"), ("label", ""), ("level", ""),
                                                ("system", "门户网站")))] == 1
        assert not [k for k in before if k[0].startswith("sentinel_host_")]

        exporter.save(make_report({"a": "fail", "b": "pass"}, score=64.0, conclusion="差", hostname="web-9"))
        assert (tmp_path / "last-report.json").stat().st_mode & 0o077 == 0
        after = _samples(_get(url).text)
        labels = (("department", "财政局"), ("host", "web-9"), ("system", "门户网站"))
        assert after[("sentinel_host_score", labels)] == 64
        assert not [k for k in after if k[0].startswith("sentinel_system_score")], \
            "an agent never claims a system score"
    finally:
        exporter.stop()
    with pytest.raises(ValueError, match="department/system"):
        AgentExporter(settings, identity.model_copy(update={"department": None}), exporters().metrics)


def test_agent_with_host_root_checks_the_mounted_root_and_serves_its_metrics(tmp_path, fixture_root):
    root = fixture_root(ROOT)
    collector = LocalCollector(tmp_path / "collector", exporters(), host=LOOPBACK, port=0)
    daemon = None
    try:
        collector.prepare()
        enroll_token, admin = collector.bootstrap(want_token=True, want_admin=True)
        collector.start()
        settings = load_settings(None, default_file=False, state_dir=tmp_path / "agent", host_root=str(root),
                                 metrics_port=free_port(), jitter=0,
                                 baselines=[BaselineSchedule(baseline="dengbao-l3-linux", interval=3600)])
        do_enroll(settings, enroll_token, collector.url, force=True)
        daemon = Agent(settings, metrics=exporters().metrics)
        daemon.start()
        api = httpx.Client(base_url=collector.url, headers=bearer(admin), timeout=10, trust_env=False)
        run = eventually(lambda: api.get("/api/v1/runs").json(), timeout=60, what="the agent's run stored")[0]

        # the report is the mounted root's: its host name and OS, and live-only facts not guessed
        detail = api.get(f"/api/v1/runs/{run['id']}").json()
        host = api.get("/api/v1/hosts").json()[0]
        assert host["hostname"] == ROOT_HOSTNAME and host["os_id"] == "debian"
        results = api.get(f"/api/v1/runs/{run['id']}/results", params={"status": "not_applicable"}).json()
        live_only = [r for r in results if "live-host fact" in (r["reason"] or "")]
        assert live_only, "live-only checks of an offline root must be not_applicable"
        assert detail["summary"]["counts"]["not_applicable"] >= len(live_only)
        api.close()

        # the agent's own /metrics: the same figures, from its latest report, promtool-clean
        saved = json.loads((settings.state_dir / "last-report.json").read_text(encoding="utf-8"))
        assert saved["report_id"] == run["report_id"]
        body = _get(f"http://{LOOPBACK}:{settings.metrics_port}/metrics").content
        labels = (("department", DEPARTMENT), ("host", ROOT_HOSTNAME), ("system", SYSTEM))
        assert _samples(body.decode())[("sentinel_host_score", labels)] == pytest.approx(run["score"])
        proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        # and the collector's /metrics (with its scrape token, made at start) says the same about the host
        token = metrics_token_path(collector.settings).read_text(encoding="utf-8").strip()
        collected = _samples(httpx.get(f"{collector.url}/metrics", headers=bearer(token), timeout=10,
                                       trust_env=False).text)
        assert collected[("sentinel_host_score", labels)] == pytest.approx(run["score"])
    finally:
        if daemon is not None:
            daemon.stop()
        collector.close()
    with pytest.raises(httpx.HTTPError):  # stopping the agent stops its exporter
        _get(f"http://{LOOPBACK}:{settings.metrics_port}/metrics")
