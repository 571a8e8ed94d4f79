"""The workbook's record sheets follow the 测评记录表 layout agencies use (issue 18 item 4), one sheet per 测评对象.

The layout is that of real agency records (docs/evidence.md "The record workbook"): a header block naming the
system, the object, its addresses and version, who assessed it and the signatures still to give, then one row per
requirement item under 序号 | 扩展标准 | 安全控制点编号 | 安全控制点 | 测评项 | 测评方法 | 结果记录 | 符合情况 |
分值 | 备注, 安全控制点 merged over its items. The objects are those discovery finds on the shipped objects fixture
root (a MariaDB, a PostgreSQL, two Redis instances and an nginx besides the OS), each judged by its shipped baseline, as
`sentinel check --object` judges them; the seeded store gives the network object and manual verdicts. The workbook
is opened with openpyxl and printed to PDF by LibreOffice, whose pages are read back with pdftotext."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sentinel import signing
from sentinel.baseline import load_baseline
from sentinel.discovery import discover
from sentinel.engine import run_baseline
from sentinel.evidence.assemble import HostRun, build
from sentinel.evidence.collect import collect
from sentinel.evidence.model import SystemRef, TimeRange
from sentinel.exporters.evidence.common import fmt_time, item_rows, object_title
from sentinel.exporters.evidence.xlsx import LINE_HEIGHT, PRINT_CELL, export_xlsx
from sentinel.hostview import RootHost
from tests import evidence_seed as seed

ROOT = Path(__file__).parent / "fixtures" / "objects" / "debian12-objects"
COLUMNS = ("序号", "扩展标准", "安全控制点编号", "安全控制点", "测评项", "测评方法", "结果记录", "符合情况", "分值",
           "备注")
METHODS = {"核查（自动采集）", "测试（网络扫描）", "人工核查", "人工核查（待实施）"}
TODO = "【待填写】"


@pytest.fixture(scope="module")
def ev():
    host = RootHost(str(ROOT))
    runs = [HostRun(object="db01", hostname="db01", report=run_baseline(load_baseline("dengbao-l3-linux"), host),
                    received_at=seed.T0, run_id=1, addresses=["10.9.0.7"])]
    for n, found in enumerate(discover(host, 3), 2):
        report = run_baseline(load_baseline(found.baseline), host, target=found.object)
        runs.append(HostRun(object=found.object.name, hostname="db01", report=report, run_id=n,
                            received_at=seed.T0 + timedelta(minutes=n), addresses=["10.9.0.7"]))
    chain, raw = seed.direct_chain(runs)
    return build(system=SystemRef(name="his", title="医院信息系统", department="wsj", level=3, label="S3A2"),
                 time_range=TimeRange(end=seed.T0 + timedelta(days=1)),
                 collector=seed.collector_identity(signing.generate_key()), runs=runs, chain=chain, raw_reports=raw,
                 generated_at=seed.T0 + timedelta(days=1))


def _record_sheets(wb, ev) -> dict:
    """object name -> its sheet, found by the sheet's title row (sheet names are cut to 31 characters)."""
    by_title = {ws["A1"].value: ws for ws in wb.worksheets}
    return {o.name: by_title[f"测评记录表 — {object_title(o, 'zh')}"] for o in ev.objects}


def _header(ws) -> tuple[dict[str, object], int]:
    """The header block's label -> value (labels over A:B and F, values over C:E and G:J) and the row of the record
    table's header; every label and value cell of the block is merged as the layout says."""
    merged = {str(r) for r in ws.merged_cells.ranges}
    pairs: dict[str, object] = {}
    for row in ws.iter_rows(min_row=2, max_row=40, max_col=10):
        r = row[0].row
        if row[0].value == "序号":
            return pairs, r
        if all(c.value is None for c in row):
            continue  # the space between the block and the table
        assert f"A{r}:B{r}" in merged, (ws.title, r)
        if row[5].value is None:  # a lone pair: its value spans the row
            assert f"C{r}:J{r}" in merged, (ws.title, r)
            pairs[row[0].value] = row[2].value
            continue
        assert {f"C{r}:E{r}", f"G{r}:J{r}"} <= merged, (ws.title, r)
        pairs[row[0].value], pairs[row[5].value] = row[2].value, row[6].value
    raise AssertionError(f"{ws.title}: no record table header")


