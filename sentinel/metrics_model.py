"""The metrics snapshot: everything `/metrics` shows, read from stored state in one go.

The collector builds a `MetricsSnapshot` from its store (see `sentinel/store/snapshot.py`) and
`exporters/prometheus.py` renders it; a scrape never runs a check. Keeping this model apart from the store
lets the renderer, the agent-side exporter and the tests share one typed contract.

Units: scores are 0-100, ratios 0-1, durations seconds, times timezone-aware datetimes (rendered as Unix
seconds). Every name that becomes a label value is checked here so that a bad value fails when the
snapshot is built, naming the system or host, instead of at scrape time.
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .model import Severity, Status
from .scoring import CONCLUSION_EN

#: conclusions of sentinel/scoring.py (优/良/中/差/待定) -> the ASCII label values the metrics use
CONCLUSIONS = dict(CONCLUSION_EN)
CONCLUSION_VALUES = tuple(CONCLUSIONS.values())

#: default histogram buckets for check durations, seconds: most probes read a file (ms), some run commands
CHECK_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

_LABEL_MAX = 200  # longer label values are a sign of a wrong field being mapped


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: a sentinel release as an agent names it in its inventory (sentinel.__version__; PEP 440 and local tags
#: fit): the `agent_version` label of sentinel_host_info, so short and printable. The collector's wire model
#: (InventoryBody) refuses anything else.
AGENT_VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"


def _label(value: str, what: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value) > _LABEL_MAX:
        raise ValueError(f"{what} is longer than {_LABEL_MAX} characters: {value[:40]!r}...")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} contains control characters: {value!r}")
    return value


def _aware(value: Optional[datetime], what: str) -> Optional[datetime]:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value


def _severity_counts(value: dict[Severity, int]) -> dict[Severity, int]:
    # every severity is present so a series drops to 0 instead of vanishing when the last failure is fixed
    return {sev: int(value.get(sev, 0)) for sev in Severity}


class CheckSeries(_Model):
    """One check's latest result on one host; rendered only when per-check series are enabled."""

    check_id: str
    clause: str
    severity: Severity
    status: Status
    duration_seconds: Optional[float] = Field(default=None, ge=0)
    # an advisory check (the baseline marks it evidence only, issue 14) decides no verdict: its `fail` is
    # shown but is no failure, so the series carries the mark for queries to leave it out
    advisory: bool = False

    @field_validator("check_id", "clause")
    @classmethod
    def _labels(cls, v: str, info) -> str:
        return _label(v, info.field_name)


class _Scored(_Model):
    """The figures a host and a system both carry."""

    score: Optional[float] = Field(default=None, ge=0, le=100)
    pass_ratio: Optional[float] = Field(default=None, ge=0, le=1)
    conclusion: Optional[str] = None  # 优/良/中/差/待定 or the English value
    failing_checks: dict[Severity, int] = Field(default_factory=dict)
    high_risk_findings: int = Field(default=0, ge=0)

    @field_validator("conclusion")
    @classmethod
    def _conclusion(cls, v: Optional[str]) -> Optional[str]:
        return normalise_conclusion(v)

    @field_validator("failing_checks")
    @classmethod
    def _failing(cls, v: dict[Severity, int]) -> dict[Severity, int]:
        if any(n < 0 for n in v.values()):
            raise ValueError("failing check counts must be >= 0")
        return _severity_counts(v)


#: 测评对象 per host shown as object series: discovery finds a handful per host (sentinel/discovery.py); a host
#: reporting more is refused when the snapshot is built rather than multiplying the series without bound
MAX_OBJECTS_PER_HOST = 32


class ObjectMetrics(_Scored):
    """A 测评对象 on a host besides its OS (a database, middleware or web server instance): its latest run's record."""

    kind: str  # sentinel.model.ObjectKind other than "os"
    instance: str = ""  # port, socket or configuration path (sentinel.model.ObjectRef.instance)
    name: str = ""  # its 测评对象 name
    baseline: Optional[str] = None
    run_duration_seconds: Optional[float] = Field(default=None, ge=0)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z]{2,16}", v) or v == "os":
            raise ValueError(f"object kind {v!r}: expected a database, middleware or web server kind (mysql, ...)")
        return v

    @field_validator("instance", "name")
    @classmethod
    def _text(cls, v: str, info) -> str:
        if len(v) > _LABEL_MAX or any(ord(c) < 32 for c in v):
            raise ValueError(f"object {info.field_name} {v[:40]!r}: at most {_LABEL_MAX} printable characters")
        return v


