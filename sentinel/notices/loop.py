"""The loop itself: collect a department's open problems, issue a numbered 通报 with a deadline for each,
take the department's answers, re-verify (fixed, still open, overdue) and escalate what is overdue.

Re-verification reads the sources' own trails: a host/object finding is resolved by the run that shows its check
passing, a service finding closed by the scan that finds the port closed, a website finding resolved by the round
that judges its rule again; a department's answer alone never closes a problem. Every function takes the caller's
`now`, so tests run weeks on a simulated clock.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlmodel import Session, col, func, select

from ..events.grading import SEVERITY_OF_GRADE
from ..store.models import (
    Event,
    Finding,
    Host,
    Notice,
    NoticeAnswer,
    NoticeAttachment,
    NoticeItem,
    ServiceFindingRow,
    System,
    Website,
    WebsiteFinding,
)
from .policy import NoticePolicy, grade

OVERDUE_EVENT = "notice_overdue"
OPEN_STATES = ("open", "overdue")


@dataclass(frozen=True)
class Problem:
    source: str  # finding | service | website
    source_id: int
    system_id: int
    event_class: str  # exposure | degradation | notice (sentinel/events/grading.py)
    title: dict[str, str]
    location: str
    basis: str
    remediation: dict[str, str]
    first_seen: datetime


def _systems(s: Session, department_id: int) -> dict[int, System]:
    return {row.id: row for row in s.exec(select(System).where(System.department_id == department_id))
            if row.id is not None}


def open_problems(s: Session, department_id: int, system_ids: Optional[Iterable[int]] = None) -> list[Problem]:
    """The department's open problems from every source, oldest first."""
    wanted = set(system_ids) if system_ids is not None else None
    out: list[Problem] = []
    hosts = {h.id: h.hostname for h in s.exec(select(Host).where(Host.department_id == department_id))}
    for f in s.exec(select(Finding).where(Finding.department_id == department_id,
                                          col(Finding.resolved_at).is_(None))):
        obj = "" if f.object_kind == "os" else " " + " ".join(filter(None, (f.object_kind, f.object_instance)))
        risk = f"（高风险：{f.high_risk}）" if f.high_risk else ""
        out.append(Problem("finding", f.id or 0, f.system_id, "exposure" if f.high_risk else "degradation",
                           dict(f.title), f"主机 {hosts.get(f.host_id, f.host_id)}{obj}",
                           f"GB/T 22239-2019 {f.clause} {f.item}{risk}",
                           dict(f.remediation), f.first_seen))
    for sf in s.exec(select(ServiceFindingRow).where(ServiceFindingRow.department_id == department_id,
                                                     col(ServiceFindingRow.closed_at).is_(None))):
        # an open port is a problem only when the zone forbids it, a check on it is high-risk or it is plaintext
        # management; the rest are the inventory of what runs
        if not (sf.forbidden or sf.high_risk or sf.plaintext_management):
            continue
        what = "禁止开放的服务" if sf.forbidden else ("明文管理服务" if sf.plaintext_management else "高风险服务")
        name = sf.service or sf.nmap_service or "unknown"
        en = "forbidden" if sf.forbidden else "high-risk"
        out.append(Problem("service", sf.id or 0, sf.system_id, "exposure",
                           {"zh": f"{what}：{sf.port}/{sf.proto} {name}",
                            "en": f"{en} service {sf.port}/{sf.proto} {name}"},
                           f"地址 {sf.host} 端口 {sf.port}/{sf.proto}",
                           "、".join(str(c) for c in sf.high_risk) or "区域端口策略",
                           {"zh": "关闭该服务或在边界访问控制中限制其访问来源；管理服务改用加密协议。",
                            "en": "close the service or restrict who may reach it at the boundary; manage over "
                                  "encrypted protocols only."}, sf.first_seen))
    sites = {w.id: w.name for w in s.exec(select(Website).where(Website.department_id == department_id))}
    for wf in s.exec(select(WebsiteFinding).where(WebsiteFinding.department_id == department_id,
                                                  col(WebsiteFinding.resolved_at).is_(None))):
        cls = {"security": "exposure", "veto": "degradation"}.get(wf.kind, "notice")
        if wf.rule.startswith("security."):
            cls = "exposure"
        out.append(Problem("website", wf.id or 0, wf.system_id, cls, dict(wf.title),
                           f"网站 {sites.get(wf.website_id, wf.website_id)}：{wf.subject}"[:2000], wf.source,
                           dict(wf.remediation), wf.first_seen))
    if wanted is not None:
        out = [p for p in out if p.system_id in wanted]
    return sorted(out, key=lambda p: (p.first_seen, p.source, p.source_id))


def _next_seq(s: Session, year: int) -> int:
    return (s.exec(select(func.max(Notice.seq)).where(Notice.year == year)).one() or 0) + 1


def _earlier(s: Session, source: str, source_id: int) -> Optional[NoticeItem]:
    """The problem's latest item in an earlier notice, still unfixed (its deadline stands)."""
    return s.exec(select(NoticeItem).where(NoticeItem.source == source, NoticeItem.source_id == source_id,
                                           col(NoticeItem.state).in_(OPEN_STATES))
                  .order_by(col(NoticeItem.id).desc())).first()


