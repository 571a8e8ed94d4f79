"""Zombie-system detection (僵尸信息系统) in the API: each system's verdict with its hosts' evidence, the reviews
that confirm or dismiss it (审: an admin or the department's operator, audited) and a department's decommission
list (清: the systems whose zombie verdict a person confirmed). The verdicts are judged when asked for, from the
stored history (sentinel/store/zombie.py) and the site's thresholds (the collector's `zombie` setting)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlmodel import col, select

from ...store import zombie as store
from ...store.models import Department, System, ZombieReview
from ...zombie import SIGNALS, SystemVerdict, ZombieSettings, ZombieVerdict
from .. import operations
from ..auth import ADMIN, DEPT_OPERATOR
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, OptId, SourceIp, visible
from ..errors import ApiError
from ..problems import DocumentedRoute, problem
from ..schemas import In, Out

router = APIRouter(tags=["zombie"], route_class=DocumentedRoute)


class ReviewIn(In):
    decision: Literal["confirm", "dismiss"] = Field(description="confirm: a zombie, to be decommissioned (清); "
                                                                "dismiss: the system is in use after all")
    reason: str = Field(min_length=1, max_length=4000, description="why, as a person can check it later")


class ReviewOut(Out):
    id: int
    system_id: int
    department_id: int
    decision: str
    verdict: str
    reason: str
    reviewer: str
    reviewer_role: str = Field(description="the reviewer's role when reviewing: admin (the authority: its dismissal "
                                           "closes the system's 通报 problem) or dept_operator (the department's)")
    at: datetime


class DecommissionHost(Out):
    host: str
    verdict: ZombieVerdict
    idle_days: Optional[int]
    signals: dict[str, str] = Field(description="idle/stale/unused: yes, no or unknown")


class DecommissionItem(Out):
    system_id: int
    system: str
    title: str
    owner: str
    level: int
    verdict: ZombieVerdict
    verdict_zh: str
    confirmed_by: str
    confirmed_at: datetime
    reason: str
    window_start: str
    window_end: str
    hosts: list[DecommissionHost]


def _settings(request: Request) -> ZombieSettings:
    return request.app.state.settings.zombie


@router.get("/zombie", response_model=list[SystemVerdict])
def list_verdicts(request: Request, db: DB, p: Caller, department_id: OptId = None,
                  verdict: Optional[ZombieVerdict] = Query(None, description="only systems with this verdict"),
                  limit: Limit = 100, offset: Offset = 0):
    """Every system the caller sees, with its verdict (在用/疑似僵尸/僵尸/未知), its hosts' signals and their
    evidence."""
    settings = _settings(request)
    with db.read() as conn:
        departments = p.listing(department_id)
        if departments == []:
            return []
        # the verdicts alone first (cheap: no evidence), then the evidence for the page's systems only
        now = datetime.now(timezone.utc)
        rows = store.evaluate(conn, settings, now=now, department_ids=departments, evidence=False)
        if verdict is not None:
            rows = [r for r in rows if r.verdict == verdict]
        wanted = [r.system_id for r in rows[offset:offset + limit]]
        page = store.evaluate(conn, settings, now=now, system_ids=wanted) if wanted else []
    # (a report stored between the two reads may move a verdict: the page shows only what matches now)
    return [r for r in page if verdict is None or r.verdict == verdict]


@router.get("/systems/{system_id}/zombie", response_model=SystemVerdict)
def get_verdict(request: Request, system_id: Id, db: DB, p: Caller):
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        (row,) = store.evaluate(s.connection(), _settings(request), system_ids=[system_id])
        return row


@router.post("/systems/{system_id}/zombie/reviews", status_code=201, response_model=ReviewOut,
             responses={409: problem(409, "the system's verdict is neither suspect nor zombie: nothing to review")})
def add_review(request: Request, system_id: Id, spec: ReviewIn, db: DB, p: Caller, ip: SourceIp):
    """Confirm or dismiss the system's current verdict (an admin, or an operator of its department). The verdict
    and its evidence are kept with the decision; the audit log names who decided what and why."""
    with db.session(write=True) as s:
        ctx = Ctx(s, p, ip)
        system = operations.visible_system(ctx, system_id)
        p.require_department(system.department_id, ADMIN, DEPT_OPERATOR)
        (current,) = store.evaluate(s.connection(), _settings(request), system_ids=[system_id])
        if current.verdict not in (ZombieVerdict.SUSPECT, ZombieVerdict.ZOMBIE):
            raise ApiError(409, f"system {system.name} is {current.verdict.value} ({current.verdict_zh}): only a "
                                "suspect or zombie verdict is confirmed or dismissed")
        row = ZombieReview(system_id=system_id, department_id=system.department_id, decision=spec.decision,
                           verdict=current.verdict.value, reason=spec.reason,
                           evidence=current.model_dump(mode="json", exclude={"review"}), reviewer=p.actor,
                           reviewer_role=p.role, at=datetime.now(timezone.utc))
        s.add(row)
        s.flush()
        ctx.audit("zombie.review", f"system:{system.id}:{system.name}",
                  f"{spec.decision} {current.verdict.value}: {spec.reason[:500]}")
        return row


@router.get("/systems/{system_id}/zombie/reviews", response_model=list[ReviewOut])
def list_reviews(system_id: Id, db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    """The system's reviews, oldest first (the latest counts while its verdict stands)."""
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        stmt = select(ZombieReview).where(ZombieReview.system_id == system_id).order_by(col(ZombieReview.id))
        return s.exec(stmt.offset(offset).limit(limit)).all()


@router.get("/departments/{department_id}/decommission", response_model=list[DecommissionItem])
def decommission_list(request: Request, department_id: Id, db: DB, p: Caller):
    """清: the department's systems whose zombie or suspect verdict a person confirmed and which still have that
    verdict, with the hosts' signals, who confirmed it, when and why."""
    with db.session() as s:
        visible(s, p, Department, department_id, "department", department="id")
        verdicts = store.evaluate(s.connection(), _settings(request), department_ids=[department_id])
        systems = {r.id: r for r in s.exec(select(System).where(System.department_id == department_id)).all()}
    out = []
    for v in verdicts:
        r = v.review
        if r is None or r.decision != "confirm" or not r.current:
            continue
        sysrow = systems[v.system_id]
        out.append(DecommissionItem(
            system_id=v.system_id, system=v.system, title=sysrow.title, owner=sysrow.owner, level=sysrow.level,
            verdict=v.verdict, verdict_zh=v.verdict_zh, confirmed_by=r.reviewer, confirmed_at=r.at, reason=r.reason,
            window_start=v.window_start.isoformat(), window_end=v.window_end.isoformat(),
            hosts=[DecommissionHost(host=h.host, verdict=h.verdict, idle_days=h.idle_days,
                                    signals={sig.name: sig.state for sig in h.signals if sig.name in SIGNALS})
                   for h in v.hosts]))
    return out
