"""Issue 14: an advisory check (evidence only, docs/baselines.md) counts as a failure nowhere downstream of the
collector: no finding, no failing-check metric, not in the evidence exports' problem (问题描述/整改) or high-risk
lists; it is shown, marked advisory. Reports go through the collector's real enrollment and ingest, on SQLite
and PostgreSQL; the evidence seed baseline is made advisory on two of its checks (one of them high risk)."""
from __future__ import annotations

import re
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.evidence.collect import collect
from sentinel.exporters.evidence.common import problem_rows, result_line
from sentinel.exporters.evidence.risk import high_risk_entries
from sentinel.exporters.prometheus import host_metrics_from_report, make_registry, render
from sentinel.model import Severity
from sentinel.store.snapshot import build_snapshot
from tests import evidence_seed as seed
from tests.obs_support import need
from tests.test_dashboards import GRAFANA, _load, _panels

pytest_plugins = ["tests.dbfixtures"]

ADVISORY = {"login.pass-max-days", "accounts.no-empty-password"}


def _advisory_baseline(tmp_path):
    text = seed.BASELINE
    for check_id in sorted(ADVISORY):
        anchor = f"      - id: {check_id}\n"
        assert anchor in text
        text = text.replace(anchor, anchor + "        advisory: {zh: 测试参考项, en: advisory in this test}\n")
    path = tmp_path / "evidence-seed.yaml"  # where new_store's collector registry looks
    path.write_text(text, encoding="utf-8")
    from sentinel.baseline import load_baseline

    return load_baseline(path)


@pytest.fixture
def world(store_url, tmp_path):
    baseline = _advisory_baseline(tmp_path)
    # fails all four checks: PASS_MAX_DAYS 99999 and the empty password are the advisory ones
    bad = seed.make_root(tmp_path / "bad", max_days=99999, empty_password=True, hosts_equiv=True)
    s = seed.new_store(tmp_path, store_url)
    seed.create_system(s)
    seed.enroll(s, "web-1")
    rep = seed.report(baseline, bad, "web-1")
    assert {r.check_id for r in rep.results if r.status == "fail"} == ADVISORY | {"files.no-hosts-equiv"}
    seed.ingest(s, "web-1", rep, seed.T0)
    yield s, rep
    s.db.dispose()


def test_the_failing_check_metrics_leave_advisory_failures_out(world):
    s, rep = world
    snap = build_snapshot(s.db, now=seed.T0)
    [system] = snap.systems
    [host] = system.hosts
    # only files.no-hosts-equiv (high) counts: the advisory medium and high failures do not
    assert {k: v for k, v in host.failing_checks.items() if v} == {Severity.HIGH: 1}
    assert {k: v for k, v in system.failing_checks.items() if v} == {Severity.HIGH: 1}
    assert system.failing_checks_by_clause == {"8.1.4.4": 1}
    assert system.findings_open == 1 and system.high_risk_findings == 0  # the high-risk one is advisory
    # the agent's own exporter counts the same from the report
    agent_side = host_metrics_from_report(rep)
    assert {k: v for k, v in agent_side.failing_checks.items() if v} == {Severity.HIGH: 1}


def test_per_check_series_mark_advisory_results_and_the_dashboard_leaves_them_out(world):
    """The opt-in sentinel_check_result carries advisory="true" for the advisory checks of a real ingest, and
    the host dashboard's failing-checks table asks for advisory="false", so it lists only the counted
    failure (the selector is applied to the scraped samples as Prometheus would)."""
    s, _ = world
    body, _ = render(make_registry(lambda: build_snapshot(s.db, now=seed.T0, per_check=True), per_check=True))
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode()
    results = [smp for fam in text_string_to_metric_families(body.decode()) for smp in fam.samples
               if smp.name == "sentinel_check_result"]
    failing = {smp.labels["check"]: smp.labels["advisory"] for smp in results if smp.labels["status"] == "fail"}
    assert failing == {"login.pass-max-days": "true", "accounts.no-empty-password": "true",
                       "files.no-hosts-equiv": "false"}
    [selector] = [t["expr"] for p in _panels(_load(GRAFANA / "dashboards" / "sentinel-host.json"))
                  if p["title"].startswith("未通过的检查 /") for t in p["targets"]]
    matchers = re.findall(r'(\w+)(=~|=)"([^"]*)"', selector)
    listed = {smp.labels["check"] for smp in results
              if all((re.fullmatch(v, smp.labels[k]) if op == "=~" else smp.labels[k] == v)
                     for k, op, v in matchers if not v.startswith("$"))}
    assert listed == {"files.no-hosts-equiv"}, selector


