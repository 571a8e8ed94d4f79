"""Record workbook (测评记录表) with openpyxl.

Sheets: a summary (定级, counts, weighted score, conclusion, high-risk list), one sheet per 测评对象
(rows per requirement item: clause, control point, item text, result record, 符合情况, weight), the
problems (问题 + 整改建议 + 风险等级), manual assessments, the 2025 risk view and the score history.
The rectification trail is its own report (rectification.html/.md), not a sheet: it is not part of a
测评记录表 and, with evidence before and after, it would double the workbook. The verdict column
carries a list validation so an agency can correct a cell in Excel/WPS without typing a value the
record does not know.

Texts come from inspected hosts and from people, so a value starting with "=" is written as a string,
never as a formula (spreadsheet formula injection).
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from typing import Optional

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sentinel.evidence.model import SystemEvidence
from sentinel.evidence.sections import BY_KEY

from .common import (
    VERDICTS,
    conclusion_label,
    fmt_rate,
    fmt_score,
    fmt_time,
    is_os,
    item_rows,
    labels,
    object_kind_label,
    object_title,
    problem_rows,
    range_text,
    scope_text,
    sections_of,
    verdict_label,
    verify_hint,
)
from .risk import high_risk_entries, major_hazard_entries

HEAD_FILL = PatternFill("solid", fgColor="DDE4EE")
VERDICT_FILL = {"符合": "E3F1E0", "部分符合": "FFF2CC", "不符合": "F8D7DA", "不适用": "EEEEEE", "待核查": "DCEBF7"}
RISK_FILL = {"high": "F8D7DA", "medium": "FFF2CC", "low": "EEEEEE"}
THIN = Side(style="thin", color="999999")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
BOLD = Font(bold=True)
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
# Characters openpyxl refuses in cells (XML 1.0 control characters); evidence excerpts may hold them.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_CELL = 32000  # Excel's cell limit is 32767 characters
# A table cell longer than this does not print (a row taller than the page); the whole text is in
# evidence.json and evidence/<object>/*.txt of the bundle. Chapters an assessor wrote are kept whole.
PRINT_CELL = 1000


def _add_styles(wb: Workbook) -> None:
    """Named styles: assigning one by name is several times faster than setting border, fill and
    alignment cell by cell, which matters for a 100-host workbook (~90 000 cells)."""
    wb.add_named_style(NamedStyle(name="s-body", border=BORDER, alignment=WRAP))
    wb.add_named_style(NamedStyle(name="s-key", font=BOLD, alignment=WRAP))
    wb.add_named_style(NamedStyle(name="s-value", alignment=WRAP))
    wb.add_named_style(NamedStyle(name="s-head", border=BORDER, alignment=WRAP, font=BOLD, fill=HEAD_FILL))
    for key, color in list(VERDICT_FILL.items()) + list(RISK_FILL.items()):
        wb.add_named_style(NamedStyle(name=f"s-{key}", border=BORDER, alignment=WRAP,
                                      fill=PatternFill("solid", fgColor=color)))


def _cell(value, limit: int = MAX_CELL):
    if isinstance(value, str):
        value = _ILLEGAL.sub("\ufffd", value)
        if len(value) <= limit:
            return value
        if limit < MAX_CELL:
            rest = len(value) - limit
            return value[:limit] + f"… (+{rest}, evidence/*.txt)"
        return value[: MAX_CELL - 1] + "…"
    return value


def print_setup(ws: Worksheet, title_row: Optional[int]) -> None:
    """A4 landscape, every column on one page width (as many pages down as it takes), the table's header
    row repeated on every printed page, gridlines off (the tables have borders)."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    setup_pr = ws.sheet_properties.pageSetUpPr
    assert setup_pr is not None  # openpyxl makes one with every worksheet
    setup_pr.fitToPage = True
    ws.print_options.gridLines = False
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    if title_row:
        ws.print_title_rows = f"{title_row}:{title_row}"
    footer = ws.oddFooter
    assert footer is not None and footer.center is not None  # as above: every worksheet has its footer parts
    footer.center.text = "&P / &N"


