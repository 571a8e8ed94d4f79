"""The loop itself: collect a department's open problems, issue a numbered 通报 with a deadline for each,
take the department's answers, re-verify (fixed, still open, overdue) and escalate what is overdue.

Re-verification reads the sources' own trails: a host/object finding is resolved by the run that shows its check
passing, a service finding closed by the scan that finds the port closed, a website finding resolved by the round
that judges its rule again, a zombie-system problem by the system's latest verdict (in use again, decommissioned
after a confirmation, or dismissed by the authority); a department's answer alone never closes a problem. Every
function takes the caller's `now`, so tests run weeks on a simulated clock.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from sqlmodel import Session, col, func, select

from ..events.grading import SEVERITY_OF_GRADE
from ..store import zombie as zombie_store
from ..store.models import (
    Agent,
    Department,
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
from ..zombie import Review, SystemVerdict, ZombieSettings, ZombieVerdict
from .policy import NoticePolicy, grade

OVERDUE_EVENT = "notice_overdue"
AUTHORITY_ROLE = "admin"  # collector/auth.py ADMIN (not imported: the collector imports this package)
OPEN_STATES = ("open", "overdue")


@dataclass(frozen=True)
class Problem:
    source: str  # finding | service | website | zombie (source_id: the system's: one problem a system at a time)
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


ZOMBIE_BASIS = "《政务信息系统整合共享实施方案》（国办发〔2017〕39号）：消除“僵尸”信息系统"
ZOMBIE_SIGNALS_ZH = {"idle": "资源长期闲置", "stale": "运维更新停止", "unused": "少人使用"}
ZOMBIE_REMEDIATION = {
    "zh": "核实系统的使用情况：确已不用的，在审核中确认（进入下线清单）后迁移或归档数据、下线其主机并注销代理；"
          "仍在使用的，反馈使用情况及证明材料，由监管机构审核后驳回该判定。",
    "en": "check how the system is used: if it is no longer used, confirm the verdict (the decommission list), archive "
          "its data, take its hosts down and revoke their agents; if it is in use, answer with the proof, and the "
          "authority dismisses the verdict once it has reviewed it.",
}


def _authority(review: Review) -> bool:
    """Whether a review was the authority's own (an admin's, or the local CLI's, which acts as admin) rather than
    the department's: the role recorded when it was made (migration 0014), so a token revoked, deleted or given
    another role later does not change what a past review meant."""
    return review.reviewer_role == AUTHORITY_ROLE


def _zombie_problem(v: SystemVerdict) -> Problem:
    zh = "僵尸信息系统" if v.verdict == ZombieVerdict.ZOMBIE else "疑似僵尸信息系统"
    en = "zombie system" if v.verdict == ZombieVerdict.ZOMBIE else "suspected zombie system"
    hosts = []
    for h in v.hosts:
        yes = "、".join(ZOMBIE_SIGNALS_ZH[sig.name] for sig in h.signals if sig.state == "yes")
        hosts.append(f"{h.host}（{h.verdict_zh}{'：' + yes if yes else ''}）")
    confirmed = v.review is not None and v.review.current and v.review.decision == "confirm"
    return Problem("zombie", v.system_id, v.system_id, "notice",
                   {"zh": f"{zh}：{v.system}" + ("（已确认，待下线）" if confirmed else ""),
                    "en": f"{en} {v.system}" + (" (confirmed, to decommission)" if confirmed else "")},
                   f"系统 {v.system} 主机 {'，'.join(hosts)}"[:2000],
                   f"{ZOMBIE_BASIS}；判定窗口 {v.window_start.isoformat()} 至 {v.window_end.isoformat()}",
                   dict(ZOMBIE_REMEDIATION),
                   datetime.combine(v.window_start, datetime.min.time(), tzinfo=v.evaluated_at.tzinfo))


def _zombie_listed(v: SystemVerdict) -> bool:
    """A suspect or zombie verdict is a problem unless the authority's dismissal stands on it (a department's own
    dismissal is its answer, which never closes a problem)."""
    if v.verdict not in (ZombieVerdict.SUSPECT, ZombieVerdict.ZOMBIE):
        return False
    r = v.review
    return not (r is not None and r.current and r.decision == "dismiss" and _authority(r))


def open_problems(s: Session, department_id: int, zombie: ZombieSettings, now: datetime,
                  system_ids: Optional[Iterable[int]] = None) -> list[Problem]:
    """The department's open problems from every source, oldest first (zombie verdicts judged at `now` with the
    site's thresholds)."""
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
    for v in zombie_store.evaluate(s.connection(), zombie, now=now, department_ids=[department_id]):
        if _zombie_listed(v):
            out.append(_zombie_problem(v))
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


