"""The Alertmanager-webhook relay: Alertmanager's notifications (the Prometheus rule alerts) become events
for the chat robots of the dispatch configuration (docs/alerting.md, "Relaying Alertmanager to the robots").

Alertmanager's webhook JSON (version 4) is the input; the collector's route (sentinel/collector/relay.py)
hands the events to a dispatcher of the chat receivers only, never back to an Alertmanager.
"""
from __future__ import annotations

from typing import Any

from .model import AlertEvent

_AM_SEVERITY = {"critical": "critical", "high": "high", "error": "high", "warning": "warning", "medium": "medium",
                "low": "low", "info": "info", "none": "info"}


def events_from_alertmanager_webhook(payload: dict[str, Any]) -> list[AlertEvent]:
    """AlertEvents from an Alertmanager webhook notification (version 4), e.g. the alerts of
    deploy/prometheus/sentinel-rules.yml, so they reach the same signed chat robots. A severity this
    module does not know is sent as `warning`, the original kept in the payload. The Alertmanager receiver
    that sent it is `payload.receiver` (routes match it with `relayed_from`), and is part of the alert's
    key: an alert that two Alertmanager receivers notify (on-call and the department) is two messages."""
    if not isinstance(payload, dict) or str(payload.get("version")) != "4":
        raise ValueError("not an Alertmanager webhook notification (version 4)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("Alertmanager notification: `alerts` must be a list")
    out = []
    common = payload.get("commonLabels") or {}
    receiver = str(payload.get("receiver") or "")
    for i, a in enumerate(alerts):
        if not isinstance(a, dict) or not isinstance(a.get("labels"), dict):
            raise ValueError(f"Alertmanager notification: alerts[{i}] has no labels")
        labels = {**common, **a["labels"]}
        ann = a.get("annotations") or {}
        sev = str(labels.get("severity", "warning")).lower()
        out.append(AlertEvent(
            kind="prometheus_alert", severity=_AM_SEVERITY.get(sev, "warning"),
            department=labels.get("department") or "-", system=labels.get("system") or "-",
            host=labels.get("host") or labels.get("instance"), check=labels.get("check"),
            summary=ann.get("summary") or labels.get("alertname", "alert"), description=ann.get("description", ""),
            payload={"alertname": labels.get("alertname"), "labels": labels, "severity_original": sev,
                     "subject": labels.get("alertname"), "receiver": receiver},
            # Alertmanager always sends startsAt; an alert without it is dated now (the field's default)
            **_when(a.get("startsAt") if a.get("status") != "resolved" else (a.get("endsAt") or a.get("startsAt"))),
            resolved=a.get("status") == "resolved",
            fingerprint=f"{receiver}/{a['fingerprint']}" if a.get("fingerprint") else None,
            url=a.get("generatorURL") or None))
    return out


def _when(at: Any) -> dict[str, Any]:
    return {"created_at": at} if at else {}
