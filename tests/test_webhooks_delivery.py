"""Delivery behaviour: retries with exponential backoff, de-duplication, per-department routing, bounded queues,
and a dead or slow webhook never blocking the caller or the other receivers. All receivers are on 127.0.0.1."""
from __future__ import annotations

import socket
import time
from itertools import pairwise
from pathlib import Path

import pytest

from sentinel.events.delivery import Backoff, Deduplicator, DeliveryWorker
from sentinel.events.dispatch import DispatchConfig, DispatchConfigError, Dispatcher
from sentinel.events.model import AlertEvent
from sentinel.events.relay import events_from_alertmanager_webhook
from sentinel.exporters.receivers import RECEIVERS
from sentinel.exporters.webhooks import GenericJSONSender
from tests.obs_support import Receiver, eventually


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _event(**kw) -> AlertEvent:
    base = dict(kind="score_drop", severity="medium", department="财政局", system="非税收入管理系统",
                summary="得分从 88 降到 79 / score fell from 88 to 79", fingerprint="fp-score")
    base.update(kw)
    return AlertEvent(**base)


def _config(receivers: list[dict], **kw) -> DispatchConfig:
    return DispatchConfig.model_validate({"retry": {"max_attempts": 4, "initial_delay_seconds": 0.1, "factor": 2},
                                          "receivers": receivers, **kw})


def test_retries_back_off_exponentially_then_deliver(receivers):
    r = receivers(responses=[(503, {}), (503, {}), (200, {})])
    results = []
    worker = DeliveryWorker(GenericJSONSender("hook", r.url("/h")),
                            backoff=Backoff(max_attempts=5, initial_delay=0.1, factor=2, jitter=0),
                            on_result=lambda ev, name, ok, err: results.append((name, ok, err)))
    try:
        assert worker.submit(_event())
        r.wait_for(3)
        assert worker.wait_idle(5)
    finally:
        worker.close()
    gaps = [b - a for a, b in pairwise(r.times)]
    # waits of at least 0.1 s then 0.2 s (upper bounds loose: the machine is shared)
    assert 0.09 <= gaps[0] < 1.5 and 0.19 <= gaps[1] < 2.5, gaps
    assert results == [("hook", True, None)]
    assert worker.stats["retried"] == 2 and worker.stats["delivered"] == 1


def test_gives_up_after_max_attempts_and_reports_it(receivers):
    r = receivers(responses=[(500, {})])
    results = []
    worker = DeliveryWorker(GenericJSONSender("hook", r.url("/h")),
                            backoff=Backoff(max_attempts=3, initial_delay=0.02, jitter=0),
                            on_result=lambda ev, name, ok, err: results.append((ok, err)))
    try:
        worker.submit(_event())
        assert worker.wait_idle(5)
    finally:
        worker.close()
    assert len(r.requests) == 3 and results == [(False, "HTTP 500")]


def test_permanent_errors_are_not_retried(receivers):
    r = receivers(responses=[(403, {"error": "forbidden"})])
    worker = DeliveryWorker(GenericJSONSender("hook", r.url("/h")), backoff=Backoff(initial_delay=0.01))
    try:
        worker.submit(_event())
        assert worker.wait_idle(5)
        time.sleep(0.1)
    finally:
        worker.close()
    assert len(r.requests) == 1 and worker.stats["failed"] == 1


def test_backoff_is_capped_and_jittered():
    b = Backoff(initial_delay=1, factor=2, max_delay=5, jitter=0.1)
    delays = [b.delay(n) for n in range(1, 8)]
    assert 0.9 <= delays[0] <= 1.1 and 1.8 <= delays[1] <= 2.2 and all(d <= 5.5 for d in delays)
    assert delays[-1] >= 4.5


def test_duplicates_within_the_window_are_sent_once(receivers):
    r = receivers()
    d = Dispatcher(_config([{"name": "hook", "type": "webhook", "url": r.url("/h")}], default_receivers=["hook"],
                           dedup_window_seconds=600), RECEIVERS)
    try:
        assert d.dispatch(_event()) == ["hook"]
        assert d.dispatch(_event(summary="again")) == []
        assert d.dispatch(_event(summary="and again")) == []
        assert d.dispatch(_event(resolved=True)) == ["hook"], "a resolution always passes"
        assert d.dispatch(_event()) == ["hook"], "firing again after the resolution is news"
        assert d.dispatch(_event(fingerprint="other")) == ["hook"], "another condition is another alert"
        assert d.wait_idle(5)
    finally:
        d.close()
    statuses = [req.json()["status"] for req in r.requests]
    assert statuses == ["firing", "resolved", "firing", "firing"]
    assert d.stats["deduplicated"] == 2


def test_deduplicator_window_expires():
    now = [0.0]
    dd = Deduplicator(10, clock=lambda: now[0])
    assert dd.admit("k", False) and not dd.admit("k", False)
    now[0] = 9.9
    assert not dd.admit("k", False)
    now[0] = 10.1
    assert dd.admit("k", False)
    dd.forget("k")
    assert dd.admit("k", False)


