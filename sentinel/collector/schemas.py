"""Request and response models of the REST API (/api/v1), apart from the agent endpoints (wire.py)."""
from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..model import Verdict
from .auth import ROLES
from .wire import NoNul

NAME_PATTERN = r"^[\w.-]{1,64}$"  # \w is Unicode: Chinese names are fine; no spaces or slashes
CLAUSE_PATTERN = r"^\d+(\.\d+){1,6}$"
ITEM_PATTERN = r"^[a-z]$"


class In(NoNul):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def system_label(s_grade: int, a_grade: int) -> str:
    return f"S{s_grade}A{a_grade}"


def check_grades(level: int, s_grade: int, a_grade: int) -> None:
    """定级: the protection level is the higher of the business-information (S) and service (A) grades."""
    if max(s_grade, a_grade) != level:
        raise ValueError(f"level {level} does not match S{s_grade}A{a_grade}: "
                         f"the level must be the higher of the S and A grades ({max(s_grade, a_grade)})")


def check_cidrs(values: list[str]) -> list[str]:
    out = []
    for i, value in enumerate(values):
        try:
            out.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as exc:
            raise ValueError(f"scan_scope[{i}] {value!r}: not a network in CIDR form ({exc})") from None
    return out


def check_zones(values: list[str]) -> list[str]:
    for i, zone in enumerate(values):
        if not (1 <= len(zone) <= 64) or zone != zone.strip():
            raise ValueError(f"zones[{i}] {zone!r}: 1-64 characters without surrounding spaces")
    return values


# a system's zones and scan scope, checked the same way whether a system is made or changed
Zones = Annotated[list[str], AfterValidator(check_zones)]
ScanScope = Annotated[list[str], AfterValidator(check_cidrs)]


# ---- departments ---------------------------------------------------------------------------------


class DepartmentIn(In):
    name: str = Field(pattern=NAME_PATTERN, description="short unique code")
    title: str = Field(default="", max_length=200)


class DepartmentOut(Out):
    id: int
    name: str
    title: str
    created_at: datetime


# ---- the address plan ----------------------------------------------------------------------------


class AddressBlockIn(In):
    department_id: int = Field(ge=1, le=2**31 - 1)
    cidr: str = Field(max_length=64, description="a network in CIDR form, e.g. 10.8.0.0/16")
    note: str = Field(default="", max_length=200)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_network(v, strict=True))
        except ValueError as exc:
            raise ValueError(f"{v!r}: not a network in CIDR form ({exc})") from None


class AddressBlockOut(Out):
    id: int
    department_id: int
    cidr: str
    note: str
    created_by: str
    created_at: datetime


# ---- systems -------------------------------------------------------------------------------------


class SystemIn(In):
    name: str = Field(pattern=NAME_PATTERN)
    department_id: int = Field(ge=1, le=2**31 - 1)
    title: str = Field(default="", max_length=200)
    level: int = Field(ge=2, le=4, description="定级 protection level")
    s_grade: int = Field(ge=1, le=4, description="business-information security grade (S)")
    a_grade: int = Field(ge=1, le=4, description="system-service security grade (A)")
    owner: str = Field(default="", max_length=200)
    zones: Zones = Field(default_factory=list, max_length=64)
    scan_scope: ScanScope = Field(default_factory=list, max_length=1024, description="CIDRs a scan may touch")

    @model_validator(mode="after")
    def _grades(self) -> SystemIn:
        check_grades(self.level, self.s_grade, self.a_grade)
        return self


