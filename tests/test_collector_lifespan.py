"""around_lifespan (sentinel/collector/lifespan.py): the start/stop the scan service and the refusal log hang
on the collector app's lifespan run in order, stop however the app ends, and no stop after a failed start."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sentinel.collector.lifespan import around_lifespan


def test_starts_and_stops_nest_in_call_order():
    calls: list[str] = []
    app = FastAPI()
    around_lifespan(app, start=lambda: calls.append("start scans"), stop=lambda: calls.append("stop scans"))
    around_lifespan(app, stop=lambda: calls.append("flush refusals"))
    around_lifespan(app, start=lambda: calls.append("start outer"))
    with TestClient(app):
        assert calls == ["start outer", "start scans"]
    assert calls == ["start outer", "start scans", "stop scans", "flush refusals"]


def test_stop_runs_when_the_app_fails_but_not_after_a_failed_start():
    calls: list[str] = []

    def refuse():
        raise RuntimeError("nmap missing")

    app = FastAPI()
    around_lifespan(app, start=refuse, stop=lambda: calls.append("stop inner"))
    around_lifespan(app, stop=lambda: calls.append("stop outer"))
    with pytest.raises(RuntimeError, match="nmap missing"):
        with TestClient(app):
            pass
    assert calls == ["stop outer"]
