"""The database side of host-report ingestion, a batch of reports at a time (sentinel/collector/ingest.py
decides what to write; this module reads and writes it for one dialect, through the driver).

Per batch, inside one write transaction:
1. `lock_and_read`: lock the chain heads of the batch's systems (PostgreSQL: `SELECT ... FOR UPDATE` in
   system-id order, so two collector processes never deadlock; SQLite: the transaction began with
   BEGIN IMMEDIATE and holds the only write lock), then, in statements that start after the lock is held
   and so see every earlier commit: the agents' states, reports already stored under the batch's ids, the
   hosts' open findings, each host's previous score on the baseline, and run ids. Run ids are taken here,
   under the lock, so a system's runs are numbered in chain order.
2. `write`: every row of the batch, one executemany per table (PostgreSQL pipelines each into one round
   trip; the check results of the whole batch travel as one JSON array expanded by jsonb_to_recordset).
   A report's check results are turned into driver values by `result_rows` before the lock, so the
   lock (which other collector processes wait for) is held only for the SQL.

The driver is used directly: the statements are fixed, and SQLAlchemy's per-statement work would cost
more than the SQL on this path. Values are converted with the column types' own bind processors
(SQLite date-time text, UTC) so the rows are the ones the ORM would write.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..store.types import UTCDateTime
from .fastjson import dumps

# Order of a check-result row as ingest builds it (the JSON columns as Python values).
RESULT_FIELDS = ("check_id", "clause", "item", "title", "status", "severity", "high_risk", "observed",
                 "expected", "reason", "evidence", "waiver", "duration_ms", "advisory")
RUN_COLUMNS = ("id", "report_id", "agent_id", "host_id", "system_id", "department_id", "baseline_id",
               "baseline_version", "baseline_level", "started_at", "finished_at", "received_at", "summary", "score",
               "pass_rate", "conclusion", "checks_total", "failed", "high_risk", "digest", "prev_chain_hash",
               "chain_hash")
FINDING_COLUMNS = ("host_id", "system_id", "department_id", "check_id", "clause", "item", "title", "remediation",
                   "severity", "high_risk", "first_seen", "last_seen", "first_run_id", "last_run_id", "occurrences",
                   "resolved_at", "resolution", "resolved_run_id")
EVENT_COLUMNS = ("kind", "severity", "department_id", "system_id", "host_id", "check_id", "run_id", "fingerprint",
                 "summary", "payload", "created_at", "delivered", "attempts")
REPORT_COLUMNS = ("report_id", "kind", "agent_id", "host_id", "department_id", "digest", "sent_at", "received_at",
                  "source_ip", "outcome", "signature", "envelope")
HOST_FIELDS = ("os_id", "os_version", "os_name", "family", "arch", "kernel")
TIMES = {"started_at", "finished_at", "received_at", "first_seen", "last_seen", "resolved_at", "created_at",
         "sent_at", "t", "now"}
# JSON columns per table ("summary" is JSON in runs but text in events)
RUN_JSON, FINDING_JSON, EVENT_JSON, REPORT_JSON = {"summary"}, {"title", "remediation"}, {"payload"}, {"outcome"}


def _driver_cursor(conn):
    """A raw DB-API cursor of the SQLAlchemy connection: the hot path skips SQLAlchemy's statement layer."""
    return conn.connection.driver_connection.cursor()


@dataclass
class BatchState:
    """What the batch's checks and drift need, read under the lock."""

    heads: dict[int, str]  # system id -> chain head
    agent_states: dict[str, str]  # agent id -> state (absent: the agent is gone)
    stored: dict[tuple[str, str], tuple[str, str, Any]]  # (agent id, report id) -> (kind, digest, outcome)
    open_findings: dict[int, list[tuple[str, int, Optional[str]]]]  # host id -> [(check id, finding id, high risk)]
    previous: dict[tuple[int, str], tuple[Optional[float], Optional[str]]]  # (host, baseline) -> (score, conclusion)
    run_ids: list[int]  # ascending, one per report of the batch (unused ones are gaps)


