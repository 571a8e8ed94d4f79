"""Administrative changes shared by the REST API and the local CLI: departments, systems, tokens,
agent revocation and manual assessments. Each call checks the principal's role and department,
makes the change and writes its audit entry in the caller's transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ..evidence import attachments, sections
from ..store.models import (
    Agent,
    ApiToken,
    ApiTokenDepartment,
    Department,
    EnrollmentToken,
    Host,
    ManualAssessment,
    ReportSection,
    System,
)
from . import address_plan, audit
from .auth import (
    ADMIN,
    API_TOKEN_PREFIX,
    ASSESSOR,
    DEPT_OPERATOR,
    ENROLL_TOKEN_PREFIX,
    AuthError,
    Principal,
    hash_secret,
    new_secret,
)
from .errors import ApiError, not_found
from .schemas import (
    ApiTokenIn,
    ApiTokenOut,
    AssessmentIn,
    EnrollmentTokenIn,
    SystemIn,
    SystemPatch,
    system_label,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Ctx:
    session: Session
    principal: Principal
    source_ip: Optional[str] = None

    def audit(self, action: str, target: str, detail: str = "") -> None:
        audit.record(self.session.connection(), actor=self.principal.actor, action=action, target=target,
                     source_ip=self.source_ip, outcome="ok", detail=detail)


def _stored(row_id: Optional[int]) -> int:
    """A stored (flushed) row's id: the models type ids Optional only for rows not yet written."""
    assert row_id is not None
    return row_id


def _flush_unique(ctx: Ctx, what: str) -> None:
    """Flush, turning a unique-constraint violation into a 409 naming what clashed."""
    try:
        ctx.session.flush()
    except IntegrityError:
        raise ApiError(409, f"{what} already exists") from None


# ---- departments ---------------------------------------------------------------------------------


def create_department(ctx: Ctx, name: str, title: str = "") -> Department:
    ctx.principal.require(ADMIN)
    if ctx.session.exec(select(Department.id).where(Department.name == name)).first() is not None:
        raise ApiError(409, f"department {name} already exists")
    dept = Department(name=name, title=title, created_at=utcnow())
    ctx.session.add(dept)
    _flush_unique(ctx, f"department {name}")
    ctx.audit("department.create", f"department:{dept.id}:{name}")
    return dept


def department_by_name(session: Session, name: str) -> Department:
    dept = session.exec(select(Department).where(Department.name == name)).first()
    if dept is None:
        raise ApiError(404, f"department {name} not found")
    return dept


# ---- systems -------------------------------------------------------------------------------------


def create_system(ctx: Ctx, spec: SystemIn) -> System:
    dept = ctx.session.get(Department, spec.department_id)
    if dept is None or not ctx.principal.sees(_stored(dept.id)):
        raise not_found("department", spec.department_id)
    dept_id = _stored(dept.id)
    ctx.principal.require_department(dept_id, ADMIN, DEPT_OPERATOR)
    address_plan.require_inside(ctx.session, dept_id, spec.scan_scope)
    if ctx.session.exec(select(System.id).where(System.name == spec.name)).first() is not None:
        raise ApiError(409, f"system {spec.name} already exists")
    now = utcnow()
    system = System(name=spec.name, department_id=dept_id, title=spec.title, level=spec.level,
                    s_grade=spec.s_grade, a_grade=spec.a_grade, label=system_label(spec.s_grade, spec.a_grade),
                    owner=spec.owner, zones=spec.zones, scan_scope=spec.scan_scope, created_at=now, updated_at=now)
    ctx.session.add(system)
    _flush_unique(ctx, f"system {spec.name}")
    ctx.audit("system.create", f"system:{system.id}:{system.name}",
              f"department {dept.name}, level {system.level} {system.label}")
    return system


def visible_system(ctx: Ctx, system_id: int) -> System:
    system = ctx.session.get(System, system_id)
    if system is None or not ctx.principal.sees(system.department_id):
        raise not_found("system", system_id)
    return system


def system_by_name(session: Session, name: str) -> System:
    system = session.exec(select(System).where(System.name == name)).first()
    if system is None:
        raise ApiError(404, f"system {name} not found")
    return system


