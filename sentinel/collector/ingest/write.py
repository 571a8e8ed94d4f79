"""Ingest, stage 3: write a batch of planned host reports in one transaction (the group commit's write).

The SQL is derived from the store's table definitions (sentinel/store/models.py): SQLAlchemy Core
statements over the tables, the same statements on SQLite and PostgreSQL, each compiled once per dialect
when the collector starts. A new or renamed column is therefore a change to the model alone.

Per batch, inside one write transaction (`Database.write()`):
1. `lock_and_read`: lock the chain heads of the batch's systems (`SELECT ... FOR UPDATE` in system-id order
   on PostgreSQL, so two collector processes never deadlock; SQLite's transaction began with BEGIN
   IMMEDIATE and holds the only write lock, and its compiler leaves FOR UPDATE out), then, in statements
   that start after the lock is held and so see every earlier commit: the agents' states, reports
   already stored under the batch's ids, the hosts' open findings, each host's previous score on its
   baseline, and run ids. Run ids are taken here, under the lock, so a system's runs are numbered in
   chain order. These few reads per batch go through SQLAlchemy.
2. `write`: every row of the batch, one executemany per table, on the driver's own cursor: SQLAlchemy's
   per-row work would cost more than the SQL on this path. The parameters are converted by the bind
   processors of the columns' own types (UTC date-times, ...), so the rows are those the ORM would write;
   JSON values are serialised with fastjson.dumps (None is SQL NULL). A report's check results are
   converted by `result_rows` before the lock, so the lock (which other collector processes wait for) is
   held only for the SQL. On PostgreSQL the check results, most of a batch's rows, go by COPY over the same
   columns: psycopg's executemany binds each row as a statement of its own, which cost the collector about
   1.4 ms of CPU per 60-result report more (bench/RESULTS.md, ingest).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import Column, Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from ...store.models import Agent, CheckResultRow, Event, Finding, Host, Report, Run, System
from ..fastjson import dumps

T_AGENT, T_HOST, T_SYSTEM = Agent.__table__, Host.__table__, System.__table__
T_REPORT, T_RUN, T_RESULT = Report.__table__, Run.__table__, CheckResultRow.__table__
T_FINDING, T_EVENT = Finding.__table__, Event.__table__

def column_width(column: Column[Any]) -> int:
    """The declared width of a String column (what a value must fit)."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no width")
    return length


# The check-result columns a report supplies (all of check_results but its id and run id), in table order:
# ingest builds each result as a tuple in this order.
RESULT_FIELDS: tuple[str, ...] = tuple(c.name for c in T_RESULT.columns if c.name not in ("id", "run_id"))
# What a host report tells of its host (updated on every report): (column, width, nullable).
HOST_FACTS: tuple[tuple[str, int, bool], ...] = tuple(
    (name, column_width(T_HOST.c[name]), bool(T_HOST.c[name].nullable))
    for name in ("os_id", "os_version", "os_name", "family", "arch", "kernel"))


@dataclass
class BatchState:
    """What the batch's checks and drift need, read under the lock."""

    heads: dict[int, str]  # system id -> chain head
    agent_states: dict[str, str]  # agent id -> state (absent: the agent is gone)
    stored: dict[tuple[str, str], tuple[str, str, Any]]  # (agent id, report id) -> (kind, digest, outcome)
    # (host id, object kind, object instance) -> [(check id, finding id, high risk)]: each 测评对象's open findings
    open_findings: dict[tuple[int, str, str], list[tuple[str, int, Optional[str]]]]
    # (host, baseline, object instance) -> (score, conclusion) of that object's latest run
    previous: dict[tuple[int, str, str], tuple[Optional[float], Optional[str]]]
    run_ids: list[int]  # ascending, one per report of the batch (unused ones are gaps)