def test_one_record_sheet_per_object_in_the_agencies_layout(ev):
    wb = load_workbook(io.BytesIO(export_xlsx(ev, "zh")))
    kinds = {o.name: o.object for o in ev.objects}
    assert sorted(kinds.values()) == ["mysql", "nginx", "os", "postgresql", "redis", "redis"]
    sheets = _record_sheets(wb, ev)
    assert len(set(sheets.values())) == len(ev.objects) == 6  # one sheet per 测评对象
    for obj in ev.objects:
        ws, [rep] = sheets[obj.name], obj.reports
        assert "A1:J1" in {str(r) for r in ws.merged_cells.ranges}, ws.title
        head, table = _header(ws)
        assert head["被测系统"] == "his 医院信息系统（第 3 级，S3A2）"
        assert head["测评对象"] == object_title(obj, "zh") and head["所在主机"] == "db01"
        assert head["类别"] == {"os": "主机", "mysql": "数据库", "postgresql": "数据库", "redis": "数据库",
                              "nginx": "Web 服务器"}[obj.object]
        assert head["IP 地址"] == "10.9.0.7"
        version = str(head["版本"])
        assert version.startswith("Debian") if obj.object == "os" else version.startswith(f"{obj.version}; 操作系统")
        # what a person still writes and signs is marked so, not left blank or invented
        assert head["用途"] == head["测评人员"] == head["复核人"] == head["被测单位确认"] == TODO
        assert "GB/T 22239-2019" in head["测评依据"] and rep.baseline.id in head["测评依据"]
        assert rep.report_id in head["测评方式"] and f"run {rep.run_id}" in head["测评方式"]
        assert head["测评日期"] == fmt_time(rep.received_at)
        assert head["测评项符合情况"] == " · ".join(f"{v} {rep.summary.verdicts.get(v, 0)}"
                                               for v in ("符合", "部分符合", "不符合", "不适用", "待核查"))
        assert head["综合得分"] == rep.summary.score and head["结论 (覆盖范围内)"] == rep.summary.conclusion
        assert ws.cell(row=next(c.row for c in ws["A"] if c.value == "综合得分"), column=3).number_format == "0.00"

        assert tuple(c.value for c in ws[table][:10]) == COLUMNS, ws.title
        assert ws.print_title_rows == f"${table}:${table}"
        rows = item_rows(rep, "zh")
        assert len(rows) == len(rep.items) == 34
        merged = {str(r) for r in ws.merged_cells.ranges}
        assert f"B{table + 1}:B{table + len(rows)}" in merged  # 安全通用要求 over every item, as records have it
        assert ws[f"B{table + 1}"].value == "安全通用要求"
        for n, (r, cells) in enumerate(zip(rows, ws.iter_rows(min_row=table + 1, max_row=table + len(rows),
                                                               max_col=10), strict=True), table + 1):
            no, _, clause, control, item, method, record, verdict, weight, remark = (c.value for c in cells)
            shown = r.record if len(r.record) <= PRINT_CELL else \
                f"{r.record[:PRINT_CELL]}… (+{len(r.record) - PRINT_CELL}, evidence/*.txt)"  # the whole one is there
            assert (no, clause, item, record, verdict, weight) == (r.no, r.clause, f"{r.item}) {r.text}", shown,
                                                                   r.verdict, r.weight), (ws.title, n)
            assert method in METHODS, (ws.title, n, method)
            assert remark == (f"检查项: {r.checks}" if r.checks else None), (ws.title, n)
            # a wrapped record gets the height of its lines: no row left one line high under several
            assert (ws.row_dimensions[n].height or LINE_HEIGHT) >= LINE_HEIGHT * (record.count("\n") + 1)
            assert control == (r.control if n == table + 1 or rows[n - table - 2].clause != r.clause else None)
        # 安全控制点 is merged over each run of its items
        runs: dict[str, list[int]] = {}
        for n, r in enumerate(rows, table + 1):
            runs.setdefault(r.clause, []).append(n)
        for clause, at in runs.items():
            if len(at) > 1:
                assert f"D{at[0]}:D{at[-1]}" in merged, (ws.title, clause)
        [dv] = ws.data_validations.dataValidation
        assert str(dv.sqref) == f"H{table + 1}:H{table + len(rows)}" and "部分符合" in dv.formula1


