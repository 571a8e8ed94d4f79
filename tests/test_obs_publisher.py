"""The collector's event publisher on its own: one publisher per store (lease on SQLite and PostgreSQL), one
retry policy per delivery path (the receiver's; the publisher only records what it answered), a late
success of Alertmanager after a failure, and take-over when the publishing process stops."""
from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from typing import Optional

import pytest
from sqlalchemy import insert, select

from sentinel.collector.events_publisher import EventsPublisher, PublisherLease
from sentinel.events.dispatch import DispatchConfig
from sentinel.exporters.receivers import RECEIVERS
from sentinel.store.db import Database
from sentinel.store.models import Event
from tests.collector_helpers import World
from tests.obs_support import Receiver, eventually

pytest_plugins = ["tests.dbfixtures"]


@pytest.fixture
def world(tmp_path, _sqlite_template):
    path = tmp_path / "sentinel.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    w = World(db)
    w.department("公安局")
    w.system("视频监控联网平台", "公安局")
    yield w
    db.dispose()


def _event(world: World, check: str, **payload) -> int:
    """An events row as the collector's ingest writes it."""
    row = {"kind": "high_risk_finding", "severity": "critical", "department_id": world.departments["公安局"],
           "system_id": world.systems["视频监控联网平台"], "check_id": check, "fingerprint": f"fp-{check}",
           "summary": f"cam-01: high-risk finding {check}", "created_at": datetime.now(timezone.utc),
           "payload": {"department": "公安局", "system": "视频监控联网平台", "host": "cam-01", **payload},
           "delivered": False, "attempts": 0}
    with world.db.write() as conn:
        return conn.execute(insert(Event.__table__).values(**row)).inserted_primary_key[0]


def _row(db, event_id: int):
    with db.read() as conn:
        return conn.execute(select(Event.__table__).where(Event.id == event_id)).one()


def _config(*receivers: Receiver, retry: Optional[dict] = None) -> DispatchConfig:
    return DispatchConfig.model_validate({
        "retry": retry or {"max_attempts": 1},
        "receivers": [{"name": f"hook{i}", "type": "webhook", "url": r.url(f"/{i}")} for i, r in enumerate(receivers)],
        "routes": [{"receivers": [f"hook{i}" for i in range(len(receivers))]}]})


def test_sqlite_lease_admits_one_publisher(world):
    first, second = PublisherLease(world.db), PublisherLease(Database(world.db.url))
    try:
        assert first.acquire() and first.alive()
        assert not second.acquire()
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()
        second.db.dispose()


def test_postgres_lease_admits_one_publisher_per_schema(pg_schemas):
    from tests.dbfixtures import pg_url

    url = pg_url(pg_schemas.create())
    dbs = [Database(url), Database(url), Database(pg_url(pg_schemas.create()))]
    leases = [PublisherLease(db) for db in dbs]
    try:
        assert leases[0].acquire() and leases[0].alive()
        assert not leases[1].acquire(), "two publishers on one store"
        assert leases[2].acquire(), "a store in another schema must not be blocked"
        leases[0].release()
        assert leases[1].acquire()
    finally:
        for lease in leases:
            lease.release()
        for db in dbs:
            db.dispose()


def test_one_retry_policy_the_receivers_and_the_publisher_records_what_they_answered(world):
    good = Receiver(responses=[(200, {})])
    flaky = Receiver(responses=[(500, {"error": "down"}), (200, {})])
    dead = Receiver(responses=[(503, {"error": "down"})])
    retry = {"max_attempts": 3, "initial_delay_seconds": 0.05, "max_delay_seconds": 0.1}
    publisher = EventsPublisher(world.db, _config(good, flaky, retry=retry), RECEIVERS, poll_interval=0.05)
    passes = _event(world, "l3-cam-telnet")
    publisher.start()
    try:
        delivered = eventually(lambda: (r := _row(world.db, passes)).delivered and r, what="delivered after a retry")
        assert delivered.attempts == 1 and delivered.last_error is None and delivered.delivered_at is not None
        assert len(good.requests) == 1 and len(flaky.requests) == 2  # the worker's retry, nobody else's
    finally:
        publisher.close(timeout=1)
    publisher = EventsPublisher(world.db, _config(good, dead, retry=retry), RECEIVERS, poll_interval=0.05)
    fails = _event(world, "l3-cam-ftp")
    publisher.start()
    try:
        failed = eventually(lambda: (r := _row(world.db, fails)).last_error and r, what="the give-up recorded")
        assert not failed.delivered and failed.attempts == 1 and failed.last_error.startswith("hook1: HTTP 503")
        time.sleep(0.5)  # no second round on top of the receiver's three attempts
        assert len(dead.requests) == 3 and len(good.requests) == 2
    finally:
        publisher.close(timeout=1)
        for r in (good, flaky, dead):
            r.close()


