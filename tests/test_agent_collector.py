"""The agent against the real collector (FastAPI + SQLite, HTTP over 127.0.0.1).

Enrollment round trip; scheduled runs while the collector goes away and comes back: every envelope
stored exactly once, oldest first, each signature verifiable with the agent's registered key; a bounded
spool drops the oldest with a warning; a revoked agent keeps its spool.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from sentinel import signing
from sentinel.agent.config import BaselineSchedule, load_settings
from sentinel.agent.daemon import Agent
from sentinel.agent.enroll import EnrollError, enroll
from sentinel.allinone import LocalCollector
from sentinel.store import envelopes
from sentinel.store.models import Agent as AgentRow
from sentinel.store.models import Report
from sentinel.wiring import exporters

from .test_agent_runner import BASELINE


@pytest.fixture
def collector(tmp_path):
    c = LocalCollector(tmp_path / "collector", exporters())
    c.prepare()
    c.start()
    yield c
    c.close()


def _token(collector: LocalCollector) -> str:
    token, _ = collector.bootstrap(want_token=True)
    return token


FAILING_CHECK = """\
          - id: t-never-there
            title: {zh: 不存在的文件, en: a file that is never there}
            probe: file.exists
            params: {paths: [/nonexistent/sentinel-test]}
            expect: {empty: false}
            severity: high
            rationale: {zh: 理由, en: why}
            remediation: {zh: 整改, en: fix}