# Fields that decide how a system is judged and what may be scanned: 定级 (level and grades) picks the
# baseline it is judged by, and the scan scope what the collector sends packets to. Neither is the
# department's own to change (issue 20): only an admin, audited with before and after. Operators may not
# narrow a scope either: taking a network out of the scope takes it out of the scans, which hides its
# findings just as well as lowering the level would.
# The credential probes (issue 19 item 4) try logins on the department's services: only an admin, authorised
# by the system's owner, turns them on; who and when is kept on the system and goes with each scan.
ADMIN_FIELDS = ("level", "s_grade", "a_grade", "scan_scope", "credential_probes")


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        msg = e.get("msg", "")
        msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def update_system(ctx: Ctx, system_id: int, patch: SystemPatch) -> System:
    system = visible_system(ctx, system_id)
    ctx.principal.require_department(system.department_id, ADMIN, DEPT_OPERATOR)
    asked = patch.model_dump(exclude_unset=True)
    changes = {k: v for k, v in asked.items() if getattr(system, k) != v}  # what really changes needs the right
    if not changes:
        return system
    guarded = [k for k in ADMIN_FIELDS if k in changes]
    if guarded and ctx.principal.role != ADMIN:
        raise AuthError(403, f"{', '.join(guarded)}: only an admin changes a system's protection level, grades, "
                             "scan scope or credential probes (role dept_operator may change title, owner and "
                             "zones)")
    # The row as it would be stored, validated whole by the model that creates systems (which is stricter
    # than the one that reads them), so nothing is written that a read could not show.
    merged = {k: getattr(system, k) for k in SystemIn.model_fields} | {
        k: v for k, v in changes.items() if k in SystemIn.model_fields}
    try:
        SystemIn.model_validate(merged)
    except ValidationError as exc:
        raise ApiError(422, _validation_detail(exc)) from None
    if "scan_scope" in changes:
        address_plan.require_inside(ctx.session, system.department_id, changes["scan_scope"])
    before = {k: getattr(system, k) for k in sorted(changes)}
    for key, value in changes.items():
        setattr(system, key, value)
    system.label = system_label(system.s_grade, system.a_grade)
    system.updated_at = utcnow()
    if "credential_probes" in changes:  # who switched them, and when: recorded with every scan they run in
        system.credential_probes_by, system.credential_probes_at = ctx.principal.actor, system.updated_at
    ctx.session.add(system)
    ctx.session.flush()
    ctx.audit("system.update", f"system:{system.id}:{system.name}",
              json.dumps({"before": before, "after": {k: changes[k] for k in sorted(changes)}}, ensure_ascii=False))
    return system


# ---- API tokens ----------------------------------------------------------------------------------


def create_api_token(ctx: Ctx, spec: ApiTokenIn) -> tuple[ApiToken, list[int], str]:
    ctx.principal.require(ADMIN)
    if spec.role == ADMIN:
        if spec.department_ids:
            raise ApiError(422, "role admin sees every department: give no department_ids")
    elif spec.role == DEPT_OPERATOR:
        if spec.all_departments or not spec.department_ids:
            raise ApiError(422, "role dept_operator needs department_ids and cannot have all_departments")
    elif spec.all_departments == bool(spec.department_ids):
        raise ApiError(422, f"role {spec.role}: give either department_ids or all_departments, not both/neither")
    for dept_id in spec.department_ids:
        if ctx.session.get(Department, dept_id) is None:
            raise ApiError(422, f"department_ids: department {dept_id} does not exist")
    if spec.expires_at is not None and spec.expires_at <= utcnow():
        raise ApiError(422, "expires_at is in the past")
    secret = new_secret(API_TOKEN_PREFIX)
    token = ApiToken(name=spec.name, token_hash=hash_secret(secret), role=spec.role,
                     all_departments=spec.role == ADMIN or spec.all_departments, created_by=ctx.principal.actor,
                     created_at=utcnow(), expires_at=spec.expires_at)
    ctx.session.add(token)
    ctx.session.flush()
    for dept_id in spec.department_ids:
        ctx.session.add(ApiTokenDepartment(token_id=_stored(token.id), department_id=dept_id))
    ctx.session.flush()
    scope = "all departments" if token.all_departments else "departments " + ",".join(map(str, spec.department_ids))
    ctx.audit("api_token.create", f"api_token:{token.id}:{token.name}", f"role {token.role}, {scope}")
    return token, list(spec.department_ids), secret


def api_token_out(session: Session, token: ApiToken) -> ApiTokenOut:
    ids = sorted(session.exec(select(ApiTokenDepartment.department_id)
                              .where(ApiTokenDepartment.token_id == token.id)).all())
    return ApiTokenOut.model_validate({**token.model_dump(), "department_ids": ids})


