"""Event push to a real Alertmanager (Debian package) on 127.0.0.1: the alert arrives graded, is kept alive by
re-sends (endsAt moves forward) and disappears once resolved; a dead Alertmanager never blocks the caller."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sentinel.events import grading
from sentinel.events.delivery import Backoff
from sentinel.events.dispatch import DispatchConfig, Dispatcher
from sentinel.events.model import AlertEvent, GradeMap
from sentinel.exporters.alertmanager import AlertmanagerClient, AlertmanagerPublisher, to_alert
from sentinel.exporters.receivers import RECEIVERS
from tests.obs_support import alertmanager, eventually, free_port


def _event(**kw) -> AlertEvent:
    base = dict(kind="high_risk_finding", severity="high", department="财政局", system="非税收入管理系统",
                host="db-01", check="l3.8.1.4.1.root-ssh", summary="允许 root 远程登录 / root may log in over SSH",
                description="PermitRootLogin yes in /etc/ssh/sshd_config", fingerprint="fp-root-ssh-db-01")
    base.update(kw)
    return AlertEvent(**base)


@pytest.mark.parametrize("kind, level, severity, grade", [
    ("high_risk_finding", 4, "high", "重大"), ("high_risk_finding", 3, "medium", "较大"),
    ("high_risk_finding", 2, "low", "一般"), ("score_drop", 4, "medium", "较大"), ("score_drop", 3, "low", "一般"),
    ("new_forbidden_port", 3, "medium", "较大"), ("new_open_port", 4, "low", "一般"),
    ("high_risk_finding", None, "high", "重大"),  # level unknown: graded as the highest it could be
])
def test_pushed_grades_follow_the_graded_response_table(kind, level, severity, grade):
    """The stored severity (ingest writes `critical` for every high-risk finding) does not decide the grade:
    the kind and the system's protection level do, as in exporters/grading.py and the Prometheus rules."""
    ev = _event(kind=kind, severity="critical", level=level)
    start = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    labels = to_alert(ev, GradeMap(), starts_at=start, ends_at=start)["labels"]
    assert (labels["severity"], labels["grade"]) == (severity, grade)
    assert grading.grade(kind, level) == grade


def test_to_alert_matches_the_v2_schema():
    ev = _event(kind="drift", host=None, url="https://collector.example:8443/systems/1")
    start = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    alert = to_alert(ev, GradeMap(), starts_at=start, ends_at=start + timedelta(minutes=4))
    # drift: degradation, level unknown -> graded as level 4: 较大
    assert alert["labels"] == {"alertname": "SentinelDrift", "department": "财政局",
                               "system": "非税收入管理系统", "check": "l3.8.1.4.1.root-ssh", "severity": "medium",
                               "grade": "较大", "source": "sentinel"}  # no empty host label
    assert alert["annotations"]["grade_level"] == "III"
    # a fact a Prometheus rule also alerts on takes the rule's identity: exactly its labels
    shared = to_alert(_event(host="db-01", level=3), GradeMap(), starts_at=start, ends_at=start,
                      extra_labels={"site": "example-egov-cloud"})
    assert shared["labels"] == {"alertname": "SentinelHighRiskFinding", "department": "财政局",
                                "system": "非税收入管理系统", "level": "3", "severity": "medium", "grade": "较大",
                                "site": "example-egov-cloud"}
    assert shared["annotations"]["host"] == "db-01" and shared["annotations"]["check"] == "l3.8.1.4.1.root-ssh"
    alert = to_alert(ev.model_copy(update={"kind": "high_risk_finding"}), GradeMap(), starts_at=start,
                     ends_at=start + timedelta(minutes=4))
    assert alert["startsAt"] == "2026-11-23T08:00:00Z" and alert["endsAt"] == "2026-11-23T08:04:00Z"
    assert alert["annotations"]["grade_level"] == "II"
    assert alert["generatorURL"] == "https://collector.example:8443/systems/1"
    # a kind outside the graded-response table is graded by the site's severity mapping
    custom = to_alert(ev.model_copy(update={"kind": "prometheus_alert"}), GradeMap(mapping={"high": "较大"}),
                      starts_at=start, ends_at=start)
    assert custom["labels"]["grade"] == "较大"