@dataclass
class BatchWrites:
    runs: list[dict] = field(default_factory=list)
    results: list[tuple[int, Any]] = field(default_factory=list)  # (run id, the store's result_rows(...))
    findings: list[dict] = field(default_factory=list)
    seen: list[dict] = field(default_factory=list)  # {ids, t, run}
    resolved: list[dict] = field(default_factory=list)  # {id, t, run, how}
    events: list[dict] = field(default_factory=list)
    heads: dict[int, str] = field(default_factory=dict)
    hosts: list[dict] = field(default_factory=list)  # {hid, now, HOST_FIELDS...}
    agents: list[dict] = field(default_factory=list)  # {aid, now, ip}
    reports: list[dict] = field(default_factory=list)


def _converter(dialect) -> Callable[[dict, frozenset], dict]:
    """Row dict -> driver values: date-times through UTCDateTime's processor, JSON columns as text."""
    ts = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)

    def convert(row: dict, jsons=frozenset()) -> dict:
        out = dict(row)
        for key, value in row.items():
            if key in TIMES:
                out[key] = ts(value) if value is not None else None
            elif key in jsons:
                out[key] = dumps(value)
        return out

    return convert


class _Store:
    """What both dialects write alike: the statements that differ only in how a named parameter is written
    (`param`; `json_param` for a JSON column), and the order of the batch's writes. Each dialect adds how it
    reads under the lock and how it writes check results and seen findings (its own SQL there)."""

    def __init__(self, dialect, param: Callable[[str], str], json_param: Callable[[str], str]) -> None:
        self.convert = _converter(dialect)

        def insert(table: str, columns: tuple, jsons: set) -> str:
            values = ", ".join(json_param(c) if c in jsons else param(c) for c in columns)
            return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"

        self.i_run = insert("runs", RUN_COLUMNS, RUN_JSON)
        self.i_finding = insert("findings", FINDING_COLUMNS, FINDING_JSON)
        self.i_event = insert("events", EVENT_COLUMNS, EVENT_JSON)
        self.i_report = insert("reports", REPORT_COLUMNS, REPORT_JSON)
        self.u_resolve = (f"UPDATE findings SET resolved_at = {param('t')}, resolved_run_id = {param('run')}, "
                          f"resolution = {param('how')} WHERE id = {param('id')}")
        self.u_head = f"UPDATE systems SET chain_head = {param('head')} WHERE id = {param('sid')}"
        self.u_host = ("UPDATE hosts SET " + ", ".join(f"{f} = {param(f)}" for f in HOST_FIELDS) +
                       f", last_seen = {param('now')} WHERE id = {param('hid')}")
        self.u_agent = (f"UPDATE agents SET last_seen = {param('now')}, last_ip = {param('ip')} "
                        f"WHERE id = {param('aid')}")

    def _write_results(self, cur, results: list[tuple[int, Any]]) -> None:
        raise NotImplementedError

    def _write_seen(self, cur, seen: list[dict]) -> None:
        raise NotImplementedError

    def write(self, conn, w: BatchWrites) -> None:
        cur = _driver_cursor(conn)
        convert = self.convert
        cur.executemany(self.i_run, [convert(r, RUN_JSON) for r in w.runs])
        self._write_results(cur, w.results)
        if w.findings:
            cur.executemany(self.i_finding, [convert(f, FINDING_JSON) for f in w.findings])
        if w.seen:
            self._write_seen(cur, w.seen)
        if w.resolved:
            cur.executemany(self.u_resolve, [convert(r) for r in w.resolved])
        if w.events:
            cur.executemany(self.i_event, [convert(e, EVENT_JSON) for e in w.events])
        cur.executemany(self.u_head, [{"sid": sid, "head": head} for sid, head in w.heads.items()])
        cur.executemany(self.u_host, [convert(h) for h in w.hosts])
        cur.executemany(self.u_agent, [convert(a) for a in w.agents])
        cur.executemany(self.i_report, [convert(r, REPORT_JSON) for r in w.reports])
        cur.close()


