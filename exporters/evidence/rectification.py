"""整改报告 (rectification report): every finding of the range with first seen, fixed at and the evidence
before and after; open ones with their remediation and age.

Findings come from the store (one row per episode of a check failing on a host, see
sentinel/collector/drift.py), so a check that failed, was fixed and failed again shows twice. Service
findings of network scans (sentinel/collector/scan_ingest.py) are the same for the network: one row per
episode of a port open on an address, closed (fixed) when a scan covering it no longer finds it open.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sentinel.evidence.model import FindingRecord, ServiceFindingRecord, SystemEvidence

from .common import RISK_LABEL, evidence_text, finding_age_days, finding_state, fmt_time, labels, result_line, short
from .wording import gap

_RISK_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass
class RectRow:
    no: int
    object: str
    clause: str
    item: str
    check_id: str
    title: str  # the requirement as it reads when met (the check's title): never the problem
    problem: str  # 问题描述: the gap as the first failing result showed it (wording.gap)
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


def _problem(f: FindingRecord, lang: str) -> str:
    """The finding's 问题描述: the gap its first failing result shows; the requirement as not met without one."""
    if f.before is not None:
        return gap(f.before, lang)
    title = f.title.get(lang)
    return f"检查结果不通过，未满足「{title}」的要求" if lang == "zh" else f"the check failed; does not meet “{title}”"


def _row(f: FindingRecord, ev: SystemEvidence, lang: str) -> RectRow:
    return RectRow(no=0, object=f.object, clause=f.clause, item=f.item, check_id=f.check_id,
                   title=f.title.get(lang), problem=_problem(f, lang), risk=f.risk,
                   risk_label=RISK_LABEL[lang][f.risk], case=f.high_risk or "",
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
    return _numbered((resolved, still), lambda f: _row(f, ev, lang))


def _numbered(groups, make):
    """Each group's rows, numbered from 1 (序号) within the group."""
    out = []
    for group in groups:
        rows = [make(f) for f in group]
        for n, r in enumerate(rows, 1):
            r.no = n
        out.append(rows)
    return out[0], out[1]


@dataclass
class ServiceRectRow:
    no: int
    object: str  # the address, and the registered host with it
    port: str  # 23/tcp
    service: str  # name and version as the scan saw them
    zone: str
    problem: str  # its failing checks (clause, item and each one's gap, wording.gap); "" when none failed
    risk: str  # high / medium / low, "" when no check failed
    risk_label: str
    case: str  # 高风险判定指引 cases
    first_seen: str
    last_seen: str
    closed_at: str
    state: str
    age_days: float
    remediation: str
    before: str  # what the last scan that saw it open found
    after: str  # the scan that found it closed


def _age(first_seen: datetime, until: datetime) -> float:
    return round(max((until - first_seen).total_seconds(), 0) / 86400, 1)


def service_state(f: ServiceFindingRecord, lang: str) -> str:
    lab = labels(lang)
    if not f.open:
        return lab["svc_closed"]
    return lab["open"] if f.risk else lab["svc_open_ok"]


def service_evidence(f: ServiceFindingRecord, lang: str) -> str:
    """Its failing checks in words, then the raw evidence (excerpts, banner) of the last scan that saw it."""
    lines = [result_line(r, lang) for r in f.problems]
    for e in f.evidence[:5]:
        lines.append(f"{e.source}: {short(e.excerpt, 200)}" if e.excerpt else e.source)
    if f.banner:
        lines.append(f"banner: {short(f.banner, 200)}")
    return "\n".join(lines) or "—"


def _service_row(f: ServiceFindingRecord, ev: SystemEvidence, lang: str) -> ServiceRectRow:
    lab = labels(lang)
    remediation: list[str] = []
    for r in f.problems:
        text = r.remediation.get(lang)
        if text and text not in remediation:
            remediation.append(text)
    after = lab["svc_after"].format(scan=f.closed_scan_id, at=fmt_time(f.closed_at)) if not f.open else ""
    return ServiceRectRow(
        no=0, object=f.host + (f" ({f.hostname})" if f.hostname else ""), port=f"{f.port}/{f.proto}",
        service=" ".join(p for p in (f.service, f.version) if p) or "—", zone=f.zone or "",
        problem="; ".join(f"{r.clause}{r.item} {gap(r, lang)}" for r in f.problems), risk=f.risk or "",
        risk_label=RISK_LABEL[lang][f.risk] if f.risk else lab["none"], case=", ".join(f.high_risk),
        first_seen=fmt_time(f.first_seen), last_seen=fmt_time(f.last_seen), closed_at=fmt_time(f.closed_at),
        state=service_state(f, lang), age_days=_age(f.first_seen, f.closed_at or ev.range.end),
        remediation="\n".join(remediation) or "—", before=service_evidence(f, lang), after=after)


def _address_key(f: ServiceFindingRecord):
    parts = f.host.split(".")
    return (0, tuple(int(p) for p in parts)) if len(parts) == 4 and all(p.isdigit() for p in parts) else (1, f.host)


def service_rectification_rows(ev: SystemEvidence, lang: str = "zh") -> tuple[list[ServiceRectRow],
                                                                             list[ServiceRectRow]]:
    """(closed, open) service findings: closed by closing time; open ones with a failing check first, by risk
    then age (oldest first), then the open services where nothing failed."""
    closed = sorted((f for f in ev.service_findings if not f.open),
                    key=lambda f: (f.closed_at, _address_key(f), f.proto, f.port))
    still = sorted((f for f in ev.service_findings if f.open),
                   key=lambda f: (_RISK_ORDER.get(f.risk or "", 3), f.first_seen, _address_key(f), f.proto, f.port))
    return _numbered((closed, still), lambda f: _service_row(f, ev, lang))
