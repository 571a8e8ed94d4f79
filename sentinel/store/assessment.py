"""The assessment of a graded system (定级对象): its hosts' latest reports and its latest network scan, rolled up
into one set of item verdicts, one score and one conclusion by `sentinel.scoring` (the formula lives there).

What takes part:
- every host of the system that has an enrolled agent (hosts whose agents are all revoked are decommissioned,
  as in the metrics snapshot), with the latest run of each 测评对象 it reports: (baseline, object instance), so
  the OS and each database or web server instance on the host are objects of their own;
  its items come from the report body the collector kept (the signed envelope, checked against the run's
  digest), its results from the same body. The collector checked at ingest that the items and results are the
  baseline's own (sentinel/collector/judge.py); each item's verdict is computed here again from the results
  (`scoring.rejudged_items`), so an agent's claimed verdict never reaches the roll-up;
- the latest *succeeded* scan of the whole registered scope (a scan narrowed to part of the scope says nothing
  about the rest, so it does not stand for the system's network): its network items and results;
- manual assessments: the latest verdict per item decides an item that the roll-up left 待核查 (a manual item,
  or checks that could not determine); where checks reached a verdict it stands (`automated` keeps it).

Every item set and its results are first numbered at the system's level by catalogue key (`levels.at_level`):
a report made at another level, or a scan stored before keys (numbered at level 3), shows the system's clauses,
and a requirement the system's level does not have is left out and listed in `not_scored`. Then
`scoring.system_items(item sets)` gives one verdict per requirement (by key) over all 测评对象 and
`scoring.summarize(items, all results)` the score, pass rate, risks and conclusion.

A report body that cannot be read (not kept, or not hashing to its run's digest) is named in `errors` and
left out; `complete` is then false and callers that publish a single figure (the metrics) show none rather
than a score that silently ignores a host.

Parsed report bodies are cached by digest (the SHA-256 of the canonical body, so an entry can never go stale)
and their items and results are interned: hosts on one baseline share most of them, so the cache costs a few
references per item and result, and a metrics scrape parses only the reports that arrived since the last one.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Literal, Optional, TypeVar

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import ColumnElement, Connection, Row, func, select, true
from typing_extensions import Unpack

from .. import scoring
from ..levels import OutsideLevel, at_level
from ..model import CheckResult, ItemResult, Severity, Status, Summary, Text, Verdict
from . import envelopes
from .db import Database
from .models import Agent, Department, Host, ManualAssessment, Report, Run, ScanRun, System

_T = TypeVar("_T")
_Key = tuple[Any, ...]  # an interned value's identity: its fields, JSON-encoded where nested
_AnyRow = Row[Unpack[tuple[Any, ...]]]

CACHE_RUNS = 8192  # parsed report bodies kept (each a few KB of references once interned) ...
# ... and at least as many as one assessment reads, up to this: a /metrics scrape assesses every system, and a
# cache smaller than the store's latest runs, read in order, evicts each body before the next scrape needs it
# (every scrape re-parsed all 10,000 bodies at 10,000 hosts: bench/RESULTS.md, metrics-store-bench)
CACHE_RUNS_MAX = 65536
_INTERN_MAX = 200_000


class ScoredResult(BaseModel):
    """The fields of a host CheckResult that `sentinel.scoring` reads (it reads attributes only)."""

    check_id: str
    clause: str
    item: str
    key: Optional[str] = None  # the item's catalogue key (None in reports written before keys)
    title: Text
    status: Status
    severity: Severity
    high_risk: Optional[str] = None
    waiver: Optional[str] = None
    advisory: Optional[Text] = None  # judge() made it the baseline's; an advisory result decides no verdict
    offline: bool = False  # not applicable only because an offline root cannot show it (the item waits: 待核查)


class HostPart(BaseModel):
    host_id: int
    hostname: str
    addresses: list[str]
    run_id: int
    report_id: str
    baseline_id: str
    baseline_version: str
    # the 测评对象 the run judges (DESIGN.md section 10): its kind, instance ("" for the OS) and record name;
    # each (host, baseline, instance) is one object of the roll-up
    object_kind: str = "os"
    object_instance: str = ""
    object_name: str = ""
    received_at: datetime
    score: Optional[float]  # the run's own score, as the collector judged it at ingest (no manual verdicts)
    conclusion: str
    summary: dict[str, Any]  # the host's own summary, as reported
    included: bool  # its items and results are part of the roll-up (false: see the assessment's errors)
    # The host's record: this run's items at the system's level with the system's manual verdicts, scored by
    # sentinel.scoring. These are the host figures the metrics and the evidence exports show (docs/metrics.md);
    # None when the report body could not be read.
    figures: Optional[Summary] = None


class NetworkPart(BaseModel):
    scan_run_id: int
    started_at: datetime
    finished_at: Optional[datetime]
    targets: list[str]
    zone_baseline: Optional[str]
    zone: Optional[str]
    scanner_zone: Optional[str]
    services_open: int
    services_forbidden: int
    items: list[ItemResult]
    summary: Optional[Summary]


class AssessedItem(ItemResult):
    automated: Verdict  # the roll-up of the checks and scans, before any manual verdict
    source: Literal["automated", "manual"] = "automated"
    manual_assessment_id: Optional[int] = None


class SystemAssessment(BaseModel):
    system_id: int
    system: str
    department_id: int
    department: str
    level: int
    label: str
    generated_at: datetime
    hosts: list[HostPart] = Field(default_factory=list)
    network: Optional[NetworkPart] = None
    items: list[AssessedItem] = Field(default_factory=list)
    summary: Summary
    errors: list[str] = Field(default_factory=list)
    # results of requirements the system's level does not have (a report made at another level): not rolled up
    not_scored: list[OutsideLevel] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot see through it; pydantic's documented form
    @property
    def complete(self) -> bool:
        """Every host report and the scan took part (else `errors` says what is missing)."""
        return not self.errors


# ---- parsed report bodies ------------------------------------------------------------------------------


class _Parsed:
    __slots__ = ("items", "results", "figures")

    def __init__(self, items: tuple[ItemResult, ...], results: tuple[ScoredResult, ...]) -> None:
        self.items = items
        self.results = results
        # the host's record figures for the last (level, manual verdicts) asked, so a scrape rescoring every
        # host costs a lookup per host unless its report or its system's manual verdicts changed
        self.figures: Optional[tuple[tuple[Any, ...], Summary]] = None


class _Cache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.runs: OrderedDict[str, _Parsed] = OrderedDict()
        self.items: dict[_Key, ItemResult] = {}
        self.results: dict[_Key, ScoredResult] = {}

    def reserve(self, runs: int) -> None:
        """Room for `runs` bodies (bounded by CACHE_RUNS_MAX), so one assessment never evicts its own."""
        with self.lock:
            self.size = max(self.size, min(runs, CACHE_RUNS_MAX))

    def get(self, digest: str) -> Optional[_Parsed]:
        with self.lock:
            hit = self.runs.get(digest)
            if hit is not None:
                self.runs.move_to_end(digest)
            return hit

    def put(self, digest: str, parsed: _Parsed) -> None:
        with self.lock:
            self.runs[digest] = parsed
            while len(self.runs) > self.size:
                self.runs.popitem(last=False)

    def intern_item(self, d: dict[str, Any]) -> ItemResult:
        key = (d.get("clause"), d.get("item"), d.get("key"), d.get("unit"),
               json.dumps(d.get("control"), sort_keys=True),
               json.dumps(d.get("text"), sort_keys=True), d.get("weight"), d.get("verdict"),
               tuple(d.get("checks") or ()))
        return self._intern(self.items, key, lambda: ItemResult.model_validate(d))

    def intern_result(self, d: dict[str, Any]) -> ScoredResult:
        title = d.get("title") or {}
        key = (d.get("check_id"), d.get("clause"), d.get("item"), d.get("key"), title.get("zh"), title.get("en"),
               d.get("status"),
               d.get("severity"), d.get("high_risk"), d.get("waiver"),
               json.dumps(d.get("advisory"), sort_keys=True), bool(d.get("offline")))
        return self._intern(self.results, key, lambda: ScoredResult.model_validate(d))

    def _intern(self, table: dict[_Key, _T], key: _Key, make: Callable[[], _T]) -> _T:
        with self.lock:
            found = table.get(key)
        if found is not None:
            return found
        value = make()
        with self.lock:
            if len(table) >= _INTERN_MAX:  # bounded: agent-supplied texts could otherwise grow it forever
                table.clear()
            return table.setdefault(key, value)


_cache = _Cache(CACHE_RUNS)


class _Memo:
    """The last assessment of each system with the inputs it was computed from (`assess`): a /metrics snapshot
    re-assesses every system, and at 10,000 hosts the roll-up of unchanged systems was most of its time
    (bench/RESULTS.md, metrics-store-bench)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.systems: OrderedDict[tuple[str, int], tuple[Any, SystemAssessment]] = OrderedDict()

    def get(self, system_id: tuple[str, int], inputs: Any) -> Optional[SystemAssessment]:
        with self.lock:
            hit = self.systems.get(system_id)
        return hit[1] if hit is not None and hit[0] == inputs else None

    def put(self, system_id: tuple[str, int], inputs: Any, assessment: SystemAssessment) -> None:
        with self.lock:
            self.systems[system_id] = (inputs, assessment)
            self.systems.move_to_end(system_id)
            while len(self.systems) > CACHE_RUNS_MAX:
                self.systems.popitem(last=False)