def issue(s: Session, department_id: int, policy: NoticePolicy, zombie: ZombieSettings, now: datetime, actor: str,
          *, kind: str = "periodic", period_start: Optional[datetime] = None, period_end: Optional[datetime] = None,
          reason: str = "", system_ids: Optional[Iterable[int]] = None) -> Notice:
    """A new 通报 listing the department's open problems (after re-verifying the earlier ones)."""
    verify(s, now, zombie, department_id)
    systems = _systems(s, department_id)
    seq = _next_seq(s, now.year)
    notice = Notice(department_id=department_id, year=now.year, seq=seq,
                    number=f"{policy.number_prefix}〔{now.year}〕{seq}号", kind=kind, authority=policy.authority,
                    period_start=period_start, period_end=period_end, reason=reason,
                    policy=policy.model_dump(mode="json"), issued_at=now, issued_by=actor)
    s.add(notice)
    s.flush()
    assert notice.id is not None
    for n, p in enumerate(open_problems(s, department_id, zombie, now, system_ids), start=1):
        g = grade(p.event_class, systems[p.system_id].level)
        before = _earlier(s, p.source, p.source_id)
        days = policy.zombie_days if p.source == "zombie" and policy.zombie_days else policy.days(g)
        deadline = before.deadline if before is not None else now + timedelta(days=days)
        s.add(NoticeItem(notice_id=notice.id, department_id=department_id, system_id=p.system_id, seq=n,
                         source=p.source, source_id=p.source_id, grade=g, title=p.title, location=p.location,
                         basis=p.basis, remediation=p.remediation, first_seen=p.first_seen, deadline=deadline,
                         state="overdue" if deadline < now else "open", verified_at=now,
                         carried_from=before.id if before is not None else None,
                         escalated_at=before.escalated_at if before is not None else None))
    s.flush()
    return notice


def _zombie_resolved(s: Session, v: SystemVerdict) -> Optional[datetime]:
    """When the system's latest zombie verdict shows the problem gone: in use again (now, as judged), dismissed by
    the authority (the dismissal's time), or decommissioned after a confirmation (清: every agent of its hosts
    revoked, at the last revocation). An unknown verdict (too little data) closes nothing."""
    if v.verdict == ZombieVerdict.IN_USE:
        return v.evaluated_at
    r = v.review
    if v.verdict in (ZombieVerdict.SUSPECT, ZombieVerdict.ZOMBIE):
        if r is not None and r.current and r.decision == "dismiss" and _authority(r):
            return r.at
        return None
    if v.hosts or r is None or r.decision != "confirm":
        return None
    agents = s.exec(select(Agent).where(Agent.system_id == v.system_id)).all()
    if not agents or any(a.state != "revoked" for a in agents):
        return None
    return max((a.revoked_at for a in agents if a.revoked_at is not None), default=v.evaluated_at)


def _resolved(s: Session, source: str, source_id: int, verdicts: dict[int, SystemVerdict]) -> Optional[datetime]:
    """When the source's own trail shows the problem gone (None: still there)."""
    if source == "zombie":
        v = verdicts.get(source_id)
        return _zombie_resolved(s, v) if v is not None else None
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


def verify(s: Session, now: datetime, zombie: ZombieSettings, department_id: Optional[int] = None) -> dict[str, int]:
    """Mark every unfixed item fixed (its source resolved), overdue (past its deadline) or still open; an item
    turning overdue escalates once per problem: an event through the event path, and it heads the next 通报."""
    stmt = select(NoticeItem).where(col(NoticeItem.state).in_(OPEN_STATES))
    if department_id is not None:
        stmt = stmt.where(NoticeItem.department_id == department_id)
    counts = {"fixed": 0, "overdue": 0, "open": 0, "escalated": 0}
    escalated: set[tuple[str, int]] = set()
    items = s.exec(stmt.order_by(col(NoticeItem.id))).all()
    # the zombie items' systems judged once, at `now`
    zombie_ids = sorted({i.source_id for i in items if i.source == "zombie"})
    verdicts = {v.system_id: v for v in zombie_store.evaluate(s.connection(), zombie, now=now, system_ids=zombie_ids,
                                                              evidence=False)} if zombie_ids else {}
    for item in items:
        item.verified_at = now
        gone = _resolved(s, item.source, item.source_id, verdicts)
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
    """Whether this episode of the problem escalated already: items since its last fixed one (a system's zombie
    problem keeps the system's id across episodes; the other sources' rows are one episode each)."""
    key = (NoticeItem.source == source, NoticeItem.source_id == source_id)
    last_fixed = s.exec(select(func.max(NoticeItem.id)).where(*key, NoticeItem.state == "fixed")).one() or 0
    return s.exec(select(NoticeItem.id).where(*key, col(NoticeItem.id) > last_fixed,
                                              col(NoticeItem.escalated_at).is_not(None))).first() is not None


def _escalate(s: Session, item: NoticeItem, now: datetime) -> None:
    notice = s.get(Notice, item.notice_id)
    system = s.get(System, item.system_id)
    department = s.get(Department, item.department_id)
    assert notice is not None and system is not None and department is not None
    severity = "critical" if SEVERITY_OF_GRADE[item.grade] in ("critical", "high") else "warning"
    s.add(Event(kind=OVERDUE_EVENT, severity=severity, department_id=item.department_id, system_id=item.system_id,
                fingerprint=_sha(f"{OVERDUE_EVENT}|{item.source}|{item.source_id}")[:32],
                summary=(f"{system.name}: 通报 {notice.number} 第{item.seq}项逾期未整改（期限 "
                         f"{item.deadline:%Y-%m-%d}）: {item.title.get('zh', '')}")[:4000],
                # department and system by name: the publisher builds the alert from the payload (AlertEvent.from_row)
                payload={"department": department.name, "system": system.name, "level": system.level,
                         "notice": notice.number,
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
