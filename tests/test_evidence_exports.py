"""The record workbook, HTML report (rendered in headless Chromium), JSON, risk view and rectification
report: expected content, verdicts, weights and manual items; and the store-free assembly path."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from sentinel import signing
from sentinel.evidence.assemble import HostRun, build
from sentinel.evidence.collect import collect
from sentinel.evidence.model import FindingRecord, ManualAssessmentRecord, SystemRef, TimeRange
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence import pdf
from sentinel.exporters.evidence.bundle import write_bundle
from sentinel.exporters.evidence.html import render_html, render_rectification_html
from sentinel.exporters.evidence.jsonexport import export_json, load_json
from sentinel.exporters.evidence.rectification import rectification_rows
from sentinel.exporters.evidence.risk import high_risk_entries, major_hazard_entries, paste_text
from sentinel.exporters.evidence.xlsx import export_xlsx, sheet_name
from tests import evidence_seed as seed


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence-exports")
    s = seed.seed_world(tmp)
    with s.db.session() as session:
        ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    yield s, tmp, ev
    s.db.dispose()


def test_workbook_sheets_rows_verdicts_and_weights(world):
    _, _, ev = world
    wb = load_workbook(io.BytesIO(export_xlsx(ev, "zh")))
    assert wb.sheetnames == ["汇总", "系统测评项汇总", "主机 db-1", "主机 web-1", "网络区域 network", "问题汇总",
                             "人工核查", "重大风险隐患", "得分趋势", "数据备份恢复（恢复点目标）", "报告章节"]
    # the DR sheet: one row per host (no copy declared in this world), its verdict as the JSON's dr has it
    dr = wb["数据备份恢复（恢复点目标）"]
    head = next(c.row for c in dr["A"] if c.value == "序号")
    hosts = {r[1]: r[2] for r in dr.iter_rows(min_row=head + 1, values_only=True) if r[0] is not None}
    assert ev.dr is not None and hosts == {h.host: h.verdict_zh for h in ev.dr.hosts}
    summary = {r[0]: r[1] for r in wb["汇总"].iter_rows(values_only=True) if r[0]}
    assert summary["定级 (S/A)"] == "S3A2" and summary["安全保护等级"] == 3
    assert summary["结论"] == "差" and summary["综合得分"] == ev.summary.score
    assert summary["高风险问题"] == 3
    # counts are of the system's items (one verdict per item over all 测评对象), as the score is
    counts = {r[0]: r[1] for r in wb["汇总"].iter_rows(values_only=True)
              if r[0] in ("符合", "部分符合", "不符合", "待核查")}
    assert counts == {"符合": 1, "部分符合": 3, "不符合": 3, "待核查": 0}
    system = {(r[1], r[3][0]): r for r in list(wb["系统测评项汇总"].iter_rows(values_only=True))[1:]}
    assert system["8.1.4.11", "a"][4:7] == ("符合", 1.0, "人工核查") and "cli:张三" in system["8.1.4.11", "a"][7]
    assert system["8.1.4.4", "b"][4:7] == ("部分符合", 1.0, "自动检查")

    def items(ws):
        """The record table's rows by (clause, letter), each as (record, verdict, weight, method)."""
        rows = list(ws.iter_rows(values_only=True))
        head = next(i for i, r in enumerate(rows) if r[0] == "序号")
        assert rows[head][:10] == ("序号", "扩展标准", "安全控制点编号", "安全控制点", "测评项", "测评方法", "结果记录",
                                   "符合情况", "分值", "备注")
        return {(r[2], r[4][0]): (r[6], r[7], r[8], r[5]) for r in rows[head + 1:] if r[0] is not None}

    db = items(wb["主机 db-1"])
    assert len(db) == 5
    assert db["8.1.4.1", "a"][1] == "部分符合" and db["8.1.4.1", "a"][2] == 0.7
    assert "99999" in db["8.1.4.1", "a"][0] and "/etc/login.defs" in db["8.1.4.1", "a"][0]
    assert db["8.1.4.2", "b"][1] == "不符合" and "/etc/shadow" in db["8.1.4.2", "b"][0]
    assert db["8.1.4.4", "b"][1] == "符合" and db["8.1.4.4", "b"][2] == 1.0
    # manual items: the assessor's verdict, note and name in the record
    assert db["8.1.4.11", "a"][1] == "符合" and db["8.1.4.11", "a"][3] == "人工核查"
    assert "cli:张三" in db["8.1.4.11", "a"][0] and "访谈系统管理员" in db["8.1.4.11", "a"][0]
    assert items(wb["主机 web-1"])["8.1.4.2", "b"][1] == "符合"
    net = items(wb["网络区域 network"])
    assert net["8.1.4.1", "c"][1] == "不符合" and "10.9.0.5:23/tcp" in net["8.1.4.1", "c"][0]
    validations = wb["主机 db-1"].data_validations.dataValidation
    assert validations and "部分符合" in validations[0].formula1

    problems = list(wb["问题汇总"].iter_rows(values_only=True))
    assert problems[0][:7] == ("序号", "测评对象", "安全控制点编号", "测评项", "问题描述", "整改建议", "风险等级")
    assert problems[1][1] == "db-1" and problems[1][6] == "高" and problems[1][7] == "6.4.1.1"
    assert problems[1][5] == "为账户设置口令或锁定账户"
    manual_problem = [r for r in problems[1:] if r[2] == "8.1.4.9"]
    assert len(manual_problem) == 1 and manual_problem[0][1] == "db-1, web-1" and manual_problem[0][6] == "待定"

    manual = list(wb["人工核查"].iter_rows(values_only=True))[1:]
    att = next(r for r in manual if r[0] == "8.1.4.11")
    assert att[2] == "符合" and att[3] == "cli:张三" and "访谈记录.txt" in att[6] and len(att[6].split()[-1]) == 64

    hazards = list(wb["重大风险隐患"].iter_rows(values_only=True))[1:]
    assert [(h[1], h[3][:7]) for h in hazards] == [("db-1", "6.4.1.1"), ("network", "6.4.1.2"), ("network", "6.4.3.1")]

    en = load_workbook(io.BytesIO(export_xlsx(ev, "en")))
    assert en.sheetnames[:5] == ["Summary", "System item verdicts", "host db-1", "host web-1", "network zone network"]
    assert {r[0]: r[1] for r in en["Summary"].iter_rows(values_only=True) if r[0]}["Conclusion"] == "poor"


