"""What `sentinel up --once` prints after its cycle, and the exit code it returns (said in words).

Worst first: the high-risk findings (each caps the conclusion to 差, so they come before anything else),
then the other failures by severity, then how many items wait for an assessor (待核查) and which checks
could not run, with their reasons. Lines go to stdout, the exit explanation to stderr; zh or en.
"""
from __future__ import annotations

import typer

from .scoring import decides

SEVERITY_ORDER = ("critical", "high", "medium", "low")
SHOWN = 15  # per list; the rest is counted and `sentinel check` shows all
REASON_WIDTH = 100  # characters of a failure's reason shown beside its title

TEXT = {
    "en": {
        "head": "{title} ({id} {version}) on {host}: score {score}, {conclusion}; pass {passed}, fail {failed}, "
                "error {error}, n/a {na}, high-risk {high}",
        "high_risk": "  high-risk findings ({n}; they cap the conclusion to poor (差)):",
        "case": "high-risk guide case",
        "others": "  other failures by severity ({n}):",
        "more": "    ... and {n} more (sentinel check --baseline {id} shows all)",
        "more_errors": "    ... and {n} more",
        "pending": "  待核查: {n} item(s) without an automated check wait for an assessor's verdict (sentinel assess)",
        "errors": "  could not run ({n} error; never counted as pass):",
        "no_reason": "no reason given",
        "stored": "stored as run {run}: {new} new failure(s), {fixed} fixed since the previous run",
        "no_report": "exit 1: {n} baseline run(s) produced no report (see the error above)",
        "not_stored": "exit 1: {n} envelope(s) not stored: {why}",
        "findings": "exit 1: {failed} check(s) failed and {error} could not be determined (error); "
                    "`sentinel up --once` exits 0 only when every counted check passes (1 = findings on this "
                    "host, not a fault of sentinel; 2 = usage or configuration error)",
        "clean": "exit 0: every counted check passed",
    },
    "zh": {
        "head": "{title}（{id} {version}）主机 {host}：得分 {score}，{conclusion}；通过 {passed}，不通过 {failed}，"
                "无法判定 {error}，不适用 {na}，高风险 {high}",
        "high_risk": "  高风险问题（{n} 项；有一项，结论即为差）：",
        "case": "高风险判定指引",
        "others": "  其他不通过项，按严重程度（{n} 项）：",
        "more": "    …… 另有 {n} 项（sentinel check --baseline {id} 列出全部）",
        "more_errors": "    …… 另有 {n} 项",
        "pending": "  待核查：{n} 个要求项无自动检查，等待测评人员判定（sentinel assess）",
        "errors": "  无法判定（{n} 项 error，不计为通过）：",
        "no_reason": "未给出原因",
        "stored": "已存为第 {run} 次运行：新增不通过 {new} 项，较上次修复 {fixed} 项",
        "no_report": "退出码 1：{n} 个基线运行未产生报告（见上方错误）",
        "not_stored": "退出码 1：{n} 个报告未存入：{why}",
        "findings": "退出码 1：{failed} 项检查不通过，{error} 项无法判定（error）；只有所有计入的检查都通过，"
                    "`sentinel up --once` 才返回 0（1 = 本机存在问题，并非 sentinel 故障；2 = 用法或配置错误）",
        "clean": "退出码 0：所有计入的检查均通过",
    },
}


def print_once(reports: list, flushed, expected: int, lang: str) -> int:
    """A summary per report and the exit code as `sentinel check` has it: 0 every counted check passed,
    1 a check failed or could not be determined, or a report was not made or not stored."""
    t = TEXT[lang]
    failing = undetermined = 0
    for report in reports:
        fails, errors = print_summary(report, lang)
        failing, undetermined = failing + fails, undetermined + errors
    for answer in flushed.answers:
        if answer.get("run_id") is not None:
            typer.echo(t["stored"].format(run=answer["run_id"], new=len(answer.get("new_failures", [])),
                                          fixed=len(answer.get("fixed", []))))
    if len(reports) < expected:
        typer.echo(t["no_report"].format(n=expected - len(reports)), err=True)
        return 1
    if not flushed.complete:
        typer.echo(t["not_stored"].format(n=flushed.remaining, why=flushed.blocked), err=True)
        return 1
    if failing or undetermined:
        typer.echo(t["findings"].format(failed=failing, error=undetermined), err=True)
        return 1
    typer.echo(t["clean"], err=True)
    return 0