def test_alert_fires_is_refreshed_and_resolves_in_a_real_alertmanager(tmp_path: Path):
    results = []
    with alertmanager(tmp_path) as base:
        config = DispatchConfig.model_validate({
            "receivers": [{"name": "am", "type": "alertmanager", "url": base, "resend_interval_seconds": 0.5}],
            "routes": [{"receivers": ["am"]}]})
        dispatcher = Dispatcher(config, RECEIVERS,
                                on_result=lambda ev, rcv, ok, err: results.append((ev.resolved, rcv, ok, err)))
        client = AlertmanagerClient(base)
        try:
            assert dispatcher.dispatch(_event()) == ["am"]
            flt = ('alertname="SentinelHighRiskFinding"', 'system="非税收入管理系统"')
            first = eventually(lambda: client.get_alerts(filters=flt), what="alert in Alertmanager")[0]
            assert first["status"]["state"] == "active"
            assert first["labels"]["grade"] == "重大" and first["labels"]["department"] == "财政局"
            assert first["annotations"]["summary"].startswith("允许 root")

            # re-sent while firing: endsAt keeps moving forward, startsAt stays
            later = eventually(lambda: [a for a in client.get_alerts(filters=flt) if a["endsAt"] > first["endsAt"]],
                               timeout=10, what="endsAt refreshed")[0]
            assert later["startsAt"] == first["startsAt"] and later["fingerprint"] == first["fingerprint"]

            # the same event again is the same alert, not a second one
            dispatcher.dispatch(_event(summary="still there"))
            eventually(lambda: [a for a in client.get_alerts(filters=flt)
                                if a["annotations"]["summary"] == "still there"],
                       what="annotation update")
            assert len(client.get_alerts(filters=flt)) == 1

            dispatcher.dispatch(_event(resolved=True))
            eventually(lambda: client.get_alerts(filters=flt) == [], what="alert resolved")
            assert dispatcher.worker("am").active_keys() == []
            assert dispatcher.wait_idle(5)
        finally:
            dispatcher.close()
            client.close()
    assert (False, "am", True, None) in results and (True, "am", True, None) in results


def test_dead_alertmanager_does_not_block_and_reports_failure():
    results = []
    port = free_port()  # nothing listens there
    pub = AlertmanagerPublisher(AlertmanagerClient(f"http://127.0.0.1:{port}", timeout=1),
                                resend_interval=0.2, backoff=Backoff(max_attempts=2, initial_delay=0.05, max_delay=0.1),
                                on_result=lambda ev, rcv, ok, err: results.append((ok, err)))
    try:
        start = time.monotonic()
        for i in range(50):
            assert pub.submit(_event(fingerprint=f"k{i}"))
        assert time.monotonic() - start < 0.5, "submit waited for the network"
        eventually(lambda: len(results) == 50, timeout=10, what="failures reported")
        assert all(not ok and "ConnectError" in err for ok, err in results)
        assert pub.stats["push_errors"] >= 2
        assert len(pub.active_keys()) == 50, "failed alerts are kept for the next push"
    finally:
        pub.close()


def test_resolved_alerts_are_resent_for_a_while_then_dropped():
    sent: list[list[dict]] = []

    class Recording(AlertmanagerClient):
        def __init__(self):
            self.safe_url = "recording"

        def post_alerts(self, alerts):
            sent.append(alerts)

        def close(self):
            pass

    pub = AlertmanagerPublisher(Recording(), resend_interval=0.1, resolved_resend_for=0.5)
    try:
        fired = datetime.now(timezone.utc)
        pub.submit(_event(created_at=fired))
        eventually(lambda: sent, what="first push")
        assert sent[0][0]["endsAt"] > _z(fired + timedelta(seconds=0.3)), "a firing alert ends in the future"
        cleared = datetime.now(timezone.utc)
        pub.submit(_event(resolved=True, created_at=cleared))
        eventually(lambda: sent[-1] and sent[-1][0]["endsAt"] == _z(cleared), what="resolved push")
        n = len(sent)
        eventually(lambda: len(sent) >= n + 2, what="resolved alert re-sent")
        assert all(batch[0]["endsAt"] == _z(cleared) for batch in sent[n:])
        time.sleep(0.8)  # past resolved_resend_for: the publisher forgets it and stops pushing
        tail = len(sent)
        time.sleep(0.4)
        assert len(sent) == tail, "resolved alert still sent after resolved_resend_for"
        assert pub.active_keys() == []
    finally:
        pub.close()


def _z(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("bad", [{"resend_interval": 0}])
def test_publisher_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        AlertmanagerPublisher(AlertmanagerClient("http://127.0.0.1:1"), **bad)


def test_one_fixed_finding_does_not_resolve_the_systems_shared_alert():
    """Two high-risk findings of one system are one alert (the rule's identity): resolving one leaves it
    firing; it resolves once both are fixed."""
    from sentinel.exporters.alertmanager import _merge

    start = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    firing_until, fixed_at = start + timedelta(minutes=4), start + timedelta(minutes=1)
    a = to_alert(_event(check="l3-a", level=3), GradeMap(), starts_at=start, ends_at=firing_until)
    b = to_alert(_event(check="l3-b", level=3), GradeMap(), starts_at=start + timedelta(seconds=5), ends_at=fixed_at)
    merged = _merge([a, b])
    assert len(merged) == 1 and merged[0]["endsAt"] == "2026-11-23T08:04:00Z", merged
    assert merged[0]["annotations"]["check"] == "l3-a" and merged[0]["startsAt"] == "2026-11-23T08:00:00Z"
    both_fixed = _merge([{**a, "endsAt": "2026-11-23T08:02:00Z"}, b])
    assert len(both_fixed) == 1 and both_fixed[0]["endsAt"] == "2026-11-23T08:02:00Z"
    assert both_fixed[0]["annotations"]["check"] == "l3-a"  # the latest to clear
    # distinct facts stay apart
    other = to_alert(_event(check="l3-a", level=3, system="OA"), GradeMap(), starts_at=start, ends_at=firing_until)
    assert len(_merge([a, other])) == 2
