"""Request and response models of the scan routes (sentinel/collector/routers/scans.py) and `sentinel system
scan-schedule`."""
from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Optional

from pydantic import BaseModel, Field, field_validator, model_validator

from sentinel.checks.network.scope import parse_ports

from .scanner import DEFAULT_ZONE_BASELINE
from .schemas import In, Out

ZONE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
BASELINE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
PORTS_PATTERN = r"^[0-9,\- ]{1,2000}$"


def _ports(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    try:
        parse_ports(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


# ---- schemas ---------------------------------------------------------------------------------------------


class ScanScheduleIn(In):
    """A system's scan settings (replaces the previous ones). The scope is the system's scan_scope."""

    enabled: bool = True
    interval_seconds: Optional[int] = Field(default=None, ge=60, le=90 * 86400, description="between scans")
    jitter_seconds: int = Field(default=0, ge=0, le=86400, description="random delay added to each run")
    zone_baseline: str = Field(default=DEFAULT_ZONE_BASELINE, pattern=BASELINE_PATTERN,
                               description="shipped zone baseline id, or site file <state_dir>/zone-baselines/ID.yaml")
    zone: Optional[str] = Field(default=None, pattern=ZONE_PATTERN, description="zone of the targets")
    scanner_zone: Optional[str] = Field(default=None, pattern=ZONE_PATTERN,
                                        description="zone the collector scans from (enables isolation checks)")
    tcp_ports: Optional[str] = Field(default=None, pattern=PORTS_PATTERN, description="default: top 1000 + extras")
    udp_ports: Optional[str] = Field(default=None, pattern=PORTS_PATTERN, description="default: no UDP scan")
    version_detection: bool = True

    @field_validator("tcp_ports", "udp_ports")
    @classmethod
    def _check_ports(cls, v: Optional[str], info) -> Optional[str]:
        return _ports(v, info.field_name)

    @model_validator(mode="after")
    def _consistent(self) -> ScanScheduleIn:
        if self.enabled and self.interval_seconds is None:
            raise ValueError("an enabled schedule needs interval_seconds")
        if self.interval_seconds is not None and self.jitter_seconds > self.interval_seconds:
            raise ValueError("jitter_seconds must not exceed interval_seconds")
        return self


class ScanScheduleOut(BaseModel):
    system_id: int
    configured: bool  # false: no schedule stored; scans run only on request, with these defaults
    enabled: bool
    interval_seconds: Optional[int]
    jitter_seconds: int
    zone_baseline: str
    zone: Optional[str]
    scanner_zone: Optional[str]
    tcp_ports: Optional[str]
    udp_ports: Optional[str]
    version_detection: bool
    last_claimed_at: Optional[datetime]
    next_run_at: Optional[datetime]  # in this collector process, when it runs schedules
    scope: list[str]


class ScanTriggerIn(In):
    targets: Optional[list[str]] = Field(default=None, min_length=1, max_length=1024,
                                         description="addresses/CIDRs inside the system's scan_scope (default: all)")
    tcp_ports: Optional[str] = Field(default=None, pattern=PORTS_PATTERN, description="default: the schedule's")
    udp_ports: Optional[str] = Field(default=None, pattern=PORTS_PATTERN, description="default: the schedule's")

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        for i, t in enumerate(v or []):
            try:  # addresses and CIDRs only: a name would be resolved by DNS, which the scope cannot pin
                ipaddress.ip_network(t, strict=False)
            except ValueError:
                raise ValueError(f"targets[{i}] {t!r}: not an IP address or CIDR block") from None
        return v

    @field_validator("tcp_ports", "udp_ports")
    @classmethod
    def _check_ports(cls, v: Optional[str], info) -> Optional[str]:
        return _ports(v, info.field_name)


class ScanRunOut(Out):
    id: int
    system_id: int
    department_id: int
    triggered_by: str
    requested_by: str
    status: str
    runner: str
    started_at: datetime
    finished_at: Optional[datetime]
    duration_ms: Optional[float]
    targets: list[str]
    full_scope: bool
    scope: dict[str, Any]
    args: dict[str, Any]
    zone_baseline: Optional[str]
    zone: Optional[str]
    scanner_zone: Optional[str]
    error: Optional[str]
    warnings: list[str]
    hosts_up: int
    services_open: int
    services_forbidden: int
    high_risk: int
    events: int
    score: Optional[float]
    conclusion: Optional[str]
    summary: Optional[dict[str, Any]]


class ServiceFindingOut(Out):
    id: int
    system_id: int
    department_id: int
    host_id: Optional[int]
    host: str
    port: int
    proto: str
    state: str
    service: Optional[str]
    nmap_service: Optional[str]
    product: Optional[str]
    version: Optional[str]
    extrainfo: Optional[str]
    tunnel: Optional[str]
    starttls: Optional[bool]
    banner: Optional[str]
    tls: Optional[dict[str, Any]]
    ssh: Optional[dict[str, Any]]
    http: Optional[dict[str, Any]]
    exposure: Optional[dict[str, Any]]
    plaintext_management: bool
    zone: Optional[str]
    forbidden: bool
    high_risk: list[str]
    check_results: list[dict[str, Any]]
    errors: list[str]
    first_seen: datetime
    last_seen: datetime
    closed_at: Optional[datetime]
    first_scan_id: int
    last_scan_id: int
    closed_scan_id: Optional[int]
