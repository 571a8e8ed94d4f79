"""Report ingestion: verify an agent's signed envelope in the order docs/wire.md fixes, then store it.

Checks, each refusing with a 4xx, an audit entry and nothing stored: size (413), JSON and schema
(422 naming the field), agent known (401) and not revoked (403), signature (401), header agent ==
envelope agent (400), freshness (400 "stale"), uniqueness of report_id (409 for a different body;
200 with the first answer for the same body).

A run's `digest` is the SHA-256 of its envelope's `body` serialised canonically (sorted keys, compact
separators, UTF-8, no NaN): "the same body" for idempotency is the same digest, so an agent may re-sign
a spooled report with a fresh `sent_at` and still be answered idempotently. The signed request bytes
are kept (zlib) with the report, so the agent's signature and the digest can be re-checked later.
Each system chains its runs with `chain_hash = sha256(prev_chain_hash + digest)` over the lowercase
hex strings, starting from 64 zeros (sentinel/evidence/digest.py restates this for verification).

Hot path: everything CPU-bound (JSON, schema, canonical digest) happens before the transaction; then
one transaction per report, one query for agent + stored report + chain head + previous score, the
results in bulk (sentinel/collector/bulk.py), no ORM objects, statements built once. On PostgreSQL the
system row is locked by that first query (FOR UPDATE OF systems) so a system's chain never forks; on
SQLite the transaction starts with BEGIN IMMEDIATE, which serialises writers anyway. A duplicate
report_id racing its first delivery hits a unique constraint, and the retry answers idempotently.
"""
from __future__ import annotations

import functools
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from pydantic import ValidationError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import signing
from ..model import HostReport
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
from . import audit, bulk, drift
from .wire import Envelope, InventoryBody, UtilisationBody

T_AGENT, T_HOST, T_SYSTEM, T_DEPT = Agent.__table__, Host.__table__, System.__table__, Department.__table__
T_REPORT, T_RUN, T_RESULT, T_FINDING = Report.__table__, Run.__table__, CheckResultRow.__table__, Finding.__table__
T_EVENT, T_INVENTORY, T_SAMPLE = Event.__table__, InventorySnapshot.__table__, UtilisationSample.__table__

BODY_MODELS = {"host_report": HostReport, "inventory": InventoryBody, "utilisation": UtilisationBody}
MAX_ERRORS_SHOWN = 10


