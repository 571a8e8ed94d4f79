"""Events -> routes -> receivers: who hears about what, configured in YAML.

```yaml
timezone: Asia/Shanghai            # how times are shown in chat messages
grades: {critical: 特别重大, high: 重大, medium: 较大, warning: 较大, low: 一般, info: 一般}
dedup_window_seconds: 600          # the same alert in the same state is sent once per window
queue_size: 1000                   # per receiver; a full queue drops (and logs) instead of blocking
retry: {max_attempts: 5, initial_delay_seconds: 1, max_delay_seconds: 60, factor: 2}
receivers:
  - {name: am, type: alertmanager, url: "http://alertmanager:9093"}
  - {name: finance-ding, type: dingtalk, url: "${FINANCE_DINGTALK_URL}", secret: "${FINANCE_DINGTALK_SECRET}"}
  - {name: ops-wecom, type: wecom, url: "${OPS_WECOM_URL}"}
routes:                            # first match ends the walk unless it says continue: true
  - {receivers: [am], continue: true}
  - {departments: [财政局], min_severity: high, receivers: [finance-ding]}
default_receivers: [ops-wecom]     # events that no route without `continue` took
```

`${NAME}` in any string is replaced by that environment variable (an unset one is an error), so webhook
URLs and secrets stay out of the file. Receiver types: alertmanager, dingtalk, wecom, feishu, webhook.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .delivery import Backoff, Deduplicator, Receiver, ReceiverContext, ResultCallback
from .model import SEVERITY_RANK, AlertEvent, Grade, GradeMap
from .redact import redact_url

log = logging.getLogger(__name__)


class DispatchConfigError(Exception):
    """The alerting configuration cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RetryConfig(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=50)
    initial_delay_seconds: float = Field(default=1.0, gt=0, le=3600)
    max_delay_seconds: float = Field(default=60.0, gt=0, le=86400)
    factor: float = Field(default=2.0, ge=1, le=10)

    def backoff(self) -> Backoff:
        return Backoff(max_attempts=self.max_attempts, initial_delay=self.initial_delay_seconds,
                       max_delay=self.max_delay_seconds, factor=self.factor)


#: labels that sentinel sets itself on a pushed alert (sentinel.events.model.event_labels)
_EVENT_LABELS = frozenset({"alertname", "department", "system", "level", "host", "check", "severity", "grade",
                           "source", "subject"})


class ReceiverConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    type: Literal["alertmanager", "dingtalk", "wecom", "feishu", "webhook"]
    url: SecretStr  # robot URLs carry their credential (access_token, key, hook id)
    secret: Optional[SecretStr] = None  # DingTalk/Feishu signing secret; HMAC key for generic webhooks
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. Authorization for a generic webhook
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    at_mobiles: list[str] = Field(default_factory=list)  # DingTalk: people to @
    resend_interval_seconds: float = Field(default=60.0, gt=0, le=3600)  # alertmanager only
    resolved_resend_seconds: float = Field(default=300.0, ge=0, le=86400)  # alertmanager only
    # alertmanager only: labels added to every pushed alert. Set them to the external_labels of the Prometheus
    # that sends the rule alerts (e.g. {site: ...}), so a fact both paths carry is one alert (identical labels)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fits_type(self) -> ReceiverConfig:
        url = self.url.get_secret_value()
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"url must be http(s)://host/... (got {redact_url(url)})")
        if self.type == "wecom" and self.secret is not None:
            raise ValueError("wecom robots are not signed: drop `secret` (the key in the URL is the credential)")
        if self.at_mobiles and self.type != "dingtalk":
            raise ValueError("at_mobiles is for dingtalk receivers only")
        if self.type == "alertmanager" and self.secret is not None:
            raise ValueError("alertmanager receivers take headers (e.g. Authorization), not a secret")
        if self.labels and self.type != "alertmanager":
            raise ValueError("labels is for alertmanager receivers only")
        for key in self.labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or key in _EVENT_LABELS:
                raise ValueError(f"labels: {key!r} is not a Prometheus label name sentinel leaves free")
        return self


