"""Work the collector app does when it starts and stops, added around FastAPI's lifespan.

Each part that owns a background service (scans, the refusal log) adds its own start/stop here rather
than each re-wrapping `app.router.lifespan_context` by hand; the order stays that of the calls (the last
added starts first and stops last)."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool


def around_lifespan(app: FastAPI, *, start: Optional[Callable[[], object]] = None,
                    stop: Optional[Callable[[], object]] = None) -> None:
    """Run `start` before the app's current lifespan and `stop` after it, both in the thread pool (they may
    block). `stop` runs however the app ends, but not when `start` itself failed."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        if start is not None:
            await run_in_threadpool(start)
        try:
            async with inner(a) as state:
                yield state
        finally:
            if stop is not None:
                await run_in_threadpool(stop)

    app.router.lifespan_context = lifespan
