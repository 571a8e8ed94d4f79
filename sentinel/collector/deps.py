"""FastAPI dependencies: the database, the calling principal, paging and id parameters."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..store.db import Database
from .auth import Principal, _Stmt, authenticate
from .errors import not_found
from .operations import Ctx

MAX_ID = 2**31 - 1

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer sntapi_...`")


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_principal(request: Request,
                  credentials: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)]) -> Principal:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else request.headers.get("authorization")
    db: Database = request.app.state.db
    with db.read() as conn:
        principal = authenticate(conn, header)
    request.state.actor = principal.actor
    return principal


def source_ip(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


DB = Annotated[Database, Depends(get_db)]
Caller = Annotated[Principal, Depends(get_principal)]
SourceIp = Annotated[Optional[str], Depends(source_ip)]

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
OptId = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="rows to skip")]
AgentId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
Text64 = Annotated[Optional[str], Query(pattern=r"^[0-9A-Za-z_.:-]{1,128}$")]


def page(stmt: _Stmt, limit: int, offset: int) -> _Stmt:
    return stmt.limit(limit).offset(offset)


def where_given(stmt: _Stmt, *filters: tuple[Any, Any]) -> _Stmt:
    """`stmt` narrowed by `column == value` for each (column, value) whose value the caller gave: a list
    route's optional query parameters, where None means "not asked" (False and 0 are asked for)."""
    for column, value in filters:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def visible(s, p: Principal, model, key: int, what: str, department: str = "department_id"):
    """The row `key` of `model` if the caller's departments include its own; else 404, exactly as if missing."""
    row = s.get(model, key)
    if row is None or not p.sees(getattr(row, department)):
        raise not_found(what, key)
    return row


__all__ = ["Ctx", "DB", "Caller", "SourceIp", "Id", "OptId", "Limit", "Offset", "AgentId", "Text64", "page",
           "visible", "where_given"]