def test_alertmanager_back_after_a_give_up_still_delivers_the_row(world):
    am = Receiver(responses=[(500, {})])  # down until the give-up is on record
    config = DispatchConfig.model_validate({
        "retry": {"max_attempts": 2, "initial_delay_seconds": 0.05, "max_delay_seconds": 0.1},
        "receivers": [{"name": "am", "type": "alertmanager", "url": am.url(""), "resend_interval_seconds": 0.2}],
        "routes": [{"receivers": ["am"]}]})
    publisher = EventsPublisher(world.db, config, RECEIVERS, poll_interval=0.05)
    event_id = _event(world, "l3-cam-telnet")
    publisher.start()
    try:
        # the retry policy spent (2 pushes): the row says so, while the receiver keeps re-sending its firing set
        failed = eventually(lambda: (r := _row(world.db, event_id)).last_error and r, what="the give-up recorded")
        assert not failed.delivered and failed.last_error.startswith("am: ") and len(am.requests) >= 2
        am.responses = [(200, {})]  # Alertmanager is back
        delivered = eventually(lambda: (r := _row(world.db, event_id)).delivered and r, what="the late success")
        assert delivered.last_error is None and delivered.delivered_at is not None
    finally:
        publisher.close(timeout=1)
        am.close()


def test_one_publisher_per_store_and_take_over_when_it_stops(world):
    hook = Receiver(responses=[(200, {})])
    publishers = [EventsPublisher(Database(world.db.url), _config(hook), RECEIVERS, poll_interval=0.05,
                                  lease_retry=0.1)
                  for _ in range(2)]
    try:
        for p in publishers:
            p.start()
        first = _event(world, "l3-a")
        eventually(lambda: _row(world.db, first).delivered, what="delivered by one publisher")
        time.sleep(0.3)
        assert len(hook.requests) == 1, "both publishers sent it"
        leader = next(p for p in publishers if p.leader)
        assert sum(p.leader for p in publishers) == 1
        leader.close(timeout=1)
        second = _event(world, "l3-b")
        eventually(lambda: _row(world.db, second).delivered, what="delivered after the take-over")
        assert len(hook.requests) == 2
        assert next(p for p in publishers if p is not leader).leader
    finally:
        for p in publishers:
            p.close(timeout=1)
            p.db.dispose()
        hook.close()


def test_an_unusable_row_is_left_undelivered_with_the_reason(world):
    hook = Receiver(responses=[(200, {})])
    publisher = EventsPublisher(world.db, _config(hook), RECEIVERS, poll_interval=0.05)
    with world.db.write() as conn:
        bad = conn.execute(insert(Event.__table__).values(
            kind="drift", severity="warning", department_id=world.departments["公安局"],
            system_id=world.systems["视频监控联网平台"], fingerprint="fp-x", summary="no names", payload={},
            created_at=datetime.now(timezone.utc), delivered=False, attempts=0)).inserted_primary_key[0]
    publisher.start()
    try:
        row = eventually(lambda: (r := _row(world.db, bad)).last_error and r, what="the reason recorded")
        assert not row.delivered and "department/system" in row.last_error
        assert row.attempts == 1  # tried once, and never again
        assert hook.requests == []
    finally:
        publisher.close(timeout=1)
        hook.close()


def test_restore_and_delivery_on_both_backends(store_url):
    """The publisher's queries on SQLite and PostgreSQL: a delivered, still-firing alert is pushed again at
    start (restore), a resolved one is not, and an undelivered event is delivered."""
    db = Database(store_url)
    world = World(db)
    world.department("公安局")
    world.system("视频监控联网平台", "公安局")
    still = _event(world, "l3-still-open")
    gone = _event(world, "l3-fixed")
    _event(world, "l3-fixed", resolved=True)  # the latest event of that condition resolves it
    with db.write() as conn:
        conn.execute(Event.__table__.update().values(delivered=True))
    new = _event(world, "l3-new")
    am = Receiver(responses=[(200, {})])  # Alertmanager's POST /api/v2/alerts answers 200
    config = DispatchConfig.model_validate({
        "receivers": [{"name": "am", "type": "alertmanager", "url": am.url(""), "resend_interval_seconds": 0.2}],
        "routes": [{"receivers": ["am"]}]})
    publisher = EventsPublisher(db, config, RECEIVERS, poll_interval=0.05)
    publisher.start()
    try:
        eventually(lambda: _row(db, new).delivered, what="the new event delivered")
        pushed = am.wait_for(2)
        # the system's high-risk findings are one alert (the rule's identity); its annotations name each check
        checks = {c for p in pushed for a in p.json() for c in a["annotations"].get("check", "").split(", ") if c}
        assert {"l3-still-open", "l3-new"} <= checks and "l3-fixed" not in checks
        assert publisher.stats["restored"] == 1
        assert _row(db, still).attempts == 0 and _row(db, gone).delivered
    finally:
        publisher.close(timeout=1)
        am.close()
        db.dispose()


