"""Judge a host report by the collector's copy of its baseline (baselines.py says why).

`judge` refuses (BaselineMismatch, a 422 naming the field) a result that is not a check of the named baseline,
a report whose 测评对象 kind (`object.kind`, the OS when absent) is not the baseline's `object`,
a check reported twice, a result whose clause, item, catalogue key, severity, high-risk case, waiver or advisory
mark differs from what the baseline gives that check, and a list of items that is not the baseline's (each item
once, with its weight, checks, catalogue key and test unit: the system roll-up, sentinel/store/assessment.py,
reads them from the kept body, merges items across hosts by key and recomputes only their verdicts). A key or
unit the agent leaves out (reports made before keys) is taken as absent, never as another item's. It then
computes the item verdicts and the summary with sentinel/scoring.py, exactly as the agent's engine does, and
lists where the agent's own summary and item verdicts differ from them: those are only claims, compared and
flagged, never stored as the report's score or conclusion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import scoring
from ..model import HighRiskFinding, HostReport, ItemResult, Summary, Text, object_of
from .baselines import Reference

# Summary keys compared with the agent's claim (conclusion_en and the high-risk list follow from these).
COMPARED = ("score", "conclusion", "pass_rate", "high_risk", "checks_total", "waived", "counts", "verdicts",
            "risk_counts")
MAX_ITEM_DIFFS = 20  # item verdicts listed in a flag; the count says how many differ in all
MAX_CLAIMED_KEYS = 16  # keys of a claimed mapping (counts, verdicts) kept in a flag
FIXED = ("clause", "item", "severity", "high_risk", "waiver")  # CheckRef's first fields, in this order


class BaselineMismatch(Exception):
    def __init__(self, loc: str, msg: str) -> None:
        super().__init__(f"{loc}: {msg}")
        self.loc, self.msg = loc, msg


@dataclass
class Judgement:
    summary: Summary
    items: list[ItemResult]
    claimed: dict[str, Any] = field(default_factory=dict)  # field -> the agent's value, where it differs

    @property
    def mismatch(self) -> bool:
        return bool(self.claimed)


def check_results(ref: Reference, rep: HostReport) -> None:
    """Refuse results that are not the baseline's checks as the baseline defines them."""
    b = ref.baseline
    name = f"{b.id} {b.version}"
    if rep.baseline.level != b.level:
        raise BaselineMismatch("body.baseline.level", f"{rep.baseline.level} but baseline {name} is level {b.level}")
    # The 测评对象 kind is the baseline's own: a Redis report under an OS baseline would be rolled up as the
    # host's OS (a report made before objects judges the OS, model.object_of)
    target = object_of(rep)
    if target.kind != b.object:
        raise BaselineMismatch("body.object.kind", f"{target.kind!r} but baseline {name} judges {b.object!r} objects")
    if target.kind == "os" and target.instance:
        raise BaselineMismatch("body.object.instance", f"{target.instance!r} but a host has one OS (instance \"\")")
    seen: dict[str, int] = {}
    advisory = {c.id: c.advisory for _, _, c in b.iter_checks()}
    for i, r in enumerate(rep.results):
        spec = ref.checks.get(r.check_id)
        if spec is None:
            raise BaselineMismatch(f"body.results.{i}.check_id", f"{r.check_id!r} is not a check of baseline {name}")
        if r.check_id in seen:
            raise BaselineMismatch(f"body.results.{i}.check_id",
                                   f"{r.check_id!r} is reported twice (also results.{seen[r.check_id]})")
        seen[r.check_id] = i
        got = (r.clause, r.item, r.severity.value, r.high_risk, r.waiver)
        if got != spec[:5]:  # one comparison per result on the hot path; the field is named only on a mismatch
            for fixed, value, given in zip(FIXED, got, spec[:5], strict=True):  # CheckRef's first five fields
                if value != given:
                    raise BaselineMismatch(f"body.results.{i}.{fixed}",
                                           f"{value!r} but baseline {name} gives check {r.check_id} {given!r}")
        if r.key is not None and r.key != spec.key:  # the roll-up would count the result under another item
            raise BaselineMismatch(f"body.results.{i}.key",
                                   f"{r.key!r} but baseline {name} gives check {r.check_id} {spec.key!r}")
        # Advisory results decide no verdict (scoring.counted), so the mark is the baseline's, never the agent's.
        if r.advisory != advisory.get(r.check_id):
            raise BaselineMismatch(f"body.results.{i}.advisory", f"{r.advisory!r} but baseline {name} gives check "
                                                                  f"{r.check_id} {advisory.get(r.check_id)!r}")
    listed: dict[tuple[str, str], int] = {}
    for i, item in enumerate(rep.items):
        key = (item.clause, item.item)
        want = ref.items.get(key)
        where = f"{item.clause}.{item.item}"
        if want is None:
            raise BaselineMismatch(f"body.items.{i}", f"{where} is not an item of baseline {name}")
        if key in listed:
            raise BaselineMismatch(f"body.items.{i}", f"{where} is listed twice (also items.{listed[key]})")
        listed[key] = i
        if item.weight != want.weight:
            raise BaselineMismatch(f"body.items.{i}.weight", f"{item.weight!r} but baseline {name} weighs {where} "
                                                             f"{want.weight!r}")
        if item.checks != want.checks:
            raise BaselineMismatch(f"body.items.{i}.checks", f"{item.checks} but baseline {name} gives {where} "
                                                             f"the checks {want.checks}")
        for fixed in ("key", "unit"):  # the roll-up merges by key and prints the unit: both are the baseline's
            given, wanted = getattr(item, fixed), getattr(want, fixed)
            if given is not None and given != wanted:
                raise BaselineMismatch(f"body.items.{i}.{fixed}",
                                       f"{given!r} but baseline {name} gives {where} {wanted!r}")
    if len(listed) != len(ref.items):
        lacking = sorted(f"{c}.{i}" for c, i in ref.items.keys() - listed.keys())
        raise BaselineMismatch("body.items", f"lacks {len(lacking)} item(s) of baseline {name}: "
                                             f"{', '.join(lacking[:10])}")


