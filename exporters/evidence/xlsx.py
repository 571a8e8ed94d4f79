"""Record workbook (测评记录表) with openpyxl.

Sheets: a summary (定级, counts, weighted score, conclusion, high-risk list), one sheet per 测评对象
(rows per requirement item: clause, control point, item text, result record, 符合情况, weight), the
problems (问题 + 整改建议 + 风险等级), manual assessments, the 2025 risk view, the score history and, when the
export has it, disaster recovery (数据备份恢复: the RPO verdict, one row per host and copy).
The rectification trail is its own report (rectification.html/.md), not a sheet: it is not part of a
测评记录表 and, with evidence before and after, it would double the workbook. The verdict column
carries a list validation so an agency can correct a cell in Excel/WPS without typing a value the
record does not know.

Texts come from inspected hosts and from people, so a value starting with "=" is written as a string,
never as a formula (spreadsheet formula injection).
"""
from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import Optional

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sentinel.dr import BackupCopyState
from sentinel.evidence.model import SystemEvidence
from sentinel.evidence.sections import BY_KEY

from .common import (
    VERDICTS,
    conclusion_label,
    figures,
    fmt_rate,
    fmt_score,
    fmt_time,
    is_os,
    item_rows,
    labels,
    object_kind_label,
    object_title,
    part_label,
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
PAIR_WIDTHS = (32, 60)  # the 汇总 sheet's key and value columns


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
    _fit_height(ws, start_row, max(_display_lines(h, w) for h, w in zip(headers, widths, strict=True)))
    r = start_row
    for r, values in enumerate(rows, start_row + 1):
        lines = 1
        for col, v in enumerate(values, 1):
            c = ws.cell(row=r, column=col, value=_cell(v, limit))
            c.style = "s-body"
            if c.data_type == "f":
                c.data_type = "s"
            if isinstance(c.value, str):
                lines = max(lines, _display_lines(c.value, widths[col - 1]))
        _fit_height(ws, r, lines)
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
        if isinstance(c.value, str):
            _fit_height(ws, start_row + i, max(_display_lines(c.value, PAIR_WIDTHS[1]),
                                               _display_lines(str(k), PAIR_WIDTHS[0])))
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
        _object_sheet(wb.create_sheet(sheet_name(object_title(obj, lang), used)), ev, obj, lang)
    _problems(wb.create_sheet(sheet_name(lab["problems"], used)), ev, lang)
    _manual(wb.create_sheet(sheet_name(lab["manual"], used)), ev, lang)
    _risk_view(wb.create_sheet(sheet_name(lab["risk_view"], used)), ev, lang)
    _history(wb.create_sheet(sheet_name(lab["history"], used)), ev, lang)
    if ev.dr is not None:
        _dr(wb.create_sheet(sheet_name(lab["dr"], used)), ev, lang)
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
    s, sysref, fig = ev.summary, ev.system, figures(ev)
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
        (lab["score"], fig.score if fig.score is not None else fmt_score(None), "0.00"),
        (lab["pass_rate"], fig.pass_rate if fig.pass_rate is not None else fmt_rate(None), "0.0%"),
        (lab["conclusion"], conclusion_label(fig.conclusion, lang)),
        (lab["scope"], scope_text(ev, lang)),
        (lab["high_risk"], fig.high_risk), (lab["pending_items"], fig.verdicts["待核查"]),
        (lab["findings_fixed"], fig.findings["fixed"]), (lab["findings_open"], fig.findings["open"]),
        (lab["findings_other"], fig.closed_not_fixed),
        (lab["svc_closed_n"], fig.services_closed), (lab["svc_failing_n"], fig.services_failing),
        (lab["svc_ok_n"], fig.services_ok),
    ])
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = PAIR_WIDTHS
    row = _table(ws, row, [lab["verdicts"], lab["count"]],
                 [(verdict_label(v, lang), fig.verdicts[v]) for v in VERDICTS], [22, 60])
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


# The 测评记录表 of one 测评对象, as agencies lay it out (docs/evidence.md "The record workbook"): a header block
# naming the system, the object, its addresses and version, who assessed and who reviews it, then one row per
# requirement item. Columns (1-based) and their widths; the header block's pairs sit on the table's columns:
# label A:B, value C:E, label F, value G:J.
RECORD_COLUMNS = ("no", "extension", "clause", "control", "item", "method", "record", "verdict", "score_col",
                  "remark")
RECORD_WIDTHS = (5, 10, 10, 12, 34, 14, 54, 9, 6, 20)
_LEFT, _RIGHT = ((1, 2), (3, 5)), ((6, 6), (7, 10))
VERDICT_COL = get_column_letter(RECORD_COLUMNS.index("verdict") + 1)
LINE_HEIGHT = 15  # points per line of 11-point text


