"""Issue 13 point 5: every count and score that the metrics, the REST API and the evidence exports all show is
the same figure on each of them (docs/metrics.md "What the figures count").

The world is tests/evidence_seed.py's, through the real enrollment, ingest and scan ingest, plus what makes the
figures able to differ: a third host on a site baseline whose new version waives a check the old one counted
(a finding closed as waived, not fixed) and makes another advisory (both fail, neither counts), the seed's
fixed findings (web-1), its high-risk network service (two cases on one port) and its manual verdicts on two
manual items (one 符合, one 不符合, so a host's record scores differently from its run), and a decommissioned
host whose open findings stay in the trail. On SQLite and PostgreSQL."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from prometheus_client.parser import text_string_to_metric_families

from sentinel import scoring
from sentinel.baseline import load_baseline
from sentinel.collector import operations
from sentinel.collector.auth import cli_principal
from sentinel.collector.baselines import BaselineRegistry
from sentinel.evidence.collect import collect
from sentinel.exporters.evidence.html import render_html, render_rectification_html
from sentinel.exporters.evidence.jsonexport import export_json, load_json
from sentinel.exporters.evidence.rectification import rectification_rows, service_rectification_rows
from sentinel.exporters.evidence.risk import high_risk_entries
from sentinel.exporters.evidence.xlsx import export_xlsx
from sentinel.model import CheckResult, Severity
from sentinel.store import findings as trail
from sentinel.store.snapshot import build_snapshot
from tests import evidence_seed as seed
from tests.collector_helpers import World, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

SITE_ID = "evidence-seed-site"
SITE = """id: evidence-seed-site
version: "{version}"
extends: evidence-seed.yaml
title: {{zh: 站点基线, en: site baseline}}
override:
  login.pass-min-len: {{advisory: {{zh: 本站参考项, en: advisory at this site}}}}
"""
WAIVER = """waive:
  files.no-hosts-equiv: "由堡垒机的访问控制替代 (测评报告附件 3)"
"""
WAIVED, ADVISORY = "files.no-hosts-equiv", "login.pass-min-len"
SCRAPE_TOKEN = "figures-agree-scrape-token"


@pytest.fixture
def world(store_url, tmp_path, make_client):
    s = seed.seed_world(tmp_path, url=store_url)
    # the site file's version 1.1 waives a check that 1.0 counted: its finding is closed as waived, not fixed
    (tmp_path / "site-1.0.yaml").write_text(SITE.format(version="1.0"), encoding="utf-8")
    (tmp_path / "site-1.1.yaml").write_text(SITE.format(version="1.1") + WAIVER, encoding="utf-8")
    s.baselines = BaselineRegistry([tmp_path])  # the collector's copies of the site files
    # fails every check: the waived and the advisory ones are reported, and count nowhere
    worst = seed.make_root(tmp_path / "worst", max_days=99999, min_len=4, empty_password=True, hosts_equiv=True)
    seed.enroll(s, "app-1")
    at = seed.T0 + timedelta(days=1, minutes=10)
    for n, version in enumerate(("1.0", "1.1")):
        site = load_baseline(tmp_path / f"site-{version}.yaml")
        seed.ingest(s, "app-1", seed.report(site, worst, "app-1"), at + timedelta(minutes=n))
    # a decommissioned host: its open findings (one high risk) stay in the trail, it is no 测评对象 any more
    seed.enroll(s, "old-1")
    seed.ingest(s, "old-1", seed.report(seed.write_baseline(tmp_path), worst, "old-1"), at)
    with s.db.session(write=True) as session:
        operations.revoke_agent(operations.Ctx(session, cli_principal("seed")), s.agents["old-1"][0], "retired")
    w = World(s.db)
    with s.db.session() as session:
        system = operations.system_by_name(session, seed.SYSTEM)
        w.departments["hrss"], w.systems[seed.SYSTEM] = system.department_id, system.id
    token = bearer(w.token("reader", "readonly", ["hrss"]))
    # /metrics read from the store in the scrape (no background rendering), behind a token of the test's own
    client = make_client(s.db, metrics_cache_seconds=0, metrics_token=SCRAPE_TOKEN)
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    yield s, client, token, system.id, ev
    s.db.dispose()


def _api(client, token, path, **params):
    r = client.get(f"/api/v1{path}", headers=token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _current(client, token, system_id: int, findings: list[dict]) -> list[dict]:
    """The findings of the system's current hosts: the API lists a decommissioned host's too (its trail stays)."""
    hosts = {h["host_id"] for h in _api(client, token, f"/systems/{system_id}/assessment")["hosts"]}
    return [f for f in findings if f["host_id"] in hosts]


def _xlsx_summary(ev) -> dict[str, object]:
    ws = load_workbook(io.BytesIO(export_xlsx(ev, "en")))["Summary"]
    return {row[0].value: row[1].value for row in ws.iter_rows(min_row=3, max_col=2) if row[0].value}


def _xlsx_objects(ev) -> dict[str, dict[str, object]]:
    """Each object sheet's header block (object, score, conclusion ...), by the object's name: the 测评记录表's
    label/value pairs, labels over A:B and F, values over C:E and G:J, down to the record table's header."""
    out = {}
    for ws in load_workbook(io.BytesIO(export_xlsx(ev, "en"))).worksheets:
        pairs: dict[str, object] = {}
        for row in ws.iter_rows(min_row=2, max_row=40, max_col=10):
            if row[0].value == "No.":
                break
            for label, value in ((row[0], row[2]), (row[5], row[6])):
                if label.value:
                    pairs[str(label.value)] = value.value
        name = str(pairs.get("Object", "")).split(" ", 1)[-1]
        if name in {o.name for o in ev.objects}:
            out[name] = pairs
    return out


