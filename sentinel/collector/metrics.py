"""The collector's `GET /metrics` and its ingest counters (docs/metrics.md).

The figures come from stored state (`sentinel.store.snapshot.build_snapshot`), rendered by
the exposition the composition root plugs in (sentinel/plugins.py: exporters/prometheus.py); a scrape
never runs a check, and at scale it does not read the store either: `metrics_stored.StoredMetrics` reads and
renders the stored state in the background, and a scrape serves the last rendering with the live families
(below) rendered for it. Two things are kept in memory, since this process
started: the ingest counters (reports accepted by kind and refused by reason, counted where the agent
endpoint answers, `observe_report`, called by routers/agent.py, and where the body-size limit refuses,
app.py's 413 handler) and the check-duration histogram (`CheckDurations`: each stored host report's
`duration_ms` per result, by the probe type its baseline gives the check, told by the ingestor's
`on_stored` hook after the commit). A histogram over the stored rows would have to read every result ever
stored at each scrape; one that only grows while the process runs is what Prometheus's rate() expects.

/metrics names departments, systems, hosts and their scores, so it asks for `Authorization: Bearer <token>`
(Prometheus: `authorization: {credentials_file: ...}`). The token is `metrics_token`
(SENTINEL_COLLECTOR_METRICS_TOKEN) when set, else the one in `metrics_token_file` (default
<state_dir>/metrics-token), made at the first start. Only `metrics_open` (an explicit choice) serves it
without one (issue 20: it used to be open by default while the shipped unit listened on 0.0.0.0).
"""
from __future__ import annotations

import bisect
import hmac
import itertools
import json
import logging
import secrets
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .. import __version__
from ..atomicfile import write_atomic
from ..metrics_model import CHECK_DURATION_BUCKETS, IngestMetrics, MetricsSnapshot, ProbeDurations
from ..plugins import MetricsExposition
from ..store.db import Database
from ..store.snapshot import build_snapshot, store_marker
from .errors import ApiError
from .lifespan import around_lifespan
from .metrics_stored import StoredMetrics
from .settings import CollectorSettings

log = logging.getLogger("sentinel.collector.metrics")

#: envelope kinds (docs/wire.md); every one is exposed from the start, at 0
KINDS = ("host_report", "inventory", "utilisation")
#: why a report was refused; a fixed vocabulary so the `reason` label stays bounded. `other` is a
#: refusal this table does not know yet (logged once with its status), never a silent gap.
REASONS = ("size", "schema", "unknown_agent", "revoked", "signature", "agent_mismatch", "stale", "replay",
           "rate_limited", "other")

REPORTS_PATH = "/api/v1/agent/reports"


def rejection_reason(status: int, detail: str) -> str:
    """The `reason` of a refused report, from the status and detail that sentinel/collector/ingest/verify.py
    answers with (tests/test_obs_collector.py drives every one of them through a real ingest)."""
    if status == 413:
        return "size"
    if status == 429:
        return "rate_limited"
    if status == 422:
        return "schema"
    if status == 403:
        return "revoked"
    if status == 409:
        return "replay"  # the report id is stored with a different body
    if status == 401:
        if detail.startswith(("signature ", "missing X-Sentinel-Signature")):
            return "signature"
        if detail.startswith(("unknown agent", "missing X-Sentinel-Agent")):
            return "unknown_agent"
    if status == 400:
        if detail.startswith("stale report"):
            return "stale"
        if detail.startswith("envelope agent_id"):
            return "agent_mismatch"
    return "other"