def _display_lines(text: str, width: float) -> int:
    """How many lines `text` wraps to in a column `width` units wide. A CJK character (three UTF-8 bytes) is
    two units, an ASCII one 1; the estimate errs long, since a clipped row hides part of a record."""
    per_line = max(width - 1.5, 1.0)
    total = 0
    for line in str(text).split("\n"):
        n = len(line)
        units = (n + 0.5 * (len(line.encode("utf-8")) - n)) * 1.05
        total += max(1, math.ceil(units / per_line))
    return total


def _fit_height(ws: Worksheet, row: int, lines: int) -> None:
    """Excel and LibreOffice leave a row at one line when it is written (LibreOffice does not refit rows of an
    .xlsx it opens), so wrapped cells would overlap the next row: give the row the lines it needs."""
    if lines > 1:
        ws.row_dimensions[row].height = LINE_HEIGHT * lines


def _span(ws: Worksheet, row: int, cols: tuple[int, int], value, style: str, fmt: Optional[str] = None) -> int:
    """A cell over `cols` of `row` (merged when it covers more than one column); returns the lines it needs."""
    c = ws.cell(row=row, column=cols[0], value=_cell(value))
    c.style = style
    if c.data_type == "f":
        c.data_type = "s"
    if fmt and isinstance(value, (int, float)):
        c.number_format = fmt
    if cols[1] > cols[0]:
        ws.merge_cells(start_row=row, start_column=cols[0], end_row=row, end_column=cols[1])
    width = sum(RECORD_WIDTHS[i - 1] for i in range(cols[0], cols[1] + 1))
    return _display_lines("" if value is None else value, width)


def _form(ws: Worksheet, row: int, rows: Sequence[Sequence[tuple]]) -> int:
    """Header-block rows of one or two (label, value[, number format]) pairs; a lone pair's value spans the
    row. Merged cells do not grow with their text in Excel or LibreOffice, so each row gets the height its
    longest value wraps to. Returns the row after the block."""
    for r, pairs in enumerate(rows, row):
        lines = 1
        for n, (label, value, *fmt) in enumerate(pairs):
            (lab_cols, val_cols) = _LEFT if n == 0 else _RIGHT
            if len(pairs) == 1:
                val_cols = (_LEFT[1][0], _RIGHT[1][1])
            _span(ws, r, lab_cols, label, "s-head")
            lines = max(lines, _span(ws, r, val_cols, value, "s-body", fmt[0] if fmt else None))
        _fit_height(ws, r, lines)
    return row + len(rows)


def _method(obj, row, lab: dict[str, str]) -> str:
    """GB/T 28448's ways of assessing (访谈, 核查, 测试) as this record reached the verdict."""
    if row.verdict_zh != "待核查" and row.source == lab["manual_src"]:
        return lab["m_manual"]
    if not row.checks:
        return lab["m_pending"] if row.verdict_zh == "待核查" else lab["m_manual"]
    return lab["m_scan"] if obj.kind != "host" else lab["m_check"]


def _merge_runs(ws: Worksheet, column: int, first: int, values: Sequence[str]) -> None:
    """Merge the cells of `column` over each run of equal values (安全控制点 over its items, as records do)."""
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            if i - start > 1:
                ws.merge_cells(start_row=first + start, start_column=column, end_row=first + i - 1,
                               end_column=column)
            start = i


