"""Everything an evidence export holds, as typed models: the seam between the store and the exporters.

`SystemEvidence` is built from the store (`collect.py`) or straight from host reports (`assemble.py`, for
tests and offline use); every exporter (XLSX, HTML, JSON, bundle) reads only this model. Its JSON form is
`evidence.json` inside a bundle, and `verify.py` reads it back from there.

Times are UTC-aware. Bilingual texts keep the standard's Chinese wording authoritative.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Final, Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ..dr import SystemDR
from ..model import (
    BaselineRef,
    CheckResult,
    Evidence,
    HostInfo,
    ItemResult,
    ObjectKind,
    Severity,
    Summary,
    Text,
    Verdict,
)
from ..store.domestic import DomesticEvidence
from ..zombie import SystemVerdict

SCHEMA_VERSION = 1
ZERO_HASH = "0" * 64  # chain anchor of a system's first run (same as sentinel.store.models.ZERO_HASH)
HEX64 = r"^[0-9a-f]{64}$"
ITEM_REF = re.compile(r"^(\d+(?:\.\d+)+)\.([a-z])$")  # 8.1.4.11.a -> ("8.1.4.11", "a")

RiskLevel = Literal["high", "medium", "low"]


class EvidenceError(Exception):
    """Evidence could not be assembled or exported; the message names what and where."""


def parse_item_ref(ref: str) -> tuple[str, str]:
    """`8.1.4.11.a` -> (`8.1.4.11`, `a`); ValueError naming the expected form otherwise."""
    m = ITEM_REF.match(ref.strip())
    if not m:
        raise ValueError(f"item {ref!r}: expected a clause and an item letter, e.g. 8.1.4.11.a")
    return m.group(1), m.group(2)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SystemRef(_Model):
    """The graded system (定级对象): level = max(S, A); label such as S3A2."""

    name: str
    title: str = ""
    department: str
    department_title: str = ""
    level: int = Field(ge=1, le=5)
    s_grade: Optional[int] = Field(default=None, ge=1, le=5)
    a_grade: Optional[int] = Field(default=None, ge=1, le=5)
    label: str = ""
    owner: str = ""
    zones: list[str] = Field(default_factory=list)


class TimeRange(_Model):
    start: Optional[AwareDatetime] = None  # None: from the system's first run
    end: AwareDatetime  # the export time when no --to was given


class CollectorIdentity(_Model):
    """Who produced and signed the export: the collector's Ed25519 public key and its fingerprint."""

    name: str
    public_key: str  # base64 of the raw 32-byte Ed25519 key
    fingerprint: str = Field(pattern=HEX64)  # sha256 of the raw public key bytes, hex
    software: str  # e.g. "sentinel 0.1.0"


class AttachmentRef(_Model):
    name: str
    sha256: str = Field(pattern=HEX64)
    size: int = Field(ge=0)
    path: str  # inside a bundle

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or "/" in v or "\\" in v or v in (".", "..") or "\x00" in v:
            raise ValueError(f"attachment name {v!r}: must be a plain file name")
        return v


class ManualAssessmentRecord(_Model):
    """A person's verdict on a requirement item of the system (访谈, 文档审查 ...)."""

    id: Optional[int] = None
    clause: str
    item: str
    verdict: Verdict
    note: str = ""
    assessor: str
    at: AwareDatetime
    attachments: list[AttachmentRef] = Field(default_factory=list)
    effective: bool = True  # the latest one for its item as of the range end (earlier ones are history)


class SectionRecord(_Model):
    """One chapter of the report that a person writes (sentinel/evidence/sections.py): its latest text as of
    the range end, or None (待填写) while nobody has written it."""

    key: str
    number: str
    title: Text
    text: Optional[str] = None
    author: Optional[str] = None
    at: Optional[AwareDatetime] = None


class ManualRef(_Model):
    assessment_id: Optional[int] = None
    assessor: str
    at: AwareDatetime
    note: str = ""


class ItemRecord(ItemResult):
    """One row of a 测评记录表: the item with its effective verdict and where that verdict came from.

    `verdict` is what counts (and what scoring sees); `automated` is what the checks alone said. A manual
    assessment decides an item the checks left 待核查 (manual items, or checks that could not determine).
    """

    automated: Verdict
    source: Literal["automated", "manual"] = "automated"
    manual: Optional[ManualRef] = None


