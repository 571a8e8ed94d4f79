"""Output formats for a HostReport: json (stable keys, for machines), csv, junit (for CI systems), table (people)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any
from xml.etree import ElementTree as ET

from .expect import show_value
from .model import HostReport, Status, Verdict
from .scoring import counted

FORMATS = ("table", "json", "csv", "junit")

_STATUS_ZH = {"pass": "通过", "fail": "不通过", "error": "错误", "not_applicable": "不适用"}
_SEVERITY_ZH = {"critical": "严重", "high": "高", "medium": "中", "low": "低"}
_STATUS_STYLE = {"pass": "green", "fail": "bold red", "error": "yellow", "not_applicable": "dim"}
_VERDICT_STYLE = {"符合": "green", "部分符合": "yellow", "不符合": "bold red", "不适用": "dim", "待核查": "cyan"}

# Every word a report prints besides the data, in both languages: a zh report has no English label and an
# en report no Chinese one (the check and item texts come from the baseline in the chosen language).
_WORDS = {
    "zh": {"level": "等级", "host": "主机", "clause": "条款", "id": "检查编号", "check": "检查项",
           "severity": "严重程度",
           "status": "结果", "detail": "实际 / 原因", "waived": "（已豁免）", "high_risk": "高风险",
           "pending": "待人工核查的测评项: ", "case": "判定指引", "pass_rate": "通过率", "score": "加权得分",
           "conclusion": "结论", "observed": "实际", "expected": "要求", "remediation": "整改建议",
           "manual": "人工测评项，{verdict}", "waiver": "已豁免: {waiver}", "failed": "不通过", "error": "无法判定",
           "not_applicable": "不适用", "advisory_mark": "（参考项，不计入判定）",
           "advisory": "参考项，不计入判定: {advisory}"},
    "en": {"level": "level", "host": "host", "clause": "clause", "id": "check id", "check": "check",
           "severity": "severity", "status": "status", "detail": "observed / reason", "waived": " (waived)",
           "high_risk": "high risk", "pending": "items awaiting an assessor: ", "case": "case",
           "pass_rate": "pass rate", "score": "weighted score", "conclusion": "conclusion", "observed": "observed",
           "expected": "expected", "remediation": "remediation", "manual": "manual item, {verdict}",
           "waiver": "waived: {waiver}", "failed": "failed", "error": "could not be determined",
           "not_applicable": "not applicable", "advisory_mark": "(advisory, not counted)",
           "advisory": "advisory, not counted in verdicts: {advisory}"},
}


def reason(r, lang: str) -> str:
    """A result's reason in `lang`: the Chinese wording when the check gave one, else the English."""
    if lang == "zh" and r.reason_zh:
        return r.reason_zh
    return r.reason or ""


def expected(r, lang: str) -> str:
    """What a check requires: in Chinese words for zh ("≤ 90"), else the operator form ("le 90"); results made
    before expected_zh existed, and network results, have only the operator form."""
    return r.expected_zh if lang == "zh" and getattr(r, "expected_zh", None) else r.expected


def status_label(value: str, lang: str) -> str:
    return _STATUS_ZH[value] if lang == "zh" else value


def severity_label(value: str, lang: str) -> str:
    return _SEVERITY_ZH.get(value, value) if lang == "zh" else value


def verdict_label(verdict: Verdict, lang: str) -> str:
    return verdict.value if lang == "zh" else verdict.en


def to_json(report: HostReport) -> str:
    return json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"


def _short(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_csv(report: HostReport, lang: str = "zh") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["check_id", "clause", "item", "title", "status", "severity", "high_risk", "observed",
                     "expected", "reason", "remediation", "waiver", "advisory"])
    for r in report.results:
        writer.writerow([r.check_id, r.clause, r.item, r.title.get(lang), r.status.value, r.severity.value,
                         r.high_risk or "", _short(r.observed, 10_000), expected(r, lang), reason(r, lang),
                         r.remediation.get(lang), r.waiver or "",
                         r.advisory.get(lang) if r.advisory else ""])
    return buf.getvalue()