def _object_sheet(ws: Worksheet, ev: SystemEvidence, obj, lang: str) -> None:
    lab = labels(lang)
    todo = lab["to_fill_mark"]
    sysref, host = ev.system, obj.host
    title = object_title(obj, lang)
    ws.cell(row=1, column=1, value=_cell(f"{lab['record_sheet']} — {title}")).font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(RECORD_COLUMNS))
    grading = (f"第 {sysref.level} 级" if lang == "zh" else f"level {sysref.level}") + (
        ("，" if lang == "zh" else ", ") + sysref.label if sysref.label else "")
    if obj.kind != "host":
        version, where = "—", (lab["zone"], obj.zone or ", ".join(sysref.zones) or "—")
    elif is_os(obj):
        version = f"{host.os_name} ({host.os_id} {host.os_version}, {host.arch})" if host else "—"
        where = (lab["runs_on"], obj.hostname or obj.name)
    else:
        os_text = f"; {lab['os']} {host.os_name}" if host else ""
        version = f"{obj.version or '—'}{os_text}"
        where = (lab["runs_on"], obj.hostname or "—")
    assessors = sorted({i.manual.assessor for rep in obj.reports for i in rep.items
                        if i.manual is not None and i.source == "manual"})
    row = _form(ws, 2, [
        [(lab["system_under"], f"{sysref.name} {sysref.title}".strip() + f"（{grading}）" if lang == "zh" else
          f"{sysref.name} {sysref.title}".strip() + f" ({grading})"), (lab["object"], title)],
        [(lab["kind"], object_kind_label(obj, lang)), where],
        [(lab["ip"], ", ".join(obj.addresses) or "—"), (lab["version"], version)],
        [(lab["purpose"], todo), (lab["assessors"], ", ".join(assessors) or todo)],
        [(lab["reviewer"], todo), (lab["confirmed"], todo)],
    ])
    for rep in obj.reports:
        b = rep.baseline
        basis = f"GB/T 22239-2019 {grading} · {b.id} {b.version} (L{b.level})"
        how = (lab["how_scan"].format(scan=rep.scan_run_id, collector=ev.collector.name) if obj.kind != "host"
               else lab["how_agent"].format(report=rep.report_id, run=rep.run_id or "—", collector=ev.collector.name))
        counts = " · ".join(f"{verdict_label(v, lang)} {rep.summary.verdicts.get(v, 0)}" for v in VERDICTS)
        row = _form(ws, row, [
            [(lab["basis"], basis), (lab["how"], how)],
            [(lab["assessed_at"], fmt_time(rep.received_at or rep.generated_at)), (lab["verdicts"], counts)],
            [(lab["score"], rep.summary.score if rep.summary.score is not None else fmt_score(None), "0.00"),
             (lab["scoped_conclusion"], conclusion_label(rep.summary.conclusion, lang))],
        ]) + 1
        head = row
        rows = item_rows(rep, lang)
        row = _table(ws, row, [lab[k] for k in RECORD_COLUMNS],
                     [(r.no, part_label(r.clause, lang), r.clause, r.control, f"{r.item}) {r.text}",
                       _method(obj, r, lab), r.record, r.verdict, r.weight,
                       f"{lab['checks_col']}: {r.checks}" if r.checks else "") for r in rows], RECORD_WIDTHS)
        dv = DataValidation(type="list", allow_blank=False, showErrorMessage=True,
                            formula1='"' + ",".join(verdict_label(v, lang) for v in VERDICTS) + '"')
        ws.add_data_validation(dv)
        if rows:
            dv.add(f"{VERDICT_COL}{head + 1}:{VERDICT_COL}{head + len(rows)}")
        for i, r in enumerate(rows, head + 1):
            ws[f"{VERDICT_COL}{i}"].style = f"s-{r.verdict_zh}"
            ws.cell(row=i, column=RECORD_COLUMNS.index("score_col") + 1).number_format = "0.00"
        _merge_runs(ws, RECORD_COLUMNS.index("extension") + 1, head + 1, [part_label(r.clause, lang) for r in rows])
        _merge_runs(ws, RECORD_COLUMNS.index("control") + 1, head + 1, [r.clause for r in rows])
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


def _dr(ws: Worksheet, ev: SystemEvidence, lang: str) -> None:
    """数据备份恢复 as the JSON and HTML sections have it: the system's verdict against its RPO, replication,
    off-site real-time backup and the failover facts, then one row per host and copy (a database replica at
    another site is a copy); hours, seconds and counts stay numbers."""
    lab = labels(lang)
    d = ev.dr
    assert d is not None  # only called with one
    row = _pairs(ws, 1, [
        (lab["verdict"], d.verdict_zh if lang == "zh" else d.verdict),
        (lab["dr_evaluated"], fmt_time(d.evaluated_at)),
        (lab["dr_rpo"], d.rpo_hours if d.rpo_hours is not None else lab["none"], "0.##"),
        (lab["dr_replication"], d.replication),
        (lab["dr_lag"], d.replication_lag_seconds if d.replication_lag_seconds is not None else lab["none"],
         "0.###"),
        (lab["dr_realtime"], lab[f"dr_rt_{d.offsite_realtime}"]),
        (lab["dr_failover"], "\n".join(d.failover_targets) or lab["none"]),
    ])
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = PAIR_WIDTHS
    rows: list[tuple] = []
    n = 0
    for h in d.hosts:
        verdict = h.verdict_zh if lang == "zh" else h.verdict
        why = "\n".join(h.reasons)
        checked = fmt_time(h.checked_at) if h.checked_at else lab["none"]
        listed: list[Optional[BackupCopyState]] = list(h.copies) or [None]
        for c in listed:
            n += 1
            if c is None:
                rows.append((n, h.host, verdict, lab["none"], "", "", "", "", None, "", None, checked, why))
                continue
            rows.append((n, h.host, verdict, c.name, c.tool, c.site, lab["yes"] if c.offsite else lab["no_"],
                         c.where or "", c.backups, c.error or (fmt_time(c.newest) if c.newest else lab["none"]),
                         c.age_hours, checked, why))
    head = row
    _table(ws, head, [lab["no"], lab["host"], lab["verdict"], lab["dr_copy"], lab["dr_tool"], lab["dr_site"],
                      lab["dr_offsite"], lab["dr_where"], lab["dr_backups"], lab["dr_newest"], lab["dr_age"],
                      lab["dr_checked"], lab["reason"]],
           rows or [("", lab["none"], "", "", "", "", "", "", None, "", None, "", "")],
           [6, 18, 12, 16, 14, 10, 8, 36, 8, 22, 10, 22, 60])
    for r in range(head + 1, head + 1 + len(rows)):
        ws.cell(row=r, column=11).number_format = "0.00"
    ws.freeze_panes = f"A{head + 1}"