def revoke_api_token(ctx: Ctx, token_id: int) -> ApiToken:
    ctx.principal.require(ADMIN)
    token = ctx.session.get(ApiToken, token_id)
    if token is None:
        raise not_found("API token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        ctx.session.add(token)
        ctx.session.flush()
        ctx.audit("api_token.revoke", f"api_token:{token.id}:{token.name}")
    return token


# ---- enrollment tokens ---------------------------------------------------------------------------


def create_enrollment_token(ctx: Ctx, spec: EnrollmentTokenIn) -> tuple[EnrollmentToken, str]:
    system = visible_system(ctx, spec.system_id)
    ctx.principal.require_department(system.department_id, ADMIN, DEPT_OPERATOR)
    reenroll = spec.reenroll_hostname
    if reenroll is not None:
        # Re-enrolling a known host hands its history to a new key: an admin's decision (issue 20).
        ctx.principal.require(ADMIN)
        known = select(Host.id).where(Host.system_id == system.id, Host.hostname == reenroll)
        if ctx.session.exec(known).first() is None:
            raise ApiError(422, f"reenroll_hostname: system {system.name} has no host {reenroll!r} "
                                "(a new host needs no re-enrollment allowance)")
    secret = new_secret(ENROLL_TOKEN_PREFIX)
    now = utcnow()
    token = EnrollmentToken(token_hash=hash_secret(secret), department_id=system.department_id,
                            system_id=_stored(system.id), note=spec.note, created_by=ctx.principal.actor,
                            created_at=now, expires_at=now + timedelta(seconds=spec.ttl_seconds),
                            reenroll_hostname=reenroll)
    ctx.session.add(token)
    ctx.session.flush()
    ctx.audit("enrollment_token.create", f"enrollment_token:{token.id}",
              f"system {system.name}, expires {token.expires_at.isoformat()}"
              + (f", allows re-enrollment of host {reenroll}" if reenroll else ""))
    return token, secret


# ---- agents --------------------------------------------------------------------------------------


def visible_agent(ctx: Ctx, agent_id: str) -> Agent:
    agent = ctx.session.get(Agent, agent_id)
    if agent is None or not ctx.principal.sees(agent.department_id):
        raise not_found("agent", agent_id)
    return agent


def revoke_agent(ctx: Ctx, agent_id: str, reason: str = "") -> Agent:
    agent = visible_agent(ctx, agent_id)
    ctx.principal.require_department(agent.department_id, ADMIN, DEPT_OPERATOR)
    if agent.state != "revoked":
        agent.state = "revoked"
        agent.revoked_at = utcnow()
        agent.revoked_reason = reason or None
        ctx.session.add(agent)
        ctx.session.flush()
        ctx.audit("agent.revoke", f"agent:{agent.id}", reason)
    return agent


# ---- manual assessments --------------------------------------------------------------------------


def add_assessment(ctx: Ctx, system_id: int, spec: AssessmentIn) -> ManualAssessment:
    system = visible_system(ctx, system_id)
    ctx.principal.require_department(system.department_id, ADMIN, ASSESSOR)
    row = ManualAssessment(system_id=_stored(system.id), department_id=system.department_id, clause=spec.clause,
                           item=spec.item, verdict=spec.verdict.value, note=spec.note,
                           assessor=ctx.principal.actor, at=utcnow())
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit("assessment.create", f"system:{system.id}:{system.name}",
              f"{spec.clause}{spec.item} {spec.verdict.value}")
    return row


def visible_assessment(ctx: Ctx, system_id: int, assessment_id: int) -> ManualAssessment:
    """The assessment `assessment_id` of system `system_id`; 404 if either is out of scope or they do not match."""
    system = visible_system(ctx, system_id)
    row = ctx.session.get(ManualAssessment, assessment_id)
    if row is None or row.system_id != system.id or not ctx.principal.sees(row.department_id):
        raise not_found("assessment", assessment_id)
    return row


def add_attachment(ctx: Ctx, assessment: ManualAssessment, name: str, data: bytes,
                   detail: str = "") -> attachments.AttachmentInfo:
    """Attach a file to an assessment: the roles that record assessments may (admin, assessor). A bad name
    is a 422 naming the `name` field, a file over the limit a 413 naming the limit."""
    ctx.principal.require_department(assessment.department_id, ADMIN, ASSESSOR)
    try:
        info = attachments.add(ctx.session.connection(), _stored(assessment.id), name, data)
    except attachments.AttachmentTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except attachments.AttachmentError as exc:
        raise ApiError(422, f"name: {exc}") from None
    ctx.audit("assessment.attach", f"assessment:{assessment.id}",
              f"{name} sha256 {info.sha256} ({info.size} bytes)" + (f", {detail}" if detail else ""))
    return info


def add_section(ctx: Ctx, system_id: int, key: str, text: str) -> ReportSection:
    """Record a chapter's text for a system (admin or assessor of its department), audited; returns the row.
    ApiError 404 for a system out of sight, 422 for a bad key or text."""
    system = visible_system(ctx, system_id)
    ctx.principal.require_department(system.department_id, ADMIN, ASSESSOR)
    try:
        sections.spec(key)
        sections.check_text(text)
    except sections.SectionError as exc:
        raise ApiError(422, str(exc)) from None
    row = ReportSection(system_id=_stored(system.id), department_id=system.department_id, key=key, text=text,
                        author=ctx.principal.actor, at=datetime.now(timezone.utc))
    ctx.session.add(row)
    ctx.session.flush()
    ctx.audit("report_section.set", f"system:{system.id}:{system.name}", f"{key} ({len(text)} characters)")
    return row
