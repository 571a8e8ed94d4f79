"""Collector settings: defaults < config file (YAML) < environment (`SENTINEL_COLLECTOR_*`) < flags.

The config file is `--config FILE`, else the file SENTINEL_CONFIG names, else /etc/sentinel/collector.yaml
when it exists (docs/state.md). `sentinel collector`, the admin commands (`department`, `system`, `export`,
...) and `sentinel up` all read it, so they find the same state and database. It holds the fields below by
name, e.g.:

```yaml
state_dir: /srv/sentinel           # default: SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or XDG
# database_url: postgresql://sentinel@db.example.gov/sentinel
host: 0.0.0.0
port: 8443
scans: true
```

The state directory defaults to the one every command shares (sentinel/state.py, docs/state.md):
SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or ~/.local/state/sentinel.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from ..notices.policy import NoticePolicy
from ..state import default_state_dir
from ..websites.config import WebsiteSettings
from ..yaml_errors import invalid_yaml
from ..zombie import ZombieSettings

CONFIG_ENV = "SENTINEL_CONFIG"
DEFAULT_CONFIG_FILE = Path("/etc/sentinel/collector.yaml")
ENV_PREFIX = "SENTINEL_COLLECTOR_"


class CollectorConfigError(Exception):
    """Collector settings that cannot be used; each line names where the bad value came from."""


def config_file_in_use(explicit: Optional[Path] = None) -> Optional[Path]:
    """--config, else SENTINEL_CONFIG, else /etc/sentinel/collector.yaml if it exists, else none."""
    if explicit is not None:
        return Path(explicit)
    named = os.environ.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class CollectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")
    # the config file these settings were read from and the line of each of its keys (load_collector_settings)
    _config_file: Optional[Path] = PrivateAttr(default=None)
    _config_lines: dict = PrivateAttr(default_factory=dict)
    _flags: frozenset = PrivateAttr(default=frozenset())  # the fields the command's flags gave

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
    # website monitoring (sentinel/collector/websites.py; docs/websites.md): off unless turned on, as scans
    websites: WebsiteSettings = Field(default_factory=WebsiteSettings, description="website monitoring (网站群监测)")
    # /metrics and event push (sentinel/collector/metrics.py, events_publisher.py; docs/metrics.md, alerting.md)
    metrics_token: Optional[str] = Field(
        default=None, min_length=16, repr=False,
        description="if set, GET /metrics needs `Authorization: Bearer <token>` (it names departments and systems)")
    metrics_per_check: bool = Field(default=False, description="per-check series (host x check: high cardinality)")
    metrics_cache_seconds: float = Field(default=30, ge=0, le=300, description=(
        "/metrics serves the stored state read in the background this often (a read that takes longer waits as "
        "long again); 0 reads it in every scrape"))
    agent_silent_seconds: float = Field(default=7200, gt=0, description="sentinel_host_up is 0 after this long")
    alerting_config: Optional[Path] = Field(
        default=None, description="event push configuration (YAML, docs/alerting.md); none: events are not pushed")
    events_poll_seconds: float = Field(default=2.0, gt=0, le=300, description="how often undelivered events are read")
    relay_token_file: Optional[Path] = Field(
        default=None, description="with alerting_config: the token Alertmanager's webhook gives the relay route "
        "(POST /api/v1/alertmanager/webhook); default <state_dir>/relay-token, made (0600) at the first start")
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
                                        "address within this many seconds share one audit row with a count "
                                        "(0: a row each)")
    zombie: ZombieSettings = Field(default_factory=ZombieSettings, description="zombie-system detection's "
                                   "thresholds and windows (docs/zombie.md)")
    notices: NoticePolicy = Field(default_factory=NoticePolicy, description="the 通报 loop: issuing authority, "
                                  "document number prefix, rectification days by grade (docs/notices.md)")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError("must be an address or host name")
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        # flags (init) > environment > config file; a bare CollectorSettings() (the multi-worker factory, tests)
        # finds the file the same way the commands do
        named = settings_cls.model_config.get("yaml_file")
        path = Path(named) if named not in (None, "", ".") else config_file_in_use()
        sources: tuple = (init_settings, env_settings)
        if path is not None:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=path),)
        return sources

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


def load_collector_settings(config_file: Optional[Path] = None, **overrides: Any) -> CollectorSettings:
    """Settings from flags (`overrides`, None values skipped) > SENTINEL_COLLECTOR_* > the config file > defaults.

    A bad value is reported with where it came from: the flag, the variable, or the file and its line."""
    path = config_file_in_use(config_file)
    given = {k: v for k, v in overrides.items() if v is not None}
    lines: dict[str, int] = {}
    if path is not None:
        lines = _read_yaml(path, "--config" if config_file is not None else CONFIG_ENV)
    cls: type[CollectorSettings] = CollectorSettings
    if path is not None:  # this very file, even if the environment changes meanwhile
        file_config = SettingsConfigDict(**{**CollectorSettings.model_config, "yaml_file": str(path)})
        cls = type("CollectorSettingsFromFile", (CollectorSettings,), {"model_config": file_config})
    try:
        settings = cls(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            rest = ".".join(str(p) for p in err["loc"][1:])
            name = field + (f".{rest}" if rest else "") or "(top level)"
            msg = ("not a collector setting (the names are in docs/state.md)" if err["type"] == "extra_forbidden"
                   else err["msg"])
            problems.append(f"{_origin(field, given, path, lines)}: {name}: {msg}")
        raise CollectorConfigError("\n".join(problems)) from None
    settings._config_file, settings._config_lines, settings._flags = path, lines, frozenset(given)
    return settings


def setting_origin(settings: CollectorSettings, field: str) -> Optional[str]:
    """`file:line` when `field` holds the config file's value (no flag or variable set it), else None."""
    line = settings._config_lines.get(field)
    if settings._config_file is None or line is None or os.environ.get(ENV_PREFIX + field.upper()) is not None:
        return None
    return f"{settings._config_file}:{line}" if field not in settings._flags else None


def _origin(field: str, given: dict, path: Optional[Path], lines: dict[str, int]) -> str:
    """Where a field's value came from, by the same precedence the settings apply."""
    if field in given:
        return f"--{field.replace('_', '-')}" if field in _FLAGS else "collector settings"
    var = ENV_PREFIX + field.upper()
    if os.environ.get(var) is not None:
        return var
    if path is not None and field in lines:
        return f"{path}:{lines[field]}"
    return "collector settings"


# settings the commands take as flags of that name (sentinel/cli_collector.py, sentinel up)
_FLAGS = {"state_dir", "database_url", "host", "port", "tls_cert", "tls_key", "workers", "alerting_config"}


def _read_yaml(path: Path, named_by: str) -> dict[str, int]:
    """Check the file before pydantic reads it (syntax errors with their line, a mapping at the top) and
    return the line of each top-level key, for errors about its value."""
    import yaml

    if not path.is_file():
        raise CollectorConfigError(f"{path}: no such config file (from {named_by})")
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)  # what pydantic-settings will read; composing alone misses some errors
    except yaml.YAMLError as exc:
        raise CollectorConfigError(invalid_yaml(path, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CollectorConfigError(f"{path}: cannot read: {exc}") from None
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise CollectorConfigError(f"{path}:{node.start_mark.line + 1}: expected a mapping of settings "
                                   "(name: value), got a " + ("list" if isinstance(node, yaml.SequenceNode)
                                                              else "single value"))
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}