class RouteConfig(_Strict):
    departments: Optional[list[str]] = None  # None: any department
    systems: Optional[list[str]] = None
    kinds: Optional[list[str]] = None
    min_severity: Optional[str] = None
    # Alertmanager receivers (by name) whose webhook notifications the collector relays (sentinel.events.relay);
    # None: any event, relayed or not
    relayed_from: Optional[list[str]] = None
    receivers: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("min_severity")
    @classmethod
    def _sev(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in SEVERITY_RANK:
            raise ValueError(f"{v!r} is not one of {sorted(SEVERITY_RANK, key=lambda s: SEVERITY_RANK[s])}")
        return v

    def matches(self, event: AlertEvent) -> bool:
        return ((self.departments is None or event.department in self.departments)
                and (self.systems is None or event.system in self.systems)
                and (self.kinds is None or event.kind in self.kinds)
                and (self.min_severity is None or event.rank >= SEVERITY_RANK[self.min_severity])
                and (self.relayed_from is None or (event.kind == "prometheus_alert"
                                                   and event.payload.get("receiver") in self.relayed_from)))


class DispatchConfig(_Strict):
    timezone: str = "Asia/Shanghai"
    grades: dict[str, Grade] = Field(default_factory=dict)
    dedup_window_seconds: float = Field(default=600.0, ge=0, le=7 * 86400)
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    default_receivers: list[str] = Field(default_factory=list)
    # the collector's address as people reach it (https://collector.example:8443): every message and alert
    # links back to the system's events there (GET /api/v1/events?system_id=..&kind=..)
    link_base_url: Optional[str] = Field(default=None, pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Asia/Shanghai)") from None
        return v

    @model_validator(mode="after")
    def _references(self) -> DispatchConfig:
        GradeMap(mapping=self.grades)  # unknown severities are reported here
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names must be unique: {dupes}")
        known = set(names)
        for i, route in enumerate(self.routes):
            missing = [n for n in route.receivers if n not in known]
            if missing:
                raise ValueError(f"routes[{i}] names unknown receivers {missing}; defined: {sorted(known)}")
        missing = [n for n in self.default_receivers if n not in known]
        if missing:
            raise ValueError(f"default_receivers names unknown receivers {missing}; defined: {sorted(known)}")
        return self

    @property
    def grade_map(self) -> GradeMap:
        return GradeMap(mapping=self.grades)

    @classmethod
    def from_yaml(cls, path: Path, env: Optional[dict[str, str]] = None) -> DispatchConfig:
        env = dict(os.environ) if env is None else env
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise DispatchConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise DispatchConfigError(f"{path}: not valid YAML: {exc}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise DispatchConfigError(f"{path}: the top level must be a mapping")
        data = _expand(raw, env, str(path), ())
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
            raise DispatchConfigError(f"{path}: {problems}") from None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, env: dict[str, str], where: str, loc: tuple) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, where, loc + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, where, loc + (i,)) for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            if m.group(1) not in env:
                field = ".".join(str(p) for p in loc)
                raise DispatchConfigError(f"{where}: {field}: environment variable {m.group(1)} is not set")
            return env[m.group(1)]

        return _VAR.sub(sub, value)
    return value


#: receiver type (ReceiverConfig.type) -> what builds it; the exporters' table is
#: sentinel.exporters.receivers.RECEIVERS, handed in by the composition root
ReceiverFactory = Callable[[ReceiverConfig, ReceiverContext], Receiver]
ReceiverKinds = Mapping[str, ReceiverFactory]


