"""Ingest, stage 1: verify an agent's signed envelope in the order docs/wire.md fixes, storing nothing.

Checks, each refusing with a 4xx (and, in the Ingestor, an audit entry): size (413), JSON and schema (422
naming the field; values the schema allows but the tables cannot hold, too), agent known (401) and not
revoked (403), signature (401), header agent == envelope agent (400), freshness (400 "stale"). Replay
(uniqueness of report_id: 409 for a different body, 200 with the first answer for the same body) is
`stored_answer`, asked before the plan and again under the write lock.

A run's `digest` is the SHA-256 of its envelope's `body` serialised canonically (sorted keys, compact
separators, UTF-8, no NaN): "the same body" for idempotency is the same digest, so an agent may re-sign a
spooled report with a fresh `sent_at` and still be answered idempotently. Each system chains its runs with
`chain_hash = sha256(prev_chain_hash + digest)` over the lowercase hex strings, starting from 64 zeros
(sentinel/evidence/digest.py restates this for verification).
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from ... import signing
from ...model import HostReport
from ...store.models import CheckResultRow, Run
from .. import fastjson
from ..wire import Envelope, InventoryBody, UtilisationBody
from .write import column_width

BODY_MODELS: dict[str, type[BaseModel]] = {"host_report": HostReport, "inventory": InventoryBody,
                                           "utilisation": UtilisationBody}
MAX_ERRORS_SHOWN = 10
MAX_AGE_SECONDS = 14 * 86400  # default: how old a (spooled) report may be when it arrives
INT32 = 2**31 - 1  # the INTEGER columns' range
MAX_DURATION_MS = 7 * 86400 * 1000.0

_RUN, _RESULT = Run.__table__.c, CheckResultRow.__table__.c
# Widths of the columns a host report's own strings go into (the rest come from the collector's baseline).
_RESULT_WIDTHS = tuple((name, column_width(_RESULT[name])) for name in ("check_id", "clause", "item", "high_risk"))
_BASELINE_WIDTHS = (("id", column_width(_RUN.baseline_id)), ("version", column_width(_RUN.baseline_version)))
_CONCLUSION_WIDTH = column_width(_RUN.conclusion)


class Refused(Exception):
    def __init__(self, status: int, detail: str, errors: Optional[list[dict[str, Any]]] = None) -> None:
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


@dataclass(frozen=True)
class Parsed:
    """An envelope read and checked against its schema (not yet against its agent)."""

    envelope: Envelope
    body: dict[str, Any]  # the envelope body as sent (JSON values), stored as-is
    model: Any  # the body validated against its kind's model
    digest: str  # sha256 of the canonical body


@dataclass
class Checked:
    """An envelope that passed every check but uniqueness."""

    raw: bytes
    signature: str
    envelope: Envelope
    body: dict[str, Any]
    model: Any
    digest: str
    agent: AgentRow


def canonical_digest(body: Any) -> str:
    return hashlib.sha256(fastjson.canonical_std(body)).hexdigest()


def chain(prev_chain_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_chain_hash + digest).encode("ascii")).hexdigest()


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@functools.lru_cache(maxsize=65536)
def _public_key(b64: str) -> Any:
    return signing.load_public_key_b64(b64)


def check_size(raw: bytes, limit: int) -> None:
    if len(raw) > limit:
        raise Refused(413, f"request body of {len(raw)} bytes exceeds the limit of {limit}")


def parse(raw: bytes) -> Parsed:
    """JSON, the envelope's schema, the canonical digest and the body's schema."""
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
    if isinstance(model, HostReport):
        _check_storable(model, envelope.report_id)
    return Parsed(envelope, body, model, digest)


class Verifier:
    """The checks of an envelope against its agent: signature, header, freshness."""

    def __init__(self, *, skew_seconds: float, max_age_seconds: float, clock: Callable[[], datetime]) -> None:
        # sent_at is the time the agent made and signed the report (it is sent unchanged from the spool):
        # accepted from max_age in the past (a long outage) to the clock skew ahead.
        self.skew = timedelta(seconds=skew_seconds)
        self.max_age = timedelta(seconds=max(max_age_seconds, skew_seconds))
        self.clock = clock

    def verify(self, agents: dict[str, AgentRow], raw: bytes, parsed: Parsed, agent_header: Optional[str],
               signature: Optional[str]) -> Checked:
        if not agent_header:
            raise Refused(401, "missing X-Sentinel-Agent header")
        agent = agents.get(agent_header)
        if agent is None:
            raise Refused(401, unknown_agent(agent_header))
        if agent.state != "enrolled":
            raise Refused(403, revoked_agent(agent.id))
        if not signature:
            raise Refused(401, "missing X-Sentinel-Signature header")
        try:
            public_key = _public_key(agent.public_key)
        except signing.SigningKeyError as exc:
            # a weak key registered before enrollment refused them (small-order keys sign for anyone)
            raise Refused(403, f"agent {agent.id} has an unusable registered key ({exc}): enroll it again") from None
        if not signing.verify(public_key, raw, signature):
            raise Refused(401, "signature does not verify with the agent's registered key")
        envelope = parsed.envelope
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
        return Checked(raw=raw, signature=signature, envelope=envelope, body=parsed.body, model=parsed.model,
                       digest=parsed.digest, agent=agent)


def stored_answer(stored_kind: str, stored_digest: str, stored_outcome: Any, kind: str, digest: str,
                  report_id: str) -> tuple[int, dict[str, Any]]:
    """Replay: the same body again gets the first answer; a different body under the id is refused."""
    if stored_kind == kind and stored_digest == digest:
        return 200, stored_outcome
    raise Refused(409, f"report_id {report_id} is already stored with a different body")


def unknown_agent(agent_id: str) -> str:
    return f"unknown agent {agent_id[:64]!r}: enroll it first"


def revoked_agent(agent_id: str) -> str:
    return f"agent {agent_id} is revoked"


def _describe(err: Any, prefix: str = "") -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    return f"{prefix}{loc}: {err.get('msg', 'invalid')}"


def _schema_error(exc: ValidationError, prefix: str, what: str) -> Refused:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    shown: list[dict[str, Any]] = [{"loc": prefix + ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", "")}
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


def _check_storable(rep: HostReport, report_id: str) -> None:
    """Refuse, naming the field, values the schema allows but the tables cannot hold."""
    def refuse(where: str, what: str) -> Refused:
        return Refused(422, f"host_report body: {where}: {what}")

    if rep.report_id not in (None, report_id):
        raise refuse("body.report_id", f"{rep.report_id!r} differs from the envelope's report_id {report_id!r}")
    for name, limit in _BASELINE_WIDTHS:
        if len(getattr(rep.baseline, name)) > limit:
            raise refuse(f"body.baseline.{name}", f"longer than {limit} characters")
    if not -INT32 <= rep.baseline.level <= INT32:
        raise refuse("body.baseline.level", "out of range")
    if len(rep.summary.conclusion) > _CONCLUSION_WIDTH:
        raise refuse("body.summary.conclusion", f"longer than {_CONCLUSION_WIDTH} characters")
    for name in ("checks_total", "high_risk"):
        if not 0 <= getattr(rep.summary, name) <= INT32:
            raise refuse(f"body.summary.{name}", f"must be between 0 and {INT32}")
    if not 0 <= rep.summary.counts.get("fail", 0) <= INT32:
        raise refuse("body.summary.counts.fail", f"must be between 0 and {INT32}")
    if not 0 <= rep.duration_ms <= MAX_DURATION_MS:
        raise refuse("body.duration_ms", f"must be between 0 and {MAX_DURATION_MS:.0f}")
    try:
        aware(rep.generated_at) - timedelta(milliseconds=rep.duration_ms)
    except OverflowError:
        raise refuse("body.generated_at", "out of range") from None
    for i, r in enumerate(rep.results):
        for name, limit in _RESULT_WIDTHS:
            value = getattr(r, name)
            if value is not None and len(value) > limit:
                raise refuse(f"body.results.{i}.{name}", f"longer than {limit} characters")