def judge(ref: Reference, rep: HostReport, claimed_summary: dict) -> Judgement:
    """Check the results against the baseline, then score them; compare with what the agent claimed."""
    check_results(ref, rep)
    items = scoring.item_results(ref.baseline, rep.results)
    summary = scoring.summarize(items, rep.results)
    if summary.high_risk_findings:  # titles as the baseline words them, not as the agent sent them
        summary.high_risk_findings = [
            HighRiskFinding(check_id=f.check_id, clause=f.clause, item=f.item, case=f.case,
                            title=Text.model_validate(ref.checks[f.check_id].title))
            for f in summary.high_risk_findings]
    out = Judgement(summary=summary, items=items)
    mine = summary.model_dump(mode="json")
    for key in COMPARED:
        if claimed_summary.get(key) != mine[key]:
            out.claimed[key] = _bounded(claimed_summary.get(key))
    verdicts = {(i.clause, i.item): i.verdict.value for i in items}
    theirs = {(i.clause, i.item): i.verdict.value for i in rep.items}  # the same keys: check_results saw to it
    differing = sorted(k for k in verdicts.keys() | theirs.keys() if theirs.get(k) != verdicts.get(k))
    if differing:
        out.claimed["items"] = {f"{c}.{i}": theirs.get((c, i)) for c, i in differing[:MAX_ITEM_DIFFS]}
        out.claimed["items_differing"] = len(differing)
    return out


def _bounded(value: Any) -> Any:
    """A claimed value as kept with the run: the schema lets `counts` and `verdicts` be any mapping, so at most
    MAX_CLAIMED_KEYS of their keys are kept (the stored summary stays small whatever an agent sends)."""
    if isinstance(value, dict) and len(value) > MAX_CLAIMED_KEYS:
        kept = dict(list(value.items())[:MAX_CLAIMED_KEYS])
        kept["..."] = f"{len(value) - MAX_CLAIMED_KEYS} more keys"
        return kept
    return value


def describe(j: Judgement) -> str:
    """The flag in words, for the audit log (values the agent sent, then the collector's)."""
    mine = j.summary.model_dump(mode="json")
    parts = [f"{key} {j.claimed[key]!r} (collector: {mine[key]!r})" for key in COMPARED if key in j.claimed]
    if "items" in j.claimed:
        parts.append(f"{j.claimed['items_differing']} item verdict(s) differ")
    return "agent's summary differs from the collector's scoring: " + "; ".join(parts)