@dataclass
class BatchWrites:
    """The rows of one batch, by table, as column name -> value (the plan stage fills it)."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[int, list[tuple[Any, ...]]]] = field(default_factory=list)  # (run id, result_rows(...))
    findings: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)  # {ids, t, run}: findings failing again
    resolved: list[dict[str, Any]] = field(default_factory=list)  # {id, t, run, how}
    events: list[dict[str, Any]] = field(default_factory=list)
    heads: dict[int, str] = field(default_factory=dict)  # system id -> new chain head
    hosts: list[dict[str, Any]] = field(default_factory=list)  # {hid, now, HOST_FACTS...}
    agents: list[dict[str, Any]] = field(default_factory=list)  # {aid, now, ip}
    reports: list[dict[str, Any]] = field(default_factory=list)


def _param(column: Column[Any], name: Optional[str] = None) -> Any:
    """A bound parameter typed as `column`, so it is converted as the column converts its values."""
    return bindparam(name or column.name, type_=column.type)


def _insert(table: Table, *, omit: Iterable[str] = ("id",)) -> Insert:
    """INSERT of every column of `table` but `omit` (by default the generated id)."""
    left_out = set(omit)
    # inline: no RETURNING of the generated id (nothing reads it back)
    return insert(table).inline().values({c.name: _param(c) for c in table.columns if c.name not in left_out})


def _json_dumps(value: Any) -> Optional[str]:
    return None if value is None else dumps(value)


class Compiled:
    """A Core statement compiled once for a dialect, in positional form, and run with executemany on the
    driver's cursor. `row(values)` turns a mapping of parameter names into the driver's tuple: each value
    through its column type's bind processor (JSON through fastjson), a missing name as the column's scalar
    default or None, constants of the statement (e.g. `occurrences + 1`) as compiled."""

    def __init__(self, stmt: Any, dialect: Dialect, defaults: Optional[Mapping[str, Any]] = None) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        order = compiled.positiontup or []
        self.names: tuple[str, ...] = tuple(order)
        defaults = defaults or {}
        plan: list[tuple[str, Any, Optional[Callable[[Any], Any]], bool]] = []
        for name in order:
            bind = compiled.binds[name]
            impl = bind.type.dialect_impl(dialect)
            proc = _json_dumps if isinstance(impl, sqltypes.JSON) else impl.bind_processor(dialect)
            constant = bind.value is not None and not bind.required and name not in defaults
            plan.append((name, bind.value if constant else defaults.get(name), proc, constant))
        self._plan = tuple(plan)
        self.procs = tuple(proc for _, _, proc, _ in plan)

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, default, proc, constant in self._plan:
            value = default if constant else values.get(name, default)
            out.append(proc(value) if proc is not None and value is not None else value)
        return tuple(out)

    def executemany(self, cur: Any, rows: Iterable[Mapping[str, Any]]) -> None:
        cur.executemany(self.sql, [self.row(r) for r in rows])


def _positional(dialect: Dialect) -> Dialect:
    """The dialect compiling with positional parameters: tuples are the cheapest rows for both drivers
    (sqlite3's qmark; psycopg takes `%s` as well as `%(name)s`)."""
    if dialect.positional:
        return dialect
    make: Any = type(dialect)
    positional: Dialect = make(paramstyle="format")
    return positional


def _scalar_defaults(table: Table) -> dict[str, Any]:
    return {c.name: c.default.arg for c in table.columns if isinstance(c.default, ScalarElementColumnDefault)}


class BatchSQL:
    """The batch's statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        d = _positional(dialect)
        F, R = T_FINDING.c, T_RUN.c
        self.i_run = Compiled(_insert(T_RUN, omit=()), d)  # run ids are taken under the lock
        self.i_result = Compiled(_insert(T_RESULT), d)
        if self.i_result.names != ("run_id", *RESULT_FIELDS):
            raise AssertionError(f"check_results parameters {self.i_result.names} are not in table order")
        self._result_procs = tuple((i, proc) for i, proc in enumerate(self.i_result.procs[1:]) if proc is not None)
        quote = d.identifier_preparer.quote
        self.copy_results: Optional[str] = (  # the insert's columns, in its order
            f"COPY {quote(T_RESULT.name)} ({', '.join(quote(n) for n in self.i_result.names)}) FROM STDIN"
            if dialect.name == "postgresql" else None)
        self.i_finding = Compiled(_insert(T_FINDING), d, _scalar_defaults(T_FINDING))
        self.i_event = Compiled(_insert(T_EVENT), d, _scalar_defaults(T_EVENT))
        self.i_report = Compiled(_insert(T_REPORT), d)
        self.u_resolve = Compiled(update(T_FINDING).where(F.id == _param(F.id)).values(
            resolved_at=_param(F.resolved_at, "t"), resolved_run_id=_param(F.resolved_run_id, "run"),
            resolution=_param(F.resolution, "how")), d)
        self.u_head = Compiled(update(T_SYSTEM).where(T_SYSTEM.c.id == _param(T_SYSTEM.c.id, "sid")).values(
            chain_head=_param(T_SYSTEM.c.chain_head, "head")), d)
        self.u_host = Compiled(update(T_HOST).where(T_HOST.c.id == _param(T_HOST.c.id, "hid")).values(
            {name: _param(T_HOST.c[name]) for name, _, _ in HOST_FACTS}
            | {"last_seen": _param(T_HOST.c.last_seen, "now")}), d)
        self.u_agent = Compiled(update(T_AGENT).where(T_AGENT.c.id == _param(T_AGENT.c.id, "aid")).values(
            last_seen=_param(T_AGENT.c.last_seen, "now"), last_ip=_param(T_AGENT.c.last_ip, "ip")), d)
        # executed through SQLAlchemy (expanding IN lists; compiled once, cached by SQLAlchemy)
        self.u_seen: Update = update(T_FINDING).where(F.id.in_(bindparam("ids", expanding=True))).values(
            last_seen=_param(F.last_seen, "t"), last_run_id=_param(F.last_run_id, "run"),
            occurrences=F.occurrences + 1)
        self.q_heads = (select(T_SYSTEM.c.id, T_SYSTEM.c.chain_head)
                        .where(T_SYSTEM.c.id.in_(bindparam("ids", expanding=True)))
                        .order_by(T_SYSTEM.c.id).with_for_update())
        self.q_states = select(T_AGENT.c.id, T_AGENT.c.state).where(T_AGENT.c.id.in_(bindparam("ids", expanding=True)))
        # report ids are unique per agent (migration 0004): stored answers are keyed by (agent, report id)
        self.q_stored = (select(T_REPORT.c.agent_id, T_REPORT.c.report_id, T_REPORT.c.kind, T_REPORT.c.digest,
                                T_REPORT.c.outcome)
                         .where(T_REPORT.c.report_id.in_(bindparam("ids", expanding=True)),
                                T_REPORT.c.agent_id.in_(bindparam("agents", expanding=True))))
        self.q_open = (select(F.host_id, F.object_kind, F.object_instance, F.check_id, F.id, F.high_risk)
                       .where(F.host_id.in_(bindparam("hosts", expanding=True)), F.resolved_at.is_(None)))
        self.q_top = select(func.coalesce(func.max(R.id), 0))
        self._q_previous: dict[int, Any] = {}
        self._next_run_ids = self._run_ids_sequence if dialect.name == "postgresql" else self._run_ids_after_max

    def _previous(self, n: int) -> Any:
        """The latest run of each of n (host, baseline, object instance) triples: one indexed max(id) per triple
        (ix_runs_host_object), however long the hosts' history. One statement per batch size."""
        stmt = self._q_previous.get(n)
        if stmt is None:
            R, L = T_RUN.c, T_RUN.alias("latest").c  # the alias keeps each max(id) uncorrelated
            latest = [select(func.max(L.id)).where(L.host_id == bindparam(f"h{i}", type_=L.host_id.type),
                                                   L.baseline_id == bindparam(f"b{i}", type_=L.baseline_id.type),
                                                   L.object_instance == bindparam(f"o{i}",
                                                                                  type_=L.object_instance.type))
                      .scalar_subquery() for i in range(n)]
            stmt = self._q_previous[n] = select(R.host_id, R.baseline_id, R.object_instance, R.score,
                                                R.conclusion).where(R.id.in_(latest))
        return stmt

    def _run_ids_sequence(self, conn: Connection, n: int) -> list[int]:
        # the serial's own sequence: other writers (and a failed batch's gaps) never reuse an id
        seq = func.nextval(func.pg_get_serial_sequence(T_RUN.name, T_RUN.c.id.name))
        return sorted(conn.execute(select(seq).select_from(func.generate_series(1, n))).scalars())

    def _run_ids_after_max(self, conn: Connection, n: int) -> list[int]:
        # SQLite: the write lock is held, so nobody else takes ids meanwhile
        top = conn.execute(self.q_top).scalar_one()
        return list(range(top + 1, top + 1 + n))

    def lock_and_read(self, conn: Connection, *, systems: Iterable[int], agents: Iterable[str],
                      report_ids: Sequence[str], hosts: Iterable[int],
                      previous_keys: Iterable[tuple[int, str, str]]) -> BatchState:
        # The lock first and on its own: later statements take their snapshot after it is granted.
        heads = {sid: head for sid, head in conn.execute(self.q_heads, {"ids": sorted(systems)})}
        agents = sorted(agents)
        states = {aid: state for aid, state in conn.execute(self.q_states, {"ids": agents})}
        stored = {(aid, rid): (kind, digest, outcome) for aid, rid, kind, digest, outcome in conn.execute(
            self.q_stored, {"ids": sorted(set(report_ids)), "agents": agents})}
        open_findings: dict[tuple[int, str, str], list[tuple[str, int, Optional[str]]]] = {}
        for hid, kind, instance, check_id, fid, high_risk in conn.execute(self.q_open, {"hosts": sorted(hosts)}):
            open_findings.setdefault((hid, kind, instance), []).append((check_id, fid, high_risk))
        keys = sorted(previous_keys)
        previous: dict[tuple[int, str, str], tuple[Optional[float], Optional[str]]] = dict.fromkeys(
            keys, (None, None))
        if keys:
            params: dict[str, Any] = {f"h{i}": hid for i, (hid, _, _) in enumerate(keys)}
            params |= {f"b{i}": bid for i, (_, bid, _) in enumerate(keys)}
            params |= {f"o{i}": instance for i, (_, _, instance) in enumerate(keys)}
            for hid, bid, instance, score, conclusion in conn.execute(self._previous(len(keys)), params):
                previous[(hid, bid, instance)] = (score, conclusion)
        run_ids = self._next_run_ids(conn, len(report_ids))
        return BatchState(heads, states, stored, open_findings, previous, run_ids)

    def result_rows(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """A report's check results (tuples in RESULT_FIELDS order), converted for the driver before the lock;
        the run id is put in front when the run is numbered."""
        out = []
        for r in rows:
            row = list(r)
            for i, proc in self._result_procs:
                if row[i] is not None:
                    row[i] = proc(row[i])
            out.append(tuple(row))
        return out

    def write(self, conn: Connection, w: BatchWrites) -> None:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            self.i_run.executemany(cur, w.runs)
            results = [(run_id, *r) for run_id, rows in w.results for r in rows]
            if self.copy_results is None:
                cur.executemany(self.i_result.sql, results)
            elif results:
                with cur.copy(self.copy_results) as copy:
                    for r in results:
                        copy.write_row(r)
            if w.findings:
                self.i_finding.executemany(cur, w.findings)
            if w.resolved:
                self.u_resolve.executemany(cur, w.resolved)
            if w.events:
                self.i_event.executemany(cur, w.events)
            self.u_head.executemany(cur, ({"sid": sid, "head": head} for sid, head in w.heads.items()))
            self.u_host.executemany(cur, w.hosts)
            self.u_agent.executemany(cur, w.agents)
            self.i_report.executemany(cur, w.reports)
        finally:
            cur.close()
        for seen in w.seen:  # one statement per report: its findings failing again
            conn.execute(self.u_seen, seen)
