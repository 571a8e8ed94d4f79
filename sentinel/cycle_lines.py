"""The lines `sentinel agent` and `sentinel up` print per baseline run, whatever the log level, in zh or en:
what ran and its result, then where the report went (its run id on the collector, or the spool while the
collector cannot take it), and once per process a hint to run as root when checks were denied permission.

Kept apart from the daemon so the wording is tested without one.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

import typer

from .scoring import failing_figures

TEXT = {
    "en": {
        "no_report": "baseline {baseline}: no report (the reason is logged above)",
        "result": "baseline {baseline}: score {score} {conclusion}, {failed} failed, {error} error, {high} high-risk",
        "stored": "{result}; stored as run {run} on {url}{waited}",
        "waited": " (it waited in the spool)",
        "kept": "{result}; kept in the spool {spool} until the collector takes it ({why})",
        "hint": "hint: {n} check(s) could not be determined for lack of permission (e.g. {example}); run as root "
                "(sudo sentinel {command} ...) for a complete report",
    },
    "zh": {
        "no_report": "基线 {baseline}：未产生报告（原因见上方日志）",
        "result": "基线 {baseline}：得分 {score} {conclusion}，"
                  "不通过 {failed} 项，无法判定 {error} 项，高风险 {high} 项",
        "stored": "{result}；已存为 {url} 上的第 {run} 次运行{waited}",
        "waited": "（曾在缓存目录中等待）",
        "kept": "{result}；暂存于缓存目录 {spool}，待采集端接收（{why}）",
        "hint": "提示: {n} 项检查因权限不足无法判定（如 {example}）；请以 root 身份运行（sudo sentinel {command} ...）"
                "以得到完整结果",
    },
}


def _stamped(line: str) -> None:
    typer.echo(f"{datetime.now().astimezone().isoformat(timespec='seconds')} {line}", err=True)


def denied(report: dict) -> list[dict]:
    """The results a report has as error because a file or command was not readable to this user."""
    return [r for r in report.get("results", []) if r.get("status") == "error"
            and "permission denied" in (r.get("reason") or "").lower()]


class Announcer:
    def __init__(self, lang: str = "en", command: str = "agent", say: Callable[[str], None] = _stamped) -> None:
        self.t = TEXT[lang]
        self.lang, self.command, self.say = lang, command, say
        self._hinted = False

    def no_report(self, baseline: str) -> None:
        self.say(self.t["no_report"].format(baseline=baseline))

    def made(self, baseline: str, report: dict) -> str:
        """The result part of the run's line (said when the report is stored or spooled); the root hint now."""
        s = report.get("summary", {})
        conclusion = s.get("conclusion", "") if self.lang == "zh" else s.get("conclusion_en") or s.get("conclusion", "")
        self._hint(report)
        failed, undetermined = failing_figures(report.get("results", []))
        target = report.get("object") or {}
        if target.get("kind", "os") != "os":  # a database, middleware or web server: say which 测评对象
            baseline += f" ({target.get('name') or target.get('kind')})"
        return self.t["result"].format(
            baseline=baseline, score="-" if s.get("score") is None else f"{s['score']:.1f}", conclusion=conclusion,
            failed=failed, error=undetermined, high=s.get("high_risk", 0))

    def stored(self, result: str, run_id, url: str, waited: bool) -> None:
        self.say(self.t["stored"].format(result=result, run=run_id, url=url, waited=self.t["waited"] if waited else ""))

    def kept(self, result: str, spool, why: str) -> None:
        self.say(self.t["kept"].format(result=result, spool=spool, why=why))

    def _hint(self, report: dict) -> None:
        """Once per process, when not root and checks were refused: more runs would only repeat it."""
        if self._hinted or os.geteuid() == 0:
            return
        refused = denied(report)
        if refused:
            self._hinted = True
            self.say(self.t["hint"].format(n=len(refused), example=refused[0].get("check_id"), command=self.command))
