"""Alert rules and configs under deploy/: promtool check/test rules, promtool check config, amtool check-config
and routing, every alert unit-tested, and every metric a rule names is one that sentinel exports."""
from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from sentinel.agent.exporter import SPOOL_METRICS
from sentinel.events import grading
from sentinel.exporters.prometheus import METRICS
from tests.obs_support import need

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROM = DEPLOY / "prometheus"
RULES = PROM / "sentinel-rules.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
AM_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=cwd)


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def test_promtool_check_rules_with_all_lints_fatal():
    proc = _run(need("promtool"), "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules():
    assert RULE_TESTS, "no rule unit tests under deploy/prometheus/tests"
    proc = _run(need("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("before, after, alert", [
    ("last_over_time(sentinel_system_forbidden_services[1h]) > 0",
     "last_over_time(sentinel_system_forbidden_services[1h]) > 1", "SentinelForbiddenServiceOpen"),
    # without last_over_time a collector outage (stale series) resolves the alert: the watchdog test fails
    ("last_over_time(sentinel_system_high_risk_findings[1h]) > 0", "sentinel_system_high_risk_findings > 0",
     "SentinelHighRiskFinding"),
    ('up{job=~"sentinel|sentinel-collector"} == 0', 'up{job="sentinel-collector"} == 0', "SentinelCollectorDown"),
])
def test_promtool_test_rules_catches_a_broken_rule(tmp_path: Path, before: str, after: str, alert: str):
    """The unit tests are not vacuous: loosen one rule and they fail, naming its alert."""
    (tmp_path / "tests").mkdir()
    shipped = RULES.read_text(encoding="utf-8")
    broken = shipped.replace(before, after)
    assert broken != shipped
    (tmp_path / "sentinel-rules.yml").write_text(broken, encoding="utf-8")
    for t in RULE_TESTS:
        shutil.copy(t, tmp_path / "tests" / t.name)
    proc = _run(need("promtool"), "test", "rules", *[str(tmp_path / "tests" / t.name) for t in RULE_TESTS])
    assert proc.returncode != 0 and alert in proc.stdout + proc.stderr


def test_every_alert_has_a_firing_unit_test():
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for t in case.get("alert_rule_test", []):
                if t.get("exp_alerts"):
                    tested.add(t["alertname"])
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert alerts - tested == set(), "alerts without a test that makes them fire"


def test_rules_name_only_exported_metrics_and_carry_grades():
    exported = {m.name for m in METRICS} | {m.name + s for m in METRICS if m.type == "histogram"
                                            for s in ("_bucket", "_count", "_sum")}
    exported |= set(SPOOL_METRICS)  # the agent's own /metrics (sentinel/agent/exporter.py)
    for rule in _rules():
        names = set(re.findall(r"\bsentinel_[a-z_]+\b", rule["expr"]))
        # the watchdog reads Prometheus's own `up` of the collector's scrape job
        assert names or rule["expr"].startswith("up{job="), f"{rule.get('alert')}: names no sentinel metric"
        assert names <= exported, f"{rule.get('alert')}: unknown metrics {sorted(names - exported)}"
        labels = rule["labels"]
        # the graded-response table decides severity and grade (by `level` for alerts about a system)
        assert rule["alert"] in grading.CLASS_OF, f"{rule['alert']}: not in exporters/grading.py's table"
        assert {k: labels[k] for k in ("severity", "grade")} == grading.rule_labels(rule["alert"]), rule["alert"]
        if grading.CLASS_OF[rule["alert"]] != "platform":
            assert "group_left(level) last_over_time(sentinel_system_info[1h])" in rule["expr"], rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"])


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-federation.yml", "prometheus-remote-write.yml"])
def test_prometheus_configs_are_valid(name):
    # --syntax-only: the CA and password files the examples name exist on a real site, not here
    proc = _run(need("promtool"), "check", "config", "--syntax-only", name, cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = yaml.safe_load((PROM / name).read_text(encoding="utf-8"))
    assert "sentinel-rules.yml" in cfg["rule_files"]


def test_prometheus_config_check_fails_on_a_bad_config(tmp_path: Path):
    (tmp_path / "bad.yml").write_text("scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n")
    proc = _run(need("promtool"), "check", "config", "--syntax-only", "bad.yml", cwd=tmp_path)
    assert proc.returncode != 0


def test_file_sd_example_targets_parse():
    groups = yaml.safe_load((PROM / "targets" / "sentinel-agents.example.yml").read_text(encoding="utf-8"))
    assert all(re.fullmatch(r"[\w.-]+:22239", t) for g in groups for t in g["targets"])


def test_alertmanager_config_and_routing():
    amtool = need("amtool")
    proc = _run(amtool, "check-config", str(AM_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def route(*labels: str) -> str:
        p = _run(amtool, "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    assert route("grade=重大", "department=财政局") == "oncall-urgent,finance-team"
    assert route("grade=特别重大", "department=公安局") == "oncall-urgent"
    assert route("grade=一般", "department=卫健委") == "health-team"
    assert route("grade=较大", "department=公安局") == "ops-default"
    # the watchdog pages on-call although it is graded 较大 (it blinds every system, but loses nothing itself)
    assert route("alertname=SentinelCollectorDown", "grade=较大") == "oncall-urgent"
    assert route("alertname=SentinelCollectorMetricsAbsent", "grade=较大") == "oncall-urgent"
    assert route("alertname=SentinelReportsRejected", "grade=较大") == "oncall-urgent"
    assert route("alertname=SentinelStateUnreadable", "grade=较大") == "oncall-urgent"
    assert route("alertname=SentinelAgentSpoolDropping", "grade=较大") == "ops-default"
    # a missed RPO or a broken replica: the backup operators, and the system's department as well
    assert route("alertname=SentinelSystemMissesRPO", "grade=一般", "department=卫健委") == "dr-team,health-team"
    assert route("alertname=SentinelReplicationBroken", "grade=较大", "department=公安局") == "dr-team"
    # a 通报 problem overdue: the department that must rectify it (a level 4 system's is 较大, still not on-call)
    assert route("alertname=SentinelNoticeProblemsOverdue", "grade=一般", "department=卫健委") == "health-team"
    assert route("alertname=SentinelNoticeProblemsOverdue", "grade=较大", "department=财政局") == "finance-team"


def test_outage_inhibits_dependent_alerts_in_a_real_alertmanager(tmp_path: Path):
    """The shipped inhibit rules, in a real Alertmanager: while SentinelCollectorDown fires, the compliance
    alerts (from the rules, and pushed by the collector without an instance label) are suppressed; the
    agent's own spool alert and the outage alert itself are not."""
    import httpx

    from tests.obs_support import alertmanager, eventually, shipped_am_config

    now = datetime.now(timezone.utc)
    ends = (now + timedelta(minutes=10)).isoformat()
    def alert(**labels: str) -> dict:
        return {"labels": labels, "annotations": {"summary": "s"}, "startsAt": now.isoformat(), "endsAt": ends}
    alerts = [
        alert(alertname="SentinelCollectorDown", job="sentinel", instance="collector:8443", severity="high",
              grade="重大"),
        alert(alertname="SentinelHighRiskFinding", job="sentinel", instance="collector:8443", department="卫健委",
              system="HIS", severity="high", grade="重大"),
        alert(alertname="SentinelForbiddenPort", department="卫健委", system="HIS", severity="high", grade="重大",
              source="sentinel"),
        alert(alertname="SentinelAgentSpoolDropping", instance="his-db1:22239", severity="medium", grade="较大"),
        alert(alertname="SomethingElse", severity="high"),
    ]
    with alertmanager(tmp_path, shipped_am_config(tmp_path)) as base:
        http = httpx.Client(base_url=base, timeout=10, trust_env=False)
        assert http.post("/api/v2/alerts", json=alerts).status_code == 200

        def states():
            got = {a["labels"]["alertname"]: a["status"]["state"] for a in http.get("/api/v2/alerts").json()}
            return got if len(got) == len(alerts) else None
        got = eventually(states, what="all alerts in Alertmanager")
        assert got == {"SentinelCollectorDown": "active", "SentinelHighRiskFinding": "suppressed",
                       "SentinelForbiddenPort": "suppressed", "SentinelAgentSpoolDropping": "active",
                       "SomethingElse": "active"}, got
        http.close()


@pytest.mark.parametrize("labels, receivers", [
    # every website alert, pushed or from the rules, reaches the website operators, then grade and department
    (("alertname=SentinelWebsiteCompromised", "grade=重大", "department=财政局"),
     "web-team,oncall-urgent,finance-team"),
    (("alertname=SentinelWebsiteSecurity", "grade=较大", "department=卫健委"), "web-team,health-team"),
    (("alertname=SentinelWebsiteRoundStale", "grade=一般", "department=公安局"), "web-team"),
    (("alertname=SentinelWebsiteCertificateExpiring", "grade=一般", "department=卫健委"), "web-team,health-team"),
    # a host certificate is not a website's
    (("alertname=SentinelCertificateExpiring", "grade=一般", "department=卫健委"), "health-team"),
])
def test_website_alerts_reach_the_website_operators(labels, receivers):
    p = _run(need("amtool"), "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == receivers