"""


def _settings(tmp_path: Path, extra_checks: str = "", **kw):
    baseline = tmp_path / "quick.yaml"
    baseline.write_text(BASELINE % extra_checks, encoding="utf-8")
    # the collector judges reports by its own copy of their baseline: the same file as a site baseline
    site = tmp_path / "collector" / "baselines"
    site.mkdir(parents=True, exist_ok=True)
    (site / "quick.yaml").write_text(BASELINE % extra_checks, encoding="utf-8")
    kw.setdefault("baselines", [BaselineSchedule(baseline=str(baseline), interval=1, jitter=0)])
    return load_settings(None, default_file=False, state_dir=tmp_path / "agent", retry_min=0.1, retry_max=0.3,
                         request_timeout=5, **kw)


def _stored(collector: LocalCollector) -> list[Report]:
    with collector.db.session() as s:
        return list(s.exec(select(Report).order_by(Report.id)).all())


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_enrollment_round_trip(tmp_path, collector):
    settings = _settings(tmp_path)
    token = _token(collector)
    identity = enroll(settings, token, collector.url)
    with collector.db.session() as s:
        row = s.get(AgentRow, identity.agent_id)
    key = signing.load_private_key(settings.key_file)
    assert row is not None and row.state == "enrolled" and row.public_key == signing.public_key_b64(key)
    assert identity.system == "this-host" and identity.department == "local"
    assert identity.collector_public_key == collector_app_key(collector)
    with pytest.raises(EnrollError, match="401.*already used"):
        enroll(settings, token, collector.url, force=True)


def collector_app_key(collector: LocalCollector) -> str:
    return signing.public_key_b64(signing.load_private_key(collector.settings.signing_key_file))


def test_collector_outage_every_report_arrives_once_oldest_first(tmp_path, collector):
    settings = _settings(tmp_path, utilisation_interval=1, sample_interval=0.3)
    enroll(settings, _token(collector), collector.url)
    agent = Agent(settings)
    spooled_seq: list[tuple[int, str]] = []  # (spool sequence, report id) of everything the agent made
    put = agent.spool.put

    def recording(envelope):
        entry = put(envelope)
        spooled_seq.append((entry.seq, entry.report_id))
        return entry

    agent.spool.put = recording
    made = lambda: [rid for _, rid in sorted(spooled_seq)]  # noqa: E731
    agent.start()
    try:
        _wait(lambda: any(r.kind == "host_report" for r in _stored(collector)), 60, "the first stored report")
        collector.stop()
        _wait(lambda: len(agent.spool.pending()) >= 3, 60, "envelopes spooled during the outage")
        spooled = len(agent.spool.pending())
        collector.start()  # same port, same database
        _wait(lambda: not agent.spool.pending(), 60, "the spool to drain")
    finally:
        agent.stop()
    rows = _stored(collector)
    ids = [r.report_id for r in rows]
    assert spooled >= 3
    assert len(ids) == len(set(ids)), "an envelope was stored twice"
    left = {e.report_id for e in agent.spool.pending()}  # made while stopping
    assert ids == [rid for rid in made() if rid not in left], "lost, or stored out of the order made"
    kinds = {r.kind for r in rows}
    assert kinds == {"host_report", "inventory", "utilisation"}
    pub = signing.load_public_key_b64(signing.public_key_b64(signing.load_private_key(settings.key_file)))
    for row in rows:
        assert row.envelope is not None
        assert signing.verify(pub, envelopes.unpack(row.envelope), row.signature)


def test_bounded_spool_drops_oldest_with_a_warning(tmp_path, collector, caplog):
    settings = _settings(tmp_path, spool_max_count=2)
    enroll(settings, _token(collector), collector.url)
    agent = Agent(settings)
    collector.stop()
    with caplog.at_level(logging.WARNING):
        ids = [agent.enqueue("utilisation", {"samples": [_sample()]}) for _ in range(4)]
        assert not agent.flush().complete
    assert "spool full" in caplog.text and ids[0] in caplog.text and ids[1] in caplog.text
    collector.start()
    assert agent.flush().delivered == 2
    assert [r.report_id for r in _stored(collector)] == ids[2:]
    agent.close()


def test_revoked_agent_keeps_its_spool(tmp_path, collector):
    settings = _settings(tmp_path)
    enroll_token, admin_token = collector.bootstrap(want_token=True)
    assert admin_token is not None and collector.bootstrap(want_token=False) == (None, None)  # made once
    enroll(settings, enroll_token, collector.url)
    agent = Agent(settings)
    r = httpx.post(f"{collector.url}/api/v1/agents/{agent.identity.agent_id}/revoke",
                   headers={"Authorization": f"Bearer {admin_token}"}, json={"reason": "test"})
    assert r.status_code == 200, r.text
    agent.enqueue("utilisation", {"samples": [_sample()]})
    result = agent.flush()
    assert result.blocked and "403" in result.blocked and result.remaining == 1
    assert _stored(collector) == []
    agent.close()


def test_inventory_is_accepted_by_the_collector_schema(tmp_path, collector):
    settings = _settings(tmp_path)
    enroll(settings, _token(collector), collector.url)
    agent = Agent(settings)
    agent.send_inventory()
    agent.take_sample()
    agent.send_utilisation()
    result = agent.flush()
    assert (result.delivered, result.rejected, result.remaining) == (2, 0, 0), result
    agent.close()


def _sample() -> dict:
    return {"at": "2026-01-01T00:00:00Z", "cpu_percent": 1.0, "memory_percent": 2.0, "net_bytes_sent": 0,
            "net_bytes_recv": 0, "logins": 0}


def test_a_report_edited_in_the_spool_never_reaches_the_collector_as_genuine(tmp_path, collector):
    """Issue 20 item 2: reports are signed when made. A waiting report edited on disk (its failures turned
    into passes) is moved to rejected/ by the agent, and the edited bytes are refused by the collector too."""
    from sentinel.agent.runner import run_isolated

    settings = _settings(tmp_path, FAILING_CHECK)
    enroll(settings, _token(collector), collector.url)
    agent = Agent(settings)
    collector.stop()
    report = run_isolated(settings.baselines[0].baseline, "r-1", 60)
    assert report["summary"]["counts"]["fail"] == 1 and report["summary"]["conclusion"] != "优"
    rid = agent.enqueue("host_report", report, report_id="r-1")
    [entry] = agent.spool.pending()
    stored = json.loads(entry.path.read_text())
    envelope = json.loads(stored["envelope"])
    for result in envelope["body"]["results"]:
        result["status"] = "pass"  # the local edit: every failure now passes
    envelope["body"]["summary"].update(score=100.0, conclusion="优")
    edited = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    entry.path.write_text(json.dumps({**stored, "envelope": edited}, ensure_ascii=False))
    collector.start()

    result = agent.flush()
    assert (result.rejected, result.delivered, result.remaining) == (1, 0, 0)
    [moved] = agent.spool.rejected_dir.glob(f"*-{rid}.json")
    assert "does not verify" in moved.with_suffix(".reason").read_text()
    assert _stored(collector) == []
    # sent anyway (by anyone who can write the spool but not sign), the collector refuses the edited bytes
    answer = agent.client.send(edited.encode("utf-8"), agent.identity.agent_id, stored["signature"])
    assert answer.status == 401 and "signature" in answer.detail
    assert _stored(collector) == []
    # the untouched report, as made and signed, is stored with the collector's own scoring
    answer = agent.client.send(stored["envelope"].encode("utf-8"), agent.identity.agent_id, stored["signature"])
    assert answer.status == 202, answer.detail
    [row] = _stored(collector)
    assert row.report_id == rid
    with collector.db.session() as s:
        from sentinel.store.models import Run

        [run] = s.exec(select(Run)).all()
    assert run.failed == 1 and run.conclusion == report["summary"]["conclusion"]
    agent.close()


def test_local_agent_enrolls_again_over_its_own_host(tmp_path, collector):
    """`sentinel up` after the agent's state was lost: the known host is re-enrolled (not refused 409),
    the old agent is revoked, the host's history is kept."""
    settings = _settings(tmp_path)
    old = enroll(settings, _token(collector), collector.url)
    new = enroll(settings, _token(collector), collector.url, force=True)
    with collector.db.session() as s:
        assert s.get(AgentRow, old.agent_id).state == "revoked"
        assert s.get(AgentRow, new.agent_id).state == "enrolled"
        assert s.get(AgentRow, new.agent_id).host_id == s.get(AgentRow, old.agent_id).host_id