def print_summary(report: dict, lang: str) -> tuple[int, int]:
    """One report's summary, worst first. Returns (failed checks, checks that could not run)."""
    t = TEXT[lang]
    s = report["summary"]
    counts = s.get("counts", {})
    base = report["baseline"]
    # waived and advisory results decide nothing (sentinel/scoring.py counted), so they are not failures here
    counted = [r for r in report["results"] if decides(r)]
    fails = [r for r in counted if r["status"] == "fail"]
    errors = [r for r in counted if r["status"] == "error"]
    target = report.get("object") or {}
    on, head = report["host"]["hostname"], t["head"]
    if target.get("kind", "os") != "os":  # a database, middleware or web server on the host: its 测评对象 name
        on = target.get("name") or f"{on} {target.get('kind')}:{target.get('instance', '')}"
        head = head.replace("主机 {host}", "测评对象 {host}")
    typer.echo(head.format(
        title=base["title"].get(lang) or base["id"], id=base["id"], version=base["version"],
        host=on, score="-" if s.get("score") is None else f"{s['score']:.1f}",
        conclusion=s["conclusion"] if lang == "zh" else s.get("conclusion_en", s["conclusion"]),
        passed=counts.get("pass", 0), failed=len(fails), error=len(errors),
        na=counts.get("not_applicable", 0), high=s.get("high_risk", 0)))

    def name(r: dict) -> str:
        return f"{r['clause']}{r['item']} {r['check_id']}: {r['title'].get(lang) or r['check_id']}"

    def found(r: dict) -> str:
        """What was seen, after the requirement's title (the title alone reads as if it were met)."""
        reason = _reason(r, lang)
        return f" — {reason if len(reason) <= REASON_WIDTH else reason[:REASON_WIDTH - 1] + '…'}" if reason else ""

    high_risk = [r for r in fails if r.get("high_risk")]
    if high_risk:
        typer.echo(t["high_risk"].format(n=len(high_risk)))
        for r in high_risk:
            typer.echo(f"    {r['severity']:8} {name(r)} [{t['case']} {r['high_risk']}]{found(r)}")
    others = sorted((r for r in fails if not r.get("high_risk")), key=_severity_rank)
    if others:
        typer.echo(t["others"].format(n=len(others)))
        for r in others[:SHOWN]:
            typer.echo(f"    {r['severity']:8} {name(r)}{found(r)}")
        if len(others) > SHOWN:
            typer.echo(t["more"].format(n=len(others) - SHOWN, id=base["id"]))
    # items with no automated check; items left 待核查 by an error are counted with the errors below
    manual = sum(1 for i in report.get("items", []) if i.get("verdict") == "待核查" and not i.get("checks"))
    if manual:
        typer.echo(t["pending"].format(n=manual))
    if errors:
        typer.echo(t["errors"].format(n=len(errors)))
        for r in errors[:SHOWN]:
            typer.echo(f"    {name(r)}: {_reason(r, lang) or t['no_reason']}")
        if len(errors) > SHOWN:
            typer.echo(t["more_errors"].format(n=len(errors) - SHOWN))
    return len(fails), len(errors)


def _reason(r: dict, lang: str) -> str:
    """The Chinese wording in zh when the check gave one (reports of older agents have only the English)."""
    return (r.get("reason_zh") if lang == "zh" and r.get("reason_zh") else r.get("reason")) or ""


def _severity_rank(r: dict) -> tuple[int, str, str]:
    sev = r.get("severity")
    return (SEVERITY_ORDER.index(sev) if sev in SEVERITY_ORDER else len(SEVERITY_ORDER), r["clause"], r["item"])
