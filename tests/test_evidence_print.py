"""Documents an office can print (issue 18 item 4): the PDF's record tables keep 安全控制点 legible (the PDF
is laid out by WeasyPrint and its table cells measured), and the workbook carries print settings (A4
landscape, fit to width, repeated header rows), numeric figures and cells short enough to print."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from sentinel.exporters.evidence import pdf
from sentinel.exporters.evidence.html import render_html
from sentinel.exporters.evidence.xlsx import PRINT_CELL, export_xlsx
from tests.test_evidence_wording import _ev_from


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    return _ev_from(tmp_path_factory.mktemp("print"), "debian12-default")  # long real records


def _walk(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _walk(child)


def _record_cells(doc, column: int):
    """(width in CSS px, line count, text) of every body cell of `column` in the per-object record tables."""
    out = []
    for page in doc.pages:
        for table in _walk(page._page_box):
            if type(table).__name__ != "TableBox" or "record" not in (table.element.get("class") or ""):
                continue
            for group in table.children:
                for row in group.children:
                    cells = row.children
                    if len(cells) > column and cells[column].element_tag == "td":
                        cell = cells[column]
                        lines = sum(1 for b in _walk(cell) if type(b).__name__ == "LineBox")
                        text = "".join(getattr(b, "text", "") for b in _walk(cell))
                        out.append((cell.width, lines, text))
    return out


@pytest.mark.skipif(not pdf.available(), reason=f"WeasyPrint unavailable: {pdf.unavailable_reason()}")
def test_pdf_control_point_column_is_legible(ev):
    import weasyprint

    doc = weasyprint.HTML(string=render_html(ev, "zh")).render()
    assert doc.pages[0].width > doc.pages[0].height  # A4 landscape
    controls = _record_cells(doc, 2)
    assert len(controls) >= 30
    for width, lines, text in controls:
        # with automatic table layout the long 结果记录 took the page: 23 px, two characters a line
        assert width >= 60, (width, text)
        if len(text) <= 6:
            assert lines == 1, (lines, text)
    records = _record_cells(doc, 4)
    assert min(w for w, _, _ in records) >= 250  # the record itself keeps a third of the width
    data = doc.write_pdf()
    assert data[:5] == b"%PDF-"


def test_workbook_print_settings_and_numbers(ev):
    wb = load_workbook(io.BytesIO(export_xlsx(ev, "zh")))
    for ws in wb.worksheets:
        ps = ws.page_setup
        assert ps.orientation == "landscape" and int(ps.paperSize) == int(ws.PAPERSIZE_A4), ws.title
        assert ps.fitToWidth == 1 and ps.fitToHeight == 0 and ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
    host = next(ws for ws in wb.worksheets if ws.title.startswith("主机"))
    head = next(c.row for c in host["A"] if c.value == "序号")
    assert host.print_title_rows == f"${head}:${head}"  # the record table's header on every printed page
    assert wb["问题汇总"].print_title_rows == "$1:$1"
    for ws in (host, wb["问题汇总"], wb["系统测评项汇总"]):
        longest = max(len(str(c.value)) for row in ws.iter_rows() for c in row if c.value is not None)
        assert longest <= PRINT_CELL + 40, (ws.title, longest)
    summary = {r[0].value: r[1] for r in wb["汇总"].iter_rows(min_col=1, max_col=2) if r[0].value}
    assert isinstance(summary["综合得分"].value, float) and summary["综合得分"].number_format == "0.00"
    assert isinstance(summary["检查通过率"].value, float) and summary["检查通过率"].number_format == "0.0%"
    assert isinstance(summary["高风险问题"].value, int) and isinstance(summary["安全保护等级"].value, int)
    # the record's header block: a label over A:B, its value over C:E (the 测评记录表 layout)
    label = next(c for c in host["A"] if c.value == "综合得分")
    host_score = host.cell(row=label.row, column=3)
    assert isinstance(host_score.value, float) and host_score.number_format == "0.00"


def test_workbook_dr_sheet(ev, tmp_path, monkeypatch):
    """The 数据备份恢复 sheet (the JSON and HTML sections' content) from real backup results: files copies with set
    mtimes read by the shipped checks, judged by sentinel/dr.py; printable, its figures numbers."""
    from datetime import datetime, timezone

    from sentinel.dr import judge_host, roll_up
    from tests.test_backup_real import MINE, _creds, _dumps, _results, _site, _stored

    _creds(tmp_path, monkeypatch, {})
    dr = {"site": "dc-a", "rpo_hours": 36, "backups": _dumps(tmp_path, {"local": 2, "nightly": 20})}
    res = _results(_site(tmp_path, {cid: {"params": dr} for cid in MINE}))
    now = datetime.now(timezone.utc)
    host = judge_host(1, "app-1", [_stored(r) for r in res.values()], now)
    system = roll_up(1, ev.system.name, 1, ev.system.department, ev.system.level, [host], now)
    wb = load_workbook(io.BytesIO(export_xlsx(ev.model_copy(update={"dr": system}), "zh")))
    ws = wb["数据备份恢复（恢复点目标）"]
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
    head = next(c.row for c in ws["A"] if c.value == "序号")
    assert ws.print_title_rows == f"${head}:${head}"
    pairs = {r[0].value: r[1] for r in ws.iter_rows(min_col=1, max_col=2, max_row=head - 1) if r[0].value}
    assert pairs["符合情况"].value == "满足恢复点目标" and pairs["异地实时备份"].value == "未满足"
    assert pairs["恢复点目标 (小时)"].value == 36 and isinstance(pairs["恢复点目标 (小时)"].value, (int, float))
    header = [c.value for c in ws[head]]
    rows = [dict(zip(header, (c for c in r), strict=True)) for r in ws.iter_rows(min_row=head + 1)
            if r[0].value is not None]
    by_copy = {r["副本"].value: r for r in rows}
    assert set(by_copy) == {"local", "nightly"}
    nightly = by_copy["nightly"]
    assert nightly["异地"].value == "是" and nightly["场地"].value == "dc-b" and nightly["备份数"].value == 1
    assert isinstance(nightly["距今 (小时)"].value, (int, float)) and nightly["距今 (小时)"].number_format == "0.00"
    assert 19.9 < nightly["距今 (小时)"].value < 20.2
    assert "l3-br-offsite-realtime: failed" in nightly["说明"].value
    # no DR in the export: no sheet
    assert "数据备份恢复（恢复点目标）" not in load_workbook(io.BytesIO(export_xlsx(ev, "zh"))).sheetnames
