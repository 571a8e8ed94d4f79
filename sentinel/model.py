"""Typed models shared by every part: baseline specs, probe observations, results and reports.

These are the boundary types: checks/ and exporters/ import them, the store persists them, and the
JSON output of `sentinel check` is `HostReport.model_dump(mode="json")`.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    """Baseline input: unknown keys are errors, so a typo never silently disables a check."""

    model_config = ConfigDict(extra="forbid")


class Status(str, Enum):
    PASS = "pass"  # noqa: S105  a status name, not a password
    FAIL = "fail"
    ERROR = "error"  # could not be determined; never counts as pass
    NOT_APPLICABLE = "not_applicable"


class Verdict(str, Enum):
    """Item verdicts as written in a 测评记录 (assessment record)."""

    CONFORM = "符合"
    PARTIAL = "部分符合"
    NONCONFORM = "不符合"
    NOT_APPLICABLE = "不适用"
    PENDING = "待核查"  # manual item, or automated checks could not decide

    @property
    def en(self) -> str:
        return _VERDICT_EN[self]


_VERDICT_EN = {
    Verdict.CONFORM: "conform",
    Verdict.PARTIAL: "partially conform",
    Verdict.NONCONFORM: "nonconform",
    Verdict.NOT_APPLICABLE: "not applicable",
    Verdict.PENDING: "pending review",
}


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


OS_FAMILIES = ("debian", "rhel")


class Text(Strict):
    """A bilingual string; zh is the authoritative wording of the standard."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class Expect(Strict):
    """What the observed value must satisfy. Every operator given must hold (logical AND).

    Numeric operators coerce strings such as "90" or "0644" (octal when `octal: true`).
    `fields` applies nested expectations to keys of a mapping observation; `each` to every element of
    a list observation. A missing value (None) fails every operator except `absent` and `empty`.
    """

    eq: Any = None
    ne: Any = None
    lt: Optional[float] = None
    le: Optional[float] = None
    gt: Optional[float] = None
    ge: Optional[float] = None
    in_: Optional[list[Any]] = Field(default=None, alias="in")
    not_in: Optional[list[Any]] = None
    match: Optional[str] = None  # regex, searched in str(observed)
    not_match: Optional[str] = None
    contains: Optional[list[Any]] = None  # observed list/str contains all of these
    not_contains: Optional[list[Any]] = None
    empty: Optional[bool] = None  # observed is None/""/[]/{} (True) or not (False)
    absent: Optional[bool] = None  # observed is None (True) / is not None (False)
    mode_max: Optional[str] = None  # file mode bits must be a subset of this octal mask, e.g. "0644"
    fields: Optional[dict[str, Expect]] = None
    each: Optional[Expect] = None
    # What an `each` over an empty list means. Absence is not compliance by default: with nothing to
    # judge, `each` fails; a check where "none found" is compliant (no account with a password to age)
    # says `when_empty: pass`. Unset is "fail".
    when_empty: Optional[Literal["pass", "fail"]] = None
    # at least one of these holds (alternatives, e.g. local OR remote log retention)
    any_of: Optional[list[Expect]] = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def describe(self) -> str:
        parts = []
        for name, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if name == "fields":
                inner = ", ".join(f"{k}: {Expect.model_validate(v).describe()}" for k, v in value.items())
                parts.append(f"{{{inner}}}")
            elif name == "each":
                parts.append(f"each {Expect.model_validate(value).describe()}")
            elif name == "any_of":
                parts.append("any of (" + " | ".join(Expect.model_validate(v).describe() for v in value) + ")")
            elif isinstance(value, bool):
                parts.append(f"{name}={value}")
            elif isinstance(value, float) and value.is_integer():
                parts.append(f"{name} {int(value)}")
            else:
                parts.append(f"{name} {value!r}")
        return "; ".join(parts) or "any"


_CASE = r"^\d+(\.\d+)+$"


class Refs(Strict):
    """Where a check's rule comes from, as data rather than prose (docs/baselines.md, "refs").

    The GB/T 22239 clause and the GB/T 28448 test unit are not written here: they follow from the item's
    catalogue key at the baseline's level.
    """

    # rows of the 测评作业指导书 (3级系统国标通用, 2025) checks as docs/baseline-coverage.md lists them ("#20")
    guide: list[Annotated[str, Field(pattern=r"^#\d+$")]] = Field(default_factory=list)
    # cases of the 高风险判定指引 the check bears on (the case a failure is judged as stays in `high_risk`)
    high_risk: list[Annotated[str, Field(pattern=_CASE)]] = Field(default_factory=list)
    # CIS Benchmark recommendations, by title (numbers differ between distributions' benchmarks)
    cis: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # laws and regulations, e.g. 《网络安全法》第二十一条
    law: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


class CheckSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: Text
    probe: str
    params: dict[str, Any] = Field(default_factory=dict)
    expect: Expect = Field(default_factory=Expect)
    severity: Severity
    high_risk: Optional[str] = Field(
        default=None,
        description="case number in the 高风险判定指引 (e.g. 6.4.1.1) when a failure is a high-risk finding",
    )
    rationale: Text
    remediation: Text
    os_families: Optional[list[Literal["debian", "rhel"]]] = None  # default: the baseline's
    live_only: bool = False  # meaningless on an offline root (processes, sockets, runtime state)
    waiver: Optional[str] = None  # set by a site file: reason the check is waived
    # Advisory evidence: the check runs and is reported, but does not change its item's verdict, the scores
    # or the exit code (practice beyond the 作业指导书, or a restated default). The text says whose practice
    # it is (the source), in both languages; a site file makes it count again with `required: [check-id]`.
    advisory: Optional[Text] = None
    refs: Refs = Field(default_factory=Refs)


CATALOGUE_KEY = r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$"  # ces.auth.identify (sentinel/catalogue.py)


#: 测评对象 kinds a host baseline can judge: the OS, and the databases, middleware and web servers on the host
ObjectKind = Literal["os", "mysql", "postgresql", "redis", "nginx", "httpd", "tomcat"]


class ItemRef(Strict):
    """One item as a baseline file writes it: the catalogue key, and what sentinel checks for it.

    Clause, letter, text, weight and control point come from the catalogue for the baseline's level
    (sentinel/baseline.py fills them in), so a file never writes a number of the standard.
    """

    ref: str = Field(pattern=CATALOGUE_KEY)
    checks: list[CheckSpec] = Field(default_factory=list)
    notes: Optional[Text] = None  # how far the checks go, or why the item is left to the assessor


class BaselineFile(Strict):
    """A host baseline file without `extends:` (docs/baselines.md); `load_baseline` resolves it to `Baseline`."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    title: Text
    standard: Literal["GB/T 22239-2019"] = "GB/T 22239-2019"
    level: Literal[2, 3, 4]
    kind: Literal["host"] = "host"
    # The 测评对象 kind the baseline judges on a host: its operating system, or a database, middleware or web
    # server running there (each object gets its own report under its host, DESIGN.md section 10).
    object: ObjectKind = "os"
    os_families: list[Literal["debian", "rhel"]]
    # The parts of the standard the baseline answers for, by catalogue key: a class of the general part ("ces":
    # 安全计算环境), of the cloud extension ("cloud.ces"), or one control point ("ces.auth"). Every catalogue item
    # in them at the level is in the resolved baseline; those without checks are manual (待核查).
    covers: list[str] = Field(min_length=1)
    items: list[ItemRef] = Field(default_factory=list)


class ItemSpec(Strict):
    """A requirement item of a resolved baseline: the catalogue's item at the baseline's level, with its checks."""

    key: str = Field(pattern=CATALOGUE_KEY)  # level-independent catalogue key
    item: str = Field(pattern=r"^[a-z]$")  # the letter at this level
    text: Text
    weight: float = Field(gt=0, le=1)
    unit: Optional[str] = None  # GB/T 28448 test unit id at this level (L3-CES1-01)
    notes: Optional[Text] = None
    checks: list[CheckSpec] = Field(default_factory=list)


class ControlSpec(Strict):
    key: str = Field(pattern=CATALOGUE_KEY)
    clause: str = Field(pattern=r"^\d+(\.\d+)+$")  # the control point's number at this level
    name: Text
    items: list[ItemSpec] = Field(min_length=1)


class Baseline(Strict):
    """A resolved host baseline: every item of `covers` at `level`, numbered and worded by the catalogue."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    title: Text
    standard: str = "GB/T 22239-2019"
    level: int = Field(ge=2, le=4)
    kind: Literal["host"] = "host"
    object: ObjectKind = "os"
    os_families: list[Literal["debian", "rhel"]]
    covers: list[str] = Field(default_factory=list)
    controls: list[ControlSpec] = Field(min_length=1)
    source: Optional[str] = None  # file the baseline was loaded from (set by the loader)
    lineage: list[str] = Field(default_factory=list)  # ids this one extends, nearest first

    def iter_checks(self) -> Iterator[tuple[ControlSpec, ItemSpec, CheckSpec]]:
        for control in self.controls:
            for item in control.items:
                for check in item.checks:
                    yield control, item, check


# ---- results -------------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Evidence(BaseModel):
    """One thing a probe looked at: a file read, a command run, a live fact sampled."""

    source: str  # path, "cmd: argv...", "proc", "sockets", "sysctl:NAME"
    excerpt: Optional[str] = None  # the relevant lines or output, capped
    line: Optional[int] = None
    # When it was observed. Probes set it (sentinel.probe.evidence); a report that omits it keeps None, so
    # parsing a stored report never invents a time (evidence export and `sentinel verify` re-read bodies).
    at: Optional[datetime] = None


class Observation(BaseModel):
    """What a probe returns: the observed value and how it was observed."""

    observed: Any = None
    evidence: list[Evidence] = Field(default_factory=list)
    note: Optional[str] = None
    note_zh: Optional[str] = None  # the note in Chinese, when the probe words one


