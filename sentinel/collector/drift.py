"""Drift between a host's open findings and a new report, and the events it raises.

Rules (per host and check id):
- `fail` without a waiver and no open finding: a new finding opens (newly failing).
- `fail` without a waiver and an open finding: the finding is seen again (last_seen, occurrences).
- `pass` without a waiver and an open finding: the finding is resolved as `fixed`.
- a waived result and an open finding: the finding is resolved as `waived` (accepted risk).
- `error`, `not_applicable`, or a check absent from the report: the finding is left as it is, since
  nothing shows it fixed (an error never counts as a pass).
- an advisory result (the baseline marks the check advisory, docs/baselines.md) opens no finding and is not
  seen again: it is evidence that decides no verdict, so its failure is no gap of the host to rectify and no
  count, alert or conclusion built on findings may see it. It is shown with the run's results, marked advisory.
  A finding opened while the check counted (before the baseline made it advisory) is resolved as `advisory`
  by the first report that carries the check as advisory, whatever its status: it is no longer a gap.
A check that fails again after being resolved opens a new finding: the rows of one host+check are its
history of episodes (first_seen .. resolved_at), i.e. the rectification trail.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from ..model import Status


class ResultLike(Protocol):
    """What drift reads of a check result (a model.CheckResult, or ingest's ResultFacts), read-only."""

    @property
    def check_id(self) -> str: ...
    @property
    def status(self) -> str: ...  # a Status or its value
    @property
    def waiver(self) -> Optional[str]: ...
    @property
    def advisory(self) -> Optional[Any]: ...  # the baseline's reason the check is advisory, None when it counts


@dataclass
class DriftPlan:
    opened: list[int] = field(default_factory=list)  # indexes into the report's results
    seen_again: list[int] = field(default_factory=list)  # finding ids
    fixed: dict[int, str] = field(default_factory=dict)  # finding id -> check id
    waived: dict[int, str] = field(default_factory=dict)
    advisory: dict[int, str] = field(default_factory=dict)  # finding id -> check id, now advisory evidence

    def new_failures(self, results: Sequence[ResultLike]) -> list[str]:
        return sorted(results[i].check_id for i in self.opened)

    def fixed_checks(self) -> list[str]:
        return sorted(self.fixed.values())


def plan(results: Sequence[ResultLike], open_findings: dict[str, int]) -> DriftPlan:
    """`open_findings` maps check id -> open finding id for the host. A check id listed twice in a
    report counts once, by its last result."""
    last: dict[str, int] = {}
    for i, result in enumerate(results):
        last[result.check_id] = i
    out = DriftPlan()
    for check_id, i in last.items():
        result = results[i]
        finding = open_findings.get(check_id)
        if result.waiver:
            if finding is not None:
                out.waived[finding] = check_id
        elif result.advisory:
            # advisory evidence: opens no finding, and closes one opened while the check counted
            if finding is not None and result.status != Status.NOT_APPLICABLE:
                out.advisory[finding] = check_id
        elif result.status == Status.FAIL:
            if finding is None:
                out.opened.append(i)
            else:
                out.seen_again.append(finding)
        elif result.status == Status.PASS and finding is not None:
            out.fixed[finding] = check_id
    out.opened.sort()
    return out


def fingerprint(*parts: Any) -> str:
    """Stable id of a condition, for the publishers' de-duplication."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]


def score_dropped(previous: Optional[float], current: Optional[float], threshold: float) -> bool:
    return previous is not None and current is not None and previous - current >= threshold
