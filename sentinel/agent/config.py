"""Agent settings: defaults < config file (YAML) < environment (`SENTINEL_AGENT_*`) < command-line flags.

A config file looks like:

```yaml
collector_url: https://collector.example.gov:8443
ca_file: /etc/sentinel/collector-ca.pem
# state_dir: /var/lib/sentinel/agent   # default: <SENTINEL_STATE_DIR>/agent (sentinel/state.py)
baselines:
  - {baseline: dengbao-l3-linux, interval: 3600}
  - {baseline: /etc/sentinel/site-l3.yaml, interval: 21600, jitter: 600}
# host_root: /host        # check a mounted root (Kubernetes DaemonSet) instead of this host
# metrics_port: 22239     # this host's latest report at http://127.0.0.1:22239/metrics
objects:                  # the 测评对象 besides the OS (docs/objects.md)
  discover: true          # find MySQL/MariaDB, PostgreSQL, Redis, Nginx, httpd, Tomcat; run dengbao-l<level>-<kind>
  disable: [tomcat, "redis:6380"]
  pin:
    - {kind: mysql, instance: "3307", name: "db01 MariaDB 10.11 (3307)"}
```

Durations are seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from ..model import OBJECT_INSTANCE, ObjectKind
from ..state import default_agent_state_dir
from ..yaml_errors import invalid_yaml

DEFAULT_BASELINE = "dengbao-l3-linux"
DEFAULT_CONFIG_FILE = Path("/etc/sentinel/agent.yaml")


class ConfigError(Exception):
    """Settings that cannot be used; the message names the source and the field."""


class BaselineSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: str = Field(min_length=1, description="shipped baseline id or path to a baseline file")
    interval: float = Field(default=3600, ge=1, description="seconds between runs")
    jitter: Optional[float] = Field(default=None, ge=0, description="seconds; default: the agent's jitter")


class PinnedObject(BaseModel):
    """An object the operator names: run even where discovery does not find it (or with another baseline)."""

    model_config = ConfigDict(extra="forbid")

    kind: ObjectKind
    instance: str = Field(default="", pattern=OBJECT_INSTANCE, description="port, socket or config path")
    name: Optional[str] = Field(default=None, max_length=200, description="the 测评对象 name in the record")
    baseline: Optional[str] = Field(default=None, min_length=1, description="baseline id or file for this object")
    port: Optional[int] = Field(default=None, ge=1, le=65535)
    config: Optional[str] = Field(default=None, min_length=1, description="its main configuration file")

    @field_validator("kind")
    @classmethod
    def _not_os(cls, v: str) -> str:
        if v == "os":
            raise ValueError("the OS is judged by `baselines`; pin a database, middleware or web server kind")
        return v


class ObjectsSettings(BaseModel):
    """The 测评对象 on the host besides its OS (sentinel/discovery.py): found, then each judged by its baseline."""

    model_config = ConfigDict(extra="forbid")

    discover: bool = Field(default=True, description="find the databases, middleware and web servers this host runs")
    interval: float = Field(default=3600, ge=1, description="seconds between object runs")
    jitter: Optional[float] = Field(default=None, ge=0, description="seconds; default: the agent's jitter")
    level: Optional[int] = Field(default=None, ge=2, le=4,
                                 description="the system's level (dengbao-l<level>-<kind>); default: the level of "
                                             "the first scheduled baseline")
    baselines: dict[ObjectKind, str] = Field(default_factory=dict,
                                             description="kind -> baseline id or file to run instead of the shipped")
    pin: list[PinnedObject] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list, description="`kind` or `kind:instance` never to run")

    @field_validator("disable")
    @classmethod
    def _disable(cls, v: list[str]) -> list[str]:
        kinds = set(get_args(ObjectKind)) - {"os"}
        for entry in v:
            if entry.split(":", 1)[0] not in kinds:
                raise ValueError(f"{entry!r}: expected KIND or KIND:INSTANCE, KIND one of {', '.join(sorted(kinds))}")
        return v

    def disabled(self, kind: str, instance: str) -> bool:
        return kind in self.disable or f"{kind}:{instance}" in self.disable


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINEL_AGENT_", extra="forbid", env_nested_delimiter="__")

    collector_url: Optional[str] = Field(default=None, description="overrides the URL saved at enrollment")
    ca_file: Optional[Path] = Field(default=None, description="CA certificate (PEM) the collector must chain to")
    # the shared state directory's agent/ (sentinel/state.py), where `sentinel up` keeps its agent too
    state_dir: Path = Field(default_factory=default_agent_state_dir)
    baselines: list[BaselineSchedule] = Field(default_factory=lambda: [BaselineSchedule(baseline=DEFAULT_BASELINE)])
    objects: ObjectsSettings = Field(default_factory=ObjectsSettings)
    jitter: float = Field(default=300, ge=0, description="random delay added to each scheduled run, seconds")
    time_budget: float = Field(default=900, gt=0, description="a baseline run is killed after this many seconds")
    check_nice: int = Field(default=10, ge=0, le=19, description="niceness of the process running checks")
    check_ionice_idle: bool = True
    spool_max_count: int = Field(default=1000, ge=1)
    spool_max_bytes: int = Field(default=64 << 20, ge=4096)
    sample_interval: float = Field(default=60, gt=0, description="seconds between utilisation samples")
    utilisation_interval: float = Field(default=900, gt=0, description="seconds between utilisation envelopes")
    sample_ring: int = Field(default=240, ge=1, description="samples kept while none can be sent")
    inventory_interval: float = Field(default=86400, gt=0)
    request_timeout: float = Field(default=30, gt=0)
    retry_min: float = Field(default=5, gt=0, description="first delay before retrying delivery, seconds")
    retry_max: float = Field(default=300, gt=0, description="longest delay between delivery attempts, seconds")
    log_level: str = "INFO"
    # checking a mounted root instead of this host, and the optional agent /metrics (docs/metrics.md)
    host_root: Optional[Path] = Field(
        default=None, description="check the offline root mounted here (e.g. /host in the Kubernetes DaemonSet) "
                                  "instead of this host; live-only facts (processes, sockets, commands, runtime "
                                  "sysctl) are then not_applicable")
    metrics_port: Optional[int] = Field(default=None, ge=1, le=65535,
                                        description="serve this host's latest report at /metrics (usually 22239)")
    metrics_address: str = Field(default="127.0.0.1", min_length=1, description="address the agent /metrics binds")

    @field_validator("host_root")
    @classmethod
    def _root(cls, v: Optional[Path]) -> Optional[Path]:
        if v is not None and (not v.is_absolute() or not v.is_dir()):
            raise ValueError(f"{v}: must be an absolute path to a directory (the host's root file system)")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v

    @field_validator("collector_url")
    @classmethod
    def _url(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// on loopback)")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _retry(self) -> AgentSettings:
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max must be >= retry_min")
        if not self.baselines:
            raise ValueError("baselines: at least one baseline must be scheduled")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        sources: tuple = (init_settings, env_settings)
        if settings_cls.model_config.get("yaml_file") not in (None, "", "."):
            sources += (YamlConfigSettingsSource(settings_cls),)
        return sources

    # ---- state layout ----------------------------------------------------------------------------
    @property
    def identity_file(self) -> Path:
        return self.state_dir / "agent.json"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "agent.key"

    @property
    def pinned_ca_file(self) -> Path:
        return self.state_dir / "collector-ca.pem"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "agent.lock"


def load_settings(config_file: Optional[Path] = None, default_file: bool = True, **overrides: Any) -> AgentSettings:
    """Settings from an optional YAML file, the environment and explicit overrides (None values skipped).

    With no file given, /etc/sentinel/agent.yaml is read when it exists (unless default_file is False).
    """
    if config_file is None and default_file and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    cls: type[AgentSettings] = AgentSettings
    where = "agent settings (flags, SENTINEL_AGENT_* environment)"
    if config_file is not None:
        config_file = Path(config_file)
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: no such config file")
        _check_yaml(config_file)
        file_config = SettingsConfigDict(**{**AgentSettings.model_config, "yaml_file": str(config_file)})
        cls = type("AgentSettingsFromFile", (AgentSettings,), {"model_config": file_config})
        where = f"agent settings ({config_file}, flags, SENTINEL_AGENT_* environment)"
    try:
        return cls(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{where}: {loc}: {err['msg']}")
        raise ConfigError("\n".join(problems)) from None


def _check_yaml(path: Path) -> None:
    """YAML syntax errors with their line, and a mapping at the top, before pydantic sees the data."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(invalid_yaml(path, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of settings, got {type(data).__name__}")