def test_texts_from_hosts_never_become_formulas(world):
    _, _, ev = world
    note = '=HYPERLINK("http://example.invalid/x","click")'
    hostile = ev.model_copy(update={"manual_assessments": [
        ev.manual_assessments[0].model_copy(update={"note": note})]})
    ws = load_workbook(io.BytesIO(export_xlsx(hostile, "zh")))["人工核查"]
    cell = ws.cell(row=2, column=6)
    assert cell.value == note and cell.data_type == "s"


def test_sheet_names_are_valid_and_unique():
    used: set[str] = set()
    names = [sheet_name("主机 " + "x" * 40, used), sheet_name("主机 " + "x" * 40, used), sheet_name("a/b:c*?", used)]
    assert all(len(n) <= 31 for n in names) and len(set(names)) == 3 and names[2] == "a_b_c__"


def _png_has_content(png: bytes) -> bool:
    """A real rendering: a PNG whose pixels take many values (a blank page has one or two)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) > 32


def _chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium")
    profile = tempfile.mkdtemp(prefix="sentinel-chromium-")
    try:
        return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--no-first-run",
                               f"--user-data-dir={profile}", *args], capture_output=True, timeout=90)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_html_renders_in_headless_chromium(world, tmp_path):
    _, _, ev = world
    page = tmp_path / "report.html"
    page.write_text(render_html(ev, "zh"), encoding="utf-8")
    assert "<script" not in page.read_text() and "http://" not in page.read_text().replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout.decode("utf-8")
    assert 'id="system-name">egov-portal' in text and 'id="conclusion">差<' in text
    for needed in ("主机 db-1", "8.1.4.11", "访谈系统管理员并查阅隐私政策", "cli:张三", "6.4.1.1", "rectification.html",
                   "<svg"):
        assert needed in text, needed
    shot = tmp_path / "report.png"
    run = _chromium("--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.stat().st_size > 10_000 and _png_has_content(shot.read_bytes())


def test_english_html_and_rectification_page(world):
    _, _, ev = world
    page = render_html(ev, "en")
    assert "Composite score" in page and 'id="conclusion">poor<' in page and "Manual assessments" in page
    rect = render_rectification_html(ev, "zh")
    assert "整改报告" in rect and "未整改问题 (2)" in rect and "已整改问题 (3)" in rect


def test_json_has_every_result_with_raw_evidence(world):
    _, _, ev = world
    data = json.loads(export_json(ev))
    assert data["schema_version"] == 1 and data["system"]["name"] == seed.SYSTEM
    results = [r for o in data["objects"] for rep in o["reports"] for r in rep["results"]]
    hosts = [r for o in data["objects"] if o["kind"] == "host" for rep in o["reports"] for r in rep["results"]]
    assert len(hosts) == 8 and all(r["evidence"] for r in hosts if r["status"] in ("pass", "fail"))
    network = [r for o in data["objects"] if o["kind"] == "zone" for rep in o["reports"] for r in rep["results"]]
    assert {r["check_id"] for r in network} >= {"net-plaintext-mgmt", "net-forbidden-port"}
    assert len(results) == len(hosts) + len(network)
    shadow = next(r for r in results if r["check_id"] == "accounts.no-empty-password" and r["status"] == "fail")
    assert shadow["evidence"][0]["excerpt"] == "app:<empty>:19000:0:90:7:::"
    assert {a["clause"] for a in data["manual_assessments"]} == {"8.1.4.9", "8.1.4.11"}
    assert "raw_reports" not in data and load_json(export_json(ev)).summary == ev.summary


def test_risk_view_and_rectification_text(world):
    _, _, ev = world
    high = high_risk_entries(ev)
    assert [(e.object, e.case, e.applies) for e in high] == [("db-1", "6.4.1.1", True), ("network", "6.4.1.2", True),
                                                              ("network", "6.4.3.1", True)]
    assert major_hazard_entries(ev)[0].first_seen.startswith("2026-03-02")
    text = paste_text(ev)
    assert "1. [6.4.1.1 存在空口令" in text and "相关性、严重性、高发性待测评机构确认" in text
    assert "Major risk hazard candidates" in paste_text(ev, "en")
    resolved, still = rectification_rows(ev)
    assert [r.risk for r in still] == ["high", "low"] and all(r.age_days > 0 for r in still)
    fixed = next(r for r in resolved if r.check_id == "accounts.no-empty-password")
    assert fixed.before.startswith("/etc/shadow 第 2 行 app:<empty>") and "未满足「不存在空口令账户」" in fixed.before
    assert "符合「不存在空口令账户」的要求" in fixed.after and "未满足" not in fixed.after
    assert fixed.fixed_at.startswith("2026-03-03")
    assert still[0].remediation == "为账户设置口令或锁定账户"


def test_cases_below_their_level_are_not_hazard_candidates(world):
    _, _, ev = world
    l1 = ev.model_copy(update={"system": ev.system.model_copy(update={"level": 1})})
    # these cases apply from level 2: listed as high-risk checks with the note, but no 重大风险隐患 candidate
    assert [e.applies for e in high_risk_entries(l1)] == [False, False, False]
    assert major_hazard_entries(l1) == [] and "本案例适用于第2级及以上" in paste_text(l1)


@pytest.mark.skipif(not pdf.available(), reason=f"WeasyPrint unavailable: {pdf.unavailable_reason()}")
def test_pdf_from_the_html(world):
    _, _, ev = world
    data = pdf.render_pdf(render_html(ev, "zh"))
    assert data[:5] == b"%PDF-" and len(data) > 10_000


def test_store_free_assembly_round_trips(tmp_path):
    """SystemEvidence built straight from run_baseline reports (no store), bundled and verified."""
    baseline = seed.write_baseline(tmp_path)
    bad = seed.report(baseline, seed.make_root(tmp_path / "bad", max_days=365, empty_password=True), "app-1")
    good = seed.report(baseline, seed.make_root(tmp_path / "good"), "app-1")
    runs = [HostRun(object="app-1", report=bad, received_at=seed.T0, run_id=1),
            HostRun(object="app-1", report=good, received_at=seed.T0 + timedelta(hours=6), run_id=2)]
    chain, raw = seed.direct_chain(runs)
    key = signing.generate_key()
    manual = [ManualAssessmentRecord(id=7, clause="8.1.4.9", item="a", verdict="不适用", note="无重要数据",
                                     assessor="赵六", at=seed.T0 + timedelta(hours=1))]
    failing = next(r for r in bad.results if r.check_id == "accounts.no-empty-password")
    fixed = next(r for r in good.results if r.check_id == "accounts.no-empty-password")
    finding = FindingRecord(object="app-1", check_id=failing.check_id, clause=failing.clause, item=failing.item,
                            title=failing.title, severity=failing.severity, high_risk=failing.high_risk, risk="high",
                            first_seen=seed.T0, last_seen=seed.T0, resolved_at=seed.T0 + timedelta(hours=6),
                            resolution="fixed", remediation=failing.remediation, before=failing, after=fixed)
    ev = build(system=SystemRef(name="offline-sys", department="d", level=3, label="S3A3"),
               time_range=TimeRange(end=seed.T0 + timedelta(days=1)), collector=seed.collector_identity(key),
               runs=runs, assessments=manual, findings=[finding], chain=chain, raw_reports=raw,
               generated_at=seed.T0 + timedelta(days=1))
    rep = ev.objects[0].reports[0]
    assert rep.run_id == 2 and rep.summary.score == 100.0  # 8.1.4.9 不适用 is left out; 8.1.4.11 stays 待核查
    assert {(i.clause, i.verdict.value) for i in rep.items if i.source == "manual"} == {("8.1.4.9", "不适用")}
    assert ev.summary.verdicts["待核查"] == 1
    out = tmp_path / "offline.zip"
    write_bundle(ev, out, key, lang="en", include_pdf=False)
    report = verify_bundle(out, key.public_key())
    assert report.ok, [str(p) for p in report.problems]
    with pytest.raises(Exception, match="not the collector key"):
        write_bundle(ev, tmp_path / "x.zip", signing.generate_key())
    assert not os.path.exists(tmp_path / "x.zip")


def test_history_from_score_only_reports_matches_full_reports(tmp_path):
    """Runs read for their score only (no evidence) score exactly as the full reports do."""
    from sentinel.evidence.assemble import ScoredReport, score_history
    from sentinel.evidence.model import EvidenceError

    baseline = seed.write_baseline(tmp_path)
    reps = [seed.report(baseline, seed.make_root(tmp_path / f"r{i}", max_days=90 + 50 * i, empty_password=i == 1,
                                                 hosts_equiv=i == 2), f"h{i % 2}") for i in range(3)]
    manual = [ManualAssessmentRecord(id=1, clause="8.1.4.11", item="a", verdict="不符合", assessor="x",
                                     at=seed.T0 + timedelta(minutes=90))]

    def runs(light: bool):
        return [HostRun(object=r.host.hostname, received_at=seed.T0 + timedelta(hours=i), run_id=i + 1,
                        report=ScoredReport.model_validate(r.model_dump(mode="json")) if light else r)
                for i, r in enumerate(reps)]

    full = score_history(runs(False), manual)
    assert score_history(runs(True), manual) == full
    assert [p.object for p in full].count(None) == 3 and len({p.score for p in full}) > 2
    with pytest.raises(EvidenceError, match="latest report but was read for its score only"):
        build(system=SystemRef(name="s", department="d", level=3),
              time_range=TimeRange(end=seed.T0 + timedelta(days=1)),
              collector=seed.collector_identity(signing.generate_key()), runs=runs(True), generated_at=seed.T0)