def _title_row(ws: Worksheet, label: str) -> Optional[int]:
    """The first table header (its first cell is 序号/No.), or row 1 when a sheet is one table."""
    for row in ws.iter_rows(min_col=1, max_col=1, max_row=min(ws.max_row, 60)):
        if row[0].value == label:
            return row[0].row
    return None


def sheet_name(title: str, used: set[str]) -> str:
    base = _BAD_SHEET_CHARS.sub("_", title).strip("'") or "sheet"
    name, n = base[:31], 1
    while name.lower() in used:
        n += 1
        suffix = f"~{n}"
        name = base[: 31 - len(suffix)] + suffix
    used.add(name.lower())
    return name


def _table(ws: Worksheet, start_row: int, headers: Sequence[str], rows: Iterable[Sequence],
           widths: Sequence[int], limit: int = PRINT_CELL) -> int:
    """Write a bordered table with a header row; returns the row after it."""
    for col, (h, w) in enumerate(zip(headers, widths, strict=True), 1):  # a width for every header
        ws.cell(row=start_row, column=col, value=h).style = "s-head"
        letter = get_column_letter(col)
        if (ws.column_dimensions[letter].width or 0) < w:
            ws.column_dimensions[letter].width = w
    r = start_row
    for r, values in enumerate(rows, start_row + 1):
        for col, v in enumerate(values, 1):
            c = ws.cell(row=r, column=col, value=_cell(v, limit))
            c.style = "s-body"
            if c.data_type == "f":
                c.data_type = "s"
    return r + 1


def _pairs(ws: Worksheet, start_row: int, pairs: Sequence[tuple]) -> int:
    """Key/value rows; a third element is the number format of a numeric value (figures stay numbers)."""
    for i, (k, v, *fmt) in enumerate(pairs):
        ws.cell(row=start_row + i, column=1, value=k).style = "s-key"
        c = ws.cell(row=start_row + i, column=2, value=_cell(v))
        c.style = "s-value"
        if c.data_type == "f":
            c.data_type = "s"
        if fmt and isinstance(v, (int, float)):
            c.number_format = fmt[0]
    return start_row + len(pairs) + 1


