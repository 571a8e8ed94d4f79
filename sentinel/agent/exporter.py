"""The agent's own /metrics (optional, `metrics_port`): this host's latest report, for sites that scrape
hosts directly rather than the collector (docs/metrics.md).

The agent keeps its latest host report in `<state_dir>/last-report.json` (0600) and the exporter reads it
on each scrape (the exposition's `report_file_source`: exporters/prometheus.py, plugged in by the
composition root), so a scrape never runs a check and a restarted
agent shows its last figures at once. Until the first report exists only `sentinel_system_info` is shown.
An agent speaks for its own host: host series and `sentinel_system_info`, never system-wide figures.
It also shows its spool (`sentinel_agent_spool_*`): what waits for the collector and what was dropped to make
room (the oldest first, when the spool's bounds or its disk are full), so a full spool is seen and alerted on.

The exporter has no authentication and names the host's department and system: it binds 127.0.0.1
unless `metrics_address` says otherwise on purpose (e.g. the node address in the Kubernetes DaemonSet,
behind a NetworkPolicy).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Optional

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..metrics_model import MetricsSnapshot, SystemMetrics
from ..plugins import MetricsExposition
from .config import AgentSettings
from .enroll import Identity, write_private
from .spool import DROP_REASONS, Spool

log = logging.getLogger("sentinel.agent.metrics")

LATEST_REPORT = "last-report.json"


SPOOL_METRICS = ("sentinel_agent_spool_envelopes", "sentinel_agent_spool_bytes", "sentinel_agent_spool_dropped_total")


class SpoolCollector(Collector):
    """The spool's state on each scrape (a directory listing; nothing is read from the envelopes)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self):
        count, size = self.spool.stats()
        waiting = GaugeMetricFamily("sentinel_agent_spool_envelopes", "Envelopes waiting in the agent's spool.")
        waiting.add_metric([], count)
        used = GaugeMetricFamily("sentinel_agent_spool_bytes", "Bytes of the envelopes waiting in the spool.")
        used.add_metric([], size)
        dropped = CounterMetricFamily("sentinel_agent_spool_dropped", "Undelivered envelopes dropped (the oldest "
                                      "first) to make room since the agent started, by reason: bounds "
                                      "(spool_max_count/bytes) or disk_full.", labels=["reason"])
        for reason in DROP_REASONS:
            dropped.add_metric([reason], self.spool.dropped_by[reason])
        return [waiting, used, dropped]


class AgentExporter:
    def __init__(self, settings: AgentSettings, identity: Identity, exposition: MetricsExposition,
                 spool: Optional[Spool] = None) -> None:
        if settings.metrics_port is None:
            raise ValueError("metrics_port is not set")
        if not identity.department or not identity.system:
            raise ValueError(f"{settings.identity_file}: no department/system saved at enrollment, which the "
                             "metrics are labelled with; enroll again with --force")
        self.settings = settings
        self.department, self.system = identity.department, identity.system
        self.path = settings.state_dir / LATEST_REPORT
        self.spool = spool
        self.exposition = exposition
        self._server: Optional[Any] = None

    def save(self, report: dict[str, Any]) -> None:
        """Keep the latest report for the exporter (atomic replace, owner-only)."""
        try:
            write_private(self.path, json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        except OSError as exc:
            log.error("latest report not kept for /metrics: %s: %s", self.path, exc.strerror or exc)

    def _source(self):
        from_file = self.exposition.report_file_source(self.path, department=self.department, system=self.system)

        def source() -> MetricsSnapshot:
            if not self.path.exists():  # no report yet: known system, no host figures (not a failure)
                return MetricsSnapshot(generated_at=datetime.now(timezone.utc), systems=[
                    SystemMetrics(department=self.department, name=self.system, system_wide=False)])
            return from_file()

        return source

    def start(self) -> None:
        addr, port = self.settings.metrics_address, self.settings.metrics_port
        if port is None:  # refused in __init__; settings are not changed after
            raise ValueError("metrics_port is not set")
        try:
            registry = self.exposition.make_registry(self._source())
            if self.spool is not None:
                registry.register(SpoolCollector(self.spool))
            self._server, _ = start_http_server(port, addr=addr, registry=registry)
        except OSError as exc:
            raise OSError(exc.errno, f"agent /metrics on {addr}:{port}: {exc.strerror or exc}") from None
        log.info("agent /metrics on http://%s:%d/metrics", addr, self._server.server_address[1])

    @property
    def port(self) -> Optional[int]:
        return self._server.server_address[1] if self._server is not None else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
