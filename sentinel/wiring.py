"""The composition root's one place that names the exporters: the CLI commands that build a collector, an
agent or `sentinel up` take `exporters()` from here and hand it to the core (sentinel/plugins.py)."""
from __future__ import annotations

from typing import Any

from .plugins import Exporters


def exporters() -> Exporters:
    from .exporters import prometheus
    from .exporters.receivers import RECEIVERS

    return Exporters(receivers=RECEIVERS, metrics=prometheus)


def collector_app_from_env() -> Any:
    """uvicorn factory for multi-worker serving (`sentinel collector --workers N`): settings come from
    SENTINEL_COLLECTOR_* variables."""
    from .collector.app import create_app, tune_gc
    from .collector.settings import CollectorSettings

    app = create_app(CollectorSettings(), exporters=exporters())
    tune_gc()
    return app
