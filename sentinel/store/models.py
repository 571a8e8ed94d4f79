"""The collector's tables (SQLModel). The schema itself is owned by the Alembic migrations next to this file.

Conventions: integer surrogate keys (agents use their string agent_id); every time is a UTC-aware
datetime (`UTCDateTime`); JSON columns are JSONB on PostgreSQL. Rows that belong to a department carry
`department_id` directly (denormalised from their system) so department scoping of every query is a
single indexed comparison, never a join chain.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from .types import JSONType, UTCDateTime

# Named constraints so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class Base(SQLModel, registry=registry(metadata=metadata)):
    """Base for the store's tables; its own MetaData keeps them apart from any other SQLModel use."""

    if TYPE_CHECKING:  # set on every table model by SQLAlchemy's declarative mapping; SQLModel does not declare it
        __table__: ClassVar[Table]


ROLES = ("admin", "dept_operator", "assessor", "readonly")
AGENT_STATES = ("enrolled", "revoked")
REPORT_KINDS = ("host_report", "inventory", "utilisation")
ZERO_HASH = "0" * 64  # chain head of a system that has no runs yet
# JSON columns: an object, or an array (of strings or objects, as each column's comment says)
JSONObject = dict[str, Any]
JSONArray = list[Any]


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _json(**kw: Any) -> Any:
    return Field(sa_type=JSONType, **kw)


class Department(Base, table=True):
    __tablename__ = "departments"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(64), unique=True, nullable=False)
    title: str = Field(default="", sa_type=String(200), nullable=False)
    created_at: datetime = _ts(nullable=False)


