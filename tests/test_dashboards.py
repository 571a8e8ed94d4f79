"""Grafana dashboards as code: the committed JSON is what deploy/grafana/generate.py makes, it is well formed
with bilingual titles, and every query names only metrics that exporters/prometheus.py exports. (That every
query parses and returns data in a real Prometheus is tested in test_metrics_prometheus.py, which shares one
Prometheus between its tests.)"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sentinel.exporters.prometheus import METRICS

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
EXPORTED = {m.name for m in METRICS} | {m.name + s for m in METRICS if m.type == "histogram"
                                        for s in ("_bucket", "_count", "_sum")}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def _exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in _panels(dash) for t in p.get("targets", [])]


def _var_queries(dash: dict) -> list[str]:
    return [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # dashboard variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+(e\d+)?", m.group(0)):
            continue
        names.add(m.group(0))
    return names


def test_metric_name_extraction_itself():
    assert metric_names('sum by (le, probe) '
                        '(rate(sentinel_check_duration_seconds_bucket{a="b c"}[$__rate_interval]))') \
        == {"sentinel_check_duration_seconds_bucket"}
    assert metric_names("count(node_load1 == 0) or vector(0)") == {"node_load1"}
    assert metric_names('x / ignoring (state) (sum without (state) (y{s="1"}) > 0)') == {"x", "y"}


def test_committed_json_matches_the_generator():
    proc = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(DASHBOARDS) == 8  # overview, system, host, exposure, agents, rectification, websites, domestic


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed_and_bilingual(path: Path):
    dash = _load(path)
    assert dash["uid"] == path.stem and dash["schemaVersion"] >= 36
    assert CJK.search(dash["title"]) and re.search(r"[A-Za-z]{3}", dash["title"]) and " / " in dash["title"]
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids))
    for p in _panels(dash):
        assert CJK.search(p["title"]) and re.search(r"[A-Za-z]{2}", p["title"]), p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names[0] == "datasource"
    for expr in _exprs(dash):
        for var in re.findall(r"\$(\w+)", expr):
            assert var in names or var.startswith("__"), f"{expr}: unknown variable ${var}"


def test_every_query_names_only_exported_metrics():
    used = set()
    for path in DASHBOARDS:
        dash = _load(path)
        for expr in _exprs(dash) + _var_queries(dash):
            if expr.startswith("label_values("):
                expr = expr[len("label_values("):].rsplit(",", 1)[0]
            names = metric_names(expr)
            assert names, f"{path.name}: {expr} names no metric"
            assert names <= EXPORTED, f"{path.name}: {expr} names {sorted(names - EXPORTED)}"
            used |= names
    # the dashboards show most of what is exported (the remainder is named here on purpose)
    unused = {m.name for m in METRICS} - {n.removesuffix("_bucket") for n in used}
    assert unused <= {"sentinel_snapshot_timestamp_seconds", "sentinel_snapshot_errors_total",
                      "sentinel_host_conclusion", "sentinel_check_last_duration_seconds",
                      "sentinel_scan_last_run_timestamp_seconds"}, sorted(unused)


def test_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "sentinel.yml").read_text(encoding="utf-8"))
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sentinel.yml").read_text(encoding="utf-8"))
    provider = prov["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/sentinel"


# Variable values for running the queries: a system with a high-risk finding, a forbidden port and a silent host
VARS = {"department": ".*", "system": "预算一体化平台", "host": "web-02.sys1", "__rate_interval": "1m"}


def _substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARS[m.group(1)], expr)