def to_junit(report: HostReport, lang: str = "zh") -> str:
    """One testsuite per control point, one testcase per check; n/a and waived checks are skipped, and each
    manual item is a skipped testcase too, so a CI view never hides what still awaits an assessor."""
    manual = [i for i in report.items if not i.checks]
    suites = ET.Element("testsuites", name=f"sentinel {report.baseline.id}",
                        tests=str(len(report.results) + len(manual)))
    by_clause: dict[str, list] = {}
    for item in report.items:
        by_clause.setdefault(item.clause, [])
    for r in report.results:
        by_clause[r.clause].append(r)
    w = _WORDS[lang]
    for clause, results in by_clause.items():
        pending = [i for i in manual if i.clause == clause]
        suite = ET.SubElement(suites, "testsuite", name=clause, tests=str(len(results) + len(pending)),
                              failures=str(sum(r.status == Status.FAIL and counted(r) for r in results)),
                              errors=str(sum(r.status == Status.ERROR and counted(r) for r in results)),
                              skipped=str(sum(not counted(r) for r in results)
                                          + len(pending)),
                              hostname=report.host.hostname, timestamp=report.generated_at.isoformat())
        for item in pending:
            case = ET.SubElement(suite, "testcase", classname=f"{item.clause}.{item.item}", name=f"manual-{item.item}")
            label = w["manual"].format(verdict=verdict_label(item.verdict, lang))
            ET.SubElement(case, "skipped", message=f"{label}: {item.text.get(lang)}")
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"{r.clause}.{r.item}", name=r.check_id,
                                 time=f"{r.duration_ms / 1000:.4f}")
            detail = (f"{r.title.get(lang)}\n{w['observed']}: {_short(r.observed, 2000)}\n"
                      f"{w['expected']}: {expected(r, lang)}")
            why = reason(r, lang)
            if r.waiver:
                ET.SubElement(case, "skipped", message=w["waiver"].format(waiver=r.waiver))
            elif r.advisory and r.status != Status.NOT_APPLICABLE:  # evidence only: a CI run does not fail on it
                ET.SubElement(case, "skipped", message=w["advisory"].format(advisory=r.advisory.get(lang))).text = \
                    f"{status_label(r.status.value, lang)}: {why}\n{detail}" if why else detail
            elif r.status == Status.FAIL:
                ET.SubElement(case, "failure", message=why or w["failed"], type=r.severity.value).text = \
                    detail + f"\n{w['remediation']}: {r.remediation.get(lang)}"
            elif r.status == Status.ERROR:
                ET.SubElement(case, "error", message=why or w["error"]).text = detail
            elif r.status == Status.NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=why or w["not_applicable"])
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def print_table(report: HostReport, lang: str = "zh", file=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    w = _WORDS[lang]
    import sys

    # A terminal sets the width; a file or a pipe gets room for six columns, so titles are not folded mid-word.
    tty = file is None and sys.stdout.isatty()
    console = Console(file=file, highlight=False, soft_wrap=False, width=None if tty else 180)
    h, s = report.host, report.summary
    b = report.baseline
    console.print(f"[bold]{escape(b.title.get(lang))}[/] ({b.id} {b.version}, {w['level']} {b.level})")
    console.print(f"{w['host']}: {escape(h.hostname)}  {escape(h.os_name)} {escape(f'[{h.family or chr(63)}]')} "
                  f"{h.arch}" + (f"  root={escape(h.root)}" if h.root else ""))
    if report.object is not None and report.object.kind != "os":  # the 测评对象 besides the host's OS
        o = report.object
        console.print(f"{'object' if lang == 'en' else '测评对象'}: {escape(o.name or o.kind)} "
                      f"({o.kind}{':' + escape(o.instance) if o.instance else ''})")
    table = Table(show_lines=False, header_style="bold")
    for key in ("clause", "id", "check", "severity", "status", "detail"):
        table.add_column(w[key], overflow="fold")
    for r in report.results:
        status = status_label(r.status.value, lang)
        if r.waiver:
            status += w["waived"]
        mark = f" [red]{w['high_risk']}[/]" if r.high_risk and r.status == Status.FAIL and counted(r) else ""
        if r.advisory and not r.waiver:  # marked on the title, so the status column keeps its width
            mark += f" [dim]{w['advisory_mark']}[/]"
        detail = reason(r, lang) if r.status != Status.PASS else show_value(r.observed, lang)
        table.add_row(f"{r.clause}.{r.item}", r.check_id, escape(r.title.get(lang)) + mark,
                      severity_label(r.severity.value, lang),
                      f"[{_STATUS_STYLE[r.status.value]}]{status}[/]", escape(_short(detail, 160)))
    console.print(table)
    pending = [i for i in report.items if i.verdict == Verdict.PENDING]
    if pending:
        console.print(w["pending"] + ", ".join(f"{i.clause}.{i.item}" for i in pending))
    for f in s.high_risk_findings:
        console.print(f"[bold red]{w['high_risk']}[/] {f.clause}.{f.item} {f.check_id} {escape(f.title.get(lang))} "
                      f"({w['case']} {f.case})")
    counts = ", ".join(f"{status_label(k, lang)} {v}" for k, v in s.counts.items())
    score = "n/a" if s.score is None else f"{s.score:.2f}"
    rate = "n/a" if s.pass_rate is None else f"{100 * s.pass_rate:.1f}%"
    concl = s.conclusion_en if lang == "en" else s.conclusion
    console.print(f"{counts} | {w['pass_rate']} {rate} | {w['score']} {score} | {w['conclusion']} [bold]{concl}[/]")