class HostMetrics(_Scored):
    name: str
    last_report: Optional[datetime] = None
    up: bool = False  # the collector's verdict: the agent reported within its expected interval
    # zombie-system detection (sentinel/zombie.py): the host's verdict and idle days in the window (None: unknown)
    zombie_verdict: Optional[Literal["in_use", "suspect", "zombie", "unknown"]] = None
    idle_days: Optional[int] = Field(default=None, ge=0)
    run_duration_seconds: Optional[float] = Field(default=None, ge=0)
    os: Optional[str] = None
    baseline: Optional[str] = None
    agent_version: Optional[str] = Field(default=None, pattern=AGENT_VERSION_PATTERN)
    checks: list[CheckSeries] = Field(default_factory=list)
    # the host's other 测评对象: the host's own figures above are its OS's record
    objects: list[ObjectMetrics] = Field(default_factory=list, max_length=MAX_OBJECTS_PER_HOST)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "host name")

    @field_validator("last_report")
    @classmethod
    def _ts(cls, v: Optional[datetime]) -> Optional[datetime]:
        return _aware(v, "last_report")

    @model_validator(mode="after")
    def _unique_checks(self) -> HostMetrics:
        seen: set[str] = set()
        for c in self.checks:
            if c.check_id in seen:
                raise ValueError(f"host {self.name!r}: check {c.check_id!r} listed twice")
            seen.add(c.check_id)
        objects: set[tuple[str, str]] = set()
        for o in self.objects:
            if (o.kind, o.instance) in objects:
                raise ValueError(f"host {self.name!r}: object {o.kind}:{o.instance} listed twice")
            objects.add((o.kind, o.instance))
        return self


class ExposedService(_Model):
    """A listening service that the system's policy forbids (e.g. telnet), as found by a scan."""

    host: str
    port: int = Field(ge=0, le=65535)
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    service: str = ""

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return _label(v, "service host")


class CertificateMetrics(_Model):
    """A TLS certificate seen on an endpoint in the system's scope."""

    host: str
    port: int = Field(ge=1, le=65535)
    not_after: datetime

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return _label(v, "certificate host")

    @field_validator("not_after")
    @classmethod
    def _ts(cls, v: datetime) -> datetime:
        _aware(v, "not_after")
        return v


class ScanMetrics(_Model):
    last_duration_seconds: Optional[float] = Field(default=None, ge=0)
    last_run: Optional[datetime] = None
    last_success: Optional[datetime] = None
    last_run_success: Optional[bool] = None
    failures_total: int = Field(default=0, ge=0)  # cumulative: failed scan runs ever stored

    @field_validator("last_run", "last_success")
    @classmethod
    def _ts(cls, v: Optional[datetime], info) -> Optional[datetime]:
        return _aware(v, info.field_name)


#: zombie-system verdicts (sentinel.zombie.Verdict) and review decisions, as label values
ZOMBIE_VERDICTS = ("in_use", "suspect", "zombie", "unknown")
ZOMBIE_REVIEWS = ("confirmed", "dismissed")


class DomesticMetrics(_Model):
    """A system's 国产化 counts (docs/domestic.md), summed by department or cloud in queries: per category the hosts
    that show it and those whose components of it are all domestic, the components by origin, and the hosts per
    国密 TLS state."""

    hosts: dict[str, int] = Field(default_factory=dict)
    domestic_hosts: dict[str, int] = Field(default_factory=dict)
    components: dict[str, dict[str, int]] = Field(default_factory=dict)  # category -> origin -> count
    gm_tls: dict[str, int] = Field(default_factory=dict)


class ZombieMetrics(_Model):
    """A system's zombie verdict and the review that stands on it (None: none, or it lapsed)."""

    verdict: Literal["in_use", "suspect", "zombie", "unknown"]
    review: Optional[Literal["confirmed", "dismissed"]] = None


#: disaster recovery (sentinel/dr.py): the RPO verdicts and the replication states counted, as label values
DR_VERDICTS = ("meets", "misses", "unknown")
REPLICATION_STATES = ("streaming", "broken", "unknown")