def test_without_fingerprint_the_key_is_the_condition():
    a = _event(fingerprint=None, host="h1", check="c1")
    assert a.key == _event(fingerprint=None, host="h1", check="c1", summary="other words").key
    assert a.key != _event(fingerprint=None, host="h2", check="c1").key
    assert a.key != _event(fingerprint=None, host="h1", check="c1", payload={"subject": "23/tcp"}).key


def test_dead_and_slow_webhooks_do_not_block_the_caller_or_the_others(receivers):
    healthy = receivers()
    slow = receivers(delay=1.5)
    with socket.socket() as s:  # a port with nothing listening: connection refused
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    d = Dispatcher(_config([
        {"name": "dead", "type": "webhook", "url": f"http://127.0.0.1:{dead_port}/h", "timeout_seconds": 1},
        {"name": "slow", "type": "webhook", "url": slow.url("/h"), "timeout_seconds": 5},
        {"name": "ok", "type": "webhook", "url": healthy.url("/h")}], default_receivers=["dead", "slow", "ok"]),
        RECEIVERS)
    try:
        start = time.monotonic()
        for i in range(10):
            assert d.dispatch(_event(fingerprint=f"fp{i}")) == ["dead", "slow", "ok"]
        assert time.monotonic() - start < 0.5, "dispatch waited for a webhook"
        healthy.wait_for(10, timeout=3)
        assert time.monotonic() - start < 3, "the healthy receiver waited behind the others"
        assert len(slow.requests) < 10
    finally:
        close_start = time.monotonic()
        d.close(timeout=0.5)
        assert time.monotonic() - close_start < 3


def test_a_full_queue_drops_instead_of_blocking(receivers):
    slow = receivers(delay=0.5)
    d = Dispatcher(_config([{"name": "slow", "type": "webhook", "url": slow.url("/h")}], default_receivers=["slow"],
                           queue_size=2), RECEIVERS)
    try:
        start = time.monotonic()
        queued = [d.dispatch(_event(fingerprint=f"fp{i}")) for i in range(10)]
        assert time.monotonic() - start < 0.5
        assert 2 <= sum(1 for q in queued if q) <= 4  # queue of 2, plus the one in flight
        assert d.worker("slow").stats["dropped"] >= 6
        # a dropped event was forgotten by the de-duplicator, so it can be sent when it comes again
        eventually(lambda: d.worker("slow").wait_idle(0), timeout=5, what="queue drained")
        assert d.dispatch(_event(fingerprint="fp9")) == ["slow"]
    finally:
        d.close(timeout=0.2)


def test_per_department_routing(receivers):
    am_like, finance, health, ops = receivers(), receivers(), receivers(), receivers()
    d = Dispatcher(_config([
        {"name": "all", "type": "webhook", "url": am_like.url("/all")},
        {"name": "finance", "type": "webhook", "url": finance.url("/f")},
        {"name": "health", "type": "webhook", "url": health.url("/h")},
        {"name": "ops", "type": "webhook", "url": ops.url("/o")}],
        routes=[{"receivers": ["all"], "continue": True},
                {"departments": ["财政局"], "min_severity": "high", "receivers": ["finance"]},
                {"departments": ["卫健委"], "kinds": ["agent_silent"], "receivers": ["health"]}],
        default_receivers=["ops"]), RECEIVERS)
    try:
        assert d.route(_event(severity="critical")) == ["all", "finance"]
        assert d.route(_event(severity="medium")) == ["all", "ops"], "below min_severity: falls through to default"
        assert d.route(_event(department="卫健委", kind="agent_silent")) == ["all", "health"]
        assert d.route(_event(department="卫健委", kind="drift")) == ["all", "ops"]
        d.dispatch(_event(severity="critical", fingerprint="a"))
        d.dispatch(_event(department="卫健委", kind="agent_silent", fingerprint="b"))
        assert d.wait_idle(5)
    finally:
        d.close()
    assert [r.json()["event"]["fingerprint"] for r in finance.requests] == ["a"]
    assert [r.json()["event"]["fingerprint"] for r in health.requests] == ["b"]
    assert len(am_like.requests) == 2 and ops.requests == []


