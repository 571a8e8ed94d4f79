"""A real Prometheus (Debian package) on 127.0.0.1 scrapes the rendered metrics of a realistic snapshot from a
loopback HTTP server. PromQL over its HTTP API returns the seeded figures, the shipped alert rules fire on
them, and every Grafana panel query parses and returns data. One Prometheus serves all tests here: it
takes about five seconds before its first scrape."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from sentinel.exporters.prometheus import make_registry, render
from tests.obs_support import MetricsServer, eventually, prometheus, realistic_snapshot
from tests.test_dashboards import DASHBOARDS, _exprs, _load, _substitute, _var_queries

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "sentinel-rules.yml"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    now = datetime.now(timezone.utc)  # certificate expiry alerts compare with the real clock
    registry = make_registry(lambda: realistic_snapshot(now), per_check=True)
    server = MetricsServer(lambda accept: render(registry, accept))
    config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: sentinel
    static_configs: [{{targets: ["127.0.0.1:{server.port}"]}}]
"""
    try:
        with prometheus(tmp_path_factory.mktemp("prometheus"), config) as base:
            client = httpx.Client(base_url=base, timeout=10, trust_env=False)
            eventually(lambda: len(server.scrapes) >= 3, what="three scrapes")  # rate() needs two samples
            yield client, server
            client.close()
    finally:
        server.close()


def _query(client: httpx.Client, promql: str) -> list[dict]:
    data = client.get("/api/v1/query", params={"query": promql}).json()
    assert data["status"] == "success", data
    return data["data"]["result"]


def test_prometheus_scrapes_and_answers_promql(prom):
    client, server = prom
    result = _query(client, 'sentinel_system_score{system="非税收入管理系统"}')
    assert len(result) == 1
    assert float(result[0]["value"][1]) == 82.5
    assert result[0]["metric"]["department"] == "财政局"
    assert result[0]["metric"]["job"] == "sentinel"

    up = _query(client, 'up{job="sentinel"}')
    assert float(up[0]["value"][1]) == 1, "the scrape itself failed"
    # Prometheus negotiated OpenMetrics with the renderer and got it
    assert "openmetrics" in server.scrapes[0]

    by_dept = {r["metric"]["department"]: float(r["value"][1])
               for r in _query(client, "avg by (department) (sentinel_system_score)")}
    assert by_dept == {"财政局": pytest.approx((82.5 + 64.0) / 2), "卫健委": pytest.approx((91.0 + 75.5) / 2),
                       "公安局": 88.0}
    joined = _query(client, 'sentinel_system_score * on (department, system) group_left (level, label) '
                            'sentinel_system_info{level="4"}')
    assert [(r["metric"]["system"], r["metric"]["label"]) for r in joined] == [("视频监控联网平台", "S4A4")]
    fixed = _query(client, 'sum(sentinel_system_findings{state="fixed"}) / sum(sentinel_system_findings)')
    assert float(fixed[0]["value"][1]) == pytest.approx(150 / (150 + 33))


def test_shipped_rules_fire_in_a_real_prometheus(prom):
    client, _ = prom

    def firing():
        alerts = client.get("/api/v1/alerts").json()["data"]["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("system")) for a in alerts if a["state"] == "firing"}

    alerts = eventually(lambda: (f := firing()) and ("SentinelForbiddenServiceOpen", "预算一体化平台") in f and f,
                        what="SentinelForbiddenServiceOpen firing")
    assert ("SentinelHighRiskFinding", "预算一体化平台") in alerts
    assert ("SentinelCertificateExpiringSoon", "非税收入管理系统") in alerts
    assert not {a for a in alerts if a[0] == "SentinelForbiddenServiceOpen" and a[1] != "预算一体化平台"}
    rules = client.get("/api/v1/rules").json()["data"]["groups"]
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), "a rule failed to evaluate"


def test_every_dashboard_query_runs_and_returns_data(prom):
    client, _ = prom
    empty, failed = [], []
    for path in DASHBOARDS:
        dash = _load(path)
        for expr in _exprs(dash):
            res = client.get("/api/v1/query", params={"query": _substitute(expr)}).json()
            if res.get("status") != "success":
                failed.append((path.name, expr, res.get("error")))
            elif not res["data"]["result"]:
                empty.append((path.name, expr))
        for definition in _var_queries(dash):
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", definition)
            resp = client.get(f"/api/v1/label/{m.group(2)}/values", params={"match[]": _substitute(m.group(1))}).json()
            assert resp["status"] == "success" and resp["data"], definition
    assert not failed, failed
    assert not empty, empty


def test_count_panels_show_zero_not_no_data_where_nothing_matches(prom):
    """A stat panel that counts or sums (findings, services, hosts, certificates...) must answer a number for
    a selection with nothing in it (a department without scans, a system without findings): the truth is 0
    (or 100 % fixed), not Grafana's "No data" or NaN."""
    import math

    client, _ = prom
    nothing = {"department": "无此部门", "system": "无此系统", "host": "无此主机", "__rate_interval": "1m"}
    bad = []
    for path in DASHBOARDS:
        for p in _load(path)["panels"]:
            if p["type"] != "stat":
                continue
            for t in p["targets"]:
                if not re.match(r"(sum|count)\(", t["expr"]):
                    continue
                promql = re.sub(r"\$\{?(\w+)\}?", lambda m: nothing[m.group(1)], t["expr"])
                result = _query(client, promql)
                if len(result) != 1 or math.isnan(float(result[0]["value"][1])):
                    bad.append((path.name, p["title"], result))
    assert not bad, bad
