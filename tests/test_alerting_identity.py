"""One fact, one alert: a high-risk finding and a forbidden port reach a real Alertmanager both from the
shipped Prometheus rules (a real Prometheus scraping sentinel's /metrics) and pushed by the collector's
publisher; Alertmanager, which merges identical label sets only, must hold one alert per fact, at one grade."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from sentinel.events import grading
from sentinel.events.model import SHARED_IDENTITY, AlertEvent
from sentinel.exporters.alertmanager import AlertmanagerClient, AlertmanagerPublisher
from sentinel.exporters.prometheus import make_registry, render
from tests.obs_support import MetricsServer, alertmanager, eventually, prometheus, realistic_snapshot

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "sentinel-rules.yml"
DEPT, SYSTEM, LEVEL = "财政局", "预算一体化平台", 3  # realistic_snapshot: 2 high-risk findings, 1 forbidden port
SITE = {"site": "test-site"}  # Prometheus's external_labels, which its rule alerts carry

pytest_plugins = ["tests.dbfixtures"]


@pytest.mark.parametrize("kind", sorted(SHARED_IDENTITY))
def test_a_shared_kind_is_graded_as_its_rule_at_every_level(kind):
    for level in (2, 3, 4):
        assert grading.grade(kind, level) == grading.grade(SHARED_IDENTITY[kind], level), (kind, level)


def _pushed(kind: str, check: str, subject: str = "") -> AlertEvent:
    return AlertEvent(kind=kind, severity="critical", department=DEPT, system=SYSTEM, host="db-01", check=check,
                      level=LEVEL, summary=f"{SYSTEM}/db-01: {kind}", payload={"subject": subject} if subject else {},
                      fingerprint=f"fp-{kind}-{check}")


@contextmanager
def _rules_lab(tmp_path: Path, now: datetime) -> Iterator[tuple[httpx.Client, httpx.Client, str]]:
    """A real Alertmanager and a real Prometheus evaluating the shipped rules over sentinel's /metrics of the
    realistic snapshot: (Prometheus client, Alertmanager client, Alertmanager's URL)."""
    registry = make_registry(lambda: realistic_snapshot(now))
    server = MetricsServer(lambda accept: render(registry, accept))
    (tmp_path / "am").mkdir()
    (tmp_path / "prom").mkdir()
    try:
        with alertmanager(tmp_path / "am") as am_base:
            config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s, external_labels: {{site: {SITE['site']}}}}}