class SqliteStore(_Store):
    """sqlite3 through its own cursor, inside the BEGIN IMMEDIATE transaction of Database.write()."""

    def __init__(self, dialect) -> None:
        # JSON columns are text in SQLite: `convert` has serialised them, so they bind as any value
        super().__init__(dialect, param=lambda c: f":{c}", json_param=lambda c: f":{c}")
        self.ts = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self.i_result = (f"INSERT INTO check_results (run_id, {', '.join(RESULT_FIELDS)}) "
                         f"VALUES ({', '.join('?' * (len(RESULT_FIELDS) + 1))})")

    def lock_and_read(self, conn, *, systems, agents, report_ids, hosts, previous_keys) -> BatchState:
        cur = _driver_cursor(conn)

        def marks(values) -> str:
            return ", ".join("?" * len(values))

        systems, agents, report_ids, hosts = list(systems), list(agents), list(report_ids), list(hosts)
        heads = dict(cur.execute(f"SELECT id, chain_head FROM systems WHERE id IN ({marks(systems)})",
                                 systems).fetchall())
        states = dict(cur.execute(f"SELECT id, state FROM agents WHERE id IN ({marks(agents)})", agents).fetchall())
        # report ids are unique per agent (migration 0004): stored answers are keyed by (agent, report id)
        stored = {(aid, rid): (kind, digest, _load(outcome)) for aid, rid, kind, digest, outcome in cur.execute(
            f"SELECT agent_id, report_id, kind, digest, outcome FROM reports WHERE report_id IN ({marks(report_ids)}) "
            f"AND agent_id IN ({marks(agents)})", report_ids + agents).fetchall()}
        open_findings: dict[int, list] = {}
        for hid, check_id, fid, high_risk in cur.execute(
                f"SELECT host_id, check_id, id, high_risk FROM findings WHERE host_id IN ({marks(hosts)}) "
                "AND resolved_at IS NULL", hosts).fetchall():
            open_findings.setdefault(hid, []).append((check_id, fid, high_risk))
        previous = {}
        for hid, bid in previous_keys:
            row = cur.execute("SELECT score, conclusion FROM runs WHERE host_id = ? AND baseline_id = ? "
                              "ORDER BY id DESC LIMIT 1", (hid, bid)).fetchone()
            previous[(hid, bid)] = row if row else (None, None)
        top = cur.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]
        cur.close()
        return BatchState(heads, states, stored, open_findings, previous,
                          list(range(top + 1, top + 1 + len(report_ids))))

    @staticmethod
    def result_rows(rows: list[tuple]) -> list[tuple]:
        """Rows in RESULT_FIELDS order with the JSON columns (title, observed, evidence, advisory) as text; no
        advisory mark is SQL NULL (not JSON null), so `advisory IS NULL` selects the counted results."""
        return [(r[0], r[1], r[2], dumps(r[3]), r[4], r[5], r[6], dumps(r[7]), r[8], r[9], dumps(r[10]), r[11],
                 r[12], dumps(r[13]) if r[13] is not None else None) for r in rows]

    def _write_results(self, cur, results: list[tuple[int, Any]]) -> None:
        cur.executemany(self.i_result, [(run_id, *r) for run_id, rows in results for r in rows])

    def _write_seen(self, cur, seen: list[dict]) -> None:
        # one statement per report: sqlite3 has no array parameter for the ids
        for one in seen:
            ids = one["ids"]
            cur.execute(f"UPDATE findings SET last_seen = ?, last_run_id = ?, occurrences = occurrences + 1 "
                        f"WHERE id IN ({', '.join('?' * len(ids))})", (self.ts(one["t"]), one["run"], *ids))


