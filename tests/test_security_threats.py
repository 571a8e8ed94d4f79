"""Issue 20 claims whose tests ran on one store only, repeated on SQLite and PostgreSQL (docs/security.md).

- /metrics (it names every department's systems and scores) is closed to an anonymous caller by default,
  and shows them to the holder of the token the collector made; first checked on SQLite only
  (tests/test_obs_collector.py).
- A report that leaves optional fields out goes through ingest, the store, the export and `verify` as it was
  sent: INTACT, with no time invented for its evidence. PostgreSQL keeps the body in a JSON column whose
  round trip must not add keys or values; first checked on SQLite only (tests/test_evidence_optional_fields.py).
"""
from __future__ import annotations

import json
import zipfile

from sentinel.evidence.collect import collect
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from tests import evidence_seed as seed
from tests.collector_helpers import World, bearer, envelope, make_report, sign
from tests.test_evidence_optional_fields import _lean

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


def test_metrics_are_closed_to_outsiders_on_both_stores(db, make_client, tmp_path):
    w = World(db)
    w.department("财政局")
    w.system("非税收入管理系统", "财政局")
    client = make_client(db)
    agent = w.enroll(client, "非税收入管理系统", "web-1")
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "fail", "b": "pass"})))
    assert client.post("/api/v1/agent/reports", content=raw, headers=headers).status_code == 202

    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
    assert "非税收入管理系统" not in anonymous.text and "财政局" not in anonymous.text
    assert client.get("/metrics", headers=bearer("not-the-token-0123456789abcdef")).status_code == 401
    token = (tmp_path / "state" / "metrics-token").read_text().strip()
    scraped = client.get("/metrics", headers=bearer(token))
    assert scraped.status_code == 200 and 'system="非税收入管理系统"' in scraped.text


def test_a_lean_reports_bundle_verifies_on_both_stores(store_url, tmp_path):
    baseline = seed.write_baseline(tmp_path)
    root = seed.make_root(tmp_path / "root", max_days=99999, hosts_equiv=True)
    s = seed.new_store(tmp_path, url=store_url)
    try:
        seed.create_system(s)
        seed.enroll(s, "web-1")
        body = _lean(seed.fresh_body(seed.report(baseline, root, "web-1"), seed.T0))
        assert all("at" not in e for r in body["results"] for e in r["evidence"])
        seed.ingest_body(s, "web-1", body, seed.T0)
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
        out = tmp_path / "bundle.zip"
        write_bundle(ev, out, s.key)
        report = verify_bundle(out, s.key.public_key())
        assert report.ok, [str(p) for p in report.problems]
        with zipfile.ZipFile(out) as zf:
            data = json.loads(zf.read("evidence.json"))
        times = [e.get("at") for o in data["objects"] for r in o["reports"] for x in r["results"]
                 for e in x["evidence"]]
        assert times and set(times) == {None}, "the export invented an evidence time"
    finally:
        s.db.dispose()