def test_yaml_config_with_environment_secrets(tmp_path: Path):
    path = tmp_path / "alerting.yml"
    path.write_text("""
grades: {high: 较大}
receivers:
  - {name: ding, type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=${DING_TOKEN}",
     secret: "${DING_SECRET}"}
  - {name: am, type: alertmanager, url: "http://127.0.0.1:9093"}
routes:
  - {departments: [财政局], receivers: [ding, am]}
default_receivers: [am]
""", encoding="utf-8")
    cfg = DispatchConfig.from_yaml(path, env={"DING_TOKEN": "tok123", "DING_SECRET": "SECabc"})
    assert cfg.receivers[0].url.get_secret_value().endswith("access_token=tok123")
    assert cfg.receivers[0].secret.get_secret_value() == "SECabc"
    assert cfg.grade_map.grade("high") == "较大" and cfg.grade_map.grade("critical") == "特别重大"
    assert "tok123" not in repr(cfg) and "SECabc" not in repr(cfg)
    with pytest.raises(DispatchConfigError, match=r"receivers\.0\.url: environment variable DING_TOKEN is not set"):
        DispatchConfig.from_yaml(path, env={"DING_SECRET": "x"})


def test_shipped_example_config_loads(tmp_path: Path):
    example = Path(__file__).resolve().parents[1] / "deploy" / "alerting" / "dispatch.example.yml"
    env = {k: "https://hooks.example/x?key=1" if k.endswith("_URL") else "s3cret" for k in
           ("FINANCE_DINGTALK_URL", "FINANCE_DINGTALK_SECRET", "HEALTH_FEISHU_URL", "HEALTH_FEISHU_SECRET",
            "OPS_WECOM_URL", "SOC_WEBHOOK_URL", "SOC_WEBHOOK_SECRET")}
    env["FINANCE_DINGTALK_URL"] = "https://oapi.dingtalk.com/robot/send?access_token=t"
    env["OPS_WECOM_URL"] = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
    cfg = DispatchConfig.from_yaml(example, env=env)
    assert {r.type for r in cfg.receivers} == {"alertmanager", "dingtalk", "feishu", "wecom", "webhook"}


@pytest.mark.parametrize("doc, needle", [
    ({"receivers": [{"name": "a", "type": "webhook", "url": "http://x/"}], "routes": [{"receivers": ["b"]}]},
     "unknown receivers ['b']"),
    ({"grades": {"urgent": "重大"}}, "unknown severities ['urgent']"),
    ({"grades": {"high": "严重"}}, "grades.high"),
    ({"receivers": [{"name": "w", "type": "wecom", "url": "https://q/x?key=1", "secret": "s"}]}, "not signed"),
    ({"receivers": [{"name": "a", "type": "webhook", "url": "ftp://x/"}]}, "http(s)://"),
    ({"receivers": [{"name": "a", "type": "webhook", "url": "http://x/"}] * 2}, "unique"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"routes": [{"receivers": []}]}, "routes.0.receivers"),
    ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ({"recievers": []}, "recievers"),
])
def test_bad_config_is_reported_by_field(tmp_path: Path, doc, needle):
    import yaml

    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DispatchConfigError) as exc:
        DispatchConfig.from_yaml(path, env={})
    assert str(path) in str(exc.value) and needle in str(exc.value)


def test_alertmanager_notifications_become_events():
    payload = {"version": "4", "status": "firing", "receiver": "sentinel", "groupKey": "{}:{}", "truncatedAlerts": 0,
               "commonLabels": {"department": "财政局"},
               "alerts": [
                   {"status": "firing", "labels": {"alertname": "SentinelForbiddenServiceOpen", "system": "非税",
                                                   "severity": "high", "grade": "重大"},
                    "annotations": {"summary": "禁止端口", "description": "1 service"},
                    "startsAt": "2026-11-23T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": "abc123"},
                   {"status": "resolved", "labels": {"alertname": "SentinelAgentSilent", "system": "OA",
                                                     "host": "h1", "severity": "page"},
                    "annotations": {}, "startsAt": "2026-11-23T07:00:00Z", "endsAt": "2026-11-23T08:00:00Z",
                    "fingerprint": "def456"}]}
    first, second = events_from_alertmanager_webhook(payload)
    # the Alertmanager receiver is part of the key: on-call's and the department's notice are two messages
    assert (first.department, first.system, first.severity, first.summary, first.key) == \
        ("财政局", "非税", "high", "禁止端口", "sentinel/abc123")
    assert first.payload["receiver"] == "sentinel"
    assert not first.resolved and first.url == "http://prometheus:9090/graph"
    assert second.resolved and second.severity == "warning" and second.payload["severity_original"] == "page"
    assert second.host == "h1" and second.summary == "SentinelAgentSilent"
    with pytest.raises(ValueError, match="version 4"):
        events_from_alertmanager_webhook({"alerts": []})


def test_event_from_store_row():
    from datetime import datetime
    from types import SimpleNamespace

    row = SimpleNamespace(id=7, kind="high_risk_finding_resolved", severity="critical", check_id="c1",
                          summary="fixed", payload={"description": "d"}, fingerprint="f" * 64,
                          created_at=datetime(2026, 11, 23, 8, 0))
    ev = AlertEvent.from_row(row, department="财政局", system="OA", host="h1")
    assert ev.kind == "high_risk_finding" and ev.resolved and ev.id == 7 and ev.key == "f" * 64
    assert ev.created_at.tzinfo is not None and ev.description == "d"
