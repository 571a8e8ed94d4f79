"""What the composition root plugs into the core: the exporters, behind small typed seams.

The core (collector, agent, store, engine, events) never imports `sentinel.exporters`; the commands that
build a collector, an agent or `sentinel up` (sentinel/wiring.py) hand it an `Exporters`:

- `receivers`: receiver type -> factory, for the event path's `Dispatcher` (sentinel.events.dispatch);
- `metrics`: the Prometheus exposition of a `MetricsSnapshot` (the collector's and the agent's /metrics).

The import contracts in setup.cfg (`lint-imports`) keep it so.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Protocol

from prometheus_client.registry import CollectorRegistry

from .events.dispatch import ReceiverKinds
from .metrics_model import MetricsSnapshot

SnapshotSource = Callable[[], MetricsSnapshot]


class MetricsExposition(Protocol):
    """Renders sentinel's metrics (exporters/prometheus.py)."""

    def make_registry(self, source: SnapshotSource, *, per_check: bool = False) -> CollectorRegistry: ...

    def render(self, registry: CollectorRegistry, accept: Optional[str] = None) -> tuple[bytes, str]: ...

    def report_file_source(self, path: Path, *, department: str, system: str) -> SnapshotSource: ...

    # The collector's /metrics: the stored state rendered in the background, its live families at each scrape.
    def exposition_format(self, accept: Optional[str]) -> tuple[str, str]: ...

    def render_stored(self, snap: MetricsSnapshot, formats: Iterable[str], *, per_check: bool = False
                      ) -> dict[str, bytes]: ...

    def render_live(self, snap: MetricsSnapshot, fmt: str, *, read_at: Optional[datetime], took: Optional[float],
                    errors: int, up: bool) -> bytes: ...


@dataclass(frozen=True)
class Exporters:
    receivers: ReceiverKinds
    metrics: MetricsExposition
