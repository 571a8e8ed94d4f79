"""/metrics serves the stored state read and rendered in the background (sentinel/collector/metrics_stored.py):
a scrape never waits on the store once a rendering exists, the body is the same as the whole registry renders,
a failed read keeps the last state visible with sentinel_up 0, a restart on an unchanged store serves the kept
rendering at once, and an unchanged system is not rolled up again (sentinel/store/assessment.py's memo)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from sentinel.collector import metrics_stored
from sentinel.collector.app import create_app
from sentinel.collector.metrics_stored import StoredMetrics
from sentinel.collector.settings import CollectorSettings
from sentinel.exporters.prometheus import make_registry, openmetrics_format, text_format
from sentinel.metrics_model import MetricsSnapshot
from sentinel.store import assessment
from sentinel.store.db import Database
from sentinel.store.models import ManualAssessment
from sentinel.store.snapshot import build_snapshot, store_marker
from sentinel.wiring import exporters
from tests.test_metrics_snapshot import NOW, _seed

pytest_plugins = ["tests.dbfixtures"]
OM = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


class Reads:
    """A store read to watch: counts calls, can be held back or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self) -> MetricsSnapshot:
        self.hold.wait(10)
        self.calls += 1
        if self.fail:
            raise RuntimeError("store unreachable")
        return MetricsSnapshot(generated_at=datetime.now(timezone.utc), systems=[])


def _stored(reads: Reads, tmp_path: Path, marker: str = "m1", **kw) -> StoredMetrics:
    kw.setdefault("refresh_seconds", 60)
    return StoredMetrics(reads, lambda snap, fmts: {f: f"{f} {snap.generated_at.isoformat()}\n".encode() for f in fmts},
                         marker=lambda: marker, identity="test", keep_dir=tmp_path / "kept", **kw)


def test_scrapes_after_the_first_are_answered_from_the_background_rendering(tmp_path):
    reads = Reads()
    s = _stored(reads, tmp_path)
    try:
        first = s.get()
        assert first.part is not None and first.up and reads.calls == 1
        for _ in range(5):
            assert s.get().part is first.part
        assert reads.calls == 1, "scrapes within the refresh interval do not read the store"
        assert set(first.part.bodies) == {"openmetrics", "text"}
    finally:
        s.stop()


def test_the_background_read_refreshes_the_rendering(tmp_path):
    reads = Reads()
    s = _stored(reads, tmp_path, refresh_seconds=0.05)
    try:
        first = s.get().part
        deadline = time.monotonic() + 10
        while s.get().part is first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert s.get().part is not first and reads.calls >= 2
    finally:
        s.stop()


def test_a_failed_read_keeps_the_last_state_with_up_0(tmp_path):
    reads = Reads()
    s = _stored(reads, tmp_path, refresh_seconds=0.05)
    try:
        good = s.get().part
        reads.fail = True
        deadline = time.monotonic() + 10
        while s.get().up and time.monotonic() < deadline:
            time.sleep(0.02)
        served = s.get()
        assert not served.up and served.errors >= 1
        assert served.part is good, "the last state read stays visible"
    finally:
        s.stop()


def test_before_any_read_worked_a_failure_is_answered_at_once(tmp_path):
    reads = Reads()
    reads.fail = True
    s = _stored(reads, tmp_path, first_wait=30)
    try:
        start = time.monotonic()
        served = s.get()
        assert (served.part, served.up, served.errors) == (None, False, 1)
        assert time.monotonic() - start < 10, "a failed first read is not waited out"
    finally:
        s.stop()


def test_the_first_scrape_waits_for_the_first_read_only_so_long(tmp_path):
    reads = Reads()
    reads.hold.clear()
    s = _stored(reads, tmp_path, first_wait=0.2)
    try:
        served = s.get()
        assert (served.part, served.up) == (None, True), "still reading: no figures, and not a failure"
    finally:
        reads.hold.set()
        s.stop()


def test_a_restart_on_an_unchanged_store_serves_the_kept_rendering_at_once(tmp_path):
    before = Reads()
    s1 = _stored(before, tmp_path)
    kept = s1.get().part
    s1.stop()
    assert kept is not None

    held = Reads()
    held.hold.clear()  # the new process's own read does not finish during this test
    s2 = _stored(held, tmp_path, first_wait=5)
    try:
        start = time.monotonic()
        served = s2.get()
        assert time.monotonic() - start < 2
        assert served.part is not None and served.part.bodies == kept.bodies
        assert served.part.read_at == kept.read_at, "shown with the time it was read, not the time of the restart"
    finally:
        held.hold.set()
        s2.stop()

    changed = Reads()
    changed.hold.clear()
    s3 = _stored(changed, tmp_path, marker="m2", first_wait=0.2)  # the store moved since
    try:
        assert s3.get().part is None
    finally:
        changed.hold.set()
        s3.stop()


def test_a_kept_rendering_that_was_altered_is_not_served(tmp_path):
    s1 = _stored(Reads(), tmp_path)
    s1.get()
    s1.stop()
    (tmp_path / "kept" / "text.zst").write_bytes(
        metrics_stored.zstandard.ZstdCompressor().compress(b"sentinel_system_score 100\n"))
    held = Reads()
    held.hold.clear()
    s2 = _stored(held, tmp_path, first_wait=0.2)
    try:
        assert s2.get().part is None
    finally:
        held.hold.set()
        s2.stop()


