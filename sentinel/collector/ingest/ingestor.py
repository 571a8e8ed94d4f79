"""The Ingestor: one POST of a signed envelope taken through the stages, verify -> plan -> write.

Hot path (bench/ingest_bench.py measures it): requests queue for the group commit (groupcommit.py), whose
prepare step, one thread at a time, looks up the waiting envelopes' agents (one read) and then takes the
envelopes one by one through verify (verify.py) and the plan's first step (plan.Planner.prepare), so only
one parsed body is alive at once (a crowd of parsed reports held at once made every step slower). The
write step writes the host reports that passed in one transaction per batch (at most one per host and per
report id): it takes the chain heads under lock and re-reads what may have changed (write.BatchSQL
.lock_and_read), re-checks the agent's state and replay there, plans each report's run, drift and events
(plan.Planner.plan_host_report) and writes every table with one executemany each (write.BatchSQL.write).
If a batch fails, each of its reports is written alone, so one bad report never fails the others; a
duplicate report_id racing its first delivery (from another worker process) hits a unique constraint,
and the retry answers idempotently. Inventory and utilisation envelopes (rare, small) take one
transaction each (inventory.py).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, Optional, Union

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from ...store.db import Database
from ...store.models import Agent, Department, Host, System
from .. import audit
from ..baselines import BaselineRegistry
from ..groupcommit import GroupCommit, Job
from . import inventory
from .plan import Pending, Planner
from .verify import (
    MAX_AGE_SECONDS,
    AgentRow,
    Checked,
    Incoming,
    Refused,
    Verifier,
    check_size,
    parse,
    revoked_agent,
    stored_answer,
    unknown_agent,
)
from .write import BatchSQL, BatchWrites

T_AGENT, T_HOST, T_SYSTEM, T_DEPT = Agent.__table__, Host.__table__, System.__table__, Department.__table__

log = logging.getLogger("sentinel.collector.ingest")

MAX_BATCH = 32  # host reports per transaction; bigger batches hold the chain locks longer

Answer = tuple[int, dict[str, Any]]


class Ingestor:
    def __init__(self, db: Database, *, max_body_bytes: int, skew_seconds: float, score_drop_threshold: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 baselines: Optional[BaselineRegistry] = None, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.db = db
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.verifier = Verifier(skew_seconds=skew_seconds, max_age_seconds=max_age_seconds, clock=clock)
        # The collector's own baselines (shipped + site files): verdicts and scores are computed with these.
        self.baselines = baselines if baselines is not None else BaselineRegistry()
        self._store = BatchSQL(db.engine.dialect)
        self.planner = Planner(self.baselines, self._store, score_drop_threshold)
        # called with each host report once it is stored for the first time (after the commit; not for the
        # same report again): collector/metrics.py observes the check durations there. It must not raise.
        self.on_stored: Optional[Callable[[Pending], None]] = None
        self._integrity_errors = (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError)
        self._group: GroupCommit[Union[Incoming, Pending]] = GroupCommit(self._write_batch, _pick, self._check,
                                                                         overlap=not db.is_sqlite)
        self._q_agents = (select(T_AGENT.c.id, T_AGENT.c.state, T_AGENT.c.public_key, T_AGENT.c.host_id,
                                 T_HOST.c.hostname, T_AGENT.c.system_id, T_SYSTEM.c.name.label("system"),
                                 T_SYSTEM.c.label, T_AGENT.c.department_id, T_DEPT.c.name.label("department"),
                                 T_SYSTEM.c.level)
                          .select_from(T_AGENT.join(T_HOST, T_HOST.c.id == T_AGENT.c.host_id)
                                       .join(T_SYSTEM, T_SYSTEM.c.id == T_AGENT.c.system_id)
                                       .join(T_DEPT, T_DEPT.c.id == T_AGENT.c.department_id))
                          .where(T_AGENT.c.id.in_(bindparam("ids", expanding=True))))

    @property
    def score_drop_threshold(self) -> float:
        return self.planner.score_drop_threshold

    # ---- entry point -----------------------------------------------------------------------------

    def handle(self, raw: bytes, agent_header: Optional[str], signature: Optional[str],
               source_ip: Optional[str]) -> Answer:
        """Answer one POST: (HTTP status, JSON body)."""
        try:
            check_size(raw, self.max_body_bytes)
            result: Answer = self._group.submit(Incoming(raw, agent_header, signature, source_ip))
            return result
        except Refused as refusal:
            actor = f"agent:{agent_header[:64]}" if agent_header else "anonymous"
            audit.record_refusal(self.db, actor=actor, action="report.ingest",
                                 target=f"report:{refusal.report_id}" if refusal.report_id else "",
                                 source_ip=source_ip, status_code=refusal.status, detail=refusal.detail)
            answer: dict[str, Any] = {"detail": refusal.detail}
            if refusal.errors:
                answer["errors"] = refusal.errors
            return refusal.status, answer

    # ---- stages 1 and 2a: the group's prepare step ----------------------------------------------

    def _check(self, jobs: list[Job[Any]]) -> None:
        """The group's prepare step (one thread at a time): verify the incoming envelopes, with one lookup
        of their agents and one of their report ids, and prepare each host report that passes (a Pending
        for the batch writer); anything else is answered here. Envelopes are taken one at a time, from
        JSON to rows, so only one parsed body is alive at once."""
        with self._reading() as conn:
            agents = self._agents(conn, {j.item.agent_header for j in jobs})
        prepared: list[Job[Any]] = []
        for job in jobs:
            inc: Incoming = job.item
            report_id = None
            try:
                parsed = parse(inc.raw)
                report_id = parsed.envelope.report_id
                if parsed.envelope.kind != "host_report":
                    job.result = self._handle_other(inc, parsed)
                    job.done = True
                    continue
                checked = self.verifier.verify(agents, inc.raw, parsed, inc.agent_header, inc.signature)
                job.item = self._prepare(checked, inc.source_ip)
                prepared.append(job)
            except Refused as refusal:
                refusal.report_id = report_id
                job.error, job.done = refusal, True
            except Exception as exc:  # e.g. the database failing one inventory: that request's 500
                job.error, job.done = exc, True
        if not prepared:
            return
        with self._reading() as conn:
            stored = self._stored(conn, [(j.item.agent.id, j.item.report_id) for j in prepared])
        for job in prepared:
            p: Pending = job.item
            if (p.agent.id, p.report_id) in stored:
                try:
                    job.result = stored_answer(*stored[(p.agent.id, p.report_id)], "host_report", p.digest,
                                               p.report_id)
                except Refused as refusal:
                    refusal.report_id = p.report_id
                    job.error = refusal
                job.done = True

    def _prepare(self, checked: Checked, source_ip: Optional[str]) -> Pending:
        return self.planner.prepare(checked, source_ip)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for the prepare step's lookups (outside any write transaction)."""
        with self.db.engine.connect() as conn:
            if not self.db.is_sqlite:
                conn.execution_options(isolation_level="AUTOCOMMIT")  # one round trip per query, no BEGIN
            yield conn

    def _agents(self, conn: Connection, agent_ids: set[Optional[str]]) -> dict[str, AgentRow]:
        """The agents (with host, system and department) by id."""
        ids = sorted(a for a in agent_ids if a)
        return {row.id: AgentRow(*row) for row in conn.execute(self._q_agents, {"ids": ids})} if ids else {}

    def _stored(self, conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, Any]]:
        """The reports already stored under these (agent id, report id) keys, as (kind, digest, outcome)."""
        params = {"ids": sorted({r for _, r in keys}), "agents": sorted({a for a, _ in keys})}
        return {(row.agent_id, row.report_id): (row.kind, row.digest, row.outcome)
                for row in conn.execute(self._store.q_stored, params)}

    # ---- stages 2b and 3: the group's write step --------------------------------------------------

    def _write_batch(self, jobs: list[Job[Any]]) -> None:
        """One transaction for the batch; if it fails, each report alone, so one bad report (or a report id
        racing its first delivery) never fails the others."""
        if len(jobs) > 1:
            try:
                with self.db.write() as conn:
                    outcomes = self._write_jobs(conn, jobs)
            except Exception:  # every report is tried again on its own below
                log.debug("a batch of %d reports failed; writing them one by one", len(jobs), exc_info=True)
            else:
                self._settled(jobs, outcomes)
                return
        for job in jobs:
            try:
                for attempt in (1, 2):
                    try:
                        with self.db.write() as conn:
                            outcomes = self._write_jobs(conn, [job])
                        break
                    except self._integrity_errors:
                        # A concurrent request stored the same report_id first; the retry answers from it.
                        if attempt == 2:
                            raise
            except Exception as exc:  # given to the report's own thread
                job.error = exc
            else:
                self._settled([job], outcomes)

    def _settled(self, jobs: list[Job[Any]], outcomes: dict[int, Any]) -> None:
        """Hand the committed answers out, and tell `on_stored` of the reports stored for the first time."""
        _settle(jobs, outcomes)
        if self.on_stored is None:
            return
        for job in jobs:
            outcome = outcomes[id(job)]
            if isinstance(outcome, tuple) and outcome[0] == 202:
                try:
                    self.on_stored(job.item)
                except Exception:  # a metric must never fail a stored report's answer
                    log.exception("on_stored failed for report %s", job.item.report_id)

    def _write_jobs(self, conn: Connection, jobs: list[Job[Any]]) -> dict[int, Any]:
        """Check what may have changed since the checks, plan and write the batch; returns per job id its
        answer or Refused. Nothing is handed out before the transaction commits."""
        items: list[Pending] = [job.item for job in jobs]
        state = self._store.lock_and_read(
            conn, systems={p.agent.system_id for p in items}, agents={p.agent.id for p in items},
            report_ids=[p.report_id for p in items], hosts={p.agent.host_id for p in items},
            previous_keys={(p.agent.host_id, p.run["baseline_id"], p.run["object_instance"]) for p in items})
        now = self.clock()
        run_ids = iter(state.run_ids)
        heads = dict(state.heads)
        w = BatchWrites()
        outcomes: dict[int, Any] = {}
        for job, p in zip(jobs, items, strict=True):
            agent_state = state.agent_states.get(p.agent.id)
            if agent_state is None:
                outcomes[id(job)] = Refused(401, unknown_agent(p.agent.id))
                continue
            if agent_state != "enrolled":
                outcomes[id(job)] = Refused(403, revoked_agent(p.agent.id))
                continue
            stored = state.stored.get((p.agent.id, p.report_id))
            if stored is not None:
                try:
                    outcomes[id(job)] = stored_answer(*stored, "host_report", p.digest, p.report_id)
                except Refused as refusal:
                    outcomes[id(job)] = refusal
                continue
            run_id = next(run_ids)
            outcomes[id(job)] = (202, self.planner.plan_host_report(p, run_id, heads, state, now, w))
        if w.runs:
            w.heads = {sid: heads[sid] for sid in {r["system_id"] for r in w.runs}}
            self._store.write(conn, w)
        for job, p in zip(jobs, items, strict=True):
            if p.flag and isinstance(outcomes[id(job)], tuple) and outcomes[id(job)][0] == 202:
                # Stored with the collector's scoring; the agent's differing claim is on record (rare).
                audit.record(conn, actor=f"agent:{p.agent.id}", action="report.summary_mismatch",
                             target=f"report:{p.report_id}", source_ip=p.source_ip, outcome="flagged",
                             status_code=202, detail=p.flag)
        return outcomes

    # ---- inventory and utilisation: one transaction each ------------------------------------------

    def _handle_other(self, inc: Incoming, parsed: Any) -> Answer:
        for attempt in (1, 2):
            try:
                with self.db.write() as conn:
                    agents = self._agents(conn, {inc.agent_header})
                    c = self.verifier.verify(agents, inc.raw, parsed, inc.agent_header, inc.signature)
                    key = (c.agent.id, c.envelope.report_id)
                    stored = self._stored(conn, [key])
                    if key in stored:
                        return stored_answer(*stored[key], c.envelope.kind, c.digest, c.envelope.report_id)
                    return inventory.store(conn, c, inc.source_ip, self.clock())
            except self._integrity_errors:
                # A concurrent request stored the same report_id first; the retry answers from it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _pick(waiting: list[Job[Any]]) -> list[Job[Any]]:
    """The next batch: oldest first, at most one report per host (drift reads the host's findings as the
    previous report left them) and per (agent, report id)."""
    batch: list[Job[Any]] = []
    hosts: set[int] = set()
    ids: set[tuple[str, str]] = set()
    for job in waiting:
        p: Pending = job.item
        if p.agent.host_id in hosts or (p.agent.id, p.report_id) in ids:
            continue
        batch.append(job)
        hosts.add(p.agent.host_id)
        ids.add((p.agent.id, p.report_id))
        if len(batch) >= MAX_BATCH:
            break
    return batch


def _settle(jobs: list[Job[Any]], outcomes: dict[int, Any]) -> None:
    for job in jobs:
        outcome = outcomes[id(job)]
        if isinstance(outcome, Refused):
            job.error = outcome
        else:
            job.result = outcome