class DRMetrics(_Model):
    """A system's disaster-recovery figures (docs/backups.md): its RPO verdict, the RPO, the stalest host's newest
    local and off-site backup (timestamps, so the age is `time() - ...` in PromQL and a rendering never ages),
    the fewest copies and off-site copies a host has, and its hosts by replication state with the largest lag.
    None where no host shows the figure."""

    verdict: Literal["meets", "misses", "unknown"]
    rpo_seconds: Optional[float] = Field(default=None, ge=0)
    newest_local: Optional[datetime] = None
    newest_offsite: Optional[datetime] = None
    copies: Optional[int] = Field(default=None, ge=0)
    offsite_copies: Optional[int] = Field(default=None, ge=0)
    replication_hosts: dict[str, int] = Field(default_factory=dict)  # REPLICATION_STATES -> hosts
    replication_lag_seconds: Optional[float] = Field(default=None, ge=0)

    @field_validator("newest_local", "newest_offsite")
    @classmethod
    def _ts(cls, v: Optional[datetime], info) -> Optional[datetime]:
        return _aware(v, info.field_name)

    @field_validator("replication_hosts")
    @classmethod
    def _states(cls, v: dict[str, int]) -> dict[str, int]:
        if set(v) - set(REPLICATION_STATES) or any(n < 0 for n in v.values()):
            raise ValueError(f"replication_hosts counts states {', '.join(REPLICATION_STATES)} (>= 0), got {v}")
        return v


WEBSITE_FINDING_KINDS = ("veto", "deduct", "security", "practice")
NOTICE_STATES = ("open", "fixed", "overdue")  # sentinel/notices: a notified problem's verified state


class WebsiteMetrics(_Model):
    """A declared website of the system (sentinel/websites): its latest succeeded round, open findings by the
    rules' kind, and the availability visits of the rule's window (None: not known yet)."""

    name: str
    url: str
    vetoed: Optional[bool] = None  # the latest round failed a 单项否决 rule; None: no round yet
    last_round: Optional[datetime] = None
    last_round_duration_seconds: Optional[float] = Field(default=None, ge=0)
    availability_ratio: Optional[float] = Field(default=None, ge=0, le=1)
    open_findings: dict[str, int] = Field(default_factory=dict)  # WEBSITE_FINDING_KINDS -> count
    certificates: list[tuple[str, datetime]] = Field(default_factory=list)  # (origin, notAfter) of the latest round

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "website name")


class SystemMetrics(_Scored):
    department: str
    name: str
    level: Optional[int] = Field(default=None, ge=1, le=5)  # 等保 level; None when unknown (agent-side exporter)
    label: str = ""  # S/A grade such as S3A3 (or S3A3G3); "" when not recorded
    failing_checks_by_clause: dict[str, int] = Field(default_factory=dict)
    findings_open: int = Field(default=0, ge=0)
    findings_fixed: int = Field(default=0, ge=0)
    # None: no network scan data for the system (not the same as none open)
    services_open: Optional[int] = Field(default=None, ge=0)
    services_forbidden: Optional[int] = Field(default=None, ge=0)
    forbidden_services: list[ExposedService] = Field(default_factory=list)
    certificates: list[CertificateMetrics] = Field(default_factory=list)
    scan: Optional[ScanMetrics] = None
    zombie: Optional[ZombieMetrics] = None  # None on the agent-side exporter
    domestic: Optional[DomesticMetrics] = None  # None on the agent-side exporter
    dr: Optional[DRMetrics] = None  # None on the agent-side exporter
    websites: list[WebsiteMetrics] = Field(default_factory=list)
    # the 通报 loop (sentinel/notices): notified problems by state (open, fixed, overdue), each problem counted once
    # by its latest notice item; None on the agent-side exporter
    notice_problems: Optional[dict[str, int]] = None  # NOTICE_STATES -> count
    hosts: list[HostMetrics] = Field(default_factory=list)
    #: False on the agent-side exporter, which sees one host and so must not claim system-wide figures
    system_wide: bool = True

    @field_validator("department")
    @classmethod
    def _dept(cls, v: str) -> str:
        return _label(v, "department")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "system name")

    @field_validator("notice_problems")
    @classmethod
    def _notice_states(cls, v: Optional[dict[str, int]]) -> Optional[dict[str, int]]:
        # the label's values are the three states only (bounded cardinality)
        if v is not None and (set(v) - set(NOTICE_STATES) or any(n < 0 for n in v.values())):
            raise ValueError(f"notice_problems counts states {', '.join(NOTICE_STATES)} (>= 0), got {v}")
        return v

    @field_validator("label")
    @classmethod
    def _grade(cls, v: str) -> str:

        if v and not re.fullmatch(r"S[1-5]A[1-5](G[1-5])?", v):
            raise ValueError(f"label must look like S3A3 or S3A3G3, got {v!r}")
        return v

    @field_validator("failing_checks_by_clause")
    @classmethod
    def _clauses(cls, v: dict[str, int]) -> dict[str, int]:

        for clause, n in v.items():
            # clause numbers of GB/T 22239 only: this label's cardinality is bounded by the standard
            if not re.fullmatch(r"\d+(\.\d+)+", clause):
                raise ValueError(f"control point {clause!r} is not a clause number such as 8.1.4.1")
            if n < 0:
                raise ValueError(f"failing checks for {clause} must be >= 0")
        return v

    @model_validator(mode="after")
    def _unique_hosts(self) -> SystemMetrics:
        seen: set[str] = set()
        for h in self.hosts:
            if h.name in seen:
                raise ValueError(f"system {self.name!r}: host {h.name!r} listed twice")
            seen.add(h.name)
        if (self.services_forbidden or 0) > (self.services_open or 0):
            raise ValueError(f"system {self.name!r}: services_forbidden ({self.services_forbidden}) exceeds "
                             f"services_open ({self.services_open}); forbidden services are open ones")
        return self


