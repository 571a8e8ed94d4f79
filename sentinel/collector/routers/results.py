"""Runs, check results, findings (the rectification trail) and events."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter
from sqlmodel import Session, col, select

from ...store.models import CheckResultRow, Event, Finding, Run
from ..auth import Principal
from ..deps import DB, Caller, Id, Limit, Offset, OptId, Text64, page, visible, where_given
from ..problems import DocumentedRoute
from ..schemas import EventOut, FindingOut, ResultOut, RunDetail, RunOut

router = APIRouter(tags=["results"], route_class=DocumentedRoute)  # error answers in the OpenAPI document

Status = Literal["pass", "fail", "error", "not_applicable"]


@router.get("/runs", response_model=list[RunOut])
def list_runs(db: DB, p: Caller, system_id: OptId = None, host_id: OptId = None, baseline_id: Text64 = None,
              limit: Limit = 100, offset: Offset = 0):
    """Newest first."""
    with db.session() as s:
        stmt = p.scoped(select(Run), col(Run.department_id)).order_by(col(Run.id).desc())
        stmt = where_given(stmt, (Run.system_id, system_id), (Run.host_id, host_id), (Run.baseline_id, baseline_id))
        return s.exec(page(stmt, limit, offset)).all()


def _run(s: Session, p: Principal, run_id: int) -> Run:
    return visible(s, p, Run, run_id, "run")


@router.get("/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return _run(s, p, run_id)


@router.get("/runs/{run_id}/results", response_model=list[ResultOut])
def list_results(run_id: Id, db: DB, p: Caller, status: Optional[Status] = None, limit: Limit = 1000,
                 offset: Offset = 0):
    with db.session() as s:
        _run(s, p, run_id)
        stmt = select(CheckResultRow).where(CheckResultRow.run_id == run_id).order_by(CheckResultRow.id)
        stmt = where_given(stmt, (CheckResultRow.status, status))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/findings", response_model=list[FindingOut])
def list_findings(db: DB, p: Caller, system_id: OptId = None, host_id: OptId = None, check_id: Text64 = None,
                  state: Literal["open", "resolved", "all"] = "open", high_risk: Optional[bool] = None,
                  limit: Limit = 100, offset: Offset = 0):
    """Open findings by default; `state=all` with `host_id` and `check_id` gives a check's full history."""
    with db.session() as s:
        stmt = p.scoped(select(Finding), col(Finding.department_id)).order_by(col(Finding.id))
        stmt = where_given(stmt, (Finding.system_id, system_id), (Finding.host_id, host_id),
                           (Finding.check_id, check_id))
        if state == "open":
            stmt = stmt.where(col(Finding.resolved_at).is_(None))
        elif state == "resolved":
            stmt = stmt.where(col(Finding.resolved_at).is_not(None))
        if high_risk is not None:
            stmt = stmt.where(col(Finding.high_risk).is_not(None) if high_risk else col(Finding.high_risk).is_(None))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/findings/{finding_id}", response_model=FindingOut)
def get_finding(finding_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, Finding, finding_id, "finding")


@router.get("/events", response_model=list[EventOut])
def list_events(db: DB, p: Caller, system_id: OptId = None,
                kind: Optional[Literal["high_risk_finding", "score_drop", "drift", "new_open_port", "closed_port",
                                       "version_change", "new_forbidden_port", "scan_failed", "website_security",
                                       "website_veto", "notice_overdue"]] = None,
                delivered: Optional[bool] = None, limit: Limit = 100, offset: Offset = 0):
    """Newest first."""
    with db.session() as s:
        stmt = p.scoped(select(Event), col(Event.department_id)).order_by(col(Event.id).desc())
        stmt = where_given(stmt, (Event.system_id, system_id), (Event.kind, kind), (Event.delivered, delivered))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/events/{event_id}", response_model=EventOut)
def get_event(event_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, Event, event_id, "event")