def test_the_reading_thread_stops_when_nobody_scrapes(tmp_path):
    reads = Reads()
    s = _stored(reads, tmp_path, refresh_seconds=0.05, idle_seconds=0.2)
    try:
        s.get()
        deadline = time.monotonic() + 10
        while s._thread is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s._thread is None
        calls = reads.calls
        time.sleep(0.3)
        assert reads.calls == calls, "no reads without scrapes"
        s.get()
        assert s._thread is not None, "the next scrape starts it again"
    finally:
        s.stop()


# ---- the collector's /metrics over a real store -----------------------------------------------------------


def _app(db: Database, state: Path, **kw) -> TestClient:
    return TestClient(create_app(CollectorSettings(state_dir=state, **kw), exporters=exporters(), db=db))


def _families(text: str, parse) -> dict:
    return {f.name: sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples)
            for f in parse(text) if not f.name.startswith("sentinel_snapshot_")}


@pytest.mark.parametrize("accept", ["text/plain", OM])
def test_the_served_body_is_what_the_whole_registry_renders(db: Database, tmp_path, accept):
    _seed(db)
    with _app(db, tmp_path / "state", metrics_open=True) as client:
        response = client.get("/metrics", headers={"accept": accept})
    assert response.status_code == 200
    registry = make_registry(lambda: build_snapshot(db))
    if accept == OM:
        assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert response.text.endswith("# EOF\n") and response.text.count("# EOF") == 1
        want, got = openmetrics_format(registry).decode(), response.text
        parse = om_families
    else:
        want, got = text_format(registry).decode(), response.text
        parse = text_string_to_metric_families
    # ingest counters and check durations are this process's (zero here, as in a registry without them)
    assert _families(got, parse).keys() >= _families(want, parse).keys() - {"sentinel_ingest_reports",
                                                                             "sentinel_ingest_errors"}
    stored = {k: v for k, v in _families(want, parse).items() if not k.startswith("sentinel_ingest")}
    assert {k: v for k, v in _families(got, parse).items() if k in stored} == stored


def test_the_collector_serves_its_kept_rendering_after_a_restart(db: Database, tmp_path, monkeypatch):
    _seed(db)
    state = tmp_path / "state"
    with _app(db, state, metrics_open=True) as client:
        before = client.get("/metrics").text
    stamp = [line for line in before.splitlines() if line.startswith("sentinel_snapshot_timestamp_seconds ")]

    from sentinel.collector import metrics as collector_metrics
    hold = threading.Event()
    real = collector_metrics.build_snapshot
    monkeypatch.setattr(collector_metrics, "build_snapshot", lambda *a, **k: hold.wait(20) and real(*a, **k))
    monkeypatch.setattr(metrics_stored, "FIRST_WAIT", 0.5)
    try:
        with _app(db, state, metrics_open=True) as client:
            after = client.get("/metrics")
            assert after.status_code == 200, "the store did not change: its kept rendering is served at once"
            assert [ln for ln in after.text.splitlines() if ln.startswith("sentinel_snapshot_timestamp_seconds ")] \
                == stamp
            assert "sentinel_system_score" in after.text
            hold.set()
        with db.write() as c:  # an assessor's verdict moves the store's fingerprint
            c.execute(insert(ManualAssessment.__table__), [
                {"system_id": 1, "department_id": 1, "clause": "8.1.4.4", "item": "a", "verdict": "符合",
                 "note": "", "assessor": "a", "at": NOW}])
        hold.clear()
        with _app(db, state, metrics_open=True) as client:
            waiting = client.get("/metrics")
            assert waiting.status_code == 503 and waiting.headers["retry-after"]
            hold.set()
    finally:
        hold.set()


def test_the_store_marker_moves_with_what_the_figures_are_read_from(db: Database):
    _seed(db)
    first = store_marker(db)
    assert store_marker(db) == first
    with db.write() as c:
        c.execute(insert(ManualAssessment.__table__), [
            {"system_id": 1, "department_id": 1, "clause": "8.1.4.4", "item": "a", "verdict": "符合", "note": "",
             "assessor": "a", "at": NOW}])
    assert store_marker(db) != first


def test_an_unchanged_system_is_not_rolled_up_again(db: Database, monkeypatch):
    _seed(db)
    assessment.clear_cache()
    rolled = []
    real = assessment.scoring.system_items
    monkeypatch.setattr(assessment.scoring, "system_items", lambda sets: rolled.append(1) or real(sets))
    first = build_snapshot(db, now=NOW)
    n = len(rolled)
    assert n >= 2, "both seeded systems are rolled up once"
    again = build_snapshot(db, now=NOW + timedelta(minutes=1))
    assert len(rolled) == n, "nothing changed: no system is rolled up again"
    assert [(s.name, s.score, s.conclusion) for s in again.systems] == \
        [(s.name, s.score, s.conclusion) for s in first.systems]
    with db.write() as c:
        c.execute(insert(ManualAssessment.__table__), [
            {"system_id": 1, "department_id": 1, "clause": "8.1.4.4", "item": "a", "verdict": "不符合",
             "note": "", "assessor": "a", "at": NOW}])
    third = build_snapshot(db, now=NOW + timedelta(minutes=2))
    assert len(rolled) == n + 1, "the system with a new verdict, and only it, is rolled up again"
    item = next(i for i in assessment.system_assessment(db, 1, now=NOW).items if i.clause == "8.1.4.4")
    assert (item.verdict.value, item.source) == ("不符合", "manual")
    changed = next(s for s in third.systems if s.name == "非税收入管理系统")
    assert changed.score is not None and changed.score != next(
        s for s in first.systems if s.name == "非税收入管理系统").score, "the new verdict is in the figures"