class System(Base, table=True):
    """A graded information system (定级对象). level = max(S, A), label like S3A2."""

    __tablename__ = "systems"
    __table_args__ = (
        CheckConstraint("level BETWEEN 2 AND 4", name="level"),
        CheckConstraint("s_grade BETWEEN 1 AND 4", name="s_grade"),
        CheckConstraint("a_grade BETWEEN 1 AND 4", name="a_grade"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(128), unique=True, nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    title: str = Field(default="", sa_type=String(200), nullable=False)
    level: int = Field(nullable=False)
    s_grade: int = Field(nullable=False)
    a_grade: int = Field(nullable=False)
    label: str = Field(sa_type=String(8), nullable=False)
    owner: str = Field(default="", sa_type=String(200), nullable=False)
    zones: JSONArray = _json(default_factory=list, nullable=False)
    scan_scope: JSONArray = _json(default_factory=list, nullable=False)  # CIDR strings
    # Opt-in credential probes (issue 19 item 4) in this system's scans: only an admin turns them on; who and
    # when (the last change either way) go with every scan run, finding and evidence export (store 0008).
    # (No Python-side column default: Core inserts written for older revisions, as the migration tests make,
    # must not name a column those revisions lack; the database's own default stands in.)
    credential_probes: bool = Field(default=False, sa_column=Column(Boolean, server_default=false(), nullable=False))
    credential_probes_by: Optional[str] = Field(default=None, sa_type=String(200))
    credential_probes_at: Optional[datetime] = _ts(default=None)
    # Head of the per-system hash chain over runs; updated under a row lock with each stored run.
    chain_head: str = Field(default=ZERO_HASH, sa_type=String(64), nullable=False)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Host(Base, table=True):
    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("system_id", "hostname", name="uq_hosts_system_hostname"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    hostname: str = Field(sa_type=String(255), nullable=False)
    addresses: JSONArray = _json(default_factory=list, nullable=False)
    os_id: str = Field(default="", sa_type=String(64), nullable=False)
    os_version: str = Field(default="", sa_type=String(64), nullable=False)
    os_name: str = Field(default="", sa_type=String(200), nullable=False)
    family: Optional[str] = Field(default=None, sa_type=String(32))
    arch: str = Field(default="", sa_type=String(32), nullable=False)
    kernel: Optional[str] = Field(default=None, sa_type=String(128))
    inventory: Optional[JSONObject] = _json(default=None)  # latest inventory body
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)


class Agent(Base, table=True):
    __tablename__ = "agents"
    __table_args__ = (CheckConstraint("state IN ('enrolled', 'revoked')", name="state"),)

    id: str = Field(sa_type=String(64), primary_key=True)
    host_id: int = Field(foreign_key="hosts.id", index=True, nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    public_key: str = Field(sa_type=String(64), unique=True, nullable=False)
    state: str = Field(default="enrolled", sa_type=String(16), nullable=False)
    enrolled_at: datetime = _ts(nullable=False)
    revoked_at: Optional[datetime] = _ts(default=None)
    revoked_reason: Optional[str] = Field(default=None, sa_type=String(500))
    last_seen: Optional[datetime] = _ts(default=None)
    last_ip: Optional[str] = Field(default=None, sa_type=String(64))
    enrollment_token_id: Optional[int] = Field(default=None, foreign_key="enrollment_tokens.id")


class EnrollmentToken(Base, table=True):
    __tablename__ = "enrollment_tokens"

    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=String(64), unique=True, nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    note: str = Field(default="", sa_type=String(200), nullable=False)
    created_by: str = Field(sa_type=String(200), nullable=False)
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    used_at: Optional[datetime] = _ts(default=None)
    used_by_agent: Optional[str] = Field(default=None, sa_type=String(64))
    # Set by an admin: this token may re-enroll that (already known) host, replacing its agents.
    reenroll_hostname: Optional[str] = Field(default=None, sa_type=String(255))


class ApiToken(Base, table=True):
    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'dept_operator', 'assessor', 'readonly')", name="role"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(128), nullable=False)
    token_hash: str = Field(sa_type=String(64), unique=True, nullable=False)
    role: str = Field(sa_type=String(16), nullable=False)
    all_departments: bool = Field(default=False, nullable=False)
    created_by: str = Field(sa_type=String(200), nullable=False)
    created_at: datetime = _ts(nullable=False)
    expires_at: Optional[datetime] = _ts(default=None)
    revoked_at: Optional[datetime] = _ts(default=None)


class ApiTokenDepartment(Base, table=True):
    """Departments a non-global API token may see."""

    __tablename__ = "api_token_departments"

    token_id: int = Field(foreign_key="api_tokens.id", primary_key=True, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", primary_key=True, index=True)


class Report(Base, table=True):
    """Ledger of every accepted envelope (all kinds): uniqueness, idempotent answers, and the agent's
    signed bytes kept (compressed: store/envelopes.py) so the signature and the run hash chain can be re-verified
    later."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint("kind IN ('host_report', 'inventory', 'utilisation')", name="kind"),
        # report ids are the agent's own names: unique per agent, never across agents (migration 0004)
        UniqueConstraint("agent_id", "report_id", name="uq_reports_agent_report"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    report_id: str = Field(sa_type=String(64), nullable=False)
    kind: str = Field(sa_type=String(16), nullable=False)
    agent_id: str = Field(sa_type=String(64), foreign_key="agents.id", index=True, nullable=False)
    host_id: int = Field(foreign_key="hosts.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    digest: str = Field(sa_type=String(64), nullable=False)  # sha256 of the canonical envelope body
    sent_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False)
    source_ip: Optional[str] = Field(default=None, sa_type=String(64))
    outcome: JSONObject = _json(nullable=False)  # the 202 answer, repeated on an idempotent resend
    signature: str = Field(sa_type=String(128), nullable=False)
    # store/envelopes.py: the signed bytes, compressed
    envelope: bytes = Field(sa_column=Column("envelope", LargeBinary, nullable=False))


class Run(Base, table=True):
    """One host report: a baseline run on one host."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_host_baseline", "host_id", "baseline_id", "id"),
        # the latest run of each 测评对象 (host, baseline, instance): the system assessment's and drift's key
        Index("ix_runs_host_object", "host_id", "baseline_id", "object_instance", "id"),
        Index("ix_runs_system", "system_id", "id"),
        Index("ix_runs_department", "department_id", "id"),
        UniqueConstraint("agent_id", "report_id", name="uq_runs_agent_report"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    report_id: str = Field(sa_type=String(64), nullable=False)
    agent_id: str = Field(sa_type=String(64), foreign_key="agents.id", nullable=False)
    host_id: int = Field(foreign_key="hosts.id", nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    baseline_id: str = Field(sa_type=String(128), nullable=False)
    baseline_version: str = Field(sa_type=String(64), nullable=False)
    baseline_level: int = Field(nullable=False)
    # The 测评对象 the run judges (migration 0009; the report's `object`): its kind (the baseline's), instance
    # ("" for the OS) and name as the record writes it. Runs stored before are the host's OS. (Server defaults
    # only, as credential_probes says why.)
    object_kind: str = Field(default="os", sa_column=Column(String(16), server_default="os", nullable=False))
    object_instance: str = Field(default="", sa_column=Column(String(128), server_default="", nullable=False))
    object_name: str = Field(default="", sa_column=Column(String(200), server_default="", nullable=False))
    started_at: datetime = _ts(nullable=False)
    finished_at: datetime = _ts(nullable=False)
    received_at: datetime = _ts(nullable=False)
    summary: JSONObject = _json(nullable=False)
    score: Optional[float] = Field(default=None)
    pass_rate: Optional[float] = Field(default=None)
    conclusion: str = Field(sa_type=String(16), nullable=False)
    checks_total: int = Field(nullable=False)
    failed: int = Field(nullable=False)
    high_risk: int = Field(nullable=False)
    digest: str = Field(sa_type=String(64), nullable=False)  # sha256 of the canonical report body
    prev_chain_hash: str = Field(sa_type=String(64), nullable=False)
    chain_hash: str = Field(sa_type=String(64), nullable=False)  # sha256(prev_chain_hash + digest), hex


class CheckResultRow(Base, table=True):
    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_run", "run_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", nullable=False, ondelete="CASCADE")
    check_id: str = Field(sa_type=String(128), nullable=False)
    clause: str = Field(sa_type=String(32), nullable=False)
    item: str = Field(sa_type=String(8), nullable=False)
    title: JSONObject = _json(nullable=False)
    status: str = Field(sa_type=String(16), nullable=False)
    severity: str = Field(sa_type=String(16), nullable=False)
    high_risk: Optional[str] = Field(default=None, sa_type=String(32))
    observed: Any = _json(default=None, nullable=True)
    expected: str = Field(sa_type=Text, nullable=False)
    reason: Optional[str] = Field(default=None, sa_type=Text)
    evidence: JSONArray = _json(default_factory=list, nullable=False)
    waiver: Optional[str] = Field(default=None, sa_type=Text)
    duration_ms: float = Field(default=0.0, nullable=False)
    # the baseline's reason the check is advisory ({zh, en}), None when it counts (migration 0007): what the
    # store counts (findings, failing-check metrics, evidence problem lists) leaves advisory results out
    advisory: Optional[JSONObject] = _json(default=None, nullable=True)


class Finding(Base, table=True):
    """One episode of a check failing on a host, from first failure to the run that showed it fixed.

    A check that fails again after being resolved opens a *new* row, so the rows of one host+check read
    as its rectification history (整改跟踪); at most one row per host, 测评对象 and check is open at a time
    (two MariaDB instances on a host run the same checks: each has its own trail, migration 0009).
    """

    __tablename__ = "findings"
    __table_args__ = (
        Index("uq_findings_open", "host_id", "object_kind", "object_instance", "check_id", unique=True,
              sqlite_where=text("resolved_at IS NULL"), postgresql_where=text("resolved_at IS NULL")),
        Index("ix_findings_host_check", "host_id", "check_id", "id"),
        Index("ix_findings_system", "system_id", "resolved_at"),
        Index("ix_findings_department", "department_id", "id"),
        CheckConstraint("resolution IS NULL OR resolution IN ('fixed', 'waived', 'advisory')", name="resolution"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    host_id: int = Field(foreign_key="hosts.id", nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    # the 测评对象 on the host whose check it is (as Run's); the host's OS for findings stored before 0009
    object_kind: str = Field(default="os", sa_column=Column(String(16), server_default="os", nullable=False))
    object_instance: str = Field(default="", sa_column=Column(String(128), server_default="", nullable=False))
    check_id: str = Field(sa_type=String(128), nullable=False)
    clause: str = Field(sa_type=String(32), nullable=False)
    item: str = Field(sa_type=String(8), nullable=False)
    title: JSONObject = _json(nullable=False)
    remediation: JSONObject = _json(nullable=False)
    severity: str = Field(sa_type=String(16), nullable=False)
    high_risk: Optional[str] = Field(default=None, sa_type=String(32))
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)
    resolved_at: Optional[datetime] = _ts(default=None)
    resolution: Optional[str] = Field(default=None, sa_type=String(16))
    first_run_id: int = Field(foreign_key="runs.id", nullable=False)
    last_run_id: int = Field(foreign_key="runs.id", nullable=False)
    resolved_run_id: Optional[int] = Field(default=None, foreign_key="runs.id")
    occurrences: int = Field(default=1, nullable=False)  # runs that saw it failing


class ManualAssessment(Base, table=True):
    """A person's verdict on a requirement item of a system (append-only; the latest per item counts)."""

    __tablename__ = "manual_assessments"
    __table_args__ = (
        Index("ix_manual_assessments_item", "system_id", "clause", "item", "id"),
        Index("ix_manual_assessments_department", "department_id", "id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    clause: str = Field(sa_type=String(32), nullable=False)
    item: str = Field(sa_type=String(8), nullable=False)
    verdict: str = Field(sa_type=String(16), nullable=False)
    note: str = Field(default="", sa_type=Text, nullable=False)
    assessor: str = Field(sa_type=String(200), nullable=False)
    at: datetime = _ts(nullable=False)


class AssessmentAttachment(Base, table=True):
    """A file attached to a manual assessment (interview notes, a scanned document), kept in the database
    with its SHA-256 so an export can hash-list it and a verifier can recheck it (migration 0003).

    No department_id of its own: an attachment is always reached through its assessment, whose
    department scopes it. Deleting the assessment deletes its files.
    """

    __tablename__ = "assessment_attachments"
    __table_args__ = (Index("ix_assessment_attachments_assessment", "assessment_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="manual_assessments.id", ondelete="CASCADE", nullable=False)
    name: str = Field(sa_type=String(200), nullable=False)
    sha256: str = Field(sa_type=String(64), nullable=False)
    size: int = Field(nullable=False)
    content: bytes = Field(sa_column=Column("content", LargeBinary, nullable=False))
    created_at: datetime = _ts(nullable=False)


class Event(Base, table=True):
    """Something worth telling people about, queued for the publishers (Alertmanager, webhooks).

    Publishers claim undelivered rows in id order, then set `delivered`/`delivered_at` or bump
    `attempts`/`last_error`. `fingerprint` is stable for the same condition (for de-duplication).
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_pending", "delivered", "id"),
        Index("ix_events_department", "department_id", "id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    # high_risk_finding | score_drop | drift; network scans (sentinel/collector/scan_ingest.py): new_open_port |
    # closed_port | version_change | new_forbidden_port | scan_failed
    kind: str = Field(sa_type=String(32), nullable=False)
    severity: str = Field(sa_type=String(16), nullable=False)  # critical | warning | info
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    host_id: Optional[int] = Field(default=None, foreign_key="hosts.id")
    check_id: Optional[str] = Field(default=None, sa_type=String(128))
    run_id: Optional[int] = Field(default=None, foreign_key="runs.id")
    fingerprint: str = Field(sa_type=String(64), nullable=False)
    summary: str = Field(sa_type=Text, nullable=False)
    payload: JSONObject = _json(nullable=False)
    created_at: datetime = _ts(nullable=False)
    delivered: bool = Field(default=False, nullable=False)
    delivered_at: Optional[datetime] = _ts(default=None)
    attempts: int = Field(default=0, nullable=False)
    last_error: Optional[str] = Field(default=None, sa_type=Text)


class AuditEntry(Base, table=True):
    """The collector's own audit log: who did what to what, from where, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False)
    actor: str = Field(sa_type=String(200), nullable=False)  # token:<id>:<name> | agent:<id> | cli:<user> | anonymous
    action: str = Field(sa_type=String(64), nullable=False)
    target: str = Field(default="", sa_type=String(500), nullable=False)
    source_ip: Optional[str] = Field(default=None, sa_type=String(64))
    outcome: str = Field(sa_type=String(16), nullable=False)  # ok | denied | rejected
    status_code: Optional[int] = Field(default=None)
    detail: str = Field(default="", sa_type=Text, nullable=False)


class InventorySnapshot(Base, table=True):
    __tablename__ = "inventory"
    __table_args__ = (Index("ix_inventory_host", "host_id", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    host_id: int = Field(foreign_key="hosts.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    report_id: str = Field(sa_type=String(64), nullable=False)
    at: datetime = _ts(nullable=False)
    arch: str = Field(default="", sa_type=String(32), nullable=False)
    cpu_model: Optional[str] = Field(default=None, sa_type=String(200))
    cpu_count: Optional[int] = Field(default=None)
    memory_bytes: Optional[int] = Field(default=None, sa_type=BigInteger)
    packages_count: Optional[int] = Field(default=None)
    data: JSONObject = _json(nullable=False)  # the whole inventory body


class UtilisationSample(Base, table=True):
    __tablename__ = "utilisation_samples"
    __table_args__ = (Index("ix_utilisation_samples_host", "host_id", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    host_id: int = Field(foreign_key="hosts.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    report_id: str = Field(sa_type=String(64), nullable=False)
    at: datetime = _ts(nullable=False)
    cpu_percent: float = Field(nullable=False)
    memory_percent: float = Field(nullable=False)
    net_bytes_sent: int = Field(sa_type=BigInteger, nullable=False)
    net_bytes_recv: int = Field(sa_type=BigInteger, nullable=False)
    logins: int = Field(nullable=False)


# ---- network scans (issue 4; migration 0002) -------------------------------------------------------

SCAN_STATUSES = ("running", "succeeded", "failed")
SCAN_TRIGGERS = ("schedule", "api", "cli")


class ScanSchedule(Base, table=True):
    """How and when a system's network is scanned (one row per system; none: on request, with defaults).

    The scope is never here: a scan always takes it from `systems.scan_scope`. `claimed_at` is the time a
    collector process last took the scheduled scan; processes sharing the database (several workers) skip
    a firing within half an interval of it, so a schedule runs once however many processes serve it.
    """

    __tablename__ = "scan_schedules"
    __table_args__ = (
        CheckConstraint("interval_seconds IS NULL OR interval_seconds >= 60", name="interval"),
        CheckConstraint("jitter_seconds >= 0", name="jitter"),
    )

    system_id: int = Field(foreign_key="systems.id", primary_key=True, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    enabled: bool = Field(default=False, nullable=False)
    interval_seconds: Optional[int] = Field(default=None)
    jitter_seconds: int = Field(default=0, nullable=False)
    zone_baseline: str = Field(default="zone-egov-default", sa_type=String(200), nullable=False)
    zone: Optional[str] = Field(default=None, sa_type=String(64))
    scanner_zone: Optional[str] = Field(default=None, sa_type=String(64))
    tcp_ports: Optional[str] = Field(default=None, sa_type=String(2000))  # nmap syntax; None: the defaults
    udp_ports: Optional[str] = Field(default=None, sa_type=String(2000))  # None: no UDP scan
    version_detection: bool = Field(default=True, nullable=False)
    claimed_at: Optional[datetime] = _ts(default=None)
    updated_at: datetime = _ts(nullable=False)
    updated_by: str = Field(sa_type=String(200), nullable=False)


class ScanRun(Base, table=True):
    """One network scan of a system. At most one per system is `running` (a partial unique index): the
    database itself refuses a second, whichever process tries."""

    __tablename__ = "scan_runs"
    __table_args__ = (
        Index("uq_scan_runs_running", "system_id", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
        Index("ix_scan_runs_system", "system_id", "id"),
        Index("ix_scan_runs_department", "department_id", "id"),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
        CheckConstraint("triggered_by IN ('schedule', 'api', 'cli')", name="triggered_by"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    triggered_by: str = Field(sa_type=String(16), nullable=False)
    requested_by: str = Field(sa_type=String(200), nullable=False)  # actor, as in the audit log
    status: str = Field(default="running", sa_type=String(16), nullable=False)
    runner: str = Field(sa_type=String(200), nullable=False)  # host:pid of the collector process running it
    started_at: datetime = _ts(nullable=False)
    finished_at: Optional[datetime] = _ts(default=None)
    duration_ms: Optional[float] = Field(default=None)
    targets: JSONArray = _json(default_factory=list, nullable=False)
    full_scope: bool = Field(default=True, nullable=False)  # the whole registered scope, on the schedule's ports
    scope: JSONObject = _json(default_factory=dict, nullable=False)  # sentinel.checks.network.scope.Scope as JSON
    args: JSONObject = _json(default_factory=dict, nullable=False)  # ScanOptions, and the nmap command lines
    zone_baseline: Optional[str] = Field(default=None, sa_type=String(200))  # id@version
    zone: Optional[str] = Field(default=None, sa_type=String(64))
    scanner_zone: Optional[str] = Field(default=None, sa_type=String(64))
    error: Optional[str] = Field(default=None, sa_type=Text)
    warnings: JSONArray = _json(default_factory=list, nullable=False)
    hosts_up: int = Field(default=0, nullable=False)
    services_open: int = Field(default=0, nullable=False)
    services_forbidden: int = Field(default=0, nullable=False)
    high_risk: int = Field(default=0, nullable=False)
    events: int = Field(default=0, nullable=False)
    items: JSONArray = _json(default_factory=list, nullable=False)  # network ItemResults of this scan
    results: JSONArray = _json(default_factory=list, nullable=False)  # every CheckResult of this scan
    summary: Optional[JSONObject] = _json(default=None)
    score: Optional[float] = Field(default=None)
    conclusion: Optional[str] = Field(default=None, sa_type=String(16))


class ServiceFindingRow(Base, table=True):
    """An open service seen by scans, from the scan that first saw it until the one that saw it closed.

    Like `findings`, a port that closes and opens again starts a new row; at most one row per system,
    address, protocol and port is open (`closed_at IS NULL`). Columns mirror
    sentinel.checks.network.findings.ServiceFinding so a row converts back for the next diff.
    """

    __tablename__ = "service_findings"
    __table_args__ = (
        Index("uq_service_findings_open", "system_id", "host", "proto", "port", unique=True,
              sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
        Index("ix_service_findings_system", "system_id", "closed_at"),
        Index("ix_service_findings_department", "department_id", "id"),
        CheckConstraint("proto IN ('tcp', 'udp')", name="proto"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    host_id: Optional[int] = Field(default=None, foreign_key="hosts.id")  # registered host with this address
    host: str = Field(sa_type=String(64), nullable=False)  # the address scanned
    port: int = Field(nullable=False)
    proto: str = Field(sa_type=String(8), nullable=False)
    state: str = Field(default="open", sa_type=String(32), nullable=False)
    service: Optional[str] = Field(default=None, sa_type=String(64))
    nmap_service: Optional[str] = Field(default=None, sa_type=String(64))
    product: Optional[str] = Field(default=None, sa_type=String(200))
    version: Optional[str] = Field(default=None, sa_type=String(200))
    extrainfo: Optional[str] = Field(default=None, sa_type=String(500))
    tunnel: Optional[str] = Field(default=None, sa_type=String(16))
    starttls: Optional[bool] = Field(default=None)
    banner: Optional[str] = Field(default=None, sa_type=Text)
    tls: Optional[JSONObject] = _json(default=None)
    ssh: Optional[JSONObject] = _json(default=None)
    http: Optional[JSONObject] = _json(default=None)
    exposure: Optional[JSONObject] = _json(default=None)
    plaintext_management: bool = Field(default=False, nullable=False)
    zone: Optional[str] = Field(default=None, sa_type=String(64))
    forbidden: bool = Field(default=False, nullable=False)
    high_risk: JSONArray = _json(default_factory=list, nullable=False)  # 高风险判定指引 cases of failing results
    check_results: JSONArray = _json(default_factory=list, nullable=False)
    errors: JSONArray = _json(default_factory=list, nullable=False)
    evidence: JSONArray = _json(default_factory=list, nullable=False)
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)
    closed_at: Optional[datetime] = _ts(default=None)
    first_scan_id: int = Field(foreign_key="scan_runs.id", nullable=False)
    last_scan_id: int = Field(foreign_key="scan_runs.id", nullable=False)
    closed_scan_id: Optional[int] = Field(default=None, foreign_key="scan_runs.id")


# ---- the site's address plan (issue 20; migration 0005) --------------------------------------------------


class AddressBlock(Base, table=True):
    """A network block the cloud has assigned to a department (the site's address plan, kept by an admin).

    A system's scan_scope must lie inside its department's blocks (sentinel/collector/address_plan.py), so
    a scan never reaches addresses of another department or of nobody. Blocks of different departments
    never overlap: an address belongs to one department or to none.
    """

    __tablename__ = "address_blocks"
    __table_args__ = (UniqueConstraint("cidr", name="uq_address_blocks_cidr"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    cidr: str = Field(sa_type=String(64), nullable=False)  # normalised (ipaddress, strict)
    note: str = Field(default="", sa_type=String(200), nullable=False)
    created_by: str = Field(sa_type=String(200), nullable=False)
    created_at: datetime = _ts(nullable=False)


# ---- report chapters an assessor writes (issue 18; migration 0006) ----------------------------------------


class ReportSection(Base, table=True):
    """The text of one chapter of the 等级测评报告 that only a person can write (测评项目概述, 网络结构,
    整体测评, ...: the catalogue is sentinel/evidence/sections.py), for one system. Append-only like manual
    assessments: the latest per key counts, earlier texts stay as its history."""

    __tablename__ = "report_sections"
    __table_args__ = (Index("ix_report_sections_key", "system_id", "key", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    key: str = Field(sa_type=String(32), nullable=False)
    text: str = Field(sa_type=Text, nullable=False)
    author: str = Field(sa_type=String(200), nullable=False)
    at: datetime = _ts(nullable=False)


# ---- zombie-system detection (issue 16; migration 0010) ---------------------------------------------------


class UtilisationDay(Base, table=True):
    """One UTC day of a host's utilisation samples, rolled up as they are ingested (sentinel/store/zombie.py), so
    the rules read a few rows per host and day instead of a sample a minute. `hours_mask` has bit h set when a
    sample fell in hour h: how much of the day the samples cover. `inbound_max` is None while no sample of the
    day carried inbound connections (older agents)."""

    __tablename__ = "utilisation_days"
    __table_args__ = (Index("ix_utilisation_days_day", "day"),)

    host_id: int = Field(foreign_key="hosts.id", primary_key=True)
    day: date = Field(sa_type=Date, primary_key=True)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    samples: int = Field(nullable=False)
    hours_mask: int = Field(nullable=False)
    cpu_sum: float = Field(nullable=False)
    memory_sum: float = Field(nullable=False)
    net_bytes: int = Field(sa_type=BigInteger, nullable=False)  # sent + received
    logins_max: int = Field(nullable=False)
    inbound_max: Optional[int] = Field(default=None)


ZOMBIE_DECISIONS = ("confirm", "dismiss")


class ZombieReview(Base, table=True):
    """A person's decision on a system's zombie verdict (审): confirm (it goes on the department's decommission
    list, 清) or dismiss, with the reason and the verdict and evidence as they were reviewed. Append-only: the
    latest counts while the verdict is the one reviewed (sentinel/zombie.py review_stands). `reviewer_role` is
    the reviewer's role when the review was made (migration 0014): whether a dismissal is the authority's must not
    change when the token is later revoked, deleted or its id reused."""

    __tablename__ = "zombie_reviews"
    __table_args__ = (
        Index("ix_zombie_reviews_system", "system_id", "id"),
        CheckConstraint("decision IN ('confirm', 'dismiss')", name="decision"),
        # the roles that may review (collector/routers/zombie.py); an admin's review is the authority's
        CheckConstraint("reviewer_role IN ('admin', 'dept_operator')", name="reviewer_role"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    decision: str = Field(sa_type=String(16), nullable=False)
    verdict: str = Field(sa_type=String(16), nullable=False)
    reason: str = Field(sa_type=Text, nullable=False)
    evidence: JSONObject = _json(nullable=False)  # the SystemVerdict reviewed
    reviewer: str = Field(sa_type=String(200), nullable=False)
    reviewer_role: str = Field(sa_type=String(16), nullable=False)
    at: datetime = _ts(nullable=False)



# ---- website monitoring (网站群监测, issue 17; migration 0011) --------------------------------------------

WEBSITE_ROUND_STATUSES = ("running", "succeeded", "failed")


class Website(Base, table=True):
    """A department's declared website (sentinel/websites/sites.py SiteDeclaration, kept as JSON) and when it is
    monitored. The declaration is the site's scope: a round fetches nothing that is not on it. `claimed_at` and
    `visit_claimed_at` are when a collector process last took a round or an availability visit (as
    scan_schedules.claimed_at: processes sharing the database run each once per interval)."""

    __tablename__ = "websites"
    __table_args__ = (
        CheckConstraint("interval_seconds >= 300", name="interval"),
        CheckConstraint("visit_seconds >= 60", name="visit_interval"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(128), unique=True, nullable=False)
    department_id: int = Field(foreign_key="departments.id", index=True, nullable=False)
    system_id: int = Field(foreign_key="systems.id", index=True, nullable=False)
    title: str = Field(default="", sa_type=String(200), nullable=False)
    declaration: JSONObject = _json(nullable=False)
    enabled: bool = Field(default=True, nullable=False)
    interval_seconds: int = Field(default=86400, nullable=False)  # a crawl round
    visit_seconds: int = Field(default=3600, nullable=False)  # an availability visit of the home page
    claimed_at: Optional[datetime] = _ts(default=None)
    visit_claimed_at: Optional[datetime] = _ts(default=None)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    updated_by: str = Field(sa_type=String(200), nullable=False)


class WebsiteRound(Base, table=True):
    """One monitoring round of a website: its crawl and every rule's verdict (sentinel/websites/judge.py).
    At most one per website is `running` (a partial unique index), whichever process starts it."""

    __tablename__ = "website_rounds"
    __table_args__ = (
        Index("uq_website_rounds_running", "website_id", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
        Index("ix_website_rounds_website", "website_id", "id"),
        Index("ix_website_rounds_department", "department_id", "id"),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    website_id: int = Field(foreign_key="websites.id", nullable=False, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    triggered_by: str = Field(sa_type=String(16), nullable=False)  # schedule | api | cli | test
    requested_by: str = Field(sa_type=String(200), nullable=False)
    status: str = Field(default="running", sa_type=String(16), nullable=False)
    runner: str = Field(sa_type=String(200), nullable=False)
    started_at: datetime = _ts(nullable=False)
    finished_at: Optional[datetime] = _ts(default=None)
    duration_ms: Optional[float] = Field(default=None)
    pages: int = Field(default=0, nullable=False)  # requests made (pages parsed and links checked)
    failed_rules: int = Field(default=0, nullable=False)
    vetoed: JSONArray = _json(default_factory=list, nullable=False)  # rule ids of failed 单项否决 rules
    summary: JSONObject = _json(default_factory=dict, nullable=False)
    results: JSONArray = _json(default_factory=list, nullable=False)  # every Verdict of the round
    error: Optional[str] = Field(default=None, sa_type=Text)


class WebsiteVisit(Base, table=True):
    """One availability visit of a website's home page (the site.unreachable rule counts them over a week)."""

    __tablename__ = "website_visits"
    __table_args__ = (Index("ix_website_visits_website", "website_id", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    website_id: int = Field(foreign_key="websites.id", nullable=False, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    at: datetime = _ts(nullable=False)
    ok: bool = Field(nullable=False)  # opened (an answer below 400) within the declaration's timeout
    elapsed_ms: float = Field(nullable=False)
    status_code: Optional[int] = Field(default=None)
    error: Optional[str] = Field(default=None, sa_type=String(500))


class WebsitePage(Base, table=True):
    """What the rounds saw of a declared page (home page, column, guarded page): when its entries last changed
    (the freshness rules) and its latest masked text (the snapshot a person may approve as its baseline)."""

    __tablename__ = "website_pages"
    __table_args__ = (UniqueConstraint("website_id", "url_sha256", name="uq_website_pages_url"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    website_id: int = Field(foreign_key="websites.id", nullable=False, ondelete="CASCADE")
    url: str = Field(sa_type=Text, nullable=False)
    url_sha256: str = Field(sa_type=String(64), nullable=False)
    fingerprint: Optional[str] = Field(default=None, sa_type=String(64))
    first_seen: datetime = _ts(nullable=False)
    changed_at: Optional[datetime] = _ts(default=None)
    last_seen: datetime = _ts(nullable=False)
    text: Optional[JSONArray] = _json(default=None)  # masked lines of the latest round
    text_sha256: Optional[str] = Field(default=None, sa_type=String(64))
    round_id: Optional[int] = Field(default=None, foreign_key="website_rounds.id")


class WebsiteBaseline(Base, table=True):
    """A page's text as a person reviewed and approved it (tamper detection). Append-only: the latest per
    page counts, earlier ones stay as its history."""

    __tablename__ = "website_baselines"
    __table_args__ = (Index("ix_website_baselines_page", "website_id", "url_sha256", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    website_id: int = Field(foreign_key="websites.id", nullable=False, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    url: str = Field(sa_type=Text, nullable=False)
    url_sha256: str = Field(sa_type=String(64), nullable=False)
    lines: JSONArray = _json(nullable=False)
    sha256: str = Field(sa_type=String(64), nullable=False)
    round_id: Optional[int] = Field(default=None, foreign_key="website_rounds.id")  # the snapshot's round
    reviewed_by: str = Field(sa_type=String(200), nullable=False)
    reviewed_at: datetime = _ts(nullable=False)
    note: str = Field(default="", sa_type=Text, nullable=False)


class WebsiteFinding(Base, table=True):
    """One episode of a website rule failing on one subject (the site, a column, a page, a link), from the round
    that first saw it to the one that judged it again and saw it fixed: the website part of the rectification
    trail, listed per department (整改跟踪, the 通报 loop). At most one open per website, rule and subject."""

    __tablename__ = "website_findings"
    __table_args__ = (
        Index("uq_website_findings_open", "website_id", "rule", "subject_sha256", unique=True,
              sqlite_where=text("resolved_at IS NULL"), postgresql_where=text("resolved_at IS NULL")),
        Index("ix_website_findings_department", "department_id", "resolved_at", "id"),
        Index("ix_website_findings_website", "website_id", "id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    website_id: int = Field(foreign_key="websites.id", nullable=False, ondelete="CASCADE")
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    rule: str = Field(sa_type=String(64), nullable=False)
    subject: str = Field(sa_type=Text, nullable=False)
    subject_sha256: str = Field(sa_type=String(64), nullable=False)
    kind: str = Field(sa_type=String(16), nullable=False)  # veto | deduct | security | practice
    severity: str = Field(sa_type=String(16), nullable=False)
    title: JSONObject = _json(nullable=False)
    source: str = Field(sa_type=Text, nullable=False)  # the rule it applies (sentinel/websites/rules.py)
    remediation: JSONObject = _json(nullable=False)
    observed: Any = _json(default=None, nullable=True)
    evidence: JSONArray = _json(default_factory=list, nullable=False)
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)
    resolved_at: Optional[datetime] = _ts(default=None)
    first_round_id: int = Field(foreign_key="website_rounds.id", nullable=False)
    last_round_id: int = Field(foreign_key="website_rounds.id", nullable=False)
    resolved_round_id: Optional[int] = Field(default=None, foreign_key="website_rounds.id")
    occurrences: int = Field(default=1, nullable=False)


# ---- the notification loop (通报 -> 整改 -> 反馈, issue 17; migration 0012) -----------------------------------

NOTICE_KINDS = ("periodic", "event")
NOTICE_ITEM_STATES = ("open", "fixed", "overdue")
NOTICE_SOURCES = ("finding", "service", "website")


class Notice(Base, table=True):
    """A 通报 to one department (sentinel/notices/loop.py): numbered per year (number_prefix〔year〕seq号),
    for a period or (kind `event`) on demand for a serious event, listing the department's open problems."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("year", "seq", name="uq_notices_year_seq"),
        Index("ix_notices_department", "department_id", "id"),
        CheckConstraint("kind IN ('periodic', 'event')", name="kind"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    year: int = Field(nullable=False)
    seq: int = Field(nullable=False)
    number: str = Field(sa_type=String(64), nullable=False)
    kind: str = Field(sa_type=String(16), nullable=False)
    authority: str = Field(sa_type=String(200), nullable=False)
    period_start: Optional[datetime] = _ts(default=None)
    period_end: Optional[datetime] = _ts(default=None)
    reason: str = Field(default="", sa_type=Text, nullable=False)  # the serious event of an `event` notice
    policy: JSONObject = _json(nullable=False)  # the deadline policy the notice was issued under
    issued_at: datetime = _ts(nullable=False)
    issued_by: str = Field(sa_type=String(200), nullable=False)


class NoticeItem(Base, table=True):
    """One problem as a notice lists it: its source row (a host/object finding, a service finding, a website
    finding; for a zombie-system problem, the system: migration 0013), grade and deadline, and what
    re-verification found (open, fixed, overdue). A problem still open at the next notice is listed again with
    the deadline it was first given (carried_from)."""

    __tablename__ = "notice_items"
    __table_args__ = (
        Index("ix_notice_items_notice", "notice_id", "id"),
        Index("ix_notice_items_source", "source", "source_id", "id"),
        Index("ix_notice_items_department", "department_id", "state"),
        CheckConstraint("state IN ('open', 'fixed', 'overdue')", name="state"),
        CheckConstraint("source IN ('finding', 'service', 'website', 'zombie')", name="source"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notices.id", nullable=False, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    system_id: int = Field(foreign_key="systems.id", nullable=False)
    seq: int = Field(nullable=False)  # its number in the notice (1, 2, ...)
    source: str = Field(sa_type=String(16), nullable=False)
    source_id: int = Field(nullable=False)
    grade: str = Field(sa_type=String(8), nullable=False)
    title: JSONObject = _json(nullable=False)
    location: str = Field(sa_type=Text, nullable=False)  # system, host / object, address or page
    basis: str = Field(default="", sa_type=Text, nullable=False)  # the clause or rule it fails
    remediation: JSONObject = _json(nullable=False)
    first_seen: datetime = _ts(nullable=False)
    deadline: datetime = _ts(nullable=False)
    state: str = Field(default="open", sa_type=String(16), nullable=False)
    verified_at: Optional[datetime] = _ts(default=None)
    fixed_at: Optional[datetime] = _ts(default=None)
    escalated_at: Optional[datetime] = _ts(default=None)
    carried_from: Optional[int] = Field(default=None, foreign_key="notice_items.id")


class NoticeAnswer(Base, table=True):
    """The department's answer (反馈) on a notice item: what was done. Append-only."""

    __tablename__ = "notice_answers"
    __table_args__ = (Index("ix_notice_answers_item", "item_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="notice_items.id", nullable=False, ondelete="CASCADE")
    department_id: int = Field(foreign_key="departments.id", nullable=False)
    text: str = Field(sa_type=Text, nullable=False)
    answered_by: str = Field(sa_type=String(200), nullable=False)
    at: datetime = _ts(nullable=False)


class NoticeAttachment(Base, table=True):
    """A file attached to an answer, kept with its SHA-256 as assessment attachments are."""

    __tablename__ = "notice_attachments"
    __table_args__ = (Index("ix_notice_attachments_answer", "answer_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="notice_answers.id", nullable=False, ondelete="CASCADE")
    name: str = Field(sa_type=String(200), nullable=False)
    sha256: str = Field(sa_type=String(64), nullable=False)
    size: int = Field(nullable=False)
    content: bytes = Field(sa_column=Column("content", LargeBinary, nullable=False))
    created_at: datetime = _ts(nullable=False)
