"""Report ingestion: verify an agent's signed envelope in the order docs/wire.md fixes, then store it.

Checks, each refusing with a 4xx, an audit entry and nothing stored: size (413), JSON and schema
(422 naming the field), agent known (401) and not revoked (403), signature (401), header agent ==
envelope agent (400), freshness (400 "stale"), uniqueness of report_id (409 for a different body;
200 with the first answer for the same body).

A run's `digest` is the SHA-256 of its envelope's `body` serialised canonically (sorted keys, compact
separators, UTF-8, no NaN): "the same body" for idempotency is the same digest, so an agent may re-sign
a spooled report with a fresh `sent_at` and still be answered idempotently. The signed request bytes
are kept (compressed, store/envelopes.py) with the report, so the agent's signature and the digest can be re-checked later.
Each system chains its runs with `chain_hash = sha256(prev_chain_hash + digest)` over the lowercase
hex strings, starting from 64 zeros (sentinel/evidence/digest.py restates this for verification).

Hot path (bench/ingest_bench.py measures it): requests queue for the group commit (groupcommit.py),
whose leader, one thread at a time, looks up the waiting envelopes' agents (one read) and then takes
the envelopes one by one through every check: JSON (orjson where it provably matches the standard
library, fastjson.py), the schema, the canonical digest, signature, header and freshness checks; it
builds the check-result rows and the compressed copy of the signed bytes and keeps only those and a few
facts per result (`ResultFacts`), so the parsed body and its model are freed before the next envelope is
read (a crowd of parsed reports held at once made every step slower). It then writes the host reports
that passed in one transaction per batch (at most one per host and per report id), which takes the chain heads of the batch's systems (row locks on
PostgreSQL; SQLite's single write lock), re-reads under them what may have changed (agent state, a
report stored meanwhile, open findings, previous score), numbers the runs, and writes every table with
one executemany each (bulk.py). If a batch fails, each of its reports is written alone, so one bad
report never fails the others; a duplicate report_id racing its first delivery (from another worker
process) hits a unique constraint, and the retry answers idempotently. Inventory and utilisation
envelopes (rare, small) take one transaction each.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, NamedTuple, Optional

from pydantic import ValidationError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import scoring, signing
from ..model import HostReport, Status
from ..store import envelopes
from ..store.db import Database
from ..store.models import (
    Agent,
    CheckResultRow,
    Department,
    Event,
    Finding,
    Host,
    InventorySnapshot,
    Report,
    Run,
    System,
    UtilisationSample,
)
from . import audit, bulk, drift, fastjson, judge
from .baselines import BaselineRegistry, UnknownBaseline
from .groupcommit import GroupCommit, Job
from .wire import Envelope, InventoryBody, UtilisationBody

T_AGENT, T_HOST, T_SYSTEM, T_DEPT = Agent.__table__, Host.__table__, System.__table__, Department.__table__
T_REPORT, T_RUN, T_RESULT, T_FINDING = Report.__table__, Run.__table__, CheckResultRow.__table__, Finding.__table__
T_EVENT, T_INVENTORY, T_SAMPLE = Event.__table__, InventorySnapshot.__table__, UtilisationSample.__table__

log = logging.getLogger("sentinel.collector.ingest")

BODY_MODELS = {"host_report": HostReport, "inventory": InventoryBody, "utilisation": UtilisationBody}
MAX_ERRORS_SHOWN = 10


class Refused(Exception):
    def __init__(self, status: int, detail: str, errors: Optional[list[dict]] = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.report_id: Optional[str] = None  # for the audit entry, once the envelope was read


@dataclass(frozen=True)
class Incoming:
    """A POST as it arrived, waiting for the group's prepare step."""

    raw: bytes
    agent_header: Optional[str]
    signature: Optional[str]
    source_ip: Optional[str]


@dataclass(frozen=True)
class AgentRow:
    id: str
    state: str
    public_key: str
    host_id: int
    hostname: str
    system_id: int
    system: str
    label: str
    department_id: int
    department: str
    level: int  # the system's protection level (定级): a host report is judged by a baseline of that level


class ResultFacts(NamedTuple):
    """What drift, findings and events need of one check result (JSON values as sent)."""

    check_id: str
    clause: str
    item: str
    status: str
    severity: str
    high_risk: Optional[str]
    waiver: Optional[str]
    reason: Optional[str]
    title: dict
    remediation: dict
    advisory: Optional[dict] = None  # the baseline's reason the check is advisory: it opens no finding (drift.py)


