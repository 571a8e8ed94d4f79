"""Push sentinel's events to Alertmanager's API v2 (`POST /api/v2/alerts`).

Alertmanager keeps no state of a client's alerts: a client re-sends its firing alerts until they are
resolved, each time pushing `endsAt` forward, and sends a resolved alert (`endsAt` = the time it cleared)
a few more times so that every Alertmanager of a cluster and every notification pipeline sees it.
`AlertmanagerPublisher` does exactly that from a background thread: `publish()` only updates the set of
active alerts and wakes the thread, so a slow or dead Alertmanager never holds up the caller.

If sentinel stops, its alerts end on their own `resend_interval * 4` later instead of firing for ever.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import httpx

from sentinel.events.delivery import Backoff, ResultCallback
from sentinel.events.model import GRADE_EN, GRADE_LEVEL, SHARED_IDENTITY, AlertEvent, GradeMap, event_labels
from sentinel.events.redact import redact_url

log = logging.getLogger(__name__)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def to_alert(event: AlertEvent, grades: GradeMap, *, starts_at: datetime, ends_at: datetime,
             extra_labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """One postableAlert of the v2 OpenAPI: labels identify it, annotations describe it. `extra_labels`
    (the receiver's `labels:`) stand for Prometheus's external_labels, which its rule alerts carry."""
    grade = grades.of(event)
    zh, en = event.title
    annotations = {"summary": event.summary, "title": f"{zh} / {en}", "grade_level": GRADE_LEVEL[grade],
                   "grade_en": GRADE_EN[grade]}
    if event.description:
        annotations["description"] = event.description
    if event.kind in SHARED_IDENTITY:
        # the shared identity leaves these out of the labels; the message still names them
        for key, value in (("host", event.host), ("check", event.check), ("subject", event.payload.get("subject"))):
            if value not in (None, ""):
                annotations[key] = str(value)
    labels = {**(extra_labels or {}), **event_labels(event, grades)}
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations,
                             "startsAt": _rfc3339(starts_at), "endsAt": _rfc3339(ends_at)}
    if event.url:
        alert["generatorURL"] = event.url
    return alert


class AlertmanagerError(Exception):
    pass


class AlertmanagerClient:
    """Thin client of the v2 API; `url` is the Alertmanager base URL (http://host:9093, or with a path prefix)."""

    def __init__(self, url: str, *, timeout: float = 10.0, headers: Optional[dict[str, str]] = None,
                 client: Optional[httpx.Client] = None) -> None:
        self.base = url.rstrip("/")
        self.safe_url = redact_url(self.base)
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                              headers=headers or {}, trust_env=False)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        try:
            resp = self._client.post(f"{self.base}/api/v2/alerts", json=alerts)
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"{self.safe_url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise AlertmanagerError(f"{self.safe_url}: HTTP {resp.status_code}: {resp.text[:300]}")

    def get_alerts(self, *, active: bool = True, silenced: bool = True, inhibited: bool = True,
                   unprocessed: bool = True, filters: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("active", str(active).lower()), ("silenced", str(silenced).lower()),
                                         ("inhibited", str(inhibited).lower()),
                                         ("unprocessed", str(unprocessed).lower())]
        params += [("filter", f) for f in filters]
        try:
            # a tuple, which httpx accepts as (str, primitive) pairs where a list[tuple[str, str]] is invariant
            resp = self._client.get(f"{self.base}/api/v2/alerts", params=tuple(params))
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"{self.safe_url}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise AlertmanagerError(f"{self.safe_url}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def close(self) -> None:
        self._client.close()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _merge(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts with one label set are one alert in Alertmanager (several high-risk findings of a system, see
    events.SHARED_IDENTITY): send it once, firing while any of them fires (from the earliest start), and
    resolved only when all have resolved, so one fixed finding does not resolve the others."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for a in alerts:
        groups.setdefault(tuple(sorted(a["labels"].items())), []).append(a)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        # endsAt is in the future for the firing ones, the resolution time for the others
        latest = max(members, key=lambda a: _parse(a["endsAt"]))
        merged = dict(latest)
        merged["startsAt"] = _rfc3339(min(_parse(a["startsAt"]) for a in members))
        # the annotations name every host/check still in this state (all the open findings of the system)
        same = [a for a in members if a["endsAt"] == latest["endsAt"]]
        merged["annotations"] = dict(latest["annotations"])
        for key in ("host", "check", "subject"):
            values = sorted({a["annotations"][key] for a in same if key in a["annotations"]})
            if values:
                merged["annotations"][key] = ", ".join(values)
        out.append(merged)
    return out


@dataclass
class _Active:
    event: AlertEvent
    starts_at: datetime
    resolved_at: Optional[datetime] = None
    #: what on_result was told of the latest state: None not yet, False failed (pushes go on, and a later
    #: success is told too), True delivered
    reported: Optional[bool] = None
    version: int = 0  # bumped by every submit, so a push reports only the state it carried


_DEFAULT_BACKOFF = Backoff()  # frozen, so one instance can be every publisher's default


class AlertmanagerPublisher:
    """Keeps sentinel's alerts alive in Alertmanager: re-sent while firing, resolved when fixed.

    `resend_interval`: seconds between pushes of the whole active set. `resolved_resend_for`: how long a
    resolved alert keeps being sent (Alertmanager's docs suggest up to 5 minutes).
    """

    name = "alertmanager"
    #: the core's Receiver protocol: this receiver keeps its firing set alive itself
    keeps_state = True

    def __init__(self, client: AlertmanagerClient, *, grades: Optional[GradeMap] = None,
                 resend_interval: float = 60.0, resolved_resend_for: float = 300.0, backoff: Backoff = _DEFAULT_BACKOFF,
                 on_result: Optional[ResultCallback] = None, name: str = "alertmanager",
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 labels: Optional[dict[str, str]] = None) -> None:
        if resend_interval <= 0:
            raise ValueError("resend_interval must be > 0")
        self.client = client
        self.labels = dict(labels or {})
        self.name = name
        self.grades = grades or GradeMap()
        self.resend_interval = resend_interval
        self.resolved_resend_for = resolved_resend_for
        self.backoff = backoff
        self._on_result = on_result
        self._clock = clock
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failures = 0
        self.stats = {"pushes": 0, "push_errors": 0}
        self._thread = threading.Thread(target=self._run, name=f"sentinel-{name}", daemon=True)
        self._thread.start()

    # -- called by the dispatcher (any thread) --

    def submit(self, event: AlertEvent) -> bool:
        now = self._clock()
        with self._lock:
            cur = self._active.get(event.key)
            if event.resolved:
                if cur is None:
                    # resolving something we never sent (e.g. after a restart): still tell Alertmanager
                    cur = _Active(event=event, starts_at=event.created_at)
                    self._active[event.key] = cur
                if cur.resolved_at is None:
                    cur.resolved_at = max(event.created_at, cur.starts_at)
                cur.event = event
                cur.reported = None
                cur.version += 1
            else:
                if cur is None or cur.resolved_at is not None:
                    cur = _Active(event=event, starts_at=event.created_at if event.created_at <= now else now)
                    self._active[event.key] = cur
                else:
                    cur.event = event  # fresher description; startsAt stays the first firing
                cur.reported = None
                cur.version += 1
        self._wake.set()
        return True

    def forget(self, key: str) -> None:
        """Stop pushing `key`, without a resolution: Alertmanager ends it at its last endsAt unless another
        source (a Prometheus rule with the same labels) keeps it firing."""
        with self._lock:
            self._active.pop(key, None)

    def active_keys(self) -> list[str]:
        with self._lock:
            return [k for k, a in self._active.items() if a.resolved_at is None]

    # -- the pusher thread --

    def _batch(self) -> tuple[list[dict[str, Any]], list[tuple[_Active, int]]]:
        now = self._clock()
        ends_firing = now + timedelta(seconds=self.resend_interval * 4)
        alerts, entries = [], []
        with self._lock:
            for key, a in list(self._active.items()):
                if a.resolved_at is not None:
                    if (now - a.resolved_at).total_seconds() > self.resolved_resend_for and a.reported is not None:
                        del self._active[key]
                        continue
                    ends = a.resolved_at
                else:
                    ends = ends_firing
                alerts.append(to_alert(a.event, self.grades, starts_at=a.starts_at, ends_at=ends,
                                       extra_labels=self.labels))
                entries.append((a, a.version))
        return _merge(alerts), entries

    def flush(self) -> bool:
        """Push the active set now (also called by the thread). True on success or nothing to push."""
        alerts, entries = self._batch()
        if not alerts:
            return True
        try:
            self.client.post_alerts(alerts)
        except AlertmanagerError as exc:
            self.stats["push_errors"] += 1
            self._failures += 1
            log.warning("alertmanager %s: push of %d alert(s) failed (%s)", self.client.safe_url, len(alerts), exc)
            if self._failures >= self.backoff.max_attempts:
                for a, version in entries:
                    self._report(a, version, False, str(exc))
            return False
        self.stats["pushes"] += 1
        self._failures = 0
        for a, version in entries:
            self._report(a, version, True, None)
        return True

    def _report(self, a: _Active, version: int, ok: bool, error: Optional[str]) -> None:
        with self._lock:
            # each state is told once, except that a failure is followed by the success of a later push
            if a.version != version or a.reported is True or a.reported is ok:
                return
            a.reported = ok
            event = a.event
        if self._on_result is not None:
            try:
                self._on_result(event, self.name, ok, error)
            except Exception:
                log.exception("alertmanager: result callback failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = self.flush()
            # retry sooner after a failure (exponential, never slower than the resend interval)
            delay = self.resend_interval if ok else min(self.resend_interval, self.backoff.delay(self._failures))
            self._wake.wait(delay)
            self._wake.clear()

    def close(self, timeout: float = 5.0) -> None:
        """Stop re-sending. Firing alerts then end on their own at their last endsAt."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.client.close()

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted state was pushed (or given up): for tests and orderly shutdown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(a.reported is not None for a in self._active.values()):
                    return True
            time.sleep(0.02)
        return False
