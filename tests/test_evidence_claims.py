"""Issue 20 item 2 in the evidence bundle: an agent's claimed item verdicts are not evidence.

A report whose results fail but whose items claim 符合 (and whose summary claims 优/100) is accepted by the
collector (scored by its own baseline, the claim flagged); the bundle exported for a testing agency must show
the verdicts the results give, and `sentinel verify` must find the untampered bundle intact.
"""
from __future__ import annotations

import json
import zipfile

from sentinel.evidence.collect import collect
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from sentinel.model import Verdict
from tests import evidence_seed as seed


def test_a_report_claiming_conform_items_is_exported_with_the_verdicts_its_results_give(tmp_path):
    baseline = seed.write_baseline(tmp_path)
    bad = seed.make_root(tmp_path / "bad", max_days=99999, min_len=4, empty_password=True, hosts_equiv=True)
    s = seed.new_store(tmp_path)
    seed.create_system(s)
    seed.enroll(s, "web-1")
    honest = seed.report(baseline, bad, "web-1")
    truth = {(i.clause, i.item): i.verdict.value for i in honest.items}
    assert "不符合" in truth.values()
    forged = honest.model_copy(deep=True)
    for item in forged.items:
        if item.checks:
            item.verdict = Verdict.CONFORM
    forged.summary.score, forged.summary.conclusion = 100.0, "优"
    seed.ingest(s, "web-1", forged, seed.T0)

    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    [(_, rep)] = list(ev.reports())
    assert {(i.clause, i.item): i.automated.value for i in rep.items} == truth
    assert rep.summary.conclusion == "差" and ev.summary.conclusion == "差"
    out = tmp_path / "bundle.zip"
    write_bundle(ev, out, s.key)
    result = verify_bundle(out, s.key.public_key())
    assert result.ok, [str(p) for p in result.problems]
    with zipfile.ZipFile(out) as zf:
        data = json.loads(zf.read("evidence.json"))
    shown = {(i["clause"], i["item"]): i["automated"]
             for o in data["objects"] for r in o["reports"] for i in r["items"]}
    assert shown == truth
    s.db.dispose()
