"""Manual assessments: a person's verdict on a requirement item that no check can decide."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query
from sqlmodel import select

from ...store.models import ManualAssessment
from .. import admin
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, SourceIp, visible
from ..schemas import CLAUSE_PATTERN, AssessmentIn, AssessmentOut

router = APIRouter(tags=["assessments"])


@router.get("/systems/{system_id}/assessments", response_model=list[AssessmentOut])
def list_assessments(system_id: Id, db: DB, p: Caller,
                     clause: Optional[str] = Query(None, pattern=CLAUSE_PATTERN),
                     latest: bool = Query(False, description="only the latest verdict per clause+item"),
                     limit: Limit = 100, offset: Offset = 0):
    """Oldest first (the history of verdicts), or with `latest` the verdicts that count now."""
    with db.session() as s:
        admin.visible_system(Ctx(s, p), system_id)
        stmt = select(ManualAssessment).where(ManualAssessment.system_id == system_id)
        if clause is not None:
            stmt = stmt.where(ManualAssessment.clause == clause)
        rows = s.exec(stmt.order_by(ManualAssessment.id)).all()
        if latest:
            current: dict[tuple[str, str], ManualAssessment] = {}
            for row in rows:
                current[(row.clause, row.item)] = row
            rows = sorted(current.values(), key=lambda r: (r.clause, r.item))
        return rows[offset:offset + limit]


@router.post("/systems/{system_id}/assessments", status_code=201, response_model=AssessmentOut)
def add_assessment(system_id: Id, spec: AssessmentIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return admin.add_assessment(Ctx(s, p, ip), system_id, spec)


@router.get("/assessments/{assessment_id}", response_model=AssessmentOut)
def get_assessment(assessment_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, ManualAssessment, assessment_id, "assessment")