def test_evidence_shows_advisory_results_but_not_as_gaps(world):
    s, _ = world
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    assert {f.check_id for f in ev.findings} == {"files.no-hosts-equiv"}  # the rectification trail
    for lang in ("zh", "en"):
        assert [(p.clause, p.item) for p in problem_rows(ev, lang)] == [("8.1.4.4", "b")]
        assert high_risk_entries(ev, lang) == []
    [(_, report)] = list(ev.reports())
    shown = {r.check_id: r for r in report.results}
    assert shown["accounts.no-empty-password"].advisory is not None  # kept with the stored row (0007)
    assert shown["files.no-hosts-equiv"].advisory is None
    assert "参考项，不计入判定" in result_line(shown["accounts.no-empty-password"], "zh")
    assert "advisory, not counted" in result_line(shown["login.pass-max-days"], "en")
    assert "参考项" not in result_line(shown["files.no-hosts-equiv"], "zh")


def test_the_bundle_names_advisory_results(world, tmp_path):
    import io
    import zipfile

    from openpyxl import load_workbook

    from sentinel.exporters.evidence.bundle import write_bundle

    s, _ = world
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    assert ev.summary.advisory["fail"] == 2 and ev.summary.counts["fail"] == 3
    out = tmp_path / "bundle.zip"
    write_bundle(ev, out, s.key)
    with zipfile.ZipFile(out) as zf:
        raw = zf.read("evidence/web-1/evidence-seed.txt").decode()
        book = load_workbook(io.BytesIO(zf.read("record.xlsx")), read_only=True)
    block = raw.split("check: accounts.no-empty-password", 1)[1].split("=" * 78, 1)[0]
    assert "advisory (参考项，不计入判定): 测试参考项 / advisory in this test" in block
    assert "advisory" not in raw.split("check: files.no-hosts-equiv", 1)[1].split("=" * 78, 1)[0]
    cells = [(c, n) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
             for c, n in [row[:2]] if isinstance(c, str)]
    assert ("fail（参考项，不计入判定）", 2) in cells and ("fail", 3) in cells


def test_a_finding_closed_as_advisory_reads_so_in_the_trail(world):
    """A finding opened while login.pass-max-days counted (a store from before it became advisory) is closed
    by the next report as `advisory`; the trail shows it so, with the advisory result as the 'after' evidence."""
    from datetime import timedelta

    from sqlalchemy import select

    from sentinel.exporters.evidence.common import finding_state
    from sentinel.store.models import Finding

    s, rep = world
    with s.db.write() as conn:
        [template] = conn.execute(select(Finding.__table__)).all()
        row = {k: v for k, v in template._mapping.items() if k != "id"}
        conn.execute(Finding.__table__.insert().values({**row, "check_id": "login.pass-max-days",
                                                        "clause": "8.1.4.1", "item": "a", "severity": "medium"}))
    seed.ingest(s, "web-1", rep, seed.T0 + timedelta(hours=1))
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    [f] = [f for f in ev.findings if f.check_id == "login.pass-max-days"]
    assert f.resolution == "advisory" and f.resolved_at is not None
    assert f.after is not None and f.after.advisory is not None and f.after.status.value == "fail"
    assert finding_state(f, "zh") == "转为参考项（不计入判定）"
    assert finding_state(f, "en") == "now advisory (not counted)"
    assert [p.clause for p in problem_rows(ev, "zh")] == ["8.1.4.4"]
    # a range that starts after the first run: its result comes from the stored row, which keeps the mark
    with s.db.session() as session:
        later = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key),
                        start=seed.T0 + timedelta(minutes=30))
    [f] = [f for f in later.findings if f.check_id == "login.pass-max-days"]
    assert f.before is not None and f.before.advisory is not None
    assert "参考项，不计入判定" in result_line(f.before, "zh")
