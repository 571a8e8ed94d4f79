"""Alert events as the publishers see them, and the grading of severities into incident grades.

An `AlertEvent` is what the collector tells people about (a new high-risk finding, a score drop, a silent
agent, a forbidden port...). It is built from a row of the store's `events` table (`from_row`) or from an
Alertmanager webhook notification, and handed to `sentinel.events.dispatch.Dispatcher`.

Grades are those of the national cyber-security incident emergency plan (国家网络安全事件应急预案):
特别重大 (I) > 重大 (II) > 较大 (III) > 一般 (IV). The kinds sentinel emits are graded by the graded-response
table (`sentinel.events.grading`: kind of event x the system's protection level), the same table the Prometheus
rules follow; any other kind (e.g. a relayed Prometheus alert) by the configurable severity mapping
(`GradeMap`, default the plain ladder below).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import grading
from .grading import Grade

GRADES: tuple[str, ...] = ("特别重大", "重大", "较大", "一般")
GRADE_EN = {"特别重大": "extraordinarily serious (I)", "重大": "serious (II)", "较大": "relatively serious (III)",
            "一般": "general (IV)"}
GRADE_LEVEL = {"特别重大": "I", "重大": "II", "较大": "III", "一般": "IV"}

#: severities in order, check severities (sentinel.model.Severity) and event severities (the store's events)
SEVERITY_RANK = {"info": 0, "low": 1, "warning": 2, "medium": 2, "high": 3, "critical": 4}

DEFAULT_GRADES: dict[str, Grade] = {"critical": "特别重大", "high": "重大", "warning": "较大", "medium": "较大",
                                  "low": "一般", "info": "一般"}

#: event kinds with their titles; unknown kinds are allowed (titled by their name) so a newer collector
#: can add kinds without breaking older publishers
KIND_TITLES: dict[str, tuple[str, str]] = {
    # host reports (sentinel/collector/ingest/plan.py)
    "high_risk_finding": ("高风险问题", "High-risk finding"),
    "score_drop": ("合规得分下降", "Compliance score dropped"),
    "drift": ("配置漂移", "Configuration drift"),
    # network scans (sentinel/collector/scan_ingest.py)
    "new_forbidden_port": ("开放了禁止的端口", "Forbidden port open"),
    "new_open_port": ("新开放端口", "New open port"),
    "closed_port": ("端口已关闭", "Port closed"),
    "version_change": ("服务版本变化", "Service version changed"),
    "scan_failed": ("网络扫描失败", "Network scan failed"),
    # website monitoring (sentinel/websites/monitor.py): a 单项否决 finding opened (or resolved)
    "website_security": ("网站安全事件（挂马、篡改、暗链）",
                         "Website compromised (malicious code, tampering, hidden links)"),
    "website_veto": ("网站单项否决问题", "Website fails a veto rule"),
    # the 通报 loop (sentinel/notices/loop.py): a notified problem not rectified by its deadline
    "notice_overdue": ("通报问题逾期未整改", "Notified problem overdue for rectification"),
    # relayed from an Alertmanager webhook (sentinel.events.relay)
    "prometheus_alert": ("监控告警", "Monitoring alert"),
}


class GradeMap(BaseModel):
    """severity -> incident grade; unknown severities are an error naming the severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: dict[str, Grade] = Field(default_factory=lambda: dict(DEFAULT_GRADES))

    @field_validator("mapping")
    @classmethod
    def _complete(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(SEVERITY_RANK))
        if unknown:
            raise ValueError(f"unknown severities {unknown}; known: {sorted(SEVERITY_RANK)}")
        # a partial mapping overrides the defaults for the severities it names
        return {**DEFAULT_GRADES, **v}

    def grade(self, severity: str) -> str:
        try:
            return self.mapping[severity]
        except KeyError:
            raise ValueError(f"severity {severity!r} has no incident grade; known: {sorted(self.mapping)}") from None

    def of(self, event: AlertEvent) -> str:
        """The grade of an event: the graded-response table's (sentinel/events/grading.py: its kind and its
        system's protection level) for the kinds it lists, this severity mapping for any other kind."""
        return grading.grade(event.kind, event.level) or self.grade(event.severity)

    def severity_of(self, event: AlertEvent) -> str:
        """The `severity` label: the table's grade's severity for the kinds it lists, else the event's own."""
        return grading.severity(self.of(event)) if event.kind in grading.CLASS_OF else event.severity


class AlertEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    severity: str
    department: str = Field(min_length=1)
    system: str = Field(min_length=1)
    host: Optional[str] = None
    check: Optional[str] = None
    level: Optional[int] = Field(default=None, ge=1, le=5)  # the system's protection level (定级), for its grade
    summary: str = Field(min_length=1)
    description: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    resolved: bool = False  # the condition cleared: Alertmanager gets endsAt=now, chats get a 已恢复 message
    fingerprint: Optional[str] = None  # stable id of the condition (the store's events.fingerprint)
    url: Optional[str] = None  # link back to the collector's view of it
    id: Optional[int] = None  # the store's events.id, for marking delivery

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        if v not in SEVERITY_RANK:
            raise ValueError(f"severity {v!r} is not one of {sorted(SEVERITY_RANK)}")
        return v

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)  # the store keeps UTC

    @property
    def key(self) -> str:
        """The condition this event is about; events with one key are one alert (firing, then resolved)."""
        if self.fingerprint:
            return self.fingerprint
        raw = "\x1f".join([self.kind, self.department, self.system, self.host or "", self.check or "",
                           str(self.payload.get("subject", ""))])
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @property
    def title(self) -> tuple[str, str]:
        return KIND_TITLES.get(self.kind, (self.kind, self.kind.replace("_", " ").capitalize()))

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    @classmethod
    def from_row(cls, row: Any, *, department: Optional[str] = None, system: Optional[str] = None,
                 host: Optional[str] = None, url: Optional[str] = None) -> AlertEvent:
        """From a `sentinel.store.models.Event` row. Department, system and host names default to the
        row's payload (`department`, `system`, `host`, as the collector's ingest writes them).

        A row whose payload has `"resolved": true` (or whose kind ends in `_resolved`) resolves the alert
        with the same fingerprint.
        """
        payload = dict(row.payload or {})
        department = department or payload.get("department")
        system = system or payload.get("system")
        host = host or payload.get("host")
        if not department or not system:
            raise ValueError(f"event {getattr(row, 'id', '?')}: no department/system given nor in its payload")
        kind = row.kind
        resolved = bool(payload.get("resolved"))
        if kind.endswith("_resolved"):
            kind, resolved = kind[: -len("_resolved")], True
        level = payload.get("level")
        return cls(kind=kind, severity=row.severity, department=department, system=system, host=host,
                   check=row.check_id, level=level if isinstance(level, int) else None, summary=row.summary,
                   description=str(payload.get("description", "")),
                   payload=payload, created_at=row.created_at, resolved=resolved, fingerprint=row.fingerprint,
                   url=url, id=row.id)


#: pushed kinds whose fact a Prometheus rule also alerts on: one alert identity for both paths. The pushed
#: alert takes the rule's alertname and exactly the rule's labels (department, system, level, severity,
#: grade), so Alertmanager, which de-duplicates identical label sets only, keeps one alert; host, check and
#: subject go to the annotations. The grading table gives each pair the same class (a test checks).
SHARED_IDENTITY: dict[str, str] = {
    "high_risk_finding": "SentinelHighRiskFinding",
    "new_forbidden_port": "SentinelForbiddenServiceOpen",
    "score_drop": "SentinelSystemScoreDropped",
    # the 通报 loop's escalation (once, when a problem turns overdue) and the standing rule on the overdue count
    "notice_overdue": "SentinelNoticeProblemsOverdue",
}


def alertname(kind: str) -> str:
    return SHARED_IDENTITY.get(kind) or "Sentinel" + "".join(p.capitalize() for p in kind.split("_"))


def event_labels(event: AlertEvent, grades: GradeMap) -> Mapping[str, str]:
    """Identifying labels of an event (Alertmanager labels; also the facts listed in chat messages)."""
    if event.kind in SHARED_IDENTITY:
        shared = {"alertname": alertname(event.kind), "department": event.department, "system": event.system,
                  "level": "" if event.level is None else str(event.level),
                  "severity": grades.severity_of(event), "grade": grades.of(event)}
        return {k: v for k, v in shared.items() if v}
    labels = {
        "alertname": alertname(event.kind),
        "department": event.department,
        "system": event.system,
        "host": event.host or "",
        "check": event.check or "",
        "severity": grades.severity_of(event),
        "grade": grades.of(event),
        "source": "sentinel",
    }
    subject = event.payload.get("subject")
    if subject not in (None, ""):
        labels["subject"] = str(subject)
    return {k: v for k, v in labels.items() if v}