def _no_defaults(schema: dict[str, Any]) -> None:
    """No `default: null` in a published schema whose fields are optional but never null."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class SystemPatch(In):
    """The fields to change; a field left out keeps its value. None of them may be null: a stored null would
    make every read of the system fail, so `null` is refused here (use [] to clear a list). The merged
    result is validated as a whole against SystemIn before it is written (admin.update_system).

    Who may change what (admin.update_system): title, owner and zones are the department's own
    (admin or dept_operator); level, s_grade, a_grade, scan_scope and credential_probes only an admin."""

    model_config = ConfigDict(json_schema_extra=_no_defaults)

    # default None means "left out"; the annotation is the type of a given value (null is refused), so the
    # ignores below silence mypy's None-versus-annotation mismatch, which is intended here
    title: str = Field(default=None, max_length=200)  # type: ignore[assignment]
    level: int = Field(default=None, ge=2, le=4)  # type: ignore[assignment]
    s_grade: int = Field(default=None, ge=1, le=4)  # type: ignore[assignment]
    a_grade: int = Field(default=None, ge=1, le=4)  # type: ignore[assignment]
    owner: str = Field(default=None, max_length=200)  # type: ignore[assignment]
    zones: Zones = Field(default=None, max_length=64)  # type: ignore[arg-type]
    scan_scope: ScanScope = Field(default=None, max_length=1024)  # type: ignore[arg-type]
    credential_probes: bool = Field(  # type: ignore[assignment]
        default=None, description="admin only: run the opt-in credential probes (anonymous FTP, MySQL root with "
                                  "an empty password, SNMP community private, default pairs on HTTP Basic-auth "
                                  "consoles) in this system's scans")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not a value (leave the field out to keep it; "
                                 "[] clears a list)")
        return data


class SystemOut(Out):
    id: int
    name: str
    department_id: int
    title: str
    level: int
    s_grade: int
    a_grade: int
    label: str
    owner: str
    zones: list[str]
    scan_scope: list[str]
    credential_probes: bool = False
    credential_probes_by: Optional[str] = None  # who last turned the credential probes on or off
    credential_probes_at: Optional[datetime] = None
    created_at: datetime
    updated_at: datetime


# ---- hosts and agents ----------------------------------------------------------------------------


class HostOut(Out):
    id: int
    system_id: int
    department_id: int
    hostname: str
    addresses: list[str]
    os_id: str
    os_version: str
    os_name: str
    family: Optional[str]
    arch: str
    kernel: Optional[str]
    inventory: Optional[dict[str, Any]]
    first_seen: datetime
    last_seen: datetime


class UtilisationOut(Out):
    at: datetime
    cpu_percent: float
    memory_percent: float
    net_bytes_sent: int
    net_bytes_recv: int
    logins: int


class AgentOut(Out):
    id: str
    host_id: int
    system_id: int
    department_id: int
    public_key: str
    state: str
    enrolled_at: datetime
    revoked_at: Optional[datetime]
    revoked_reason: Optional[str]
    last_seen: Optional[datetime]
    last_ip: Optional[str]


class AgentRevokeIn(In):
    reason: str = Field(default="", max_length=500)


# ---- runs, results, findings ---------------------------------------------------------------------


class RunOut(Out):
    id: int
    report_id: str
    agent_id: str
    host_id: int
    system_id: int
    department_id: int
    baseline_id: str
    baseline_version: str
    baseline_level: int
    # the 测评对象 the run judges: kind (the baseline's object), instance ("" for the OS) and its record name
    object_kind: str = "os"
    object_instance: str = ""
    object_name: str = ""
    started_at: datetime
    finished_at: datetime
    received_at: datetime
    score: Optional[float]
    pass_rate: Optional[float]
    conclusion: str
    checks_total: int
    failed: int
    high_risk: int
    digest: str
    prev_chain_hash: str
    chain_hash: str


class RunDetail(RunOut):
    summary: dict[str, Any]


class ResultOut(Out):
    id: int
    run_id: int
    check_id: str
    clause: str
    item: str
    title: dict[str, Any]
    status: str
    severity: str
    high_risk: Optional[str]
    observed: Any
    expected: str
    reason: Optional[str]
    evidence: list[Any]
    waiver: Optional[str]
    duration_ms: float
    advisory: Optional[dict[str, Any]] = None  # {zh, en}: advisory evidence, not counted (None on rows before 0007)


class FindingOut(Out):
    id: int
    host_id: int
    system_id: int
    department_id: int
    object_kind: str = "os"  # the 测评对象 on the host whose check it is (as the run's)
    object_instance: str = ""
    check_id: str
    clause: str
    item: str
    title: dict[str, Any]
    remediation: dict[str, Any]
    severity: str
    high_risk: Optional[str]
    first_seen: datetime
    last_seen: datetime
    resolved_at: Optional[datetime]
    resolution: Optional[str]
    first_run_id: int
    last_run_id: int
    resolved_run_id: Optional[int]
    occurrences: int


class EventOut(Out):
    id: int
    kind: str
    severity: str
    department_id: int
    system_id: int
    host_id: Optional[int]
    check_id: Optional[str]
    run_id: Optional[int]
    fingerprint: str
    summary: str
    payload: dict[str, Any]
    created_at: datetime
    delivered: bool
    delivered_at: Optional[datetime]
    attempts: int
    last_error: Optional[str]


# ---- manual assessments --------------------------------------------------------------------------


class AssessmentIn(In):
    clause: str = Field(pattern=CLAUSE_PATTERN, max_length=32, description="e.g. 8.1.4.1")  # the column's width
    item: str = Field(pattern=ITEM_PATTERN, description="requirement item letter, e.g. a")
    verdict: Verdict
    note: str = Field(default="", max_length=4000)


class AssessmentOut(Out):
    id: int
    system_id: int
    department_id: int
    clause: str
    item: str
    verdict: Verdict
    note: str
    assessor: str
    at: datetime


class AttachmentOut(Out):
    """A file attached to a manual assessment; its bytes are at .../attachments/{id}."""

    id: int
    assessment_id: int
    name: str
    sha256: str = Field(description="SHA-256 of the content, hex (as in an evidence bundle's manifest)")
    size: int = Field(description="bytes")
    created_at: datetime


# ---- tokens and audit ----------------------------------------------------------------------------


class ApiTokenIn(In):
    name: str = Field(min_length=1, max_length=128)
    role: str = Field(json_schema_extra={"enum": list(ROLES)})
    department_ids: list[int] = Field(default_factory=list, max_length=1000)
    all_departments: bool = Field(default=False, description="assessor/readonly only; admin always has all")
    expires_at: Optional[AwareDatetime] = None

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ROLES:
            raise ValueError(f"must be one of {', '.join(ROLES)}")
        return v

    @field_validator("department_ids")
    @classmethod
    def _ids(cls, v: list[int]) -> list[int]:
        if any(not (1 <= i <= 2**31 - 1) for i in v):
            raise ValueError("department ids are positive integers")
        return sorted(set(v))


class ApiTokenOut(Out):
    id: int
    name: str
    role: str
    all_departments: bool
    department_ids: list[int]
    created_by: str
    created_at: datetime
    expires_at: Optional[datetime]
    revoked_at: Optional[datetime]


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="the secret; shown only once")


class EnrollmentTokenIn(In):
    system_id: int = Field(ge=1, le=2**31 - 1)
    ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    note: str = Field(default="", max_length=200)
    reenroll_hostname: Optional[str] = Field(
        default=None, min_length=1, max_length=255,
        description="admin only: this token may re-enroll that host of the system, whose agents it revokes and "
                    "whose history the new agent takes over (without it, enrolling a known hostname is refused)")


class EnrollmentTokenOut(Out):
    id: int
    department_id: int
    system_id: int
    note: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: Optional[datetime]
    used_by_agent: Optional[str]
    reenroll_hostname: Optional[str] = None


class EnrollmentTokenCreated(EnrollmentTokenOut):
    token: str = Field(description="the one-time secret; shown only once")


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    source_ip: Optional[str]
    outcome: str
    status_code: Optional[int]
    detail: str


class Me(BaseModel):
    actor: str
    role: str
    all_departments: bool
    department_ids: list[int]
