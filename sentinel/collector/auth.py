"""API callers: bearer tokens stored as SHA-256 hashes, roles, and department scoping.

Tokens are 256-bit random secrets, so a plain SHA-256 is enough to store them (no password
stretching needed: nobody can guess a preimage) and lets the collector look a token up by its hash.

Roles:
- admin: everything, every department.
- dept_operator: reads its departments; manages their systems (title, owner, zones; new systems with a scope
  inside the address plan), enrollment tokens and agents. Not a system's level, grades or scan scope, not
  scans or their schedules, not the address plan: those are an admin's (admin.ADMIN_FIELDS, docs/api.md).
- assessor: reads its departments (or all, if the token says so); records manual assessments.
- readonly: reads its departments (or all).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional, TypeVar

from sqlalchemy import Connection, Select, SQLColumnExpression, select
from sqlmodel import col
from typing_extensions import Unpack

from ..store.models import ApiToken, ApiTokenDepartment
from .errors import ApiError

API_TOKEN_PREFIX = "sntapi_"  # noqa: S105  a token's public prefix, not a secret
ENROLL_TOKEN_PREFIX = "sntenr_"  # noqa: S105  a token's public prefix, not a secret

ADMIN, DEPT_OPERATOR, ASSESSOR, READONLY = "admin", "dept_operator", "assessor", "readonly"
ROLES = (ADMIN, DEPT_OPERATOR, ASSESSOR, READONLY)

# Any SELECT, Core or SQLModel's (SelectOfScalar is a Select): `where` returns the same type
_Stmt = TypeVar("_Stmt", bound="Select[Unpack[tuple[Any, ...]]]")


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AuthError(ApiError):
    """401 (who are you?) or 403 (not allowed); always audited."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token (or a local CLI user), its role and the departments it may see."""

    actor: str  # for the audit log: token:<id>:<name> or cli:<user>
    role: str
    departments: Optional[frozenset[int]]  # None: every department
    token_id: Optional[int] = None

    @property
    def all_departments(self) -> bool:
        return self.departments is None

    def sees(self, department_id: int) -> bool:
        return self.departments is None or department_id in self.departments

    def listing(self, department_id: Optional[int] = None) -> Optional[list[int]]:
        """The departments a listing reads: this principal's (None = every one, for an admin), narrowed to
        `department_id`; [] when it does not see that one (an empty answer, as the other lists give)."""
        if department_id is not None:
            return [department_id] if self.sees(department_id) else []
        return None if self.departments is None else sorted(self.departments)

    def scoped(self, stmt: _Stmt, column: SQLColumnExpression[Any]) -> _Stmt:
        """`stmt` limited to rows whose `column` is one of this principal's departments."""
        if self.departments is None:
            return stmt
        return stmt.where(column.in_(sorted(self.departments)))

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise AuthError(403, f"role {self.role} may not do this (needs {' or '.join(roles)})")

    def require_department(self, department_id: int, *roles: str) -> None:
        """For writes into a department: the role must allow it and the department be in scope."""
        self.require(*roles)
        if not self.sees(department_id):
            raise AuthError(403, "this token is not bound to that department")


def cli_principal(user: str) -> Principal:
    return Principal(actor=f"cli:{user}", role=ADMIN, departments=None)


def authenticate(conn: Connection, authorization: Optional[str], now: Optional[datetime] = None) -> Principal:
    """The principal for an `Authorization: Bearer <token>` header; AuthError(401) otherwise."""
    if not authorization:
        raise AuthError(401, "missing Authorization header (expected: Bearer <API token>)")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthError(401, "malformed Authorization header (expected: Bearer <API token>)")
    row = conn.execute(
        select(col(ApiToken.id), col(ApiToken.name), col(ApiToken.role), col(ApiToken.all_departments),
               col(ApiToken.expires_at), col(ApiToken.revoked_at))
        .where(col(ApiToken.token_hash) == hash_secret(secret))
    ).first()
    if row is None:
        raise AuthError(401, "unknown API token")
    now = now or datetime.now(timezone.utc)
    if row.revoked_at is not None:
        raise AuthError(401, "API token revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthError(401, "API token expired")
    departments: Optional[frozenset[int]] = None
    if not (row.role == ADMIN or row.all_departments):
        departments = frozenset(conn.execute(
            select(col(ApiTokenDepartment.department_id)).where(col(ApiTokenDepartment.token_id) == row.id)
        ).scalars())
    return Principal(actor=f"token:{row.id}:{row.name}", role=row.role, departments=departments, token_id=row.id)