class ProbeDurations(_Model):
    """Cumulative histogram of check durations for one probe type (monotonic, like any histogram).

    `bucket_counts[i]` counts observations <= `buckets[i]`; `count` includes those above the last bucket.
    """

    probe: str
    buckets: tuple[float, ...] = CHECK_DURATION_BUCKETS
    bucket_counts: tuple[int, ...]
    count: int = Field(ge=0)
    sum_seconds: float = Field(ge=0)

    @field_validator("probe")
    @classmethod
    def _probe(cls, v: str) -> str:
        return _label(v, "probe")

    @model_validator(mode="after")
    def _shape(self) -> ProbeDurations:
        if len(self.buckets) != len(self.bucket_counts):
            raise ValueError(f"probe {self.probe!r}: {len(self.buckets)} buckets but {len(self.bucket_counts)} counts")
        if list(self.buckets) != sorted(set(self.buckets)) or any(math.isinf(b) for b in self.buckets):
            raise ValueError(f"probe {self.probe!r}: buckets must be finite and strictly increasing")
        counts = list(self.bucket_counts) + [self.count]
        if any(a > b for a, b in zip(counts, counts[1:], strict=False)) or min(counts, default=0) < 0:
            raise ValueError(f"probe {self.probe!r}: bucket counts must be cumulative (non-decreasing up to count)")
        return self

    @classmethod
    def from_samples(cls, probe: str, samples: list[float],
                     buckets: tuple[float, ...] = CHECK_DURATION_BUCKETS) -> ProbeDurations:
        counts = tuple(sum(1 for s in samples if s <= b) for b in buckets)
        return cls(probe=probe, buckets=buckets, bucket_counts=counts, count=len(samples),
                   sum_seconds=float(sum(samples)))


class IngestMetrics(_Model):
    """Collector counters since it started: reports accepted per kind, rejections per reason."""

    reports_total: dict[str, int] = Field(default_factory=dict)
    errors_total: dict[str, int] = Field(default_factory=dict)

    @field_validator("reports_total", "errors_total")
    @classmethod
    def _keys(cls, v: dict[str, int], info) -> dict[str, int]:

        if len(v) > 32:
            raise ValueError(f"{info.field_name}: at most 32 distinct kinds/reasons (got {len(v)}): keep them an enum")
        for key, n in v.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", key):
                raise ValueError(f"{info.field_name}: {key!r} is not a short snake_case word")
            if n < 0:
                raise ValueError(f"{info.field_name}[{key}] must be >= 0")
        return v


class MetricsSnapshot(_Model):
    generated_at: datetime
    systems: list[SystemMetrics] = Field(default_factory=list)
    check_durations: list[ProbeDurations] = Field(default_factory=list)
    ingest: Optional[IngestMetrics] = None  # None on the agent-side exporter

    @field_validator("generated_at")
    @classmethod
    def _ts(cls, v: datetime) -> datetime:
        _aware(v, "generated_at")
        return v

    @model_validator(mode="after")
    def _unique(self) -> MetricsSnapshot:
        seen: set[tuple[str, str]] = set()
        for s in self.systems:
            key = (s.department, s.name)
            if key in seen:
                raise ValueError(f"system {s.name!r} of department {s.department!r} listed twice")
            seen.add(key)
        probes = [p.probe for p in self.check_durations]
        if len(probes) != len(set(probes)):
            raise ValueError("check_durations lists a probe twice")
        return self


def normalise_conclusion(value: Optional[str]) -> Optional[str]:
    """优/良/中/差/待定 (or their English label values) -> the English label value."""
    if value is None:
        return None
    if value in CONCLUSIONS:
        return CONCLUSIONS[value]
    if value in CONCLUSION_VALUES:
        return value
    raise ValueError(f"conclusion must be one of {', '.join(CONCLUSIONS)} (or {', '.join(CONCLUSION_VALUES)}), "
                     f"got {value!r}")