def _cards(page: str) -> dict[str, str]:
    return dict(re.findall(r'<div class="k">([^<]+)</div><div class="v"[^>]*>([^<]*)</div>', page))


def _html_cards(ev) -> dict[str, str]:
    return _cards(render_html(ev, "en"))


def _scrape(client) -> list:
    """The samples of a real /metrics scrape (promtool-clean: test_metrics_* check that; here the values)."""
    r = client.get("/metrics", headers=bearer(SCRAPE_TOKEN))
    assert r.status_code == 200, r.text
    return [sample for family in text_string_to_metric_families(r.text) for sample in family.samples]


def _value(samples, name: str, **labels: str) -> float:
    [got] = [x.value for x in samples if x.name == name and all(x.labels.get(k) == v for k, v in labels.items())]
    return got


def _conclusion(samples, name: str, **labels: str) -> str:
    [got] = [x.labels["conclusion"] for x in samples if x.name == name and x.value == 1
             and all(x.labels.get(k) == v for k, v in labels.items())]
    return got


def test_the_world_is_one_where_figures_could_differ(world):
    """Guard: the seeded world has what makes each figure able to differ between surfaces."""
    s, client, token, system_id, ev = world
    objects = {o.name: o for o in ev.objects}
    assert set(objects) == {"app-1", "db-1", "web-1", "network"}
    [app] = objects["app-1"].reports
    results = {r.check_id: r for r in app.results}
    assert results[WAIVED].waiver and results[WAIVED].status.value == "fail"
    assert results[ADVISORY].advisory and results[ADVISORY].status.value == "fail"
    states = {trail.state(f.resolved_at, f.resolution) for f in ev.findings}
    assert states == {"open", "fixed", "waived"}
    # manual verdicts change a host's record: its score is not its run's
    runs = {r["host_id"]: r for r in _api(client, token, "/runs", system_id=system_id)[::-1]}
    db_part = next(h for h in _api(client, token, f"/systems/{system_id}/assessment")["hosts"]
                   if h["hostname"] == "db-1")
    assert runs[db_part["host_id"]]["score"] != objects["db-1"].reports[0].summary.score
    # the network's high-risk service fails more than one high-risk check: per result != per port
    assert any(len(f.high_risk) > 1 for f in ev.service_findings if f.open)


def test_system_score_conclusion_and_verdicts_agree(world):
    s, client, token, system_id, ev = world
    [metrics] = build_snapshot(s.db).systems
    api = _api(client, token, f"/systems/{system_id}/assessment")["summary"]
    exported = load_json(export_json(ev)).summary
    sheet, cards = _xlsx_summary(ev), _html_cards(ev)
    assert metrics.score is not None
    assert metrics.score == api["score"] == ev.summary.score == exported.score == sheet["Composite score"]
    assert cards["Composite score"] == f"{metrics.score:.2f}"
    assert metrics.pass_ratio == api["pass_rate"] == ev.summary.pass_rate == exported.pass_rate
    assert metrics.conclusion == api["conclusion_en"] == ev.summary.conclusion_en == exported.conclusion_en
    assert sheet["Conclusion"] == cards["Conclusion (within the scope)"] == metrics.conclusion
    assert api["verdicts"] == ev.summary.verdicts == exported.verdicts
    pending = api["verdicts"]["待核查"]
    assert sheet["Items pending review"] == pending and cards["Items pending review"] == str(pending)