def export_xlsx(ev: SystemEvidence, lang: str = "zh") -> bytes:
    lab = labels(lang)
    wb = Workbook()
    # Fixed document times keep the workbook a function of the evidence alone.
    wb.properties.created = wb.properties.modified = ev.generated_at.replace(tzinfo=None)
    wb.properties.creator = ev.collector.software
    wb.properties.title = f"{lab['title']} — {ev.system.name}"
    _add_styles(wb)
    used: set[str] = set()
    first = wb.active
    assert isinstance(first, Worksheet)  # a new workbook holds one worksheet
    _summary(first, ev, lang, used)
    _system_items(wb.create_sheet(sheet_name(lab["system_items"], used)), ev, lang)
    for obj in ev.objects:
        _object_sheet(wb.create_sheet(sheet_name(object_title(obj, lang), used)), obj, lang)
    _problems(wb.create_sheet(sheet_name(lab["problems"], used)), ev, lang)
    _manual(wb.create_sheet(sheet_name(lab["manual"], used)), ev, lang)
    _risk_view(wb.create_sheet(sheet_name(lab["risk_view"], used)), ev, lang)
    _history(wb.create_sheet(sheet_name(lab["history"], used)), ev, lang)
    _chapters(wb.create_sheet(sheet_name(lab["chapters"], used)), ev, lang)
    for ws in wb.worksheets:
        head = _title_row(ws, lab["no"])
        if head is None and ws.title != wb.worksheets[0].title:
            head = 1  # a sheet that is one table with its header on row 1
        print_setup(ws, head)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _summary(ws: Worksheet, ev: SystemEvidence, lang: str, used: set[str]) -> None:
    lab = labels(lang)
    ws.title = sheet_name(lab["summary"], used)
    s, sysref = ev.summary, ev.system
    ws["A1"] = f"{lab['title']} — {sysref.name}"
    ws["A1"].font = Font(bold=True, size=14)
    row = _pairs(ws, 3, [
        (lab["system"], f"{sysref.name} {sysref.title}".strip()),
        (lab["department"], f"{sysref.department} {sysref.department_title}".strip()),
        (lab["level"], sysref.level), (lab["label"], sysref.label), (lab["owner"], sysref.owner),
        (lab["range"], range_text(ev, lang)), (lab["generated"], fmt_time(ev.generated_at)),
        (lab["collector"], ev.collector.name), (lab["key"], ev.collector.fingerprint),
        (lab["verify"], verify_hint(ev, lang)),
        (lab["baselines"], ", ".join(f"{b.id} {b.version}" for b in ev.baselines) or lab["none"]),
        (lab["objects"], len(ev.objects)),
        (lab["score"], s.score if s.score is not None else fmt_score(None), "0.00"),
        (lab["pass_rate"], s.pass_rate if s.pass_rate is not None else fmt_rate(None), "0.0%"),
        (lab["conclusion"], conclusion_label(s.conclusion, lang)),
        (lab["scope"], scope_text(ev, lang)),
        (lab["high_risk"], s.high_risk), (lab["pending_items"], s.verdicts.get("待核查", 0)),
    ])
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 60
    row = _table(ws, row, [lab["verdicts"], lab["count"]],
                 [(verdict_label(v, lang), s.verdicts.get(v, 0)) for v in VERDICTS], [22, 60])
    # counts hold every result; the advisory ones among them (evidence, counted nowhere else) are named apart
    statuses = [(k, v) for k, v in s.counts.items()] + [(f"{k}（{lab['advisory_mark']}）" if lang == "zh" else
                                                         f"{k} ({lab['advisory_mark']})", v)
                                                        for k, v in s.advisory.items() if v]
    row = _table(ws, row + 1, [lab["statuses"], lab["count"]], statuses, [22, 60])
    ws.cell(row=row + 1, column=1, value=lab["risk_title"]).font = BOLD
    entries = high_risk_entries(ev, lang)
    row = _table(ws, row + 2, [lab["no"], lab["object"], lab["case"], lab["item"], lab["problem"]],
                 [(e.no, e.object, f"{e.case} {e.issue}".strip(), f"{e.clause}{e.item}", e.problem)
                  for e in entries] or [("", lab["none"], "", "", "")], [22, 60, 30, 14, 70])
    if ev.notes:
        ws.cell(row=row + 1, column=1, value=lab["notes"]).font = BOLD
        for i, note in enumerate(ev.notes):
            ws.cell(row=row + 2 + i, column=1, value=_cell(note))