@dataclass
class Checked:
    """An envelope that passed every check but uniqueness."""

    raw: bytes
    signature: str
    envelope: Envelope
    body: dict  # the envelope body as sent (JSON values), stored as-is
    model: Any  # the body validated against its kind's model
    digest: str  # sha256 of the canonical body
    agent: AgentRow


def canonical_digest(body: Any) -> str:
    return hashlib.sha256(fastjson.canonical_std(body)).hexdigest()


def chain(prev_chain_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_chain_hash + digest).encode("ascii")).hexdigest()


@functools.lru_cache(maxsize=65536)
def _public_key(b64: str):
    return signing.load_public_key_b64(b64)


def _describe(err: dict, prefix: str = "") -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    return f"{prefix}{loc}: {err.get('msg', 'invalid')}"


def _schema_error(exc: ValidationError, prefix: str, what: str) -> Refused:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    shown = [{"loc": prefix + ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", "")}
             for e in errors[:MAX_ERRORS_SHOWN]]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Refused(422, f"{what}: {_describe(errors[0], prefix)}{more}", shown)


def _scrub_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_scrub_nul(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_nul(k): _scrub_nul(v) for k, v in value.items()}
    return value


INT32 = 2**31 - 1
MAX_DURATION_MS = 7 * 86400 * 1000.0
# Column widths of the values a host report puts into indexed/limited columns.
_LIMITS = (("check_id", 128), ("clause", 32), ("item", 8), ("high_risk", 32))


def _check_storable(rep: HostReport, report_id: str) -> None:
    """Refuse, naming the field, values the schema allows but the tables cannot hold."""
    def refuse(where: str, what: str) -> Refused:
        return Refused(422, f"host_report body: {where}: {what}")

    if rep.report_id not in (None, report_id):
        raise refuse("body.report_id", f"{rep.report_id!r} differs from the envelope's report_id {report_id!r}")
    for name, limit in (("id", 128), ("version", 64)):
        if len(getattr(rep.baseline, name)) > limit:
            raise refuse(f"body.baseline.{name}", f"longer than {limit} characters")
    if not -INT32 <= rep.baseline.level <= INT32:
        raise refuse("body.baseline.level", "out of range")
    if len(rep.summary.conclusion) > 16:
        raise refuse("body.summary.conclusion", "longer than 16 characters")
    for name in ("checks_total", "high_risk"):
        if not 0 <= getattr(rep.summary, name) <= INT32:
            raise refuse(f"body.summary.{name}", f"must be between 0 and {INT32}")
    if not 0 <= rep.summary.counts.get("fail", 0) <= INT32:
        raise refuse("body.summary.counts.fail", f"must be between 0 and {INT32}")
    if not 0 <= rep.duration_ms <= MAX_DURATION_MS:
        raise refuse("body.duration_ms", f"must be between 0 and {MAX_DURATION_MS:.0f}")
    try:
        _aware(rep.generated_at) - timedelta(milliseconds=rep.duration_ms)
    except OverflowError:
        raise refuse("body.generated_at", "out of range") from None
    for i, r in enumerate(rep.results):
        for name, limit in _LIMITS:
            value = getattr(r, name)
            if value is not None and len(value) > limit:
                raise refuse(f"body.results.{i}.{name}", f"longer than {limit} characters")


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


MAX_AGE_SECONDS = 14 * 86400  # default: how old a (spooled) report may be when it arrives
MAX_BATCH = 32  # host reports per transaction; bigger batches hold the chain locks longer


@dataclass
class Pending:
    """A host report that passed every check but uniqueness, with its rows built: what the writer needs."""

    report_id: str
    digest: str
    agent: AgentRow
    results: list[ResultFacts]
    finished: datetime
    run: dict  # runs columns known before the lock (baseline, score, conclusion, ...)
    rows: Any  # check results as the store's driver takes them (bulk.*Store.result_rows)
    report: dict  # reports columns known before the lock
    host: dict
    source_ip: Optional[str]
    flag: Optional[str] = None  # the agent's summary differs from the collector's scoring (audited)
    durations: tuple[tuple[str, float], ...] = ()  # (probe type, seconds) per result, for on_stored


class Ingestor:
    def __init__(self, db: Database, *, max_body_bytes: int, skew_seconds: float, score_drop_threshold: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 baselines: Optional[BaselineRegistry] = None, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.db = db
        # sent_at is the time the agent made and signed the report (it is sent unchanged from the spool):
        # accepted from max_age in the past (a long outage) to the clock skew ahead.
        self.max_age = timedelta(seconds=max(max_age_seconds, skew_seconds))
        # The collector's own baselines (shipped + site files): verdicts and scores are computed with these.
        self.baselines = baselines if baselines is not None else BaselineRegistry()
        self.max_body_bytes = max_body_bytes
        self.skew = timedelta(seconds=skew_seconds)
        self.score_drop_threshold = score_drop_threshold
        self.clock = clock
        self._store = bulk.store_for(db.engine.dialect)
        # called with each host report once it is stored for the first time (after the commit; not for the
        # same report again): collector/metrics.py observes the check durations there. It must not raise.
        self.on_stored: Optional[Callable[[Pending], None]] = None
        self._integrity_errors = (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError)
        self._group: GroupCommit[Incoming | Pending] = GroupCommit(self._write_batch, _pick, self._check,
                                                                   overlap=not db.is_sqlite)
        # Statements are built once: per report only parameters change, so SQLAlchemy's compiled
        # cache is hit every time and no statement objects are made on the hot path.
        self._q_agents = (select(T_AGENT.c.id, T_AGENT.c.state, T_AGENT.c.public_key, T_AGENT.c.host_id,
                                 T_HOST.c.hostname, T_AGENT.c.system_id, T_SYSTEM.c.name.label("system"),
                                 T_SYSTEM.c.label, T_AGENT.c.department_id, T_DEPT.c.name.label("department"),
                                 T_SYSTEM.c.level)
                          .select_from(T_AGENT.join(T_HOST, T_HOST.c.id == T_AGENT.c.host_id)
                                       .join(T_SYSTEM, T_SYSTEM.c.id == T_AGENT.c.system_id)
                                       .join(T_DEPT, T_DEPT.c.id == T_AGENT.c.department_id))
                          .where(T_AGENT.c.id.in_(bindparam("ids", expanding=True))))
        # Report ids are the agents' own names, unique per agent (migration 0004): one agent's id never
        # finds another agent's report.
        self._q_stored = (select(T_REPORT.c.agent_id, T_REPORT.c.report_id, T_REPORT.c.kind, T_REPORT.c.digest,
                                 T_REPORT.c.outcome)
                          .where(T_REPORT.c.report_id.in_(bindparam("ids", expanding=True)),
                                 T_REPORT.c.agent_id.in_(bindparam("agents", expanding=True))))
        self._i_report = insert(T_REPORT)
        self._u_agent = update(T_AGENT).where(T_AGENT.c.id == bindparam("aid")).values(
            last_seen=bindparam("t"), last_ip=bindparam("ip"))

    # ---- entry point -----------------------------------------------------------------------------

    def handle(self, raw: bytes, agent_header: Optional[str], signature: Optional[str],
               source_ip: Optional[str]) -> tuple[int, dict]:
        """Answer one POST: (HTTP status, JSON body)."""
        try:
            if len(raw) > self.max_body_bytes:
                raise Refused(413, f"request body of {len(raw)} bytes exceeds the limit of {self.max_body_bytes}")
            return self._group.submit(Incoming(raw, agent_header, signature, source_ip))
        except Refused as refusal:
            actor = f"agent:{agent_header[:64]}" if agent_header else "anonymous"
            audit.record_refusal(self.db, actor=actor, action="report.ingest",
                                 target=f"report:{refusal.report_id}" if refusal.report_id else "",
                                 source_ip=source_ip, status_code=refusal.status, detail=refusal.detail)
            answer: dict[str, Any] = {"detail": refusal.detail}
            if refusal.errors:
                answer["errors"] = refusal.errors
            return refusal.status, answer

    def _check(self, jobs: list[Job]) -> None:
        """The group's prepare step (one thread at a time): every check of the incoming envelopes, with one
        lookup of their agents and one of their report ids. A host report that passes becomes a Pending for
        the batch writer; anything else is answered here. Envelopes are taken one at a time, from JSON to
        rows, so only one parsed body is alive at once."""
        with self._reading() as conn:
            agents = self._agents(conn, {j.item.agent_header for j in jobs})
        prepared: list[Job] = []
        for job in jobs:
            inc: Incoming = job.item
            report_id = None
            try:
                envelope, body, model, digest = self._parse(inc.raw)
                report_id = envelope.report_id
                if envelope.kind != "host_report":
                    job.result = self._handle_other(inc.raw, envelope, body, model, digest, inc.agent_header,
                                                    inc.signature, inc.source_ip)
                    job.done = True
                    continue
                checked = self._verify(agents, inc.raw, envelope, body, model, digest, inc.agent_header,
                                       inc.signature)
                job.item = self._prepare(checked, inc.source_ip)
                prepared.append(job)
            except Refused as refusal:
                refusal.report_id = report_id
                job.error, job.done = refusal, True
            except Exception as exc:  # noqa: BLE001 - e.g. the database failing one inventory: that request's 500
                job.error, job.done = exc, True
        if not prepared:
            return
        with self._reading() as conn:
            stored = self._stored(conn, [(j.item.agent.id, j.item.report_id) for j in prepared])
        for job in prepared:
            p: Pending = job.item
            if (p.agent.id, p.report_id) in stored:
                try:
                    job.result = _stored_answer(*stored[(p.agent.id, p.report_id)], "host_report", p.digest,
                                                p.report_id)
                except Refused as refusal:
                    refusal.report_id = p.report_id
                    job.error = refusal
                job.done = True

    # ---- checks ----------------------------------------------------------------------------------

    def _parse(self, raw: bytes) -> tuple[Envelope, dict, Any, str]:
        try:
            data, canonical = fastjson.parse_envelope(raw)
        except json.JSONDecodeError as exc:
            raise Refused(422, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except UnicodeDecodeError:
            raise Refused(422, "malformed JSON: the body is not UTF-8") from None
        except RecursionError:
            raise Refused(422, "malformed JSON: nested too deeply") from None
        except ValueError as exc:  # NaN/Infinity, integers too long to convert
            raise Refused(422, f"malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Refused(422, f"envelope: expected a JSON object, got {type(data).__name__}")
        try:
            envelope = Envelope.model_validate(data)
        except ValidationError as exc:
            raise _schema_error(exc, "", "envelope") from None
        body = data["body"]
        try:
            digest = hashlib.sha256(canonical if canonical is not None else fastjson.canonical_std(body)).hexdigest()
        except ValueError:  # a number like 1e999 parsed to infinity, which JSON cannot carry
            raise Refused(422, "malformed JSON: a number is out of range") from None
        if b"\\u0000" in raw:
            # NUL cannot be stored in PostgreSQL text or jsonb; the stored copy gets U+FFFD instead (the
            # digest and the kept envelope still cover the original bytes).
            body = _scrub_nul(body)
        try:
            model = BODY_MODELS[envelope.kind].model_validate(body)
        except ValidationError as exc:
            raise _schema_error(exc, "body.", f"{envelope.kind} body") from None
        if envelope.kind == "host_report":
            _check_storable(model, envelope.report_id)
        return envelope, body, model, digest

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """A connection for the prepare step's lookups (outside any write transaction)."""
        with self.db.engine.connect() as conn:
            if not self.db.is_sqlite:
                conn.execution_options(isolation_level="AUTOCOMMIT")  # one round trip per query, no BEGIN
            yield conn

    def _agents(self, conn, agent_ids: set[Optional[str]]) -> dict[str, AgentRow]:
        """The agents (with host, system and department) by id."""
        ids = sorted(a for a in agent_ids if a)
        return {row.id: AgentRow(*row) for row in conn.execute(self._q_agents, {"ids": ids})} if ids else {}

    def _stored(self, conn, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, Any]]:
        """The reports already stored under these (agent id, report id) keys, as (kind, digest, outcome)."""
        params = {"ids": sorted({r for _, r in keys}), "agents": sorted({a for a, _ in keys})}
        return {(row.agent_id, row.report_id): (row.kind, row.digest, row.outcome)
                for row in conn.execute(self._q_stored, params)}

    def _verify(self, agents: dict[str, AgentRow], raw: bytes, envelope: Envelope, body: dict, model: Any,
                digest: str, agent_header: Optional[str], signature: Optional[str]) -> Checked:
        if not agent_header:
            raise Refused(401, "missing X-Sentinel-Agent header")
        agent = agents.get(agent_header)
        if agent is None:
            raise Refused(401, _unknown(agent_header))
        if agent.state != "enrolled":
            raise Refused(403, _revoked(agent.id))
        if not signature:
            raise Refused(401, "missing X-Sentinel-Signature header")
        try:
            public_key = _public_key(agent.public_key)
        except signing.SigningKeyError as exc:
            # a weak key registered before enrollment refused them (small-order keys sign for anyone)
            raise Refused(403, f"agent {agent.id} has an unusable registered key ({exc}): enroll it again") from None
        if not signing.verify(public_key, raw, signature):
            raise Refused(401, "signature does not verify with the agent's registered key")
        if envelope.agent_id != agent.id:
            raise Refused(400, f"envelope agent_id {envelope.agent_id!r} differs from the "
                               f"X-Sentinel-Agent header {agent.id!r}")
        age = (self.clock() - envelope.sent_at).total_seconds()
        if -age > self.skew.total_seconds():
            raise Refused(400, f"stale report: sent_at {envelope.sent_at.isoformat()} is {-age:.0f} s ahead of the "
                               f"collector's clock (allowed skew {self.skew.total_seconds():.0f} s)")
        if age > self.max_age.total_seconds():
            raise Refused(400, f"stale report: sent_at {envelope.sent_at.isoformat()} is {age:.0f} s old, older than "
                               f"the collector accepts ({self.max_age.total_seconds():.0f} s)")
        return Checked(raw=raw, signature=signature, envelope=envelope, body=body, model=model,
                       digest=digest, agent=agent)

    # ---- host reports: prepared before the lock, written in batches -------------------------------

    def _prepare(self, c: Checked, source_ip: Optional[str]) -> Pending:
        """Judge the report by the collector's baseline (judge.py), then build its rows. Everything that
        decides a verdict or a score comes from that baseline or is computed here; the agent's summary
        is only compared (a difference is kept beside the collector's summary and audited)."""
        rep: HostReport = c.model
        agent = c.agent
        try:
            ref = self.baselines.get(rep.baseline.id, rep.baseline.version, agent.department)
            verdict = judge.judge(ref, rep, c.body["summary"])
        except UnknownBaseline as exc:
            raise Refused(422, f"host_report body: body.baseline: {exc}",
                          [{"loc": "body.baseline", "msg": str(exc)}]) from None
        except judge.BaselineMismatch as exc:
            raise Refused(422, f"host_report body: {exc}", [{"loc": exc.loc, "msg": exc.msg}]) from None
        if ref.baseline.level != agent.level:
            # the system's grading decides what it is judged by, not the agent's choice of a laxer baseline
            msg = (f"baseline {ref.baseline.id} is a level-{ref.baseline.level} baseline but system {agent.system} is "
                   f"graded level {agent.level}; run a level-{agent.level} baseline")
            raise Refused(422, f"host_report body: body.baseline: {msg}", [{"loc": "body.baseline", "msg": msg}])
        summary = verdict.summary
        stored_summary = summary.model_dump(mode="json")
        flag = None
        if verdict.mismatch:
            stored_summary["agent_claimed"] = verdict.claimed  # shown with the run (GET /runs/{id})
            flag = judge.describe(verdict)
        finished = _aware(rep.generated_at)
        checks = ref.checks
        rows, facts, durations = [], [], []
        for r, raw in zip(rep.results, c.body["results"], strict=True):
            spec = checks[r.check_id]  # judge() checked that every result is one of the baseline's checks
            durations.append((spec.probe, r.duration_ms / 1000.0))
            status = r.status.value
            rows.append((r.check_id, spec.clause, spec.item, spec.title, status, spec.severity, spec.high_risk,
                         raw.get("observed"), r.expected, r.reason, raw.get("evidence") or [], spec.waiver,
                         r.duration_ms, spec.advisory))
            facts.append(ResultFacts(r.check_id, spec.clause, spec.item, status, spec.severity, spec.high_risk,
                                     spec.waiver, r.reason, spec.title, spec.remediation, spec.advisory))
        host = rep.host
        baseline = ref.baseline
        return Pending(
            report_id=c.envelope.report_id, digest=c.digest, agent=agent, results=facts, finished=finished,
            durations=tuple(durations),
            run={"report_id": c.envelope.report_id, "agent_id": agent.id, "host_id": agent.host_id,
                 "system_id": agent.system_id, "department_id": agent.department_id,
                 "baseline_id": baseline.id, "baseline_version": baseline.version,
                 "baseline_level": baseline.level, "started_at": finished - timedelta(milliseconds=rep.duration_ms),
                 "finished_at": finished, "summary": stored_summary, "score": summary.score,
                 "pass_rate": summary.pass_rate, "conclusion": summary.conclusion,
                 "checks_total": summary.checks_total,
                 "failed": sum(r.status == Status.FAIL and scoring.counted(r) for r in rep.results),
                 "high_risk": summary.high_risk, "digest": c.digest},
            rows=self._store.result_rows(rows),
            report={"report_id": c.envelope.report_id, "kind": c.envelope.kind, "agent_id": agent.id,
                    "host_id": agent.host_id, "department_id": agent.department_id, "digest": c.digest,
                    "sent_at": c.envelope.sent_at, "source_ip": source_ip, "signature": c.signature,
                    "envelope": envelopes.pack(c.raw)},
            host={"os_id": host.os_id[:64], "os_version": host.os_version[:64], "os_name": host.os_name[:200],
                  "family": host.family[:32] if host.family else None, "arch": host.arch[:32],
                  "kernel": host.kernel[:128] if host.kernel else None},
            source_ip=source_ip, flag=flag)

    def _write_batch(self, jobs: list[Job]) -> None:
        """One transaction for the batch; if it fails, each report alone, so one bad report (or a report id
        racing its first delivery) never fails the others."""
        if len(jobs) > 1:
            try:
                with self.db.write() as conn:
                    outcomes = self._write_jobs(conn, jobs)
            except Exception:  # noqa: BLE001 - every report is tried again on its own below
                pass
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
            except Exception as exc:  # noqa: BLE001 - given to the report's own thread
                job.error = exc
            else:
                self._settled([job], outcomes)

    def _settled(self, jobs: list[Job], outcomes: dict[int, Any]) -> None:
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

    def _write_jobs(self, conn, jobs: list[Job]) -> dict[int, Any]:
        """Check what may have changed since the checks, then write the batch; returns per job id its
        answer or Refused. Nothing is handed out before the transaction commits."""
        items: list[Pending] = [job.item for job in jobs]
        state = self._store.lock_and_read(
            conn, systems={p.agent.system_id for p in items}, agents={p.agent.id for p in items},
            report_ids=[p.report_id for p in items], hosts={p.agent.host_id for p in items},
            previous_keys={(p.agent.host_id, p.run["baseline_id"]) for p in items})
        now = self.clock()
        run_ids = iter(state.run_ids)
        heads = dict(state.heads)
        w = bulk.BatchWrites()
        outcomes: dict[int, Any] = {}
        for job, p in zip(jobs, items, strict=True):
            agent_state = state.agent_states.get(p.agent.id)
            if agent_state is None:
                outcomes[id(job)] = Refused(401, _unknown(p.agent.id))
                continue
            if agent_state != "enrolled":
                outcomes[id(job)] = Refused(403, _revoked(p.agent.id))
                continue
            stored = state.stored.get((p.agent.id, p.report_id))
            if stored is not None:
                try:
                    outcomes[id(job)] = _stored_answer(*stored, "host_report", p.digest, p.report_id)
                except Refused as refusal:
                    outcomes[id(job)] = refusal
                continue
            run_id = next(run_ids)
            outcomes[id(job)] = (202, self._plan_host_report(p, run_id, heads, state, now, w))
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

    def _plan_host_report(self, p: Pending, run_id: int, heads: dict[int, str], state: bulk.BatchState,
                          now: datetime, w: bulk.BatchWrites) -> dict:
        results, agent, finished = p.results, p.agent, p.finished
        prev_head = heads[agent.system_id]
        heads[agent.system_id] = chain_hash = chain(prev_head, p.digest)
        w.runs.append({**p.run, "id": run_id, "received_at": now, "prev_chain_hash": prev_head,
                       "chain_hash": chain_hash})
        w.results.append((run_id, p.rows))

        open_rows = state.open_findings.get(agent.host_id, [])
        plan = drift.plan(results, {check_id: fid for check_id, fid, _ in open_rows})
        high_risk_open = {fid: high_risk for _, fid, high_risk in open_rows if high_risk}
        for i in plan.opened:
            r = results[i]
            w.findings.append({
                "host_id": agent.host_id, "system_id": agent.system_id, "department_id": agent.department_id,
                "check_id": r.check_id, "clause": r.clause, "item": r.item, "title": r.title,
                "remediation": r.remediation, "severity": r.severity,
                "high_risk": r.high_risk, "first_seen": finished, "last_seen": finished, "first_run_id": run_id,
                "last_run_id": run_id, "occurrences": 1, "resolved_at": None, "resolution": None,
                "resolved_run_id": None})
        if plan.seen_again:
            w.seen.append({"ids": list(plan.seen_again), "t": finished, "run": run_id})
        for resolution, ids in (("fixed", plan.fixed), ("waived", plan.waived), ("advisory", plan.advisory)):
            w.resolved.extend({"id": fid, "t": finished, "run": run_id, "how": resolution} for fid in ids)

        new_failures, fixed = plan.new_failures(results), plan.fixed_checks()
        prev_score, prev_conclusion = state.previous.get((agent.host_id, p.run["baseline_id"]), (None, None))
        w.events.extend(self._events(p, run_id, plan, new_failures, fixed, high_risk_open, prev_score,
                                     prev_conclusion, now))
        outcome = {"report_id": p.report_id, "run_id": run_id, "new_failures": new_failures, "fixed": fixed}
        w.hosts.append({"hid": agent.host_id, "now": now, **p.host})
        w.agents.append({"aid": agent.id, "now": now, "ip": p.source_ip})
        w.reports.append({**p.report, "received_at": now, "outcome": outcome})
        return outcome

    def _events(self, p: Pending, run_id: int, plan: drift.DriftPlan, new_failures: list[str], fixed: list[str],
                high_risk_open: dict[int, str], prev_score: Optional[float], prev_conclusion: Optional[str],
                now: datetime) -> list[dict]:
        agent, run = p.agent, p.run
        # level: the system's protection level, which grades the alert (exporters/grading.py, 分级响应)
        common = {"department": agent.department, "system": agent.system, "system_label": agent.label,
                  "level": agent.level,
                  "host": agent.hostname, "host_id": agent.host_id, "run_id": run_id,
                  "report_id": p.report_id, "baseline": run["baseline_id"],
                  "baseline_version": run["baseline_version"]}
        where = f"{agent.system}/{agent.hostname}"
        base = {"department_id": agent.department_id, "system_id": agent.system_id, "host_id": agent.host_id,
                "run_id": run_id, "created_at": now, "delivered": False, "attempts": 0}
        events = []
        for i in plan.opened:
            r = p.results[i]
            if not r.high_risk:
                continue
            events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": r.check_id,
                           "fingerprint": drift.fingerprint("high_risk_finding", agent.host_id, r.check_id),
                           "summary": f"{where}: high-risk finding {r.check_id} ({r.clause}{r.item}, "
                                      f"case {r.high_risk}): {r.title['zh']}",
                           "payload": {**common, "check_id": r.check_id, "clause": r.clause, "item": r.item,
                                       "case": r.high_risk, "severity": r.severity,
                                       "title": r.title, "reason": r.reason, "remediation": r.remediation}})
        # A high-risk finding that is fixed or waived resolves its alert: same kind, severity and
        # fingerprint, with "resolved": true in the payload (exporters.events.AlertEvent.from_row).
        for resolution, closed in (("fixed", plan.fixed), ("waived", plan.waived), ("advisory", plan.advisory)):
            for finding_id, check_id in sorted(closed.items()):
                case = high_risk_open.get(finding_id)
                if case is None:
                    continue
                events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": check_id,
                               "fingerprint": drift.fingerprint("high_risk_finding", agent.host_id, check_id),
                               "summary": f"{where}: high-risk finding {check_id} (case {case}) resolved: {resolution}",
                               "payload": {**common, "check_id": check_id, "case": case, "resolved": True,
                                           "resolution": resolution, "finding_id": finding_id}})
        score, conclusion = run["score"], run["conclusion"]
        if drift.score_dropped(prev_score, score, self.score_drop_threshold):
            worse_to_bad = conclusion == "差" and prev_conclusion != "差"
            events.append({**base, "kind": "score_drop", "severity": "critical" if worse_to_bad else "warning",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("score_drop", agent.host_id, run["baseline_id"]),
                           "summary": f"{where}: score {prev_score:.1f} -> {score:.1f} "
                                      f"({prev_conclusion} -> {conclusion}) on {run['baseline_id']}",
                           "payload": {**common, "previous_score": prev_score, "score": score,
                                       "drop": round(prev_score - score, 3),
                                       "previous_conclusion": prev_conclusion,
                                       "conclusion": conclusion}})
        if new_failures or fixed or plan.waived:
            events.append({**base, "kind": "drift", "severity": "warning" if new_failures else "info",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("drift", agent.host_id, run_id),
                           "summary": f"{where}: {len(new_failures)} newly failing, {len(fixed)} fixed",
                           "payload": {**common, "new_failures": new_failures, "fixed": fixed,
                                       "waived": sorted(plan.waived.values())}})
        return events

    # ---- inventory and utilisation: one transaction each ------------------------------------------

    def _handle_other(self, raw: bytes, envelope: Envelope, body: dict, model: Any, digest: str,
                      agent_header: Optional[str], signature: Optional[str],
                      source_ip: Optional[str]) -> tuple[int, dict]:
        for attempt in (1, 2):
            try:
                with self.db.write() as conn:
                    agents = self._agents(conn, {agent_header})
                    c = self._verify(agents, raw, envelope, body, model, digest, agent_header, signature)
                    key = (c.agent.id, envelope.report_id)
                    stored = self._stored(conn, [key])
                    if key in stored:
                        return _stored_answer(*stored[key], envelope.kind, digest, envelope.report_id)
                    return self._store_other(conn, c, source_ip)
            except self._integrity_errors:
                # A concurrent request stored the same report_id first; the retry answers from it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store_other(self, conn, c: Checked, source_ip: Optional[str]) -> tuple[int, dict]:
        now = self.clock()
        if c.envelope.kind == "inventory":
            outcome = self._store_inventory(conn, c, now)
        else:
            outcome = self._store_utilisation(conn, c)
        conn.execute(self._i_report, {
            "report_id": c.envelope.report_id, "kind": c.envelope.kind, "agent_id": c.agent.id,
            "host_id": c.agent.host_id, "department_id": c.agent.department_id, "digest": c.digest,
            "sent_at": c.envelope.sent_at, "received_at": now, "source_ip": source_ip, "signature": c.signature,
            "envelope": envelopes.pack(c.raw), "outcome": outcome})
        conn.execute(self._u_agent, {"aid": c.agent.id, "t": now, "ip": source_ip})
        return 202, outcome

    def _store_inventory(self, conn, c: Checked, now: datetime) -> dict:
        inv: InventoryBody = c.model
        conn.execute(insert(T_INVENTORY).values(
            host_id=c.agent.host_id, department_id=c.agent.department_id, report_id=c.envelope.report_id,
            at=_aware(c.envelope.sent_at), arch=inv.arch, cpu_model=inv.cpu_model, cpu_count=inv.cpu_count,
            memory_bytes=inv.memory_bytes, packages_count=inv.packages_count, data=c.body))
        values: dict[str, Any] = {"inventory": c.body, "arch": inv.arch[:32], "os_id": inv.os.os_id[:64],
                                  "os_version": inv.os.os_version[:64], "os_name": inv.os.os_name[:200],
                                  "last_seen": now}
        if inv.addresses is not None:
            values["addresses"] = inv.addresses
        conn.execute(update(T_HOST).where(T_HOST.c.id == c.agent.host_id).values(**values))
        return {"report_id": c.envelope.report_id, "run_id": None, "new_failures": [], "fixed": []}

    def _store_utilisation(self, conn, c: Checked) -> dict:
        util: UtilisationBody = c.model
        conn.execute(insert(T_SAMPLE), [
            {"host_id": c.agent.host_id, "department_id": c.agent.department_id, "report_id": c.envelope.report_id,
             "at": s.at, "cpu_percent": s.cpu_percent, "memory_percent": s.memory_percent,
             "net_bytes_sent": s.net_bytes_sent, "net_bytes_recv": s.net_bytes_recv, "logins": s.logins}
            for s in util.samples])
        return {"report_id": c.envelope.report_id, "run_id": None, "new_failures": [], "fixed": []}


def _pick(waiting: list[Job]) -> list[Job]:
    """The next batch: oldest first, at most one report per host (drift reads the host's findings as the
    previous report left them) and per (agent, report id)."""
    batch, hosts, ids = [], set(), set()
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


def _settle(jobs: list[Job], outcomes: dict[int, Any]) -> None:
    for job in jobs:
        outcome = outcomes[id(job)]
        if isinstance(outcome, Refused):
            job.error = outcome
        else:
            job.result = outcome


def _stored_answer(stored_kind: str, stored_digest: str, stored_outcome: Any, kind: str, digest: str,
                   report_id: str) -> tuple[int, dict]:
    """Uniqueness: the same body again gets the first answer; a different body under the id is refused."""
    if stored_kind == kind and stored_digest == digest:
        return 200, stored_outcome
    raise Refused(409, f"report_id {report_id} is already stored with a different body")


def _unknown(agent_id: str) -> str:
    return f"unknown agent {agent_id[:64]!r}: enroll it first"


def _revoked(agent_id: str) -> str:
    return f"agent {agent_id} is revoked"
