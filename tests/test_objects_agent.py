"""The agent judges each 测评对象 of its host (issue 15): it runs its OS baseline, discovers the databases and web
servers of the host it checks (here an offline fixture root, `host_root`), runs each object's baseline in its own
child and sends one report per object; the real collector (LocalCollector, HTTP over 127.0.0.1) stores each as a
run of that object and rolls them all into the system assessment. An object with no baseline is said once in
the log, by name, never skipped silently; the operator pins and disables objects in the agent's settings."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from sentinel.agent.config import ConfigError, ObjectsSettings, PinnedObject, load_settings
from sentinel.agent.daemon import Agent
from sentinel.agent.enroll import enroll
from sentinel.agent.objects import NoBaselineLog, plan
from sentinel.allinone import LocalCollector
from sentinel.discovery import discover
from sentinel.hostview import RootHost
from sentinel.store.assessment import system_assessment
from sentinel.store.models import Run
from sentinel.wiring import exporters

from .test_agent_runner import BASELINE

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
REDIS_BASELINE = OBJECTS / "sentinel-test-redis.yaml"


@pytest.fixture
def collector(tmp_path):
    site = tmp_path / "collector" / "baselines"
    site.mkdir(parents=True)
    (site / "quick.yaml").write_text(BASELINE % "", encoding="utf-8")
    shutil.copy(REDIS_BASELINE, site / REDIS_BASELINE.name)  # the collector judges by its own copies
    c = LocalCollector(tmp_path / "collector", exporters())
    c.prepare()
    c.start()
    yield c
    c.close()


def _agent(tmp_path: Path, collector: LocalCollector, objects: ObjectsSettings) -> Agent:
    baseline = tmp_path / "quick.yaml"
    baseline.write_text(BASELINE % "", encoding="utf-8")
    root = tmp_path / "root"
    if not root.exists():
        shutil.copytree(OBJECTS / "debian12-objects", root, symlinks=True)
    settings = load_settings(None, default_file=False, state_dir=tmp_path / "agent", host_root=root,
                             baselines=[{"baseline": str(baseline)}], objects=objects, retry_min=0.1, retry_max=0.3,
                             request_timeout=10)
    token, _ = collector.bootstrap(want_token=True)
    if not settings.identity_file.exists():
        enroll(settings, token, collector.url)
    return Agent(settings)


def _runs(collector: LocalCollector) -> list[tuple[str, str, str, str]]:
    with collector.db.session() as s:
        return [(r.baseline_id, r.object_kind, r.object_instance, r.object_name)
                for r in s.exec(select(Run).order_by(Run.id)).all()]


def test_agent_reports_each_discovered_object(tmp_path, collector, caplog):
    caplog.set_level(logging.WARNING, logger="sentinel.agent")
    # the fixture root's other products are left out (their shipped baselines, where they exist, are the
    # object probes' tests' business); the one no baseline exists for is below
    agent = _agent(tmp_path, collector, ObjectsSettings(baselines={"redis": str(REDIS_BASELINE)},
                                                        disable=["postgresql", "mysql", "nginx"]))
    try:
        reports, flushed = agent.run_once()
    finally:
        agent.close()
    assert flushed.complete and flushed.delivered >= 3
    assert [(r["baseline"]["id"], (r.get("object") or {}).get("instance")) for r in reports] == [
        ("agent-runner-test", ""), ("sentinel-test-redis", "6379"), ("sentinel-test-redis", "6380")]
    assert _runs(collector) == [("agent-runner-test", "os", "", "db01"),
                                ("sentinel-test-redis", "redis", "6379", "db01 Redis 7.0 (6379)"),
                                ("sentinel-test-redis", "redis", "6380", "db01 Redis 7.0 (6380)")]
    assert not [r for r in caplog.records if "no baseline" in r.getMessage()]  # disabled kinds: not even said
    # the system assessment rolls every object up: the OS and the two Redis instances
    with collector.db.session() as s:
        from sentinel.store.models import System

        system_id = s.exec(select(System.id)).first()
    a = system_assessment(collector.db, system_id)
    assert [(h.object_kind, h.object_instance) for h in a.hosts] == [("os", ""), ("redis", "6379"), ("redis", "6380")]
    assert a.complete and {i.key for i in a.items} >= {"ces.auth.identify"}


def test_pinned_and_disabled_objects(tmp_path, collector, caplog):
    caplog.set_level(logging.WARNING, logger="sentinel.agent")
    objects = ObjectsSettings(discover=False, pin=[PinnedObject(kind="redis", instance="7000",
                                                                baseline=str(REDIS_BASELINE), name="db01 缓存 (7000)"),
                                                   PinnedObject(kind="redis", instance="7001",
                                                                baseline=str(REDIS_BASELINE))],
                              disable=["redis:7001"])
    agent = _agent(tmp_path, collector, objects)
    try:
        reports, flushed = agent.run_once()
    finally:
        agent.close()
    assert flushed.complete
    assert [r["object"]["instance"] for r in reports if r["baseline"]["id"] == "sentinel-test-redis"] == ["7000"]
    assert ("sentinel-test-redis", "redis", "7000", "db01 缓存 (7000)") in _runs(collector)
    assert not [r for r in caplog.records if "no baseline" in r.getMessage()]  # discovery was off


def test_objects_settings_refuse_what_cannot_be_run(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text("objects:\n  disable: [oracle]\n  pin:\n    - {kind: os}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(config, state_dir=tmp_path / "agent")
    text = str(err.value)
    assert "objects.disable" in text and "'oracle'" in text and "objects.pin.0.kind" in text


def test_an_object_without_baseline_is_said_once(caplog):
    """Discovery on the fixture root as if sentinel shipped only the OS and Redis baselines: the others are
    planned without a baseline and the log names each, once per agent process."""
    caplog.set_level(logging.WARNING, logger="sentinel.agent")
    found = discover(RootHost(str(OBJECTS / "debian12-objects")), 3, shipped=["dengbao-l3-linux", "dengbao-l3-redis"])
    data = {"level": 3, "hostname": "db01", "objects": [d.model_dump(mode="json") for d in found]}
    planned = plan(data, ObjectsSettings(disable=["nginx"]), "db01")
    assert [(p.target.kind, p.target.instance, p.baseline) for p in planned] == [
        ("mysql", "3307", None), ("postgresql", "5433", None), ("redis", "6379", "dengbao-l3-redis"),
        ("redis", "6380", "dengbao-l3-redis")]
    say = NoBaselineLog()
    for _ in range(2):  # two cycles
        for p in planned:
            if p.baseline is None:
                say(p)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "db01 MariaDB 10.11 (3307)" in said[0] and "dengbao-l3-mysql" in said[0]
    assert "db01 PostgreSQL 15.8 (5433)" in said[1] and "dengbao-l3-postgresql" in said[1]


def test_the_cycle_line_names_the_object():
    """`sentinel up`/`agent --once` print a line per report: an object's names its 测评对象."""
    from sentinel.cycle_lines import Announcer

    report = {"summary": {"score": 50.0, "conclusion": "差", "conclusion_en": "poor", "high_risk": 1}, "results": [],
              "object": {"kind": "redis", "instance": "6380", "name": "db01 Redis 7.0 (6380)"}}
    line = Announcer("en", say=lambda _: None).made("dengbao-l3-redis", report)
    assert line.startswith("baseline dengbao-l3-redis (db01 Redis 7.0 (6380)): score 50.0 poor")
    assert Announcer("en", say=lambda _: None).made("dengbao-l3-linux", {"summary": {}, "results": [],
                                                                         "object": {"kind": "os"}}
                                                   ).startswith("baseline dengbao-l3-linux: score -")