def test_system_high_risk_count_agrees(world):
    s, client, token, system_id, ev = world
    [metrics] = build_snapshot(s.db).systems
    api = _api(client, token, f"/systems/{system_id}/assessment")["summary"]
    sheet, cards = _xlsx_summary(ev), _html_cards(ev)
    figure = metrics.high_risk_findings
    assert figure == api["high_risk"] == len(api["high_risk_findings"]) == ev.summary.high_risk
    assert figure == len(high_risk_entries(ev)) == sheet["High-risk findings"] == int(cards["High-risk findings"])
    # the rectification report lists each of them: open host findings at risk high, and the cases of open services
    _, still = rectification_rows(ev, "en")
    _, svc_open = service_rectification_rows(ev, "en")
    listed = sum(1 for r in still if r.risk == "high") + sum(len(r.case.split(", ")) for r in svc_open if r.case)
    assert listed == figure
    # the API's open high-risk host findings of the system's hosts and its service findings give the same count
    host_findings = _current(client, token, system_id,
                             _api(client, token, "/findings", system_id=system_id, state="open", high_risk="true"))
    services = _api(client, token, f"/systems/{system_id}/services", state="open", high_risk="true")
    assert len(host_findings) + sum(len(f["high_risk"]) for f in services) == figure


def test_host_figures_agree(world):
    s, client, token, system_id, ev = world
    [metrics] = build_snapshot(s.db).systems
    parts = {h["hostname"]: h for h in _api(client, token, f"/systems/{system_id}/assessment")["hosts"]}
    records = {o.name: o.reports[-1] for o in ev.objects if o.kind == "host"}
    runs = {r["host_id"]: r for r in _api(client, token, "/runs", system_id=system_id)[::-1]}
    exported = {o.name: o.reports[-1] for o in load_json(export_json(ev)).objects}
    sheets = _xlsx_objects(ev)
    assert {h.name for h in metrics.hosts} == set(parts) == set(records) == {"app-1", "db-1", "web-1"}
    for host in metrics.hosts:
        part, record = parts[host.name], records[host.name]
        figures = part["figures"]
        assert host.score == figures["score"] == record.summary.score, host.name
        assert host.score == exported[host.name].summary.score == sheets[host.name]["Composite score"], host.name
        assert sheets[host.name]["Conclusion (within the scope)"] == host.conclusion, host.name
        assert host.pass_ratio == figures["pass_rate"] == record.summary.pass_rate, host.name
        assert host.conclusion == figures["conclusion_en"] == record.summary.conclusion_en, host.name
        assert host.high_risk_findings == figures["high_risk"] == record.summary.high_risk, host.name
        assert host.high_risk_findings == runs[part["host_id"]]["high_risk"], host.name
        failing = {sev: sum(1 for r in record.results if r.severity == sev and scoring.risk_level(r))
                   for sev in Severity}
        assert {k: v for k, v in host.failing_checks.items() if v} == {k: v for k, v in failing.items() if v}
        assert sum(failing.values()) == runs[part["host_id"]]["failed"], host.name


def test_system_failing_checks_agree(world):
    s, client, token, system_id, ev = world
    [metrics] = build_snapshot(s.db).systems
    hosts = [rep for obj, rep in ev.reports() if obj.kind == "host"]
    failing = {sev: sum(1 for rep in hosts for r in rep.results if r.severity == sev and scoring.risk_level(r))
               for sev in Severity}
    assert metrics.failing_checks == failing
    by_clause: dict[str, int] = {}
    for rep in hosts:
        for r in rep.results:
            if scoring.risk_level(r):
                by_clause[r.clause] = by_clause.get(r.clause, 0) + 1
    assert metrics.failing_checks_by_clause == by_clause


def test_open_and_fixed_findings_agree(world):
    s, client, token, system_id, ev = world
    [metrics] = build_snapshot(s.db).systems
    every = _api(client, token, "/findings", system_id=system_id, state="all")
    api = _current(client, token, system_id, every)
    assert len(api) < len(every), "the decommissioned host's findings are listed, and counted nowhere"
    api_states = [trail.state(f["resolved_at"], f["resolution"]) for f in api]
    ev_states = [trail.state(f.resolved_at, f.resolution) for f in ev.findings]
    assert sorted(api_states) == sorted(ev_states)
    assert metrics.findings_open == api_states.count("open") == ev_states.count("open") > 0
    assert metrics.findings_fixed == api_states.count("fixed") == ev_states.count("fixed") > 0
    # the report's rectification line: fixed, open, and the others closed (waived or now advisory) apart
    page = render_html(ev, "en")
    line = re.search(r"<p>fixed: (\d+) · open: (\d+)", page)
    assert line is not None and (int(line[1]), int(line[2])) == (metrics.findings_fixed, metrics.findings_open)