def issue(s: Session, department_id: int, policy: NoticePolicy, now: datetime, actor: str, *,
          kind: str = "periodic", period_start: Optional[datetime] = None, period_end: Optional[datetime] = None,
          reason: str = "", system_ids: Optional[Iterable[int]] = None) -> Notice:
    """A new 通报 listing the department's open problems (after re-verifying the earlier ones)."""
    verify(s, now, department_id)
    systems = _systems(s, department_id)
    seq = _next_seq(s, now.year)
    notice = Notice(department_id=department_id, year=now.year, seq=seq,
                    number=f"{policy.number_prefix}〔{now.year}〕{seq}号", kind=kind, authority=policy.authority,
                    period_start=period_start, period_end=period_end, reason=reason,
                    policy=policy.model_dump(mode="json"), issued_at=now, issued_by=actor)
    s.add(notice)
    s.flush()
    assert notice.id is not None
    for n, p in enumerate(open_problems(s, department_id, system_ids), start=1):
        g = grade(p.event_class, systems[p.system_id].level)
        before = _earlier(s, p.source, p.source_id)
        deadline = before.deadline if before is not None else now + timedelta(days=policy.days(g))
        s.add(NoticeItem(notice_id=notice.id, department_id=department_id, system_id=p.system_id, seq=n,
                         source=p.source, source_id=p.source_id, grade=g, title=p.title, location=p.location,
                         basis=p.basis, remediation=p.remediation, first_seen=p.first_seen, deadline=deadline,
                         state="overdue" if deadline < now else "open", verified_at=now,
                         carried_from=before.id if before is not None else None,
                         escalated_at=before.escalated_at if before is not None else None))
    s.flush()
    return notice


def _resolved(s: Session, source: str, source_id: int) -> Optional[datetime]:
    """When the source's own trail shows the problem gone (None: still there)."""
    if source == "finding":
        f = s.get(Finding, source_id)
        return f.resolved_at if f is not None else None
    if source == "service":
        sf = s.get(ServiceFindingRow, source_id)
        return sf.closed_at if sf is not None else None
    wf = s.get(WebsiteFinding, source_id)
    return wf.resolved_at if wf is not None else None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def verify(s: Session, now: datetime, department_id: Optional[int] = None) -> dict[str, int]:
    """Mark every unfixed item fixed (its source resolved), overdue (past its deadline) or still open; an item
    turning overdue escalates once per problem: an event through the event path, and it heads the next 通报."""
    stmt = select(NoticeItem).where(col(NoticeItem.state).in_(OPEN_STATES))
    if department_id is not None:
        stmt = stmt.where(NoticeItem.department_id == department_id)
    counts = {"fixed": 0, "overdue": 0, "open": 0, "escalated": 0}
    escalated: set[tuple[str, int]] = set()
    for item in s.exec(stmt.order_by(col(NoticeItem.id))).all():
        item.verified_at = now
        gone = _resolved(s, item.source, item.source_id)
        if gone is not None:
            item.state, item.fixed_at = "fixed", gone
        elif item.deadline < now:
            item.state = "overdue"
            key = (item.source, item.source_id)
            if item.escalated_at is None and key not in escalated and not _was_escalated(s, *key):
                _escalate(s, item, now)
                escalated.add(key)
                counts["escalated"] += 1
            if item.escalated_at is None:
                item.escalated_at = now
        counts[item.state] += 1
        s.add(item)
    s.flush()
    return counts


def _was_escalated(s: Session, source: str, source_id: int) -> bool:
    return s.exec(select(NoticeItem.id).where(NoticeItem.source == source, NoticeItem.source_id == source_id,
                                              col(NoticeItem.escalated_at).is_not(None))).first() is not None


def _escalate(s: Session, item: NoticeItem, now: datetime) -> None:
    notice = s.get(Notice, item.notice_id)
    system = s.get(System, item.system_id)
    assert notice is not None and system is not None
    severity = "critical" if SEVERITY_OF_GRADE[item.grade] in ("critical", "high") else "warning"
    s.add(Event(kind=OVERDUE_EVENT, severity=severity, department_id=item.department_id, system_id=item.system_id,
                fingerprint=_sha(f"{OVERDUE_EVENT}|{item.source}|{item.source_id}")[:32],
                summary=(f"{system.name}: 通报 {notice.number} 第{item.seq}项逾期未整改（期限 "
                         f"{item.deadline:%Y-%m-%d}）: {item.title.get('zh', '')}")[:4000],
                payload={"system": system.name, "level": system.level, "notice": notice.number,
                         "notice_id": notice.id, "item_id": item.id, "source": item.source,
                         "source_id": item.source_id, "grade": item.grade, "deadline": item.deadline.isoformat(),
                         "location": item.location},
                created_at=now, delivered=False, attempts=0))


def answer(s: Session, item: NoticeItem, text: str, actor: str, now: datetime,
           files: Iterable[tuple[str, bytes]] = ()) -> tuple[NoticeAnswer, list[NoticeAttachment]]:
    """The department's answer on an item (what was done), with its files. It does not close the item: the
    next run, scan or round does."""
    row = NoticeAnswer(item_id=item.id or 0, department_id=item.department_id, text=text, answered_by=actor, at=now)
    s.add(row)
    s.flush()
    attached = []
    for name, data in files:
        a = NoticeAttachment(answer_id=row.id or 0, name=name, sha256=hashlib.sha256(data).hexdigest(),
                             size=len(data), content=data, created_at=now)
        s.add(a)
        attached.append(a)
    s.flush()
    return row, attached


def state_counts(s: Session) -> list[dict[str, Any]]:
    """Problems by department and state (the latest item of each problem counts): the metrics' and dashboard's."""
    latest = (select(func.max(NoticeItem.id).label("id")).group_by(col(NoticeItem.source), col(NoticeItem.source_id))
              .subquery())
    rows = s.exec(select(NoticeItem.department_id, NoticeItem.state, func.count())
                  .where(col(NoticeItem.id).in_(select(latest.c.id)))
                  .group_by(col(NoticeItem.department_id), col(NoticeItem.state))).all()
    return [{"department_id": d, "state": st, "count": n} for d, st, n in rows]