def test_an_event_without_its_level_is_graded_by_its_systems_level_from_the_store(world):
    """Scan events carry no `level` in their payload: the publisher reads the system's protection level, so
    a high-risk finding on a level-2 system is 一般 (not graded as the highest level could be, 重大)."""
    sid = world.system("互联网医院", "公安局", level=2, s=2, a=2)
    hook = Receiver(responses=[(200, {})])
    publisher = EventsPublisher(world.db, _config(hook), RECEIVERS, poll_interval=0.05)
    event_id = _event(world, "l2-telnet")
    with world.db.write() as conn:
        conn.execute(Event.__table__.update().where(Event.id == event_id)
                     .values(system_id=sid, payload={"department": "公安局", "system": "互联网医院", "host": "web-01"}))
    publisher.start()
    try:
        body = hook.wait_for(1)[0].json()
        assert (body["grade"], body["event"]["kind"]) == ("一般", "high_risk_finding"), body
    finally:
        publisher.close()
        hook.close()


def test_pushed_events_link_back_to_the_collector(world):
    hook = Receiver(responses=[(200, {})])
    config = _config(hook).model_copy(update={"link_base_url": "https://collector.example:8443/"})
    publisher = EventsPublisher(world.db, config, RECEIVERS, poll_interval=0.05)
    _event(world, "l3-link")
    publisher.start()
    try:
        body = hook.wait_for(1)[0].json()
        sid = world.systems["视频监控联网平台"]
        assert body["event"]["url"] == f"https://collector.example:8443/api/v1/events?system_id={sid}&kind=high_risk_finding"
    finally:
        publisher.close()
        hook.close()


def test_an_expired_score_drop_is_let_lapse_not_resolved_over_the_rules_alert(world):
    """score_drop is a one-shot notice with the identity of the rule SentinelSystemScoreDropped: when its hold
    ends the publisher stops sending it, but never pushes a resolution (which would end the rule's alert while
    the rule still sees the drop); a drift notice, which no rule shares, is resolved as before."""
    am = Receiver(responses=[(200, {})])
    config = DispatchConfig.model_validate({
        "receivers": [{"name": "am", "type": "alertmanager", "url": am.url(""), "resend_interval_seconds": 0.2}],
        "routes": [{"receivers": ["am"]}]})
    publisher = EventsPublisher(world.db, config, RECEIVERS, poll_interval=0.05, oneshot_hold=0.5)
    ids = []
    for kind in ("score_drop", "drift"):
        ids.append(_event(world, f"c-{kind}"))
        with world.db.write() as conn:
            conn.execute(Event.__table__.update().where(Event.id == ids[-1]).values(kind=kind, check_id=None,
                                                                                   fingerprint=f"fp-{kind}"))
    publisher.start()
    try:
        eventually(lambda: publisher.stats["expired"] >= 2, timeout=10, what="both notices expired")
        time.sleep(0.8)  # a few more push rounds

        def pushed(name: str) -> list[dict]:
            return [a for r in list(am.requests) for a in r.json() if a["labels"]["alertname"] == name]

        drop = [a["endsAt"] for a in pushed("SentinelSystemScoreDropped")]
        drift = [a["endsAt"] for a in pushed("SentinelDrift")]
        # firing pushes move endsAt forward every time; a resolution is re-sent with one fixed endsAt
        assert drop and len(drop) == len(set(drop)), f"a resolution was pushed for the shared alert: {drop}"
        assert len(drift) > len(set(drift)), f"the drift notice was not resolved: {drift}"
        last = am.requests[-1].json()  # the shared alert is no longer pushed at all
        assert [a["labels"]["alertname"] for a in last] == ["SentinelDrift"], last
    finally:
        publisher.close(timeout=1)
        am.close()