def _system_items(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    """One verdict per requirement item over every 测评对象: what the score and conclusion are computed on."""
    lab = labels(lang)
    _table(ws, 1, [lab["no"], lab["clause"], lab["control"], lab["item"], lab["verdict"], lab["weight"],
                   lab["source"], lab["note"]],
           [(n, i.clause, i.control.get(lang), f"{i.item}) {i.text.get(lang)}", verdict_label(i.verdict, lang),
             i.weight, lab["manual_src"] if i.source == "manual" else lab["automated"],
             f"{i.manual.assessor}: {i.manual.note}" if i.manual else "") for n, i in enumerate(ev.items, 1)],
           [6, 12, 16, 60, 12, 8, 10, 50])
    for n, i in enumerate(ev.items, 2):
        ws[f"E{n}"].style = f"s-{i.verdict.value}"
    ws.freeze_panes = "A2"


def _object_sheet(ws: Worksheet, obj, lang: str) -> None:
    lab = labels(lang)
    row = 1
    for rep in obj.reports:
        host = obj.host
        kind = [] if is_os(obj) or obj.kind != "host" else [(lab["kind"], object_kind_label(obj, lang))]
        row = _pairs(ws, row, [
            (lab["object"], object_title(obj, lang)), *kind,
            (lab["os"], f"{host.os_name} ({host.os_id} {host.os_version}, {host.arch})" if host else ""),
            (lab["addresses"], ", ".join(obj.addresses)),
            (lab["baselines"], f"{rep.baseline.id} {rep.baseline.version} (L{rep.baseline.level})"),
            (lab["report"], f"{rep.report_id} (run {rep.run_id})" if rep.run_id else rep.report_id),
            (lab["time"], fmt_time(rep.received_at or rep.generated_at)),
            (lab["score"], rep.summary.score if rep.summary.score is not None else fmt_score(None), "0.00"),
            (lab["conclusion"], conclusion_label(rep.summary.conclusion, lang)),
        ])
        head = row
        rows = item_rows(rep, lang)
        row = _table(ws, row, [lab["no"], lab["clause"], lab["control"], lab["item"], lab["record"], lab["verdict"],
                               lab["weight"], lab["source"], lab["checks"]],
                     [(r.no, r.clause, r.control, f"{r.item}) {r.text}", r.record, r.verdict, r.weight, r.source,
                       r.checks) for r in rows], [6, 12, 16, 50, 80, 12, 8, 10, 30])
        verdict_col = "F"
        dv = DataValidation(type="list", allow_blank=False, showErrorMessage=True,
                            formula1='"' + ",".join(verdict_label(v, lang) for v in VERDICTS) + '"')
        ws.add_data_validation(dv)
        if rows:
            dv.add(f"{verdict_col}{head + 1}:{verdict_col}{head + len(rows)}")
        for i, r in enumerate(rows, head + 1):
            ws[f"{verdict_col}{i}"].style = f"s-{r.verdict_zh}"
        row += 1


def _problems(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    lab = labels(lang)
    rows = problem_rows(ev, lang)
    _table(ws, 1, [lab["no"], lab["object"], lab["clause"], lab["item"], lab["problem"], lab["remediation"],
                   lab["risk"], lab["case"]],
           [(p.no, p.object, p.clause, p.item, p.problem, p.remediation, p.risk_label, p.case) for p in rows],
           [6, 20, 12, 6, 70, 60, 10, 14])
    for i, p in enumerate(rows, 2):
        if p.risk:
            ws[f"G{i}"].style = f"s-{p.risk}"
    ws.freeze_panes = "A2"


def _manual(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    lab = labels(lang)
    _table(ws, 1, [lab["clause"], lab["item"], lab["verdict"], lab["assessor"], lab["time"], lab["note"],
                   lab["attachments"], lab["effective"]],
           [(a.clause, a.item, verdict_label(a.verdict, lang), a.assessor, fmt_time(a.at), a.note,
             "\n".join(f"{x.name} {x.sha256}" for x in a.attachments), lab["yes"] if a.effective else lab["no_"])
            for a in ev.manual_assessments], [14, 6, 12, 20, 22, 60, 60, 8])
    ws.freeze_panes = "A2"


def _chapters(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    """The 2021 template's chapters a person writes: the text, or 待填写 with what belongs there."""
    lab = labels(lang)
    rows = []
    for rec in sections_of(ev):
        spec = BY_KEY[rec.key]
        written = rec.text is not None
        rows.append((rec.number, rec.title.get(lang), lab["filled"] if written else lab["to_fill"],
                     rec.text if written else f"{lab['to_fill']} ({lab['to_write']}): {spec.hint.get(lang)}",
                     spec.data.get(lang) if spec.data else "", rec.author or "", fmt_time(rec.at)))
    _table(ws, 1, [lab["chapter"], lab["title_col"], lab["status"], lab["content"], lab["from_data"],
                   lab["written_by"], lab["time"]], rows, [8, 30, 10, 80, 40, 16, 22], limit=MAX_CELL)
    ws.freeze_panes = "A2"


def _risk_view(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    lab = labels(lang)
    entries = major_hazard_entries(ev, lang)
    _table(ws, 1, [lab["no"], lab["object"], lab["item"], lab["case"], lab["problem"], lab["downgrade"],
                   lab["first_seen"], lab["remediation"], lab["confirm"]],
           [(e.no, e.object, f"{e.clause}{e.item}", f"{e.case} {e.issue}".strip(), e.problem,
             e.downgrade, e.first_seen, e.remediation, "相关性 / 严重性 / 高发性" if lang == "zh"
             else "relevance / severity / likelihood") for e in entries],
           [6, 20, 12, 36, 60, 36, 22, 50, 24])
    ws.freeze_panes = "A2"


def _history(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    lab = labels(lang)
    _table(ws, 1, [lab["time"], lab["object"], lab["score"], lab["pass_rate"], lab["conclusion"]],
           [(fmt_time(p.at), lab["system"] if p.object is None else p.object, p.score,
             p.pass_rate, conclusion_label(p.conclusion, lang)) for p in ev.score_history],
           [22, 24, 12, 12, 10])
    ws.freeze_panes = "A2"
