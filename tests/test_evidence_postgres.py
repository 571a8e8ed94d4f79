"""The evidence path on the real PostgreSQL store: seed through ingest, assess with an attachment (stored in
the migrated assessment_attachments table), export, verify."""
from __future__ import annotations

import pytest

from sentinel.evidence.collect import collect
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from tests import evidence_seed as seed

pytest_plugins = ["tests.dbfixtures"]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_export_and_verify_on_postgresql(store_url, tmp_path):
    s = seed.seed_world(tmp_path, url=store_url)
    try:
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
        assert [o.name for o in ev.objects] == ["db-1", "web-1", "network"] and len(ev.chain.entries) == 4
        assert ev.summary.conclusion == "差" and len([f for f in ev.findings if f.open]) == 2
        manual = {(a.clause, a.item): a for a in ev.manual_assessments}
        assert manual["8.1.4.11", "a"].attachments[0].name == "访谈记录.txt"
        out = tmp_path / "pg.zip"
        write_bundle(ev, out, s.key)
        report = verify_bundle(out, s.key.public_key())
        assert report.ok, [str(p) for p in report.problems]
        assert report.runs_checked == 4
    finally:
        s.db.dispose()