_memo = _Memo()


def clear_cache() -> None:
    """Forget parsed report bodies (a body once verified against its digest is otherwise trusted from memory)."""
    with _cache.lock:
        _cache.runs.clear()
        _cache.items.clear()
        _cache.results.clear()
    with _memo.lock:
        _memo.systems.clear()


def canonical_digest(body: Any) -> str:
    """SHA-256 of a report body serialised canonically (docs/wire.md): the run's `digest`."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _parse(envelope: bytes, digest: str) -> _Parsed:
    try:
        body = json.loads(envelopes.unpack(envelope))["body"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the kept envelope is not a report envelope ({type(exc).__name__})") from None
    if canonical_digest(body) != digest:
        raise ValueError("the kept report body does not hash to the run's digest (the store was altered)")
    try:
        items = tuple(_cache.intern_item(i) for i in body.get("items") or [])
        results = tuple(_cache.intern_result(r) for r in body.get("results") or [])
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"the kept report body is not a host report: {str(exc).splitlines()[0]}") from None
    return _Parsed(tuple(scoring.rejudged_items(items, results)), results)


# ---- assessing ---------------------------------------------------------------------------------------------


def system_assessment(db: Database, system_id: int, now: Optional[datetime] = None) -> SystemAssessment:
    """The assessment of one system; LookupError if there is no such system."""
    with db.read() as conn:
        found = assess(conn, [system_id], now=now)
    if system_id not in found:
        raise LookupError(f"system {system_id} not found")
    return found[system_id]


def assess(conn: Connection, system_ids: Optional[Iterable[int]] = None, now: Optional[datetime] = None
           ) -> dict[int, SystemAssessment]:
    """Assessments of the given systems (all when None), read on `conn` with a fixed number of queries."""
    now = now or datetime.now(timezone.utc)
    S, D, H, A, R = System.__table__, Department.__table__, Host.__table__, Agent.__table__, Run.__table__
    RP, SR, M = Report.__table__, ScanRun.__table__, ManualAssessment.__table__
    ids = None if system_ids is None else sorted(set(system_ids))

    def only(column: ColumnElement[Any]) -> ColumnElement[bool]:
        return true() if ids is None else column.in_(ids)  # true() renders as where(True) did

    systems = conn.execute(select(S.c.id, S.c.name, S.c.level, S.c.label, S.c.department_id,
                                  D.c.name.label("department"))
                           .join(D, D.c.id == S.c.department_id).where(only(S.c.id)).order_by(S.c.id)).all()
    enrolled = select(A.c.host_id).where(A.c.state == "enrolled").distinct().subquery()
    hosts = {h.id: h for h in conn.execute(
        select(H.c.id, H.c.system_id, H.c.hostname, H.c.addresses)
        .join(enrolled, enrolled.c.host_id == H.c.id).where(only(H.c.system_id)))}
    latest = (select(func.max(R.c.id)).where(only(R.c.system_id))
              .group_by(R.c.host_id, R.c.baseline_id, R.c.object_instance).scalar_subquery())
    runs = [r for r in conn.execute(
        select(R.c.id, R.c.host_id, R.c.system_id, R.c.report_id, R.c.digest, R.c.baseline_id, R.c.baseline_version,
               R.c.object_kind, R.c.object_instance, R.c.object_name, R.c.received_at, R.c.score, R.c.conclusion,
               R.c.summary).where(R.c.id.in_(latest)).order_by(R.c.id))
        if r.host_id in hosts]

    parsed: dict[int, _Parsed] = {}
    errors: dict[int, list[str]] = defaultdict(list)
    missing = {}
    _cache.reserve(len(runs))
    for r in runs:
        hit = _cache.get(r.digest)
        if hit is not None:
            parsed[r.id] = hit
        else:
            missing[r.report_id] = r
    if missing:
        keys = list(missing)
        kept = {}
        for i in range(0, len(keys), 500):
            kept.update(dict(conn.execute(select(RP.c.report_id, RP.c.envelope)
                                          .where(RP.c.report_id.in_(keys[i:i + 500]))).all()))
        for report_id, r in missing.items():
            where = f"host {hosts[r.host_id].hostname} run {r.id} ({r.baseline_id})"
            if kept.get(report_id) is None:
                errors[r.system_id].append(f"{where}: the report body was not kept; its items cannot be rolled up")
                continue
            try:
                p = _parse(kept[report_id], r.digest)
            except ValueError as exc:
                errors[r.system_id].append(f"{where}: {exc}")
                continue
            _cache.put(r.digest, p)
            parsed[r.id] = p

    latest_scan = (select(func.max(SR.c.id)).where(only(SR.c.system_id), SR.c.status == "succeeded",
                                                   SR.c.full_scope.is_(True))
                   .group_by(SR.c.system_id).scalar_subquery())
    scans = {s.system_id: s for s in conn.execute(select(SR).where(SR.c.id.in_(latest_scan)))}

    latest_manual = (select(func.max(M.c.id)).where(only(M.c.system_id))
                     .group_by(M.c.system_id, M.c.clause, M.c.item).scalar_subquery())
    manual: dict[int, dict[tuple[str, str], Any]] = defaultdict(dict)
    for m in conn.execute(select(M.c.id, M.c.system_id, M.c.clause, M.c.item, M.c.verdict)
                          .where(M.c.id.in_(latest_manual))):
        manual[m.system_id][(m.clause, m.item)] = m

    store = conn.engine.url.render_as_string(hide_password=True)  # the memo's systems are per store
    runs_by_system: dict[int, list[_AnyRow]] = defaultdict(list)
    for r in runs:
        runs_by_system[r.system_id].append(r)

    out = {}
    for s in systems:
        mine_runs = sorted(runs_by_system.get(s.id, []),  # each host's OS first, then its other objects
                           key=lambda r: (hosts[r.host_id].hostname, r.object_kind != "os", r.baseline_id,
                                          r.object_instance))
        scan = scans.get(s.id)
        # everything this system's assessment is computed from; stored runs, scans and verdicts never change,
        # so the same ids (and the report bodies' digests) give the same assessment
        inputs = (tuple(s), tuple((r.id, r.digest, r.id in parsed, tuple(hosts[r.host_id])) for r in mine_runs),
                  (scan.id, scan.started_at, scan.finished_at) if scan is not None else None,
                  tuple(sorted(tuple(m) for m in manual.get(s.id, {}).values())))
        known = _memo.get((store, s.id), inputs)
        if known is not None:
            out[s.id] = known.model_copy(update={"generated_at": now})
            continue
        item_sets: list[list[ItemResult]] = []
        results: list[Any] = []  # ScoredResult of hosts, CheckResult of the scan: summarize reads attributes
        parts: list[HostPart] = []
        outside: list[OutsideLevel] = []
        for r in mine_runs:
            h = hosts[r.host_id]
            got = parsed.get(r.id)
            figures = None
            if got is not None:
                mine = at_level(got.items, got.results, s.level, f"host {h.hostname} run {r.id}")
                item_sets.append(mine.items)
                results.extend(mine.results)
                outside.extend(mine.outside)
                figures = _record_figures(got, mine.items, mine.results, s.level, manual.get(s.id, {}))
            parts.append(HostPart(host_id=h.id, hostname=h.hostname, addresses=list(h.addresses or []), run_id=r.id,
                                  report_id=r.report_id, baseline_id=r.baseline_id,
                                  baseline_version=r.baseline_version, object_kind=r.object_kind,
                                  object_instance=r.object_instance, object_name=r.object_name,
                                  received_at=r.received_at, score=r.score,
                                  conclusion=r.conclusion, summary=dict(r.summary or {}), included=got is not None,
                                  figures=figures))
        network = None
        if scan is not None:
            try:
                net_items = [ItemResult.model_validate(i) for i in scan.items or []]
                net_results = [CheckResult.model_validate(x) for x in scan.results or []]
                net_summary = Summary.model_validate(scan.summary) if scan.summary else None
            except ValueError as exc:
                errors[s.id].append(f"scan {scan.id}: stored results are not readable: {str(exc).splitlines()[0]}")
            else:
                # scans stored before keys numbered their items at level 3 (the clauses were written in code)
                net = at_level(net_items, net_results, s.level, f"network scan {scan.id}",
                               legacy_level=(scan.args or {}).get("level") or 3)
                net_items, outside = net.items, outside + net.outside
                item_sets.append(net_items)
                results.extend(net.results)
                network = NetworkPart(scan_run_id=scan.id, started_at=scan.started_at, finished_at=scan.finished_at,
                                      targets=list(scan.targets or []), zone_baseline=scan.zone_baseline,
                                      zone=scan.zone, scanner_zone=scan.scanner_zone,
                                      services_open=scan.services_open, services_forbidden=scan.services_forbidden,
                                      items=net_items, summary=net_summary)
        items = _with_manual(scoring.system_items(item_sets), manual.get(s.id, {}))
        out[s.id] = SystemAssessment(
            system_id=s.id, system=s.name, department_id=s.department_id, department=s.department, level=s.level,
            label=s.label, generated_at=now, hosts=parts, network=network, items=items,
            summary=scoring.summarize(items, results), errors=errors.get(s.id, []), not_scored=outside)
        _memo.put((store, s.id), inputs, out[s.id])
    return out


def _record_figures(parsed: _Parsed, items: list[ItemResult], results: list[Any], level: int,
                    manual: dict[tuple[str, str], Any]) -> Summary:
    """A host record's summary: its items with the system's manual verdicts where they decide, scored with its
    results (as the evidence scores an object's record, sentinel/evidence/assemble.py report_evidence)."""
    key = (level, tuple(sorted((k, m.verdict) for k, m in manual.items())))
    if parsed.figures is not None and parsed.figures[0] == key:
        return parsed.figures[1]
    decided = []
    for item in items:
        m = manual.get((item.clause, item.item))
        if m is not None and scoring.manual_decides(item.verdict):
            item = item.model_copy(update={"verdict": Verdict(m.verdict)})
        decided.append(item)
    summary = scoring.summarize(decided, results)
    parsed.figures = (key, summary)
    return summary


def _with_manual(items: list[ItemResult], manual: dict[tuple[str, str], Any]) -> list[AssessedItem]:
    out = []
    for item in items:
        m = manual.get((item.clause, item.item))
        if m is not None and scoring.manual_decides(item.verdict):
            fields = {**item.model_dump(), "verdict": Verdict(m.verdict)}
            out.append(AssessedItem(**fields, automated=item.verdict, source="manual", manual_assessment_id=m.id))
        else:
            fields = {**item.model_dump(), "verdict": item.verdict}
            out.append(AssessedItem(**fields, automated=item.verdict, source="automated", manual_assessment_id=None))
    return out


__all__ = ["AssessedItem", "HostPart", "NetworkPart", "ScoredResult", "SystemAssessment", "assess", "clear_cache",
           "system_assessment"]