class Refused(Exception):
    def __init__(self, status: int, detail: str, errors: Optional[list[dict]] = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


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
    row: Any  # the agent query's row: chain head, stored report, previous score


def canonical_digest(body: Any) -> str:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


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


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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


class Ingestor:
    def __init__(self, db: Database, *, max_body_bytes: int, skew_seconds: float, score_drop_threshold: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.db = db
        self.max_body_bytes = max_body_bytes
        self.skew = timedelta(seconds=skew_seconds)
        self.score_drop_threshold = score_drop_threshold
        self.clock = clock
        self._writer = bulk.writer_for(db.dialect)
        # Statements are built once: per report only parameters change, so SQLAlchemy's compiled
        # cache is hit every time and no statement objects are made on the hot path.
        self._q_agent = self._agent_query(lock=False)
        self._q_agent_lock = self._agent_query(lock=True)
        self._q_open = (select(T_FINDING.c.check_id, T_FINDING.c.id, T_FINDING.c.high_risk)
                        .where(T_FINDING.c.host_id == bindparam("hid"), T_FINDING.c.resolved_at.is_(None)))
        self._i_report, self._i_finding, self._i_event = insert(T_REPORT), insert(T_FINDING), insert(T_EVENT)
        ids = bindparam("ids", expanding=True)
        self._u_seen = update(T_FINDING).where(T_FINDING.c.id.in_(ids)).values(
            last_seen=bindparam("t"), last_run_id=bindparam("run"), occurrences=T_FINDING.c.occurrences + 1)
        self._u_resolve = update(T_FINDING).where(T_FINDING.c.id.in_(ids)).values(
            resolved_at=bindparam("t"), resolved_run_id=bindparam("run"), resolution=bindparam("how"))
        self._u_agent = update(T_AGENT).where(T_AGENT.c.id == bindparam("aid")).values(
            last_seen=bindparam("t"), last_ip=bindparam("ip"))

    def _agent_query(self, lock: bool):
        """One statement for everything known before storing: the agent with its host, system and
        department, whether the report_id is already stored, and for a host report the system's chain
        head (row-locked on PostgreSQL, so a system's chain never forks) and the host's previous
        score on the same baseline (for the score-drop event)."""
        columns = [T_AGENT.c.id, T_AGENT.c.state, T_AGENT.c.public_key, T_AGENT.c.host_id, T_HOST.c.hostname,
                   T_AGENT.c.system_id, T_SYSTEM.c.name.label("system"), T_SYSTEM.c.label,
                   T_AGENT.c.department_id, T_DEPT.c.name.label("department"), T_SYSTEM.c.chain_head,
                   T_REPORT.c.kind.label("stored_kind"), T_REPORT.c.digest.label("stored_digest"),
                   T_REPORT.c.outcome.label("stored_outcome")]
        if lock:
            def previous(column):
                return (select(column).where(T_RUN.c.host_id == T_AGENT.c.host_id,
                                             T_RUN.c.baseline_id == bindparam("bid"))
                        .order_by(T_RUN.c.id.desc()).limit(1).scalar_subquery())
            columns += [previous(T_RUN.c.score).label("prev_score"),
                        previous(T_RUN.c.conclusion).label("prev_conclusion")]
        stmt = (select(*columns)
                .select_from(T_AGENT.join(T_HOST, T_HOST.c.id == T_AGENT.c.host_id)
                             .join(T_SYSTEM, T_SYSTEM.c.id == T_AGENT.c.system_id)
                             .join(T_DEPT, T_DEPT.c.id == T_AGENT.c.department_id)
                             .outerjoin(T_REPORT, T_REPORT.c.report_id == bindparam("rid")))
                .where(T_AGENT.c.id == bindparam("agent_id")))
        # SQLite has no row locks; its BEGIN IMMEDIATE already holds the database's write lock.
        return stmt.with_for_update(of=T_SYSTEM) if lock and not self.db.is_sqlite else stmt

    # ---- entry point -----------------------------------------------------------------------------

    def handle(self, raw: bytes, agent_header: Optional[str], signature: Optional[str],
               source_ip: Optional[str]) -> tuple[int, dict]:
        """Answer one POST: (HTTP status, JSON body)."""
        report_id = None
        try:
            envelope, body, model, digest = self._parse(raw)
            report_id = envelope.report_id
            for attempt in (1, 2):
                try:
                    with self.db.write() as conn:
                        checked = self._verify(conn, raw, envelope, body, model, digest, agent_header, signature)
                        return self._store(conn, checked, source_ip)
                except IntegrityError:
                    # A concurrent request stored the same report_id first; the retry answers from it.
                    if attempt == 2:
                        raise
        except Refused as refusal:
            actor = f"agent:{agent_header[:64]}" if agent_header else "anonymous"
            audit.record_refusal(self.db, actor=actor, action="report.ingest",
                                 target=f"report:{report_id}" if report_id else "", source_ip=source_ip,
                                 status_code=refusal.status, detail=refusal.detail)
            answer: dict[str, Any] = {"detail": refusal.detail}
            if refusal.errors:
                answer["errors"] = refusal.errors
            return refusal.status, answer
        raise AssertionError("unreachable")

    # ---- checks ----------------------------------------------------------------------------------

    def _parse(self, raw: bytes) -> tuple[Envelope, dict, Any, str]:
        if len(raw) > self.max_body_bytes:
            raise Refused(413, f"request body of {len(raw)} bytes exceeds the limit of {self.max_body_bytes}")
        try:
            data = json.loads(raw, parse_constant=_no_constants)
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
            digest = canonical_digest(body)
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

    def _verify(self, conn, raw: bytes, envelope: Envelope, body: dict, model: Any, digest: str,
                agent_header: Optional[str], signature: Optional[str]) -> Checked:
        if not agent_header:
            raise Refused(401, "missing X-Sentinel-Agent header")
        row = self._agent(conn, agent_header, envelope, model)
        if row is None:
            raise Refused(401, f"unknown agent {agent_header[:64]!r}: enroll it first")
        agent = AgentRow(**{f: getattr(row, f) for f in AgentRow.__dataclass_fields__})
        if agent.state != "enrolled":
            raise Refused(403, f"agent {agent.id} is revoked")
        if not signature:
            raise Refused(401, "missing X-Sentinel-Signature header")
        if not signing.verify(_public_key(agent.public_key), raw, signature):
            raise Refused(401, "signature does not verify with the agent's registered key")
        if envelope.agent_id != agent.id:
            raise Refused(400, f"envelope agent_id {envelope.agent_id!r} differs from the "
                               f"X-Sentinel-Agent header {agent.id!r}")
        now = self.clock()
        off = abs((now - envelope.sent_at).total_seconds())
        if off > self.skew.total_seconds():
            raise Refused(400, f"stale report: sent_at {envelope.sent_at.isoformat()} is {off:.0f} s from the "
                               f"collector's clock (allowed {self.skew.total_seconds():.0f} s)")
        return Checked(raw=raw, signature=signature, envelope=envelope, body=body, model=model,
                       digest=digest, agent=agent, row=row)

    def _agent(self, conn, agent_id: str, envelope: Envelope, model: Any):
        if envelope.kind == "host_report":
            return conn.execute(self._q_agent_lock, {"agent_id": agent_id, "rid": envelope.report_id,
                                                     "bid": model.baseline.id}).first()
        return conn.execute(self._q_agent, {"agent_id": agent_id, "rid": envelope.report_id}).first()

    # ---- storing ---------------------------------------------------------------------------------

    def _store(self, conn, c: Checked, source_ip: Optional[str]) -> tuple[int, dict]:
        if c.row.stored_kind is not None:
            if c.row.stored_kind == c.envelope.kind and c.row.stored_digest == c.digest:
                return 200, c.row.stored_outcome
            raise Refused(409, f"report_id {c.envelope.report_id} is already stored with a different body")
        now = self.clock()
        report = {"report_id": c.envelope.report_id, "kind": c.envelope.kind, "agent_id": c.agent.id,
                  "host_id": c.agent.host_id, "department_id": c.agent.department_id, "digest": c.digest,
                  "sent_at": c.envelope.sent_at, "received_at": now, "source_ip": source_ip,
                  "signature": c.signature, "envelope": zlib.compress(c.raw, 1)}
        if c.envelope.kind == "host_report":
            outcome = self._store_host_report(conn, c, report, source_ip, now)
            return 202, outcome
        if c.envelope.kind == "inventory":
            outcome = self._store_inventory(conn, c, now)
        else:
            outcome = self._store_utilisation(conn, c)
        conn.execute(self._i_report, {**report, "outcome": outcome})
        conn.execute(self._u_agent, {"aid": c.agent.id, "t": now, "ip": source_ip})
        return 202, outcome

    def _store_host_report(self, conn, c: Checked, report: dict, source_ip: Optional[str], now: datetime) -> dict:
        rep: HostReport = c.model
        agent = c.agent
        summary = rep.summary
        finished = _aware(rep.generated_at)
        chain_head = c.row.chain_head
        chain_hash = chain(chain_head, c.digest)
        raw_results = c.body["results"]
        run_id = self._writer.run_with_results(conn, {
            "report_id": c.envelope.report_id, "agent_id": agent.id, "host_id": agent.host_id,
            "system_id": agent.system_id, "department_id": agent.department_id, "baseline_id": rep.baseline.id,
            "baseline_version": rep.baseline.version, "baseline_level": rep.baseline.level,
            "started_at": finished - timedelta(milliseconds=rep.duration_ms), "finished_at": finished,
            "received_at": now, "summary": c.body["summary"], "score": summary.score, "pass_rate": summary.pass_rate,
            "conclusion": summary.conclusion, "checks_total": summary.checks_total,
            "failed": summary.counts.get("fail", 0), "high_risk": summary.high_risk, "digest": c.digest,
            "prev_chain_hash": chain_head, "chain_hash": chain_hash,
        }, [(r.check_id, r.clause, r.item, raw["title"], r.status.value, r.severity.value, r.high_risk,
             raw.get("observed"), r.expected, r.reason, raw.get("evidence") or [], r.waiver, r.duration_ms)
            for r, raw in zip(rep.results, raw_results, strict=True)])

        open_rows = conn.execute(self._q_open, {"hid": agent.host_id}).all()
        plan = drift.plan(rep.results, {row.check_id: row.id for row in open_rows})
        high_risk_open = {row.id: row.high_risk for row in open_rows if row.high_risk}
        if plan.opened:
            conn.execute(self._i_finding, [
                {"host_id": agent.host_id, "system_id": agent.system_id, "department_id": agent.department_id,
                 "check_id": rep.results[i].check_id, "clause": rep.results[i].clause, "item": rep.results[i].item,
                 "title": raw_results[i]["title"], "remediation": raw_results[i]["remediation"],
                 "severity": rep.results[i].severity.value, "high_risk": rep.results[i].high_risk,
                 "first_seen": finished, "last_seen": finished, "first_run_id": run_id, "last_run_id": run_id,
                 "occurrences": 1, "resolved_at": None, "resolution": None, "resolved_run_id": None}
                for i in plan.opened])
        if plan.seen_again:
            conn.execute(self._u_seen, {"ids": plan.seen_again, "t": finished, "run": run_id})
        for resolution, ids in (("fixed", plan.fixed), ("waived", plan.waived)):
            if ids:
                conn.execute(self._u_resolve, {"ids": list(ids), "t": finished, "run": run_id, "how": resolution})

        new_failures, fixed = plan.new_failures(rep.results), plan.fixed_checks()
        events = self._events(c, rep, run_id, plan, new_failures, fixed, high_risk_open, now)
        if events:
            conn.execute(self._i_event, events)
        outcome = {"report_id": c.envelope.report_id, "run_id": run_id, "new_failures": new_failures, "fixed": fixed}
        host = rep.host
        self._writer.close_host_report(
            conn, sid=agent.system_id, head=chain_hash, hid=agent.host_id,
            host={"os_id": host.os_id[:64], "os_version": host.os_version[:64], "os_name": host.os_name[:200],
                  "family": host.family[:32] if host.family else None, "arch": host.arch[:32],
                  "kernel": host.kernel[:128] if host.kernel else None},
            aid=agent.id, ip=source_ip, now=now, report={**report, "outcome": outcome})
        return outcome

    def _events(self, c: Checked, rep: HostReport, run_id: int, plan: drift.DriftPlan, new_failures: list[str],
                fixed: list[str], high_risk_open: dict[int, str], now: datetime) -> list[dict]:
        agent = c.agent
        common = {"department": agent.department, "system": agent.system, "system_label": agent.label,
                  "host": agent.hostname, "host_id": agent.host_id, "run_id": run_id,
                  "report_id": c.envelope.report_id, "baseline": rep.baseline.id,
                  "baseline_version": rep.baseline.version}
        where = f"{agent.system}/{agent.hostname}"
        base = {"department_id": agent.department_id, "system_id": agent.system_id, "host_id": agent.host_id,
                "run_id": run_id, "created_at": now, "delivered": False, "attempts": 0}
        events = []
        for i in plan.opened:
            r = rep.results[i]
            if not r.high_risk:
                continue
            events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": r.check_id,
                           "fingerprint": drift.fingerprint("high_risk_finding", agent.host_id, r.check_id),
                           "summary": f"{where}: high-risk finding {r.check_id} ({r.clause}{r.item}, "
                                      f"case {r.high_risk}): {r.title.zh}",
                           "payload": {**common, "check_id": r.check_id, "clause": r.clause, "item": r.item,
                                       "case": r.high_risk, "severity": r.severity.value,
                                       "title": r.title.model_dump(), "reason": r.reason}})
        # A high-risk finding that is fixed or waived resolves its alert: same kind, severity and
        # fingerprint, with "resolved": true in the payload (exporters.events.AlertEvent.from_row).
        for resolution, closed in (("fixed", plan.fixed), ("waived", plan.waived)):
            for finding_id, check_id in sorted(closed.items()):
                case = high_risk_open.get(finding_id)
                if case is None:
                    continue
                events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": check_id,
                               "fingerprint": drift.fingerprint("high_risk_finding", agent.host_id, check_id),
                               "summary": f"{where}: high-risk finding {check_id} (case {case}) resolved: {resolution}",
                               "payload": {**common, "check_id": check_id, "case": case, "resolved": True,
                                           "resolution": resolution, "finding_id": finding_id}})
        score, prev_score, prev_conclusion = rep.summary.score, c.row.prev_score, c.row.prev_conclusion
        if drift.score_dropped(prev_score, score, self.score_drop_threshold):
            worse_to_bad = rep.summary.conclusion == "差" and prev_conclusion != "差"
            events.append({**base, "kind": "score_drop", "severity": "critical" if worse_to_bad else "warning",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("score_drop", agent.host_id, rep.baseline.id),
                           "summary": f"{where}: score {prev_score:.1f} -> {score:.1f} "
                                      f"({prev_conclusion} -> {rep.summary.conclusion}) on {rep.baseline.id}",
                           "payload": {**common, "previous_score": prev_score, "score": score,
                                       "drop": round(prev_score - score, 3),
                                       "previous_conclusion": prev_conclusion,
                                       "conclusion": rep.summary.conclusion}})
        if new_failures or fixed or plan.waived:
            events.append({**base, "kind": "drift", "severity": "warning" if new_failures else "info",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("drift", agent.host_id, run_id),
                           "summary": f"{where}: {len(new_failures)} newly failing, {len(fixed)} fixed",
                           "payload": {**common, "new_failures": new_failures, "fixed": fixed,
                                       "waived": sorted(plan.waived.values())}})
        return events

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
