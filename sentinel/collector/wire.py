"""The agent side of the API as typed models (docs/wire.md is the prose version of this file)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ..domestic import DomesticIn
from ..metrics_model import AGENT_VERSION_PATTERN
from ..model import HostInfo
from ..upkeep_facts import INT32_MAX, UpkeepIn

REPORT_ID_PATTERN = r"^[0-9A-Za-z_-]{1,64}$"
ID_PATTERN = r"^[0-9A-Za-z_-]{1,64}$"


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


class NoNul(BaseModel):
    """Input whose strings go to the database: NUL characters (which PostgreSQL cannot store) are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError("strings must not contain NUL characters")
        return data


class EnrollRequest(NoNul):

    token: str = Field(min_length=1, max_length=200)
    public_key: str = Field(min_length=1, max_length=100, description="base64 of the raw 32-byte Ed25519 key")
    hostname: str = Field(min_length=1, max_length=255)
    os: HostInfo
    proof: str = Field(min_length=1, max_length=100,
                       description="base64 Ed25519 signature, by the key being registered, of the enrollment "
                                   "challenge (docs/wire.md): proof that the agent holds the private key")


class EnrollInfo(BaseModel):
    """GET /api/v1/agent/enroll: what an agent needs before it enrolls (the proof binds this key)."""

    collector_public_key: str
    proof: str = Field(description="how the proof is made: the challenge's context string and its parts")


class EnrollResponse(BaseModel):
    agent_id: str
    system: str
    department: str
    collector_public_key: str


class Envelope(BaseModel):
    """What an agent POSTs to /api/v1/agent/reports; `body` is checked against the model for `kind`."""

    model_config = ConfigDict(extra="forbid")

    report_id: str = Field(pattern=REPORT_ID_PATTERN)
    agent_id: str = Field(pattern=ID_PATTERN)
    sent_at: AwareDatetime
    kind: Literal["host_report", "inventory", "utilisation"]
    body: dict[str, Any]


class InventoryBody(BaseModel):
    """Host facts sent now and then. Unknown keys are kept in the stored snapshot."""

    model_config = ConfigDict(extra="allow")

    os: HostInfo
    arch: str = Field(max_length=32)
    cpu_model: Optional[str] = Field(default=None, max_length=200)
    cpu_count: Optional[int] = Field(default=None, ge=1, le=1 << 20)
    memory_bytes: Optional[int] = Field(default=None, ge=0, le=1 << 62)
    packages_count: Optional[int] = Field(default=None, ge=0, le=INT32_MAX)
    addresses: Optional[list[str]] = Field(default=None, max_length=256)
    # the agent's own release (sentinel.__version__), shown as sentinel_host_info's agent_version; None from
    # agents older than the field
    agent_version: Optional[str] = Field(default=None, pattern=AGENT_VERSION_PATTERN)
    # upkeep and use facts for zombie-system detection (sentinel/agent/upkeep.py); None from older agents
    upkeep: Optional[UpkeepIn] = None
    # the recognised 国产化 components and 国密 TLS support (sentinel/agent/domestic.py); None from older agents
    domestic: Optional[DomesticIn] = None


class UtilisationSampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime
    cpu_percent: float = Field(ge=0, le=100)
    memory_percent: float = Field(ge=0, le=100)
    net_bytes_sent: int = Field(ge=0, le=1 << 62)
    net_bytes_recv: int = Field(ge=0, le=1 << 62)
    logins: int = Field(ge=0, le=INT32_MAX)
    # established inbound TCP connections to listening ports at `at`; absent from older agents (unknown)
    inbound_connections: Optional[int] = Field(default=None, ge=0, le=INT32_MAX)


class UtilisationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[UtilisationSampleIn] = Field(min_length=1, max_length=10000)


class ReportAccepted(BaseModel):
    report_id: str
    run_id: Optional[int] = None
    new_failures: list[str] = Field(default_factory=list)
    fixed: list[str] = Field(default_factory=list)


class Problem(BaseModel):
    detail: str

