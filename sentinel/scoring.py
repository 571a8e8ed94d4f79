"""Verdicts, scores and conclusions: the one place where sentinel's scoring formula lives.

Check status -> item verdict (per requirement item 测评项, over its checks that are applicable, not waived and
not advisory):

    no checks at all (manual item)                 -> 待核查 (pending, until an assessor records a verdict)
    only advisory checks apply                     -> 待核查 (advisory evidence for the assessor, no verdict)
    checks exist but none applies                  -> 不适用
    every check passes                             -> 符合
    some pass, some fail                           -> 部分符合
    none passes, at least one fails                -> 不符合
    no failure but at least one `error`            -> 待核查 (could not be determined; error never counts as pass)

Item score: 符合 = 1, 部分符合 = 0.5, 不符合 = 0. 不适用 and 待核查 items are left out of the score (待核查 items
are counted and reported so an assessment is never shown as complete while they remain).

Weighted score (0-100) = 100 × Σ(weight × item score) / Σ(weight), over scored items; None if none is scored.
Weights are the item weights of real level-3 records (1.0 key / 0.7 important / 0.4 general).

Pass rate = pass / (pass + fail + error), over applicable, non-waived checks.

Risk level of a failing check: 高 if it is a high-risk finding (the check names a case of the 高风险判定指引),
中 if its severity is high or critical, 低 otherwise.

Conclusion, after the 2021 assessment report template (any unresolved high risk caps it):
    优  score >= 90 and no 中 or 高 risk
    良  score >= 80 and no 高 risk
    中  score >= 70 and no 高 risk
    差  any 高 risk, or score < 70
System roll-up (a graded system = its hosts' reports + its network scan results): each requirement item gets
one verdict over all 测评对象 that bear on it — 不适用 objects are ignored; any 待核查 with no failure keeps the
item 待核查 (an undetermined host never counts as a pass); all 符合 -> 符合; all 不符合 -> 不符合; any other mix
-> 部分符合. The weighted score, pass rate, risks and conclusion are then computed over those items and all results
exactly as for one host (`system_items` + `summarize`).

When no item could be scored the conclusion is 差 only if there is a high-risk finding, else `待定` (undetermined).
The 2025 template drops scores in favour of 重大风险隐患; the per-item verdicts and the high-risk list are kept so
that view can be produced from the same results.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, Optional, Protocol, TypeVar

from .model import Baseline, CheckResult, HighRiskFinding, ItemResult, Severity, Status, Summary, Text, Verdict

ITEM_SCORE = {Verdict.CONFORM: 1.0, Verdict.PARTIAL: 0.5, Verdict.NONCONFORM: 0.0}
CONCLUSION_EN = {"优": "excellent", "良": "good", "中": "fair", "差": "poor", "待定": "undetermined"}
RiskLevel = Literal["high", "medium", "low"]
ItemT = TypeVar("ItemT", bound=ItemResult)


class Scored(Protocol):
    """What scoring reads of a check result: a CheckResult, or a reduced model with these fields (the store's
    roll-up reads only them)."""

    @property
    def check_id(self) -> str: ...
    @property
    def clause(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def title(self) -> Text: ...
    @property
    def status(self) -> Status: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def high_risk(self) -> Optional[str]: ...
    @property
    def waiver(self) -> Optional[str]: ...
    @property
    def advisory(self) -> Optional[Text]: ...
    @property
    def offline(self) -> bool: ...


def counted(result: Scored) -> bool:
    """A result that takes part in verdicts and scores: applicable, not waived and not advisory.

    An advisory check (practice beyond the 作业指导书, see docs/baseline-coverage.md) is reported as evidence
    but changes no verdict, score, risk count or exit code unless a site file makes it `required`."""
    return result.status != Status.NOT_APPLICABLE and not result.waiver and not result.advisory


def item_verdict(results: Iterable[Scored], has_checks: bool) -> Verdict:
    if not has_checks:
        return Verdict.PENDING
    results = list(results)
    statuses = [r.status for r in results if counted(r)]
    if not statuses:
        # Advisory evidence alone is no verdict: the assessor decides, as for a manual item.
        if any(r.advisory and not r.waiver and r.status != Status.NOT_APPLICABLE for r in results):
            return Verdict.PENDING
        # a fact of the running host that an offline root could not show: the item applies, nobody has seen it
        if any(r.status == Status.NOT_APPLICABLE and r.offline and not r.waiver and not r.advisory for r in results):
            return Verdict.PENDING
        return Verdict.NOT_APPLICABLE
    passes = statuses.count(Status.PASS)
    fails = statuses.count(Status.FAIL)
    errors = statuses.count(Status.ERROR)
    if fails == 0 and errors == 0:
        return Verdict.CONFORM
    if fails == 0:
        return Verdict.PENDING
    return Verdict.PARTIAL if passes else Verdict.NONCONFORM


def rejudged_items(items: Iterable[ItemT], results: Iterable[Scored]) -> list[ItemT]:
    """Items with the verdicts their results give, whatever verdicts they carry: for reading a report body
    someone else scored (the collector's roll-up and evidence never take an agent's verdicts). An item that
    lists no checks but has results is judged over them; one whose verdict already agrees is kept as is."""
    by_item: dict[tuple[str, str], list[Scored]] = {}
    for r in results:
        by_item.setdefault((r.clause, r.item), []).append(r)
    out = []
    for item in items:
        mine = by_item.get((item.clause, item.item), [])
        verdict = item_verdict(mine, bool(item.checks) or bool(mine))
        out.append(item if verdict == item.verdict else item.model_copy(update={"verdict": verdict}))
    return out


def manual_decides(automated: Verdict) -> bool:
    """Whether an assessor's verdict on an item decides it: only where the checks left it 待核查 (a manual item,
    or checks that could not determine); where they reached a verdict it stands and the assessment is shown
    beside it. The system roll-up, each host's record and the evidence exports all apply this rule."""
    return automated == Verdict.PENDING


