"""What changed between two scans of the same scope: events for new, closed and changed ports.

Pure functions of the findings (no I/O, no clock except a timestamp passed in), so the collector diffs a stored
scan against the next without running one.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel

from sentinel.checks.network.findings import ServiceFinding
from sentinel.model import Severity, utcnow


class ScanEvent(BaseModel):
    kind: Literal["new_open_port", "closed_port", "version_change", "new_forbidden_port"]
    host: str
    port: int
    proto: str
    service: Optional[str] = None
    before: Optional[str] = None
    after: Optional[str] = None
    severity: Severity
    at: datetime


def diff_findings(previous: Iterable[ServiceFinding], current: Iterable[ServiceFinding],
                  at: Optional[datetime] = None, scanned_hosts: Optional[Iterable[str]] = None) -> list[ScanEvent]:
    """Events between two scans of the same scope, ordered by host, proto, port.

    `scanned_hosts`: hosts the current scan actually covered; a previous finding on a host outside it is not
    reported closed (a partial scan says nothing about the rest). None: every previous host counts.
    """
    at = at or utcnow()
    # An open|filtered port is undetermined: it neither opens a port (no new_open_port / new_forbidden_port)
    # nor closes one that was open before (no closed_port): it is left out on both sides.
    before = {f.key: f for f in previous if f.determined}
    undetermined = {f.key for f in current if not f.determined}
    after = {f.key: f for f in current if f.determined}
    covered = None if scanned_hosts is None else set(scanned_hosts)
    events: list[ScanEvent] = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[0], k[1], k[2])):
        old, new = before.get(key), after.get(key)
        host, proto, port = key
        if old is not None and new is None and key in undetermined:
            continue
        if old is None and new is not None:
            events.append(ScanEvent(kind="new_open_port", host=host, port=port, proto=proto, service=new.service,
                                    after=new.version_string or new.service, at=at,
                                    severity=Severity.HIGH if new.forbidden else Severity.MEDIUM))
        elif new is None and old is not None:
            if covered is not None and host not in covered:
                continue
            events.append(ScanEvent(kind="closed_port", host=host, port=port, proto=proto, service=old.service,
                                    before=old.version_string or old.service, severity=Severity.LOW, at=at))
            continue
        elif old is not None and new is not None:
            if (old.version_string or None) != (new.version_string or None) or old.service != new.service:
                events.append(ScanEvent(kind="version_change", host=host, port=port, proto=proto,
                                        service=new.service, before=old.version_string or old.service,
                                        after=new.version_string or new.service, severity=Severity.LOW, at=at))
        if new is not None and new.forbidden and (old is None or not old.forbidden):
            events.append(ScanEvent(kind="new_forbidden_port", host=host, port=port, proto=proto,
                                    service=new.service, after=new.version_string or new.service,
                                    severity=Severity.CRITICAL if new.high_risk else Severity.HIGH, at=at))
    return events


def carry_first_seen(previous: Iterable[ServiceFinding], current: list[ServiceFinding]) -> list[ServiceFinding]:
    """Copies of `current` whose first_seen is the previous scan's for findings seen before."""
    old = {f.key: f for f in previous}
    return [f.model_copy(update={"first_seen": old[f.key].first_seen}) if f.key in old else f for f in current]