class Dispatcher:
    """Routes each event to its receivers and queues it there; `dispatch()` never waits for a network.

    `kinds` builds each configured receiver by its type; `only` keeps the receivers for which it is true
    (the Alertmanager-webhook relay leaves out the ones that keep state: Alertmanager itself)."""

    def __init__(self, config: DispatchConfig, kinds: ReceiverKinds, *, on_result: Optional[ResultCallback] = None,
                 only: Optional[Callable[[Receiver], bool]] = None) -> None:
        self.config = config
        self._dedup = Deduplicator(config.dedup_window_seconds)
        self._workers: dict[str, Receiver] = {}
        self.stats = {"dispatched": 0, "deduplicated": 0, "unrouted": 0}
        try:
            for rc in config.receivers:
                factory = kinds.get(rc.type)
                if factory is None:
                    raise DispatchConfigError(f"receiver {rc.name!r}: no exporter for type {rc.type!r} "
                                              f"(known: {sorted(kinds)})")
                context = ReceiverContext(
                    grades=config.grade_map, retry=config.retry.backoff(), queue_size=config.queue_size,
                    timezone=config.timezone, on_result=on_result,
                    # a delivery that failed for good may be tried again by the next identical event
                    on_give_up=self._forgetter(rc.name + "|"))
                receiver = factory(rc, context)
                if only is not None and not only(receiver):
                    receiver.close(timeout=0)
                    continue
                self._workers[rc.name] = receiver
        except Exception:
            self.close(timeout=0)
            raise

    def _forgetter(self, key_prefix: str) -> Callable[[AlertEvent], None]:
        """What a receiver calls when it gives up on an event: its de-duplication entry goes."""
        def forget(event: AlertEvent) -> None:
            self._dedup.forget(key_prefix + event.key)
        return forget

    @classmethod
    def from_yaml(cls, path: Path, kinds: ReceiverKinds, **kw: Any) -> Dispatcher:
        return cls(DispatchConfig.from_yaml(path), kinds, **kw)

    def route(self, event: AlertEvent) -> list[str]:
        """Receiver names for an event, in route order, each once (only the receivers this dispatcher has)."""
        return [name for name in self._route(event) if name in self._workers]

    def _route(self, event: AlertEvent) -> list[str]:
        chosen: list[str] = []
        for route in self.config.routes:
            if route.matches(event):
                chosen += [r for r in route.receivers if r not in chosen]
                if not route.continue_:
                    return chosen
        # no route took the event for good (only `continue: true` ones matched, or none): defaults as well
        chosen += [r for r in self.config.default_receivers if r not in chosen]
        return chosen

    def dispatch(self, event: AlertEvent) -> list[str]:
        """Queue the event for its receivers; returns the names it was queued to (de-duplicated ones left out)."""
        names = self.route(event)
        if not names:
            self.stats["unrouted"] += 1
            log.warning("event %s (%s, %s/%s) matches no route and there are no default receivers",
                        event.key, event.kind, event.department, event.system)
            return []
        queued = []
        for name in names:
            worker = self._workers[name]
            # a receiver that keeps state (Alertmanager) de-duplicates itself and needs the re-sends; chats
            # get each state once per window
            if not worker.keeps_state and not self._dedup.admit(f"{name}|{event.key}", event.resolved):
                self.stats["deduplicated"] += 1
                log.debug("event %s to %s: duplicate within %.0fs, not sent", event.key, name,
                          self.config.dedup_window_seconds)
                continue
            if worker.submit(event):
                queued.append(name)
            else:
                self._dedup.forget(f"{name}|{event.key}")
        self.stats["dispatched"] += 1
        return queued

    def worker(self, name: str) -> Receiver:
        return self._workers[name]

    def keeping_state(self, names: list[str]) -> list[Receiver]:
        """Of these receivers, the ones that keep their alerts alive themselves (Alertmanager)."""
        return [w for n in names if (w := self._workers[n]).keeps_state]

    def wait_idle(self, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in self._workers.values())

    def close(self, timeout: float = 5.0) -> None:
        for w in self._workers.values():
            w.close(timeout)