def test_the_network_record_and_an_assessors_verdicts(tmp_path):
    """The seeded store: the network's record says it was tested by a scan, and the host records name the
    assessors whose verdicts decided items, with 人工核查 as the method of those rows."""
    s = seed.seed_world(tmp_path)
    try:
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    finally:
        s.db.dispose()
    wb = load_workbook(io.BytesIO(export_xlsx(ev, "zh")))
    sheets = _record_sheets(wb, ev)
    head, table = _header(sheets["network"])
    [scan] = ev.objects[-1].reports
    assert head["类别"] == "网络区域" and head["测评方式"].startswith(f"网络扫描 #{scan.scan_run_id}")
    methods = {c.value for c in sheets["network"]["F"][table:] if c.value}
    assert methods == {"测试（网络扫描）"}
    head, table = _header(sheets["db-1"])
    assert head["测评人员"] == "cli:张三, cli:李四"
    rows = {(r[2].value, r[4].value[:2]): r for r in sheets["db-1"].iter_rows(min_row=table + 1, max_col=10)
            if r[0].value is not None}
    assert rows["8.1.4.11", "a)"][5].value == "人工核查" and rows["8.1.4.11", "a)"][7].value == "符合"
    assert rows["8.1.4.1", "a)"][5].value == "核查（自动采集）"
    en = load_workbook(io.BytesIO(export_xlsx(ev, "en")))
    ws = en[en.sheetnames[2]]
    assert tuple(c.value for c in ws[_header_row(ws)][:10]) == (
        "No.", "Requirement part", "Clause", "Control point", "Requirement item", "Method", "Result record", "Verdict",
        "Weight", "Remarks")


def _header_row(ws) -> int:
    return next(c.row for c in ws["A"] if c.value in ("序号", "No."))


def _pdf_pages(pdf: Path) -> list[str]:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True, timeout=60).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])
    sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", str(pages), str(pdf)], capture_output=True, text=True,
                           check=True, timeout=60).stdout
    for w, h in re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", sizes, re.M):
        assert float(w) > float(h), "every page is landscape"
    return [subprocess.run(["pdftotext", "-f", str(p), "-l", str(p), "-layout", str(pdf), "-"], capture_output=True,
                           text=True, check=True, timeout=60).stdout for p in range(1, pages + 1)]


def test_libreoffice_prints_each_record_with_its_header_on_every_page(ev, tmp_path):
    """Printed as an office prints it (LibreOffice Calc to PDF): every page landscape and numbered, each object's
    record starts with its header block, and every page of it carries the table's whole header row (the print
    title, fitted to one page wide: 序号 and 备注 on the same page, no columns pushed to pages of their own)."""
    office = shutil.which("libreoffice") or shutil.which("soffice")
    if office is None or shutil.which("pdftotext") is None:
        pytest.skip("libreoffice or pdftotext missing (tests/setup-machine.sh installs libreoffice-calc and "
                    "poppler-utils)")
    book = tmp_path / "record.xlsx"
    book.write_bytes(export_xlsx(ev, "zh"))
    proc = subprocess.run([office, "--headless", f"-env:UserInstallation=file://{tmp_path / 'profile'}",
                           "--convert-to", "pdf", "--outdir", str(tmp_path), str(book)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and (tmp_path / "record.pdf").exists(), proc.stdout + proc.stderr
    pages = _pdf_pages(tmp_path / "record.pdf")
    assert all(f"{n} / {len(pages)}" in text for n, text in enumerate(pages, 1)), "page numbers in the footer"
    starts = {o.name: next(i for i, t in enumerate(pages) if f"测评记录表 — {object_title(o, 'zh')}" in t)
              for o in ev.objects}
    assert len(set(starts.values())) == len(ev.objects)
    for obj in ev.objects:
        first = starts[obj.name]
        for label in ("被测系统", "测评对象", "IP 地址", "版本", "测评人员", "复核人", "被测单位确认", "综合得分"):
            assert label in pages[first], (obj.name, label)
        mine = [first]
        while mine[-1] + 1 < len(pages) and "测评记录表 —" not in pages[mine[-1] + 1] \
                and "扩展标准" in pages[mine[-1] + 1]:
            mine.append(mine[-1] + 1)
        for i in mine:
            lines = [ln for ln in pages[i].splitlines() if ln.strip()]
            at = next(n for n, ln in enumerate(lines) if ln.lstrip().startswith("序号"))
            # the header row as pdftotext lays it out: a merged 安全控制点 cell beside it may split it in two lines
            head = " ".join(lines[at:at + 3])
            assert all(word in head for word in COLUMNS[1:]), (obj.name, i + 1, head)
        # every item's row is printed: its clause number on one of the object's pages
        printed = "".join(pages[i] for i in mine)
        for item in obj.reports[0].items:
            assert item.clause in printed, (obj.name, item.clause)
        assert len(mine) > 1 or obj.name != "db01", "the OS record runs over several pages"