class PostgresStore(_Store):
    """psycopg 3 through its own cursor, inside the transaction of Database.write()."""

    def __init__(self, dialect) -> None:
        super().__init__(dialect, param=lambda c: f"%({c})s", json_param=lambda c: f"CAST(%({c})s AS jsonb)")
        fields = ", ".join(RESULT_FIELDS)
        # results keep their order: ORDINALITY + ORDER BY gives ascending ids in report order
        self.i_results = (
            f"INSERT INTO check_results (run_id, {fields}) "
            f"SELECT (b.v->>'run_id')::int, {', '.join('x.' + f for f in RESULT_FIELDS)} "
            f"FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS b(v, bn) "
            f"CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(b.v->'results') AS (check_id text, clause text, "
            f"item text, title jsonb, status text, severity text, high_risk text, observed jsonb, expected text, "
            f"reason text, evidence jsonb, waiver text, duration_ms float8, advisory jsonb)) "
            f"WITH ORDINALITY AS x({fields}, n) "
            f"ORDER BY b.bn, x.n")
        self.u_seen = ("UPDATE findings SET last_seen = %(t)s, last_run_id = %(run)s, occurrences = occurrences + 1 "
                       "WHERE id = ANY(%(ids)s)")

    def lock_and_read(self, conn, *, systems, agents, report_ids, hosts, previous_keys) -> BatchState:
        cur = _driver_cursor(conn)
        # The lock first and on its own: later statements take their snapshot after it is granted.
        heads = dict(cur.execute("SELECT id, chain_head FROM systems WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                                 (sorted(systems),)).fetchall())
        states = dict(cur.execute("SELECT id, state FROM agents WHERE id = ANY(%s)", (list(agents),)).fetchall())
        stored = {(aid, rid): (kind, digest, outcome) for aid, rid, kind, digest, outcome in cur.execute(
            "SELECT agent_id, report_id, kind, digest, outcome FROM reports WHERE report_id = ANY(%s) "
            "AND agent_id = ANY(%s)", (list(report_ids), list(agents))).fetchall()}
        open_findings: dict[int, list] = {}
        for hid, check_id, fid, high_risk in cur.execute(
                "SELECT host_id, check_id, id, high_risk FROM findings WHERE host_id = ANY(%s) "
                "AND resolved_at IS NULL", (list(hosts),)).fetchall():
            open_findings.setdefault(hid, []).append((check_id, fid, high_risk))
        keys = list(previous_keys)
        previous = {(hid, bid): (None, None) for hid, bid in keys}
        for hid, bid, score, conclusion in cur.execute(
                "SELECT k.hid, k.bid, r.score, r.conclusion FROM unnest(%s::int[], %s::text[]) AS k(hid, bid) "
                "CROSS JOIN LATERAL (SELECT score, conclusion FROM runs WHERE host_id = k.hid "
                "AND baseline_id = k.bid ORDER BY id DESC LIMIT 1) r",
                ([k[0] for k in keys], [k[1] for k in keys])).fetchall():
            previous[(hid, bid)] = (score, conclusion)
        run_ids = sorted(r[0] for r in cur.execute(
            "SELECT nextval(pg_get_serial_sequence('runs', 'id')) FROM generate_series(1, %s)",
            (len(report_ids),)).fetchall())
        cur.close()
        return BatchState(heads, states, stored, open_findings, previous, run_ids)

    @staticmethod
    def result_rows(rows: list[tuple]) -> str:
        """A report's result rows as the JSON array `write` expands."""
        return dumps([dict(zip(RESULT_FIELDS, r, strict=True)) for r in rows])

    def _write_results(self, cur, results: list[tuple[int, Any]]) -> None:
        # the per-report arrays were serialised before the lock; here they are only joined
        cur.execute(self.i_results, ("[" + ",".join(f'{{"run_id":{run_id},"results":{rows}}}'
                                                    for run_id, rows in results) + "]",))

    def _write_seen(self, cur, seen: list[dict]) -> None:
        cur.executemany(self.u_seen, [self.convert(s) for s in seen])


def _load(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, (str, bytes)) else value


def store_for(dialect):
    if dialect.name == "postgresql":
        return PostgresStore(dialect)
    if dialect.name == "sqlite":
        return SqliteStore(dialect)
    raise ValueError(f"no ingest store for {dialect.name}")
