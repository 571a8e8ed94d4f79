"""Output formats for a HostReport: json (stable keys, for machines), csv, junit (for CI systems), table (people)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any
from xml.etree import ElementTree as ET

from .model import HostReport, Status, Verdict

FORMATS = ("table", "json", "csv", "junit")

_STATUS_ZH = {"pass": "通过", "fail": "不通过", "error": "错误", "not_applicable": "不适用"}
_STATUS_STYLE = {"pass": "green", "fail": "bold red", "error": "yellow", "not_applicable": "dim"}
_VERDICT_STYLE = {"符合": "green", "部分符合": "yellow", "不符合": "bold red", "不适用": "dim", "待核查": "cyan"}


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
                     "expected", "reason", "remediation", "waiver"])
    for r in report.results:
        writer.writerow([r.check_id, r.clause, r.item, r.title.get(lang), r.status.value, r.severity.value,
                         r.high_risk or "", _short(r.observed, 10_000), r.expected, r.reason or "",
                         r.remediation.get(lang), r.waiver or ""])
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
    for clause, results in by_clause.items():
        pending = [i for i in manual if i.clause == clause]
        suite = ET.SubElement(suites, "testsuite", name=clause, tests=str(len(results) + len(pending)),
                              failures=str(sum(r.status == Status.FAIL and not r.waiver for r in results)),
                              errors=str(sum(r.status == Status.ERROR and not r.waiver for r in results)),
                              skipped=str(sum(r.status == Status.NOT_APPLICABLE or bool(r.waiver) for r in results)
                                          + len(pending)),
                              hostname=report.host.hostname, timestamp=report.generated_at.isoformat())
        for item in pending:
            case = ET.SubElement(suite, "testcase", classname=f"{item.clause}.{item.item}", name=f"manual-{item.item}")
            ET.SubElement(case, "skipped", message=f"manual item, {item.verdict.value}: {item.text.get(lang)}")
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"{r.clause}.{r.item}", name=r.check_id,
                                 time=f"{r.duration_ms / 1000:.4f}")
            detail = f"{r.title.get(lang)}\nobserved: {_short(r.observed, 2000)}\nexpected: {r.expected}"
            if r.waiver:
                ET.SubElement(case, "skipped", message=f"waived: {r.waiver}")
            elif r.status == Status.FAIL:
                ET.SubElement(case, "failure", message=r.reason or "failed", type=r.severity.value).text = \
                    detail + f"\nremediation: {r.remediation.get(lang)}"
            elif r.status == Status.ERROR:
                ET.SubElement(case, "error", message=r.reason or "error").text = detail
            elif r.status == Status.NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=r.reason or "not applicable")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def print_table(report: HostReport, lang: str = "zh", file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    en = lang == "en"
    console = Console(file=file, highlight=False, soft_wrap=False, width=None if file is None else 160)
    h, s = report.host, report.summary
    console.print(f"[bold]{report.baseline.title.get(lang)}[/] ({report.baseline.id} {report.baseline.version}, "
                  f"{'level' if en else '等级'} {report.baseline.level})")
    console.print(f"{'host' if en else '主机'}: {h.hostname}  {h.os_name} [{h.family or '?'}] {h.arch}"
                  + (f"  root={h.root}" if h.root else ""))
    table = Table(show_lines=False, header_style="bold")
    for col in (("clause", "条款"), ("check", "检查项"), ("status", "结果"), ("observed / reason", "实际 / 原因")):
        table.add_column(col[0] if en else col[1], overflow="fold")
    for r in report.results:
        status = r.status.value if en else _STATUS_ZH[r.status.value]
        if r.waiver:
            status += " (waived)" if en else "（已豁免）"
        mark = " [red]高风险[/]" if r.high_risk and r.status == Status.FAIL and not r.waiver else ""
        detail = r.reason if r.status != Status.PASS else _short(r.observed)
        table.add_row(f"{r.clause}.{r.item}", r.title.get(lang) + mark,
                      f"[{_STATUS_STYLE[r.status.value]}]{status}[/]", _short(detail, 160))
    console.print(table)
    pending = [i for i in report.items if i.verdict == Verdict.PENDING]
    if pending:
        console.print(("items awaiting an assessor: " if en else "待人工核查的测评项: ")
                      + ", ".join(f"{i.clause}.{i.item}" for i in pending))
    for f in s.high_risk_findings:
        console.print(f"[bold red]{'high risk' if en else '高风险'}[/] {f.clause}.{f.item} {f.title.get(lang)} "
                      f"({'case' if en else '判定指引'} {f.case})")
    counts = ", ".join(f"{k if en else _STATUS_ZH[k]} {v}" for k, v in s.counts.items())
    score = "n/a" if s.score is None else f"{s.score:.2f}"
    rate = "n/a" if s.pass_rate is None else f"{100 * s.pass_rate:.1f}%"
    concl = s.conclusion_en if en else s.conclusion
    console.print(f"{counts} | {'pass rate' if en else '通过率'} {rate} | "
                  f"{'weighted score' if en else '加权得分'} {score} | {'conclusion' if en else '结论'} "
                  f"[bold]{concl}[/]")