class IngestCounters:
    """Thread-safe counters of this process; `snapshot()` gives the `IngestMetrics` that /metrics shows.

    With `--workers N > 1` every worker process counts its own reports, so a scrape shows the counts of the
    worker that answered it: use one worker where these counters matter (docs/metrics.md).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted = dict.fromkeys(KINDS, 0)
        self._rejected = dict.fromkeys(REASONS, 0)
        self._unknown_logged: set[int] = set()

    def accepted(self, kind: str) -> None:
        if kind not in self._accepted:
            raise ValueError(f"unknown envelope kind {kind!r}; known: {', '.join(KINDS)}")
        with self._lock:
            self._accepted[kind] += 1

    def rejected(self, reason: str) -> None:
        if reason not in self._rejected:
            raise ValueError(f"unknown rejection reason {reason!r}; known: {', '.join(REASONS)}")
        with self._lock:
            self._rejected[reason] += 1

    def snapshot(self) -> IngestMetrics:
        with self._lock:
            return IngestMetrics(reports_total=dict(self._accepted), errors_total=dict(self._rejected))

    def observe_report(self, status: int, answer: Mapping[str, Any], raw: bytes) -> None:
        """Count one answer of POST /agent/reports (2xx: accepted, including the same report again)."""
        if 200 <= status < 300:
            kind = _kind(answer, raw)
            if kind is None:  # cannot happen for a stored envelope; never fail the answer over a counter
                log.warning("accepted report of unknown kind: not counted")
            else:
                self.accepted(kind)
            return
        detail = str(answer.get("detail", ""))
        reason = rejection_reason(status, detail)
        if reason == "other" and status not in self._unknown_logged:
            self._unknown_logged.add(status)
            log.warning("ingest refusal not classified (HTTP %d: %.80s): counted as reason=other", status, detail)
        self.rejected(reason)


def _kind(answer: Mapping[str, Any], raw: bytes) -> Optional[str]:
    if answer.get("run_id") is not None:
        return "host_report"  # only host reports make runs: the common case needs no second parse
    # inventory and utilisation answer alike; their envelopes are small, so reading the kind costs little
    try:
        kind = json.loads(raw).get("kind")
    except (ValueError, AttributeError):
        kind = None
    return kind if kind in KINDS else None


class CheckDurations:
    """Cumulative histogram of stored check durations by probe type, since this process started.

    Fed by `observe` (the ingestor's `on_stored`: once per host report stored for the first time), read by
    `snapshot()` at each scrape. Probe types are the baselines' (a fixed set of probe names), so the
    `probe` label stays bounded. As with the ingest counters, each worker process keeps its own.
    """

    def __init__(self, buckets: tuple[float, ...] = CHECK_DURATION_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._buckets = buckets
        self._probes: dict[str, list] = {}  # probe -> [bucket counts (not cumulative), count, sum]

    def observe(self, durations: Iterable[tuple[str, float]]) -> None:
        with self._lock:
            for probe, seconds in durations:
                if not probe:
                    continue  # a check without a known probe type: no series to put it in
                entry = self._probes.get(probe)
                if entry is None:
                    entry = self._probes[probe] = [[0] * len(self._buckets), 0, 0.0]
                i = bisect.bisect_left(self._buckets, seconds)  # first bound >= seconds (le is inclusive)
                if i < len(self._buckets):
                    entry[0][i] += 1
                entry[1] += 1
                entry[2] += max(0.0, seconds)

    def snapshot(self) -> list[ProbeDurations]:
        with self._lock:
            out = []
            for probe in sorted(self._probes):
                counts, count, total = self._probes[probe]
                cumulative = tuple(itertools.accumulate(counts))
                out.append(ProbeDurations(probe=probe, buckets=self._buckets, bucket_counts=cumulative,
                                          count=count, sum_seconds=total))
            return out


def authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_token_path(settings: CollectorSettings) -> Optional[Path]:
    """The file the /metrics token is kept in, or None when the token is given as a value or not needed."""
    if settings.metrics_token or settings.metrics_open:
        return None
    return settings.metrics_token_file or settings.state_dir / "metrics-token"


def metrics_token(settings: CollectorSettings) -> Optional[str]:
    """The token /metrics asks for, or None when `metrics_open` is set (and no metrics_token is)."""
    if settings.metrics_token:
        return settings.metrics_token
    path = metrics_token_path(settings)
    return read_or_make_token(path) if path is not None else None


def read_or_make_token(path: Path, what: str = "metrics token") -> str:
    """Read the token file, or make it: written atomically (0600) and linked into place, never replacing one, so
    worker processes starting together all end up with the one token and never read a half-written file."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    else:
        if len(token) < 16:
            raise ValueError(f"{path}: the {what} must be at least 16 characters")
        return token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        write_atomic(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"), mode=0o600, replace=False)
    except FileExistsError:
        pass  # another worker was first: its token it is
    log.info("made the /metrics token %s (give it to Prometheus as authorization.credentials_file)", path)
    return path.read_text(encoding="utf-8").strip()


def install(app: FastAPI, exposition: MetricsExposition) -> IngestCounters:
    """Add GET /metrics to the collector app and keep its ingest counters in `app.state.ingest_counters`."""
    settings: CollectorSettings = app.state.settings
    db: Database = app.state.db
    counters = IngestCounters()
    durations = CheckDurations()
    app.state.ingestor.on_stored = lambda pending: durations.observe(pending.durations)
    silent_after = timedelta(seconds=settings.agent_silent_seconds)
    per_check = settings.metrics_per_check
    stored = StoredMetrics(
        lambda: build_snapshot(db, silent_after=silent_after, per_check=per_check, zombie=settings.zombie),
        lambda snap, formats: exposition.render_stored(snap, formats, per_check=per_check),
        refresh_seconds=settings.metrics_cache_seconds, marker=lambda: store_marker(db),
        identity=f"sentinel {__version__}; per_check={per_check}; silent_after={silent_after.total_seconds():g}; "
                 f"zombie={settings.zombie.model_dump_json()}",
        keep_dir=settings.state_dir / "metrics-stored")
    around_lifespan(app, stop=stored.stop)
    token = metrics_token(settings)
    app.state.ingest_counters = counters
    app.state.stored_metrics = stored

    def metrics(request: Request) -> Response:
        """Prometheus exposition of the stored state (text 0.0.4, or OpenMetrics when asked for)."""
        if token is not None and not authorized(request, token):
            raise ApiError(401, "GET /metrics needs Authorization: Bearer <metrics token>")
        fmt, content_type = exposition.exposition_format(request.headers.get("accept"))
        served = stored.get()
        part = served.part
        if part is None and served.up:  # the first read is still under way
            return Response(b"the first read of the stored state is still under way; retry shortly\n",
                            status_code=503, media_type="text/plain", headers={"Retry-After": "5"})
        # the counters and durations are always the current ones; the stored part is the last one read
        live = MetricsSnapshot(generated_at=part.read_at if part else datetime.now(timezone.utc), systems=[],
                               ingest=counters.snapshot(), check_durations=durations.snapshot())
        tail = exposition.render_live(live, fmt, read_at=part.read_at if part else None,
                                      took=part.took if part else None, errors=served.errors, up=served.up)
        body = part.bodies[fmt] + tail if part is not None else tail
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    # a plain def: reading the store blocks, so Starlette runs it in its thread pool
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    return counters
