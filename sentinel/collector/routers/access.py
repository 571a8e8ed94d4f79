"""Health, the caller's identity, API tokens, enrollment tokens and the audit log."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlmodel import col, select

from ...store.models import ApiToken, ApiTokenDepartment, AuditEntry, EnrollmentToken
from .. import operations
from ..auth import ADMIN
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, OptId, SourceIp, page, where_given
from ..problems import DocumentedRoute, problem
from ..schemas import (
    ApiTokenCreated,
    ApiTokenIn,
    ApiTokenOut,
    AuditOut,
    EnrollmentTokenCreated,
    EnrollmentTokenIn,
    EnrollmentTokenOut,
    Me,
)

router = APIRouter(tags=["admin"], route_class=DocumentedRoute)  # error answers in the OpenAPI document


@router.get("/health", responses={503: {"description": "the database cannot be reached"}})
def health(db: DB):
    """Liveness and database reachability; no token needed."""
    try:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same thing here
        return JSONResponse({"status": "unavailable", "detail": f"database: {type(exc).__name__}"}, status_code=503)
    return {"status": "ok"}


@router.get("/me", response_model=Me)
def me(p: Caller):
    return Me(actor=p.actor, role=p.role, all_departments=p.all_departments,
              department_ids=sorted(p.departments or ()))


# ---- API tokens (admin) --------------------------------------------------------------------------


@router.get("/tokens", response_model=list[ApiTokenOut], responses={403: problem(403, "admin only")})
def list_tokens(db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    p.require(ADMIN)
    with db.session() as s:
        tokens = s.exec(page(select(ApiToken).order_by(col(ApiToken.id)), limit, offset)).all()
        links: dict[Optional[int], list[int]] = {}  # by token id (a stored row's, never None)
        if tokens:
            for tid, did in s.exec(select(ApiTokenDepartment.token_id, ApiTokenDepartment.department_id)
                                   .where(col(ApiTokenDepartment.token_id).in_([t.id for t in tokens]))).all():
                links.setdefault(tid, []).append(did)
        return [ApiTokenOut.model_validate({**t.model_dump(), "department_ids": sorted(links.get(t.id, []))})
                for t in tokens]


@router.post("/tokens", status_code=201, response_model=ApiTokenCreated)
def create_token(spec: ApiTokenIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        token, dept_ids, secret = operations.create_api_token(Ctx(s, p, ip), spec)
        return ApiTokenCreated.model_validate({**token.model_dump(), "department_ids": dept_ids, "token": secret})


@router.post("/tokens/{token_id}/revoke", response_model=ApiTokenOut)
def revoke_token(token_id: Id, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        token = operations.revoke_api_token(Ctx(s, p, ip), token_id)
        return operations.api_token_out(s, token)


# ---- enrollment tokens ---------------------------------------------------------------------------


@router.get("/enrollment-tokens", response_model=list[EnrollmentTokenOut])
def list_enrollment_tokens(db: DB, p: Caller, system_id: OptId = None, limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(EnrollmentToken), col(EnrollmentToken.department_id))
        stmt = stmt.order_by(col(EnrollmentToken.id).desc())
        stmt = where_given(stmt, (EnrollmentToken.system_id, system_id))
        return s.exec(page(stmt, limit, offset)).all()


@router.post("/enrollment-tokens", status_code=201, response_model=EnrollmentTokenCreated)
def create_enrollment_token(spec: EnrollmentTokenIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        token, secret = operations.create_enrollment_token(Ctx(s, p, ip), spec)
        return EnrollmentTokenCreated.model_validate({**token.model_dump(), "token": secret})


# ---- audit log (admin) ---------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], responses={403: problem(403, "admin only")})
def list_audit(db: DB, p: Caller, action: Optional[str] = Query(None, pattern=r"^[\w ./{}:-]{1,64}$"),
               outcome: Optional[Literal["ok", "denied", "rejected"]] = None,
               limit: Limit = 100, offset: Offset = 0):
    """Newest first."""
    p.require(ADMIN)
    with db.session() as s:
        stmt = select(AuditEntry).order_by(col(AuditEntry.id).desc())
        stmt = where_given(stmt, (AuditEntry.action, action), (AuditEntry.outcome, outcome))
        return s.exec(page(stmt, limit, offset)).all()