rule_files: ["{RULES}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["{am_base.split('//')[1]}"]}}]}}]
scrape_configs:
  - job_name: sentinel
    static_configs: [{{targets: ["127.0.0.1:{server.port}"]}}]
"""
            with prometheus(tmp_path / "prom", config) as prom_base, \
                    httpx.Client(base_url=prom_base, timeout=10, trust_env=False) as prom, \
                    httpx.Client(base_url=am_base, timeout=10, trust_env=False) as am:
                yield prom, am, am_base
    finally:
        server.close()


def _am_alerts(am: httpx.Client, name: str, system: str) -> list[dict]:
    got = am.get("/api/v2/alerts", params={"filter": f'alertname="{name}"'}).json()
    return [a for a in got if a["labels"].get("system") == system]


def _rule_firing(prom: httpx.Client, name: str, system: str) -> bool:
    alerts = prom.get("/api/v1/alerts").json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == name and a["labels"].get("system") == system
               and a["state"] == "firing" for a in alerts)


def test_the_same_fact_from_both_paths_is_one_alert_in_a_real_alertmanager(tmp_path):
    with _rules_lab(tmp_path, datetime.now(timezone.utc)) as (prom, am, am_base):
        def am_alerts(name: str) -> list[dict]:
            return _am_alerts(am, name, SYSTEM)

        for name in ("SentinelHighRiskFinding", "SentinelForbiddenServiceOpen"):
            eventually(lambda name=name: _rule_firing(prom, name, SYSTEM) and am_alerts(name), timeout=30,
                       what=f"rule alert {name}")

        # the collector pushes the same facts: two findings on two checks, and the forbidden port
        publisher = AlertmanagerPublisher(AlertmanagerClient(am_base), resend_interval=0.5, labels=SITE)
        try:
            publisher.submit(_pushed("high_risk_finding", "l3-ssh-root"))
            publisher.submit(_pushed("high_risk_finding", "l3-pass-age"))
            publisher.submit(_pushed("new_forbidden_port", "", subject="23/tcp"))
            eventually(lambda: publisher.stats["pushes"] >= 2, what="the publisher's pushes")
            # the pushed annotations (host/check) are on the one alert: both paths reached it
            eventually(lambda: any("check" in a["annotations"] for a in am_alerts("SentinelHighRiskFinding")),
                       what="the pushed update on the rule's alert")
            for name in ("SentinelHighRiskFinding", "SentinelForbiddenServiceOpen"):
                got = am_alerts(name)
                assert len(got) == 1, f"{name}: {len(got)} alerts for one fact: {[a['labels'] for a in got]}"
                labels = got[0]["labels"]
                assert (labels["grade"], labels["severity"], labels["level"]) == ("较大", "medium", "3"), labels
                assert set(labels) == {"alertname", "department", "system", "level", "severity", "grade",
                                       "site"}, labels
            checks = am_alerts("SentinelHighRiskFinding")[0]["annotations"]["check"]
            assert checks == "l3-pass-age, l3-ssh-root", checks
        finally:
            publisher.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_overdue_notice_problem_is_one_alert_from_the_loop_and_the_rule(tmp_path, db):
    """The 通报 loop's escalation (notice_overdue, one event per problem, as the loop writes it) and the standing rule
    SentinelNoticeProblemsOverdue on the same system reach one real Alertmanager as one alert: the department is
    paged once for the fact, at the table's grade."""
    from datetime import timedelta

    from sqlmodel import select

    from sentinel.notices import loop
    from sentinel.notices.policy import NoticePolicy
    from sentinel.store.models import Event, NoticeItem
    from sentinel.zombie import ZombieSettings
    from tests.collector_helpers import World

    system, dept = "全民健康信息平台", "卫健委"  # realistic_snapshot: level 3, one overdue problem
    w = World(db)
    w.department(dept)
    sid = w.system(system, dept, level=3)
    now = datetime.now(timezone.utc)
    with db.session(write=True) as s:
        notice = loop.issue(s, w.departments[dept], NoticePolicy(), ZombieSettings(), now - timedelta(days=20), "test")
        for n in (1, 2):  # two problems of the system past their deadline (no source row resolves them)
            s.add(NoticeItem(notice_id=notice.id or 0, department_id=w.departments[dept], system_id=sid, seq=n,
                             source="finding", source_id=10_000 + n, grade="一般", title={"zh": f"问题{n}", "en": "x"},
                             location="", basis="", remediation={}, first_seen=now - timedelta(days=20),
                             deadline=now - timedelta(days=5), state="open"))
        s.flush()
        assert loop.verify(s, now, ZombieSettings())["escalated"] == 2
    with db.session() as s:
        rows = s.exec(select(Event).where(Event.kind == "notice_overdue").order_by(Event.id)).all()
        pushed = [AlertEvent.from_row(row) for row in rows]  # as the collector's publisher builds them
    assert len({e.key for e in pushed}) == 2

    name = "SentinelNoticeProblemsOverdue"
    with _rules_lab(tmp_path, now) as (prom, am, am_base):
        eventually(lambda: _rule_firing(prom, name, system) and _am_alerts(am, name, system), timeout=30,
                   what=f"rule alert {name}")
        publisher = AlertmanagerPublisher(AlertmanagerClient(am_base), resend_interval=0.5, labels=SITE)
        try:
            for event in pushed:
                publisher.submit(event)
            eventually(lambda: publisher.stats["pushes"] >= 2, what="the publisher's pushes")
            # the pushed annotations (its title) are on the one alert: both paths reached it
            eventually(lambda: any("逾期未整改" in a["annotations"].get("title", "")
                                   for a in _am_alerts(am, name, system)),
                       what="the pushed update on the rule's alert")
            got = _am_alerts(am, name, system)
            assert len(got) == 1, f"{len(got)} alerts for one fact: {[a['labels'] for a in got]}"
            labels = got[0]["labels"]
            assert labels == {"alertname": name, "department": dept, "system": system, "level": "3",
                              "severity": "low", "grade": "一般", "site": SITE["site"]}, labels
        finally:
            publisher.close()


@pytest.mark.parametrize("receiver, message", [
    ({"type": "webhook", "labels": {"site": "x"}}, "labels is for alertmanager receivers only"),
    ({"type": "alertmanager", "labels": {"grade": "一般"}},
     "'grade' is not a Prometheus label name sentinel leaves free"),
    ({"type": "alertmanager", "labels": {"bad-name": "x"}}, "'bad-name' is not a Prometheus label name"),
])
def test_receiver_labels_are_checked(receiver, message):
    from sentinel.events.dispatch import DispatchConfig

    with pytest.raises(ValueError, match=message):
        DispatchConfig.model_validate({"receivers": [{"name": "r", "url": "http://127.0.0.1:9/", **receiver}],
                                       "routes": [{"receivers": ["r"]}]})
