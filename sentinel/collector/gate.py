"""The agent endpoints' gate: what can be refused from the request line and headers is refused before a
byte of the body is read (issue 20, item 6).

An anonymous sender used to cost the collector a full read, parse and validation of every body it sent
(up to max_body_bytes) and an audit write per refusal; four of them sending 3 MiB bodies raised the
latency of genuine signed reports a hundredfold. Now, for `/api/v1/agent/*`:

1. each source address has a token bucket (`source_rate`/s up to `source_burst`); a request takes one
   token, and a refused one (any 4xx) `refusal_cost` more after its answer, so a source of refused
   requests is answered 429 (with Retry-After) long before one of good requests would be;
2. a report (`POST /agent/reports`) must name its agent (`X-Sentinel-Agent`) and carry a signature header;
   the agent is looked up by that header (one primary-key read, remembered for STATE_SECONDS) and an
   unknown agent is refused 401, a revoked one 403, before the body is read;
3. each known agent has a bucket of its own (`agent_rate`/s up to `agent_burst`): 429 past it.

A source past its limit waits `limited_delay` seconds for its 429 (at most MAX_DELAYED such answers wait at
once; the rest are answered at once). Its body stays unread meanwhile, so TCP flow control stops the
sender after the first socket buffer: a flood costs the collector a sleeping coroutine per connection
instead of a busy loop of refusals, and the flooding client is held back too (bench/refusal_bench.py:
without the delay, four senders looping on 429s still took CPU enough to double the agents' latency on
two cores).

Early refusals are answered with `Connection: close`, so the server does not read the rest of the body to
keep the connection. They are audited (aggregated: audit.RefusalLog) and counted in the ingest counters
like the ingest's own refusals. What the gate lets through is checked again in full by ingest/ (verify.py)
(signature, schema, and the agent's state once more when the report is written): the gate is an early
filter, never the only check.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Optional

from sqlalchemy import bindparam, select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store.db import Database
from ..store.models import Agent
from . import audit
from .ingest.verify import revoked_agent, unknown_agent
from .limits import RateLimiter, retry_after
from .settings import CollectorSettings

AGENT_PREFIX = "/api/v1/agent/"
REPORTS = "/api/v1/agent/reports"
_ACTIONS = {REPORTS: "report.ingest", "/api/v1/agent/enroll": "agent.enroll"}
_AGENT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # wire.ID_PATTERN
_T_AGENT = Agent.__table__
MAX_DELAYED = 256  # 429s waiting out limited_delay at one time; past that they are answered at once
# How long a found agent's state is remembered: the lookup took some 150-190 us per report here, a sixth
# of the 1 ms a report may take at the PostgreSQL ingest target (bench/ingest_bench.py). Ids nobody
# enrolled are never remembered (a flood would fill the table); a state remembered stale only means that
# ingest/ingestor.py, which reads the agent's state again when it writes, refuses a just-revoked agent's report
# (403) after reading it.
STATE_SECONDS = 30.0
MAX_STATES = 65536


class AgentGate:
    """ASGI middleware in front of the app (app.py adds it in front of all but urlguard.NoSecretsInUrl)."""

    def __init__(self, app: ASGIApp, *, db: Database, settings: CollectorSettings) -> None:
        self.app = app
        self.db = db
        self.sources = RateLimiter(settings.source_rate, settings.source_burst)
        self.agents = RateLimiter(settings.agent_rate, settings.agent_burst)
        self.refusal_cost = settings.refusal_cost
        self.limited_delay = settings.limited_delay
        self._delayed = asyncio.Semaphore(MAX_DELAYED)
        self._states: dict[str, tuple[str, float]] = {}  # agent id -> (state, remembered until)
        self._q_state = select(_T_AGENT.c.state).where(_T_AGENT.c.id == bindparam("agent_id"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(AGENT_PREFIX):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = client[0] if client else "unknown"
        wait = self.sources.take(source)
        if wait is not None:
            await self._hold_back(wait)
            await self._refuse(scope, send, source, 429, "too many requests from this address: "
                               f"retry after {retry_after(wait)} s", reason="rate_limited",
                               headers={"Retry-After": retry_after(wait)}, actor="anonymous")
            return
        if path == REPORTS and scope.get("method") == "POST":
            refusal = await self._check_report(scope)
            if refusal is not None:
                status, detail, reason, headers, actor = refusal
                await self._refuse(scope, send, source, status, detail, reason=reason, headers=headers, actor=actor)
                return
        status_seen = 0

        async def watch(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if 400 <= status_seen < 500 and status_seen != 429:
            self.sources.charge(source, self.refusal_cost)

    async def _check_report(self, scope: Scope) -> Optional[tuple[int, str, str, dict, str]]:
        """None to let the request through, or (status, detail, counter reason, headers, audit actor)."""
        agent_id = signature = None
        for name, value in scope.get("headers", ()):
            if name == b"x-sentinel-agent":
                agent_id = value.decode("latin-1")
            elif name == b"x-sentinel-signature":
                signature = value
        if not agent_id:
            return 401, "missing X-Sentinel-Agent header", "unknown_agent", {}, "anonymous"
        state = await self._state(agent_id) if _AGENT_ID.fullmatch(agent_id) else None
        if state is None:
            # an id nobody enrolled is a claim, not an identity: the audit actor is anonymous
            return 401, unknown_agent(agent_id), "unknown_agent", {}, "anonymous"
        if state != "enrolled":
            return 403, revoked_agent(agent_id), "revoked", {}, f"agent:{agent_id}"
        if not signature:
            return 401, "missing X-Sentinel-Signature header", "signature", {}, f"agent:{agent_id}"
        wait = self.agents.take(agent_id)
        if wait is not None:
            return (429, f"too many reports from agent {agent_id}: retry after {retry_after(wait)} s",
                    "rate_limited", {"Retry-After": retry_after(wait)}, f"agent:{agent_id}")
        return None

    async def _hold_back(self, wait: float) -> None:
        """Let a limited source wait for its answer (see the module's docstring), if a slot is free."""
        if self.limited_delay <= 0 or self._delayed.locked():
            return
        async with self._delayed:
            await asyncio.sleep(min(self.limited_delay, wait))

    async def _state(self, agent_id: str) -> Optional[str]:
        now = time.monotonic()
        known = self._states.get(agent_id)
        if known is not None and known[1] > now:
            return known[0]
        state = await run_in_threadpool(self._agent_state, agent_id)
        if state is not None:
            if len(self._states) >= MAX_STATES:
                self._states.clear()
            self._states[agent_id] = (state, now + STATE_SECONDS)
        return state

    def _agent_state(self, agent_id: str) -> Optional[str]:
        with self.db.engine.connect() as conn:
            if not self.db.is_sqlite:
                conn.execution_options(isolation_level="AUTOCOMMIT")  # one round trip, no BEGIN/ROLLBACK
            return conn.execute(self._q_state, {"agent_id": agent_id}).scalar_one_or_none()

    async def _refuse(self, scope: Scope, send: Send, source: str, status: int, detail: str, *, reason: str,
                      headers: dict, actor: str) -> None:
        path = scope["path"]
        if status != 429:
            self.sources.charge(source, self.refusal_cost)
        app = scope.get("app")
        counters = getattr(getattr(app, "state", None), "ingest_counters", None)
        if counters is not None and path == REPORTS:
            counters.rejected(reason)
        await run_in_threadpool(audit.record_refusal, self.db, actor=actor,
                                action=_ACTIONS.get(path, f"{scope.get('method')} {path}"[:64]), target=path,
                                source_ip=source, status_code=status, detail=detail)
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            # the body is not read: closing is how the connection is freed of it
            (b"connection", b"close"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]})
        await send({"type": "http.response.body", "body": body})