def test_covers_and_the_rectification_report_show_the_api_s_and_the_metrics_figures(world):
    """Issue 18 point 5: the evidence cover (report.html, the workbook's 汇总 sheet) and the rectification report
    show the score, conclusion, high-risk count and open/fixed findings that GET .../assessment and a real /metrics
    scrape show, for the same store; each object's record sheet shows its host's /metrics figures."""
    s, client, token, system_id, ev = world
    samples = _scrape(client)
    at = {"department": "hrss", "system": seed.SYSTEM}
    api = _api(client, token, f"/systems/{system_id}/assessment")
    summary = api["summary"]
    states = [trail.state(f["resolved_at"], f["resolution"]) for f in
              _current(client, token, system_id, _api(client, token, "/findings", system_id=system_id, state="all"))]
    figures = {"score": _value(samples, "sentinel_system_score", **at),
               "pass": _value(samples, "sentinel_system_pass_ratio", **at),
               "conclusion": _conclusion(samples, "sentinel_system_conclusion", **at),
               "high_risk": int(_value(samples, "sentinel_system_high_risk_findings", **at)),
               "open": int(_value(samples, "sentinel_system_findings", state="open", **at)),
               "fixed": int(_value(samples, "sentinel_system_findings", state="fixed", **at))}
    assert figures == {"score": summary["score"], "pass": summary["pass_rate"], "conclusion": summary["conclusion_en"],
                       "high_risk": summary["high_risk"], "open": states.count("open"), "fixed": states.count("fixed")}
    assert figures["high_risk"] > 0 and figures["open"] > 0 and figures["fixed"] > 0
    closed_apart = len(states) - figures["open"] - figures["fixed"]
    assert closed_apart > 0  # the waived finding: closed, counted neither open nor fixed

    cover, rect = _html_cards(ev), _cards(render_rectification_html(ev, "en"))
    for name, page in (("report.html", cover), ("rectification.html", rect)):
        assert page["Conclusion (within the scope)"] == figures["conclusion"], name
        assert page["Composite score"] == f"{figures['score']:.2f}", name
        assert page["Check pass rate"] == f"{100 * figures['pass']:.1f}%", name
        assert int(page["High-risk findings"]) == figures["high_risk"], name
        assert int(page["Findings fixed"]) == figures["fixed"] and int(page["Findings open"]) == figures["open"], name
        assert int(page["Closed, not counted as fixed (waived, now advisory)"]) == closed_apart, name
    sheet = _xlsx_summary(ev)
    assert (sheet["Composite score"], sheet["Check pass rate"], sheet["Conclusion"]) == (
        figures["score"], figures["pass"], figures["conclusion"])
    assert (sheet["High-risk findings"], sheet["Findings fixed"], sheet["Findings open"]) == (
        figures["high_risk"], figures["fixed"], figures["open"])
    assert sheet["Closed, not counted as fixed (waived, now advisory)"] == closed_apart
    # the rectification report's own tables hold as many open findings as its figure says
    page = render_rectification_html(ev, "en")
    listed = re.search(r"<h3>Open findings \((\d+)\)</h3>", page)
    assert listed is not None and int(listed[1]) == figures["open"]
    # network services: the report's and the rectification report's line and the workbook's rows, as the API lists
    services = _api(client, token, f"/systems/{system_id}/services", state="all")
    still = [f for f in services if f["closed_at"] is None]
    failing = sum(1 for f in still  # open with a check that fails and counts (scoring's one risk rule)
                  if any(scoring.risk_level(CheckResult.model_validate(r)) for r in f["check_results"]))
    line = f"Network services: closed {len(services) - len(still)} · open {failing} · open, no failing check " \
           f"{len(still) - failing}"
    assert line in page and line in render_html(ev, "en")
    assert (sheet["Network services closed"], sheet["Network services open, failing a check"],
            sheet["Network services open, none failing"]) == (len(services) - len(still), failing, len(still) - failing)

    records = _xlsx_objects(ev)
    for part in api["hosts"]:
        host = {"host": part["hostname"], **at}
        score = _value(samples, "sentinel_host_score", **host)
        assert score == part["figures"]["score"] == records[part["hostname"]]["Composite score"], part["hostname"]
        assert _conclusion(samples, "sentinel_host_conclusion", **host) == part["figures"]["conclusion_en"] == \
            records[part["hostname"]]["Conclusion (within the scope)"], part["hostname"]