class ReportEvidence(_Model):
    run_id: Optional[int] = None  # a host report: its run in the hash chain
    scan_run_id: Optional[int] = None  # a network scan: made by the collector itself, so not in the chain
    report_id: str
    received_at: Optional[AwareDatetime] = None
    generated_at: datetime
    baseline: BaselineRef
    items: list[ItemRecord]
    results: list[CheckResult]
    summary: Summary  # after manual verdicts, computed with sentinel.scoring
    automated_summary: Summary  # as the host reported it


class ObjectEvidence(_Model):
    """A 测评对象: a host's OS, or a database, middleware or web server on a host (each its latest report per
    baseline in range, kind "host"), or the network (its latest full scan, kind "zone")."""

    kind: Literal["host", "zone"]
    name: str  # the 测评对象 name: the host's for its OS, "db01 MariaDB 10.11 (3306)" for a database on it
    # what a "host" object is (sentinel.model.ObjectKind: os, mysql, ...); None for zones and in bundles made
    # before objects (the host's OS)
    object: Optional[ObjectKind] = None
    instance: str = ""  # which one of its kind on the host ("" for the OS)
    version: Optional[str] = None  # a database's, middleware's or web server's version as discovery found it
    hostname: Optional[str] = None  # the host it runs on (kind "host")
    zone: Optional[str] = None
    host: Optional[HostInfo] = None
    addresses: list[str] = Field(default_factory=list)
    reports: list[ReportEvidence] = Field(default_factory=list)


class FindingRecord(_Model):
    """One episode of a check failing on an object: the rectification trail (整改跟踪)."""

    id: Optional[int] = None
    object: str
    check_id: str
    clause: str
    item: str
    title: Text
    severity: Severity
    high_risk: Optional[str] = None
    risk: RiskLevel
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    resolved_at: Optional[AwareDatetime] = None
    resolution: Optional[Literal["fixed", "waived", "advisory"]] = None  # advisory: the check became advisory
    occurrences: int = 1
    remediation: Text
    before: Optional[CheckResult] = None  # the result that first showed it failing
    after: Optional[CheckResult] = None  # the result that showed it fixed
    first_run_id: Optional[int] = None
    resolved_run_id: Optional[int] = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


class ServiceFindingRecord(_Model):
    """One episode of a service open on a scanned address, from the scan that first found it until the one
    that found it closed: the network's rectification trail. A port that closes and opens again is a new
    episode. What it shows (version, failing checks, evidence) is from the last scan that saw it open."""

    id: Optional[int] = None
    host: str  # the address scanned
    hostname: Optional[str] = None  # the system's registered host with that address, if any
    port: int
    proto: Literal["tcp", "udp"]
    service: Optional[str] = None
    version: Optional[str] = None  # product and version as the scan saw them
    zone: Optional[str] = None
    forbidden: bool = False  # a port the zone baseline forbids
    high_risk: list[str] = Field(default_factory=list)  # 高风险判定指引 cases of its failing checks
    risk: Optional[RiskLevel] = None  # the highest risk of its failing checks; None: no check failed
    problems: list[CheckResult] = Field(default_factory=list)  # its failing checks
    evidence: list[Evidence] = Field(default_factory=list)
    banner: Optional[str] = None
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    closed_at: Optional[AwareDatetime] = None  # the scan that found it closed; None: open at the range end
    first_scan_id: Optional[int] = None
    last_scan_id: Optional[int] = None
    closed_scan_id: Optional[int] = None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}/{self.proto}"


class ScorePoint(_Model):
    at: AwareDatetime
    object: Optional[str] = None  # None: the system roll-up
    score: Optional[float] = None
    pass_rate: Optional[float] = None
    conclusion: str


class ChainEntry(_Model):
    """One run in the system's hash chain: chain_hash = sha256(prev_chain_hash + digest), hex strings."""

    run_id: int
    report_id: str
    object: str
    received_at: AwareDatetime
    digest: str = Field(pattern=HEX64)  # sha256 of the raw report body file
    prev_chain_hash: str = Field(pattern=HEX64)
    chain_hash: str = Field(pattern=HEX64)
    body: Optional[str] = None  # path of the raw report body (canonical JSON) inside a bundle
    # The agent's signed envelope as it arrived, when the collector kept it: proves the body came from
    # that agent (its Ed25519 key), not only from the collector.
    agent_id: Optional[str] = None
    agent_key: Optional[str] = None  # base64 raw Ed25519 public key the agent enrolled with
    envelope: Optional[str] = None  # path inside a bundle
    signature: Optional[str] = None  # base64 Ed25519 signature of the envelope bytes


