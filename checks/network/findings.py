"""What the network probes report: one `ServiceFinding` per open (or open|filtered) port, with what each probe
read from it (TLS, SSH, HTTP, unauthenticated access, opt-in credential attempts).

These are the probes' results, made here and nowhere else in the probe package. Judging them (check results,
item verdicts, the zone policy, the diff between scans) is the network engine's work, in `sentinel.network`;
the engine fills `results`, `zone`, `forbidden`, `high_risk` and `plaintext_management` of a copy.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel, Field

from sentinel.model import CheckResult, Evidence, utcnow


class TLSInfo(BaseModel):
    protocols: list[str] = Field(default_factory=list)  # accepted: SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3
    untested: dict[str, str] = Field(default_factory=dict)  # version -> why it could not be tested
    cipher: Optional[str] = None  # negotiated with the best protocol
    weak_ciphers: list[str] = Field(default_factory=list)  # accepted weak suites (IANA names)
    subject: Optional[str] = None
    issuer: Optional[str] = None
    not_before: Optional[datetime] = None
    not_after: Optional[datetime] = None
    expired: Optional[bool] = None
    days_left: Optional[int] = None
    self_signed: Optional[bool] = None
    chain_valid: Optional[bool] = None  # verified against the scanner's trust store
    chain_error: Optional[str] = None
    key: Optional[str] = None  # e.g. "RSA-2048", "EC-secp256r1"
    signature_hash: Optional[str] = None


class SSHInfo(BaseModel):
    banner: str
    protocol: str  # "2.0", "1.99", "1.5"
    software: str
    kex: list[str] = Field(default_factory=list)
    host_key: list[str] = Field(default_factory=list)
    ciphers: list[str] = Field(default_factory=list)  # client->server list
    macs: list[str] = Field(default_factory=list)
    compression: list[str] = Field(default_factory=list)
    weak_kex: list[str] = Field(default_factory=list)
    weak_host_key: list[str] = Field(default_factory=list)
    weak_ciphers: list[str] = Field(default_factory=list)
    weak_macs: list[str] = Field(default_factory=list)
    # Methods the server offers after a `none` userauth request (["none"]: it let us in without any
    # credential); None when that exchange could not be made (the reason is in the finding's errors).
    auth_methods: Optional[list[str]] = None


class HTTPInfo(BaseModel):
    status: Optional[int] = None
    server: Optional[str] = None
    title: Optional[str] = None
    login_form: bool = False  # an <input type=password> on the page
    basic_auth: bool = False  # WWW-Authenticate: Basic
    location: Optional[str] = None  # redirect target (an http -> https redirect is not a plaintext login)


class Exposure(BaseModel):
    """Result of a read-only unauthenticated-access probe (Redis PING, Docker /version, SNMP public...)."""

    protocol: str
    unauthenticated: bool  # True: the service answered a data request without credentials
    detail: str  # what was asked and what came back, in words
    version: Optional[str] = None
    tls: Optional[bool] = None  # the service offers in-band TLS (PostgreSQL SSLRequest); None: not asked


class CredentialAttempt(BaseModel):
    """One opt-in credential probe (credentials.py): the account or community tried, and what came back."""

    protocol: str
    # the account (or SNMP community) tried, the password always the documented one; http-basic: the documented
    # pair, `admin/admin` (one account is tried with two passwords there)
    user: str
    accepted: bool
    detail: str


OPEN = "open"
OPEN_FILTERED = "open|filtered"


class ServiceFinding(BaseModel):
    host: str
    port: int
    proto: Literal["tcp", "udp"] = "tcp"
    # "open": an answer was seen (nmap's, or one of our probes'). "open|filtered": UDP only, nothing answered
    # (a firewall dropping UDP looks exactly like this): undetermined, neither open nor closed, and every
    # check on it is `error`, never a pass and never a finding of an open service.
    state: str = OPEN
    service: Optional[str] = None  # canonical name (see services.py)
    nmap_service: Optional[str] = None
    product: Optional[str] = None
    version: Optional[str] = None
    extrainfo: Optional[str] = None
    tunnel: Optional[str] = None  # "ssl" when the service runs inside TLS
    starttls: Optional[bool] = None  # the protocol announces an in-band TLS upgrade (MySQL CLIENT_SSL)
    banner: Optional[str] = None
    tls: Optional[TLSInfo] = None
    ssh: Optional[SSHInfo] = None
    http: Optional[HTTPInfo] = None
    exposure: Optional[Exposure] = None
    credentials: list[CredentialAttempt] = Field(default_factory=list)  # only with credential_probes on
    plaintext_management: bool = False
    zone: Optional[str] = None
    forbidden: bool = False
    results: list[CheckResult] = Field(default_factory=list)
    high_risk: list[str] = Field(default_factory=list)  # 高风险判定指引 cases of failing results
    errors: list[str] = Field(default_factory=list)  # probes that could not decide, with the reason
    evidence: list[Evidence] = Field(default_factory=list)
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)

    @property
    def determined(self) -> bool:
        """True when something answered on the port (see `state`)."""
        return self.state == OPEN

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.host, self.proto, self.port)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}/{self.proto}"

    @property
    def version_string(self) -> Optional[str]:
        text = " ".join(p for p in (self.product, self.version) if p)
        return text or None
