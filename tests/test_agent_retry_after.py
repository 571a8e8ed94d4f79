"""The agent honours the collector's Retry-After (issue 20: a full spool must drain at the collector's pace).

Against the real collector (uvicorn on 127.0.0.1, its per-agent limit at 1 report/s): an agent whose own
backoff starts at 60 s delivers a spool of several reports in a few seconds, waiting what each 429's
Retry-After says instead of its backoff. And the header is read within bounds: a hostile or broken answer
can neither make an agent hammer the collector nor park delivery for longer than five minutes.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from sentinel.agent.client import RETRY_AFTER_MAX, RETRY_AFTER_MIN, parse_retry_after
from sentinel.agent.daemon import Agent
from sentinel.agent.enroll import enroll
from sentinel.allinone import LocalCollector
from sentinel.wiring import exporters

from .test_agent_collector import _sample, _settings, _stored, _token, _wait

SPOOLED = 4


@pytest.fixture
def limited_collector(tmp_path):
    c = LocalCollector(tmp_path / "collector", exporters())
    c.settings.agent_rate = 1.0  # one report a second per agent, no burst: the second one is answered 429
    c.settings.agent_burst = 1
    c.prepare()
    c.start()
    yield c
    c.close()


def test_a_full_spool_drains_at_the_pace_retry_after_gives(tmp_path, limited_collector):
    collector = limited_collector
    settings = _settings(tmp_path)
    settings.retry_min, settings.retry_max = 60.0, 300.0  # the agent's own backoff would wait a minute
    enroll(settings, _token(collector), collector.url)
    agent = Agent(settings)
    statuses: list[tuple[int | None, float | None]] = []
    send = agent.client.send

    def recording(raw, agent_id, signature):
        answer = send(raw, agent_id, signature)
        statuses.append((answer.status, answer.retry_after))
        return answer

    agent.client.send = recording
    ids = [agent.enqueue("utilisation", {"samples": [_sample()]}) for _ in range(SPOOLED)]
    # the daemon's delivery loop itself (agent.start() would also schedule baseline runs)
    loop = threading.Thread(target=agent._deliver_loop, daemon=True)
    started = time.monotonic()
    loop.start()
    try:
        _wait(lambda: not agent.spool.pending(), 30, "the spool to drain at the collector's Retry-After")
    finally:
        agent._stopping.set()
        agent._kick.set()
        loop.join(10)
        agent.close()
    took = time.monotonic() - started
    limited = [after for status, after in statuses if status == 429]
    assert limited, f"the collector's limit was never reached: {statuses}"
    assert all(after is not None and RETRY_AFTER_MIN <= after <= 5 for after in limited), statuses
    assert [r.report_id for r in _stored(collector)] == ids, "every report once, oldest first"
    assert took < 30 and took >= SPOOLED - 1 - 0.5, f"{took:.1f} s: not paced by the 1/s limit"


def test_retry_after_is_read_within_bounds():
    now = 1_800_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("0") == RETRY_AFTER_MIN  # never an immediate retry
    assert parse_retry_after("86400") == RETRY_AFTER_MAX
    assert parse_retry_after("9" * 40) == RETRY_AFTER_MAX
    at = datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=42)
    assert parse_retry_after(format_datetime(at, usegmt=True), now=now) == pytest.approx(42.0)
    past = datetime.fromtimestamp(now, timezone.utc) - timedelta(hours=1)
    assert parse_retry_after(format_datetime(past, usegmt=True), now=now) == RETRY_AFTER_MIN
    for unreadable in (None, "", "  ", "-5", "1.5", "soon", "Mon, 99 Foo 2026 00:00:00 GMT"):
        assert parse_retry_after(unreadable, now=now) is None, unreadable