def weighted_score(items: Iterable[ItemResult]) -> Optional[float]:
    total = earned = 0.0
    for item in items:
        score = ITEM_SCORE.get(item.verdict)
        if score is None:
            continue
        total += item.weight
        earned += item.weight * score
    return round(100.0 * earned / total, 2) if total else None


def pass_rate(results: Iterable[Scored]) -> Optional[float]:
    statuses = [r.status for r in results if counted(r)]
    judged = [s for s in statuses if s in (Status.PASS, Status.FAIL, Status.ERROR)]
    return round(statuses.count(Status.PASS) / len(judged), 4) if judged else None


def decides(result: dict[str, Any]) -> bool:
    """`counted` for a result as JSON, status aside: neither waived nor advisory."""
    return not result.get("waiver") and not result.get("advisory")


def failing_figures(results: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(failed, could not be determined) among a JSON report's results that count (as `counted`): the figures
    that exit codes, headlines, per-run lines and a run's `failed` give. Waived and advisory results are
    evidence, not failures, and `summary.counts` holds them too, so the figures come from the results."""
    failed = undetermined = 0
    for r in results:
        if not decides(r):
            continue
        failed += r.get("status") == Status.FAIL.value
        undetermined += r.get("status") == Status.ERROR.value
    return failed, undetermined


def risk_level(result: Scored) -> Optional[RiskLevel]:
    """high / medium / low for a failing, counted check; None otherwise."""
    if result.status != Status.FAIL or not counted(result):
        return None
    if result.high_risk:
        return "high"
    if result.severity in (Severity.HIGH, Severity.CRITICAL):
        return "medium"
    return "low"


def conclusion(score: Optional[float], risks: dict[str, int]) -> str:
    if risks.get("high"):
        return "差"
    if score is None:
        return "待定"
    if score >= 90 and not risks.get("medium"):
        return "优"
    if score >= 80:
        return "良"
    if score >= 70:
        return "中"
    return "差"


def item_results(baseline: Baseline, results: list[CheckResult]) -> list[ItemResult]:
    by_item: dict[tuple[str, str], list[CheckResult]] = {}
    for r in results:
        by_item.setdefault((r.clause, r.item), []).append(r)
    out = []
    for control in baseline.controls:
        for item in control.items:
            mine = by_item.get((control.clause, item.item), [])
            out.append(ItemResult(clause=control.clause, item=item.item, key=item.key, unit=item.unit,
                                  control=control.name, text=item.text,
                                  weight=item.weight, verdict=item_verdict(mine, bool(item.checks)),
                                  checks=[c.id for c in item.checks]))
    return out


def summarize(items: Sequence[ItemResult], results: Sequence[Scored]) -> Summary:
    counts = {s.value: 0 for s in Status}
    advisory = {s.value: 0 for s in Status}
    for r in results:
        counts[r.status.value] += 1
        if r.advisory and not r.waiver:
            advisory[r.status.value] += 1
    verdicts = {v.value: 0 for v in Verdict}
    for item in items:
        verdicts[item.verdict.value] += 1
    risks = {"high": 0, "medium": 0, "low": 0}
    high_risk: list[HighRiskFinding] = []
    for r in results:
        level = risk_level(r)
        if level:
            risks[level] += 1
        if level == "high":
            high_risk.append(HighRiskFinding(check_id=r.check_id, clause=r.clause, item=r.item,
                                             case=r.high_risk or "", title=r.title))
    score = weighted_score(items)
    concl = conclusion(score, risks)
    return Summary(counts=counts, verdicts=verdicts, checks_total=len(results),
                   waived=sum(1 for r in results if r.waiver), pass_rate=pass_rate(results), score=score,
                   high_risk=len(high_risk), high_risk_findings=high_risk, conclusion=concl,
                   conclusion_en=CONCLUSION_EN[concl], risk_counts=risks, advisory=advisory)


def combine_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """One item's verdict across several assessment objects (see the module docstring)."""
    present = [v for v in verdicts if v != Verdict.NOT_APPLICABLE]
    if not present:
        return Verdict.NOT_APPLICABLE
    judged = [v for v in present if v in ITEM_SCORE]
    failing = any(v in (Verdict.PARTIAL, Verdict.NONCONFORM) for v in judged)
    if Verdict.PENDING in present and not failing:
        return Verdict.PENDING
    if all(v == Verdict.CONFORM for v in judged):
        return Verdict.CONFORM
    if all(v == Verdict.NONCONFORM for v in judged):
        return Verdict.NONCONFORM
    return Verdict.PARTIAL


def system_items(item_sets: Iterable[Iterable[ItemResult]]) -> list[ItemResult]:
    """Roll the item results of several hosts and network scans up to one list for the system: one entry per
    requirement, by catalogue key (by clause and letter for items of reports written before keys)."""
    merged: dict[object, list[ItemResult]] = {}
    for items in item_sets:
        for item in items:
            merged.setdefault(item.key or (item.clause, item.item), []).append(item)
    out = []
    for group in sorted(merged.values(), key=lambda g: ([int(p) for p in g[0].clause.split(".")], g[0].item)):
        first = group[0]
        out.append(ItemResult(clause=first.clause, item=first.item, key=first.key, unit=first.unit,
                              control=first.control, text=first.text, weight=max(i.weight for i in group),
                              verdict=combine_verdicts(i.verdict for i in group),
                              checks=sorted({c for i in group for c in i.checks})))
    return out
