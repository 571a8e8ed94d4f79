"""Issue 20 item 7: a report that omits optional fields is exported and verified as it was sent.

The body goes through the collector's real ingest (signed by an enrolled agent), the real export and
`sentinel verify`; nothing in between may fill a missing field with a value of its own, least of all a time.
"""
from __future__ import annotations

import json
import zipfile

import pytest

from sentinel import signing
from sentinel.cli import main
from sentinel.collector.ingest import Ingestor
from sentinel.evidence.collect import collect
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from tests import evidence_seed as seed

OPTIONAL_RESULT_KEYS = ("high_risk", "waiver", "duration_ms", "reason")


def _lean(body: dict) -> dict:
    """The body as a lean agent would send it: optional keys left out where they hold no value."""
    for r in body["results"]:
        for k in OPTIONAL_RESULT_KEYS:
            if r.get(k) in (None, 0.0):
                r.pop(k, None)
        for e in r["evidence"]:
            e.pop("at")
            for k in ("line", "excerpt"):
                if e.get(k) is None:
                    e.pop(k)
    for k in ("kernel", "root"):
        body["host"].pop(k, None)
    body.pop("duration_ms", None)
    return body


@pytest.fixture(scope="module")
def lean_world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lean")
    baseline = seed.write_baseline(tmp)
    root = seed.make_root(tmp / "root", max_days=99999, hosts_equiv=True)
    s = seed.new_store(tmp)
    seed.create_system(s)
    seed.enroll(s, "web-1")
    body = _lean(seed.fresh_body(seed.report(baseline, root, "web-1"), seed.T0))
    assert all("at" not in e for r in body["results"] for e in r["evidence"]) and body["results"][0]["evidence"]
    seed.ingest_body(s, "web-1", body, seed.T0)
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    out = tmp / "bundle.zip"
    write_bundle(ev, out, s.key)
    yield s, ev, out
    s.db.dispose()


def test_untampered_bundle_of_a_lean_report_verifies(lean_world, capsys):
    s, _, bundle = lean_world
    report = verify_bundle(bundle, s.key.public_key())
    assert report.ok, [str(p) for p in report.problems]
    assert report.results_checked == 4
    key_file = bundle.parent / "collector.pub"
    key_file.write_text(signing.public_key_b64(s.key) + "\n")
    assert main(["verify", str(bundle), "--pubkey", str(key_file)]) == 0
    assert "ALTERED" not in capsys.readouterr().out


def test_export_keeps_a_missing_evidence_time_missing(lean_world):
    _, ev, bundle = lean_world
    results = [r for _, rep in ev.reports() for r in rep.results]
    assert results and all(e.at is None for r in results for e in r.evidence)
    with zipfile.ZipFile(bundle) as zf:
        data = json.loads(zf.read("evidence.json"))
        text = zf.read("evidence/web-1/evidence-seed.txt").decode()
    times = [e.get("at") for o in data["objects"] for rep in o["reports"] for r in rep["results"]
             for e in r["evidence"]]
    assert times and set(times) == {None}
    assert "-- /etc/login.defs" in text and "(the report gives no time)" in text and " at 20" not in text


def test_fresh_results_still_carry_their_observation_time(tmp_path):
    from sentinel.engine import run_baseline
    from sentinel.hostview import RootHost
    from sentinel.model import utcnow

    before = utcnow()
    rep = run_baseline(seed.write_baseline(tmp_path), RootHost(str(seed.make_root(tmp_path / "r"))))
    stamps = [e.at for r in rep.results for e in r.evidence]
    assert stamps and all(s is not None and before <= s <= utcnow() for s in stamps)


def test_a_report_without_generated_at_shows_the_collectors_time_not_the_exports(tmp_path):
    from sqlmodel import select

    from sentinel.store.models import Run

    baseline = seed.write_baseline(tmp_path)
    s = seed.new_store(tmp_path)
    seed.create_system(s)
    seed.enroll(s, "web-1")
    agent_id, key = s.agents["web-1"]
    body = seed.report(baseline, seed.make_root(tmp_path / "root"), "web-1").model_dump(mode="json")
    del body["generated_at"]
    env = {"report_id": body["report_id"], "agent_id": agent_id, "sent_at": seed.T0.isoformat(),
           "kind": "host_report", "body": body}
    raw = json.dumps(env, ensure_ascii=False).encode("utf-8")
    ingestor = Ingestor(s.db, max_body_bytes=8 << 20, skew_seconds=300, clock=lambda: seed.T0,
                        **({"baselines": s.baselines} if hasattr(s, "baselines") else {}))
    status, answer = ingestor.handle(raw, agent_id, signing.sign(key, raw), "127.0.0.1")
    if status != 202:  # the collector may refuse such a report outright: then nothing is exported to check
        assert status == 422 and "generated_at" in json.dumps(answer), answer
        return
    with s.db.session() as session:
        recorded = session.exec(select(Run)).one().finished_at
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    (rep,) = [rep for _, rep in ev.reports()]
    assert rep.generated_at == recorded
    assert any("without generated_at" in n for n in ev.notes)
    write_bundle(ev, tmp_path / "b.zip", s.key)
    assert verify_bundle(tmp_path / "b.zip", s.key.public_key()).ok
    s.db.dispose()