class CheckResult(BaseModel):
    check_id: str
    clause: str
    item: str
    # the catalogue key of the item (sentinel/catalogue.py: `ces.auth.identify`); clause and item are that key's
    # number at the report's level. None only in reports written before keys.
    key: Optional[str] = None
    title: Text
    status: Status
    severity: Severity
    high_risk: Optional[str] = None
    observed: Any = None
    expected: str  # the operator form (Expect.describe: "le 90"), for machines and the en output
    expected_zh: Optional[str] = None  # the same in Chinese words ("≤ 90"), for zh output (sentinel/expected_words.py)
    reason: Optional[str] = None  # why fail/error/not_applicable, in words (English)
    reason_zh: Optional[str] = None  # the same in Chinese, for zh output (None: only the English exists)
    evidence: list[Evidence] = Field(default_factory=list)
    remediation: Text
    waiver: Optional[str] = None
    advisory: Optional[Text] = None  # the baseline's reason the check is advisory (not counted; see scoring)
    duration_ms: float = 0.0
    # not_applicable only because the fact exists but this run could not see it: it needs the running host and
    # the view is an offline root, or it is the site's to declare and none is (hostview.NotDeclared); an item
    # judged by nothing else then waits for a person (待核查) instead of not applying (不适用)
    offline: bool = False


class ItemResult(BaseModel):
    clause: str
    item: str
    key: Optional[str] = None  # the item's catalogue key (see CheckResult.key)
    unit: Optional[str] = None  # GB/T 28448 test unit id at the report's level
    control: Text
    text: Text
    weight: float
    verdict: Verdict
    checks: list[str] = Field(default_factory=list)


class HostInfo(BaseModel):
    hostname: str
    os_id: str
    os_version: str
    os_name: str
    family: Optional[str] = None
    arch: str
    kernel: Optional[str] = None
    root: Optional[str] = None  # offline root directory, None for the live host


class BaselineRef(BaseModel):
    id: str
    version: str
    level: int
    title: Text
    lineage: list[str] = Field(default_factory=list)


class HighRiskFinding(BaseModel):
    check_id: str
    clause: str
    item: str
    case: str
    title: Text


class Summary(BaseModel):
    counts: dict[str, int]  # per Status value
    verdicts: dict[str, int]  # per Verdict value
    checks_total: int
    waived: int
    pass_rate: Optional[float]  # pass / (pass+fail+error); None when nothing was determinable
    score: Optional[float]  # weighted item score 0-100, see sentinel/scoring.py
    high_risk: int
    high_risk_findings: list[HighRiskFinding]
    conclusion: str  # 优/良/中/差
    conclusion_en: str
    risk_counts: dict[str, int]  # high / medium / low findings
    # advisory results (not waived) per Status value: inside `counts`, outside everything else; a report
    # stored before the field existed reads as none (the collector re-judges bodies by its own baseline)
    advisory: dict[str, int] = Field(default_factory=dict)


#: what an object instance may be called: printable, no control characters (a port, a socket or config path)
OBJECT_INSTANCE = r"^[^\x00-\x1f\x7f]{0,128}$"


class ObjectRef(BaseModel):
    """The 测评对象 a host report judges (DESIGN.md section 10): the host's OS, or one database, middleware or web
    server instance running on it. A report without one (made before objects) judges the host's OS."""

    model_config = ConfigDict(extra="forbid")

    kind: ObjectKind = "os"  # the baseline's `object`: the collector refuses a report whose kind is not its own
    # which instance of the kind on the host: "" for the OS; a port ("3306"), a socket or a config path
    # ("/etc/nginx/nginx.conf") for the others. (host, baseline, instance) is one object in the roll-up.
    instance: str = Field(default="", pattern=OBJECT_INSTANCE)
    # the 测评对象 name an assessor writes in the record: "db01 MariaDB 10.11 (3306)"; "" lets surfaces name it
    name: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    version: Optional[str] = Field(default=None, max_length=64)  # the product's version, as discovery found it
    port: Optional[int] = Field(default=None, ge=1, le=65535)  # the port it listens on, when known
    config: Optional[str] = Field(default=None, max_length=4096)  # its main configuration file or directory

    @field_validator("instance")
    @classmethod
    def _instance(cls, v: str) -> str:
        return v.strip()


def object_of(report: HostReport) -> ObjectRef:
    """The report's object; the host's OS for reports made before objects."""
    return report.object if report.object is not None else ObjectRef()


class HostReport(BaseModel):
    schema_version: int = 1
    report_id: Optional[str] = None
    generated_at: datetime = Field(default_factory=utcnow)
    duration_ms: float = 0.0
    baseline: BaselineRef
    host: HostInfo
    summary: Summary
    items: list[ItemResult]
    results: list[CheckResult]
    # the 测评对象 judged (None in reports made before objects: the host's OS)
    object: Optional[ObjectRef] = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, v: int) -> int:
        if v != 1:
            raise ValueError(f"unsupported report schema_version {v}")
        return v
