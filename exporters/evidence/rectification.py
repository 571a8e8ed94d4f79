"""整改报告 (rectification report): every finding of the range with first seen, fixed at and the evidence
before and after; open ones with their remediation and age.

Findings come from the store (one row per episode of a check failing on a host, see
sentinel/collector/drift.py), so a check that failed, was fixed and failed again shows twice.
"""
from __future__ import annotations

from dataclasses import dataclass

from sentinel.evidence.model import FindingRecord, SystemEvidence

from .common import RISK_LABEL, evidence_text, finding_age_days, finding_state, fmt_time

_RISK_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass
class RectRow:
    no: int
    object: str
    clause: str
    item: str
    check_id: str
    title: str
    risk: str
    risk_label: str
    case: str
    first_seen: str
    last_seen: str
    fixed_at: str
    state: str
    age_days: float
    occurrences: int
    before: str
    after: str
    remediation: str


def _row(f: FindingRecord, ev: SystemEvidence, lang: str) -> RectRow:
    return RectRow(no=0, object=f.object, clause=f.clause, item=f.item, check_id=f.check_id,
                   title=f.title.get(lang), risk=f.risk, risk_label=RISK_LABEL[lang][f.risk], case=f.high_risk or "",
                   first_seen=fmt_time(f.first_seen), last_seen=fmt_time(f.last_seen),
                   fixed_at=fmt_time(f.resolved_at), state=finding_state(f, lang),
                   age_days=finding_age_days(f, ev.range.end), occurrences=f.occurrences,
                   before=evidence_text(f.before, lang), after=evidence_text(f.after, lang),
                   remediation=f.remediation.get(lang))


def rectification_rows(ev: SystemEvidence, lang: str = "zh") -> tuple[list[RectRow], list[RectRow]]:
    """(resolved, open): resolved by fix time, open by risk then age (oldest first)."""
    resolved = sorted((f for f in ev.findings if not f.open), key=lambda f: (f.resolved_at, f.object, f.check_id))
    still = sorted((f for f in ev.findings if f.open),
                   key=lambda f: (_RISK_ORDER[f.risk], f.first_seen, f.object, f.check_id))
    out = []
    for group in (resolved, still):
        rows = [_row(f, ev, lang) for f in group]
        for n, r in enumerate(rows, 1):
            r.no = n
        out.append(rows)
    return out[0], out[1]
