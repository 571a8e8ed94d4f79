"""Collector settings: defaults < environment (`SENTINEL_COLLECTOR_*`) < command-line flags.

The state directory defaults to the one every command shares (sentinel/state.py, docs/state.md):
SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or ~/.local/state/sentinel.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


from ..state import default_state_dir


class CollectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINEL_COLLECTOR_", extra="forbid")

    state_dir: Path = Field(default_factory=default_state_dir)
    database_url: Optional[str] = Field(default=None, description="default: sqlite:///<state_dir>/sentinel.db")
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    tls_cert: Optional[Path] = Field(default=None, description="default: <state_dir>/tls/server.crt if present")
    tls_key: Optional[Path] = Field(default=None, description="default: <state_dir>/tls/server.key if present")
    skew_seconds: float = Field(default=300, gt=0, le=86400, description="accepted sent_at - now (agent clock ahead)")
    report_max_age_seconds: float = Field(
        default=14 * 86400, gt=0, le=366 * 86400,
        description="accepted now - sent_at: reports are signed when made and may wait in an agent's spool")
    max_body_bytes: int = Field(default=8 << 20, ge=1024, le=1 << 30)
    score_drop_threshold: float = Field(default=5.0, gt=0, le=100, description="score points that raise an event")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL", description="NORMAL (WAL): a power loss may drop the last commits, never corrupts")
    pg_synchronous_commit: bool = Field(
        default=True, description="off: faster per-system ingest; a server crash may drop the last ~0.6 s")
    pool_size: int = Field(default=8, ge=1, le=100)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # network scans (sentinel/collector/scanner.py); the scope always comes from the system's scan_scope
    scans: bool = Field(default=False, description="send network scans from this collector (scheduled and "
                                                   "triggered); off unless its operator turns it on")
    scan_schedules: bool = Field(default=True, description="with scans on: run the scheduled scans in this process")
    scan_rate: int = Field(default=1000, ge=1, le=1_000_000, description="packets/s per scan (nmap --max-rate)")
    scan_max_hosts: int = Field(default=16, ge=1, le=4096, description="hosts scanned in parallel (--max-hostgroup)")
    scan_concurrency: int = Field(default=2, ge=1, le=32, description="systems scanned at the same time")
    scan_timeout: int = Field(default=3600, ge=10, le=7 * 86400, description="seconds one nmap run may take")
    scan_sync_seconds: float = Field(default=60, ge=1, le=3600, description="how often schedules are reloaded")
    # /metrics and event push (sentinel/collector/metrics.py, events_publisher.py; docs/metrics.md, alerting.md)
    metrics_token: Optional[str] = Field(
        default=None, min_length=16, repr=False,
        description="if set, GET /metrics needs `Authorization: Bearer <token>` (it names departments and systems)")
    metrics_per_check: bool = Field(default=False, description="per-check series (host x check: high cardinality)")
    metrics_cache_seconds: float = Field(default=5, ge=0, le=300, description="scrapes within this share one read")
    agent_silent_seconds: float = Field(default=7200, gt=0, description="sentinel_host_up is 0 after this long")
    alerting_config: Optional[Path] = Field(
        default=None, description="event push configuration (YAML, docs/alerting.md); none: events are not pushed")
    events_poll_seconds: float = Field(default=2.0, gt=0, le=300, description="how often undelivered events are read")
    metrics_open: bool = Field(default=False, description="serve /metrics without a token; only where no one but "
                               "the monitoring system can reach the port (it names departments, systems, scores)")
    metrics_token_file: Optional[Path] = Field(default=None, description="default: <state_dir>/metrics-token, made "
                                               "(0600) at the first start when metrics_token is not set")
    # agent endpoints: limits applied before a body is read (sentinel/collector/gate.py; docs/security.md)
    source_rate: float = Field(default=50, ge=0, le=1e6, description="requests/s per source address on "
                               "/api/v1/agent/* (0: no limit)")
    source_burst: int = Field(default=200, ge=1, le=1_000_000)
    refusal_cost: int = Field(default=10, ge=0, le=10_000, description="tokens a refused request takes from its "
                              "source's bucket on top of its own one")
    limited_delay: float = Field(default=1.0, ge=0, le=30, description="seconds a source past its limit waits "
                                 "for its 429, its body unread (holds a flood back; 0: answer at once)")
    agent_rate: float = Field(default=2, ge=0, le=1e6, description="reports/s per agent (0: no limit)")
    agent_burst: int = Field(default=120, ge=1, le=1_000_000)
    audit_refusal_window: float = Field(default=60, ge=0, le=86400, description="refusals of one kind from one "
                                        "address within this many seconds share one audit row with a count (0: a row each)")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError("must be an address or host name")
        return v

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'sentinel.db'}"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def signing_key_file(self) -> Path:
        return self.state_dir / "collector.key"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def tls_files(self) -> Optional[tuple[Path, Path]]:
        """The certificate and key to serve with, or None to serve plain HTTP (loopback only)."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_cert is not None and self.tls_key is not None:
            return self.tls_cert, self.tls_key
        cert, key = self.tls_dir / "server.crt", self.tls_dir / "server.key"
        if cert.is_file() and key.is_file():
            return cert, key
        return None