class RunChain(_Model):
    anchor: str = Field(default=ZERO_HASH, pattern=HEX64)  # prev_chain_hash of the first entry
    head: str = Field(default=ZERO_HASH, pattern=HEX64)  # the system's chain head when exported
    entries: list[ChainEntry] = Field(default_factory=list)


class SystemEvidence(_Model):
    schema_version: int = SCHEMA_VERSION
    generated_at: AwareDatetime
    system: SystemRef
    range: TimeRange
    collector: CollectorIdentity
    baselines: list[BaselineRef] = Field(default_factory=list)
    objects: list[ObjectEvidence] = Field(default_factory=list)
    manual_assessments: list[ManualAssessmentRecord] = Field(default_factory=list)
    findings: list[FindingRecord] = Field(default_factory=list)
    service_findings: list[ServiceFindingRecord] = Field(default_factory=list)
    score_history: list[ScorePoint] = Field(default_factory=list)
    chain: RunChain = Field(default_factory=RunChain)
    # The system roll-up (sentinel.scoring.system_items over every object's record, manual verdicts applied)
    # and its summary: the figures of the collector's system assessment, as of the range end.
    items: list[ItemRecord] = Field(default_factory=list)
    summary: Summary
    notes: list[str] = Field(default_factory=list)  # what the export could not include, and why
    # Every chapter of the 2021 template that a person writes, in template order (empty in bundles made
    # before issue 18: exporters then show each as 待填写).
    sections: list[SectionRecord] = Field(default_factory=list)
    # 僵尸信息系统 (docs/zombie.md): the system's verdict with its hosts' signals and facts and the review standing
    # on it, as judged when the export was made (None in exports that end before then, and in older bundles)
    zombie: Optional[SystemVerdict] = None
    # 国产化 (docs/domestic.md): the system's rates and its hosts' recognised components, as of the export (None in
    # exports that end before then, and in older bundles)
    domestic: Optional[DomesticEvidence] = None
    # 数据备份恢复 (docs/backups.md): the system's verdict against its RPO with its hosts' copies, replication and the
    # stored results it is judged from, as of the export (None in exports that end before then, and older bundles)
    dr: Optional[SystemDR] = None

    # Raw bytes travel beside the model, never inside evidence.json: report bodies by bundle path (their
    # sha256 is the chain digest) and manual-assessment attachments by bundle path.
    raw_reports: dict[str, bytes] = Field(default_factory=dict, exclude=True)
    attachment_blobs: dict[str, bytes] = Field(default_factory=dict, exclude=True)

    @field_validator("schema_version")
    @classmethod
    def _known(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported evidence schema_version {v} (this sentinel reads {SCHEMA_VERSION})")
        return v

    def reports(self) -> Iterator[tuple[ObjectEvidence, ReportEvidence]]:
        """(object, report) pairs in object order."""
        for obj in self.objects:
            for rep in obj.reports:
                yield obj, rep


# ---- bundle manifest -------------------------------------------------------------------------------

# Final keeps the literal type, so it can default the Manifest.format Literal field.
BUNDLE_FORMAT: Final = "sentinel-evidence-bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
# The same Ed25519 signature as 64 raw bytes, the form `openssl pkeyutl -verify -rawin -sigfile` reads.
SIGNATURE_RAW = "manifest.sig.bin"
# An OpenSSH signature (SSHSIG, namespace sentinel-evidence) of manifest.json, for `ssh-keygen -Y verify`.
SIGNATURE_SSH = "manifest.sshsig"
EVIDENCE_JSON = "evidence.json"


class BundleFile(_Model):
    path: str
    sha256: str = Field(pattern=HEX64)
    size: int = Field(ge=0)


class ChainSummary(_Model):
    anchor: str = Field(pattern=HEX64)
    head: str = Field(pattern=HEX64)
    runs: int = Field(ge=0)


class Manifest(_Model):
    """manifest.json: what the bundle holds and its hashes; `manifest.sig` signs its exact bytes."""

    format: Literal["sentinel-evidence-bundle"] = BUNDLE_FORMAT
    version: int = 1
    generated_at: AwareDatetime
    system: SystemRef
    range: TimeRange
    collector: CollectorIdentity
    baselines: list[BaselineRef]
    chain: ChainSummary
    lang: Literal["zh", "en"]
    files: list[BundleFile]
    notes: list[str] = Field(default_factory=list)
