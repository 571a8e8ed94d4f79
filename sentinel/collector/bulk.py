"""The writes of the ingest hot path (a host report), in as few database round trips as possible.

PostgreSQL: the run and all its check results go in one statement (the results travel as one JSON
array expanded by jsonb_to_recordset), and the closing writes (chain head, host, agent, report
ledger) go in one statement of data-modifying CTEs. On a busy 2-core machine a round trip costs far
more than the SQL, so this is where the throughput comes from.
SQLite runs in-process, so there the cost is Python per statement: the results go through the
driver's executemany with their JSON already serialised, the rest through cached Core statements.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from sqlalchemy import LargeBinary, bindparam, insert, text, update

from ..store.models import Agent, CheckResultRow, Host, Report, Run, System
from ..store.types import JSONType, UTCDateTime

try:  # several times faster for the JSON columns; plain json stores the same values
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode("utf-8")
except ImportError:  # pragma: no cover - orjson is optional
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

T_RUN, T_RESULT, T_SYSTEM = Run.__table__, CheckResultRow.__table__, System.__table__
T_HOST, T_AGENT, T_REPORT = Host.__table__, Agent.__table__, Report.__table__

# Order of a result row as the writers take it (JSON columns as Python values).
RESULT_FIELDS = ("check_id", "clause", "item", "title", "status", "severity", "high_risk", "observed",
                 "expected", "reason", "evidence", "waiver", "duration_ms")
RUN_FIELDS = ("report_id", "agent_id", "host_id", "system_id", "department_id", "baseline_id", "baseline_version",
              "baseline_level", "started_at", "finished_at", "received_at", "summary", "score", "pass_rate",
              "conclusion", "checks_total", "failed", "high_risk", "digest", "prev_chain_hash", "chain_hash")
HOST_FIELDS = ("os_id", "os_version", "os_name", "family", "arch", "kernel")
REPORT_FIELDS = ("report_id", "kind", "agent_id", "host_id", "department_id", "digest", "sent_at", "received_at",
                 "source_ip", "outcome", "signature", "envelope")
_TIMES = ("started_at", "finished_at", "received_at", "sent_at", "now")


class SqliteWriter:
    _INSERT_RESULTS = (f"INSERT INTO check_results (run_id, {', '.join(RESULT_FIELDS)}) "
                       f"VALUES ({', '.join('?' * (len(RESULT_FIELDS) + 1))})")

    def __init__(self) -> None:
        self._i_run, self._i_report = insert(T_RUN), insert(T_REPORT)
        self._u_chain = update(T_SYSTEM).where(T_SYSTEM.c.id == bindparam("sid")).values(
            chain_head=bindparam("head"))
        self._u_host = update(T_HOST).where(T_HOST.c.id == bindparam("hid")).values(
            **{f: bindparam(f) for f in HOST_FIELDS}, last_seen=bindparam("now"))
        self._u_agent = update(T_AGENT).where(T_AGENT.c.id == bindparam("aid")).values(
            last_seen=bindparam("now"), last_ip=bindparam("ip"))

    def run_with_results(self, conn, run: dict, results: list[tuple]) -> int:
        run_id = conn.execute(self._i_run, run).inserted_primary_key[0]
        if results:
            conn.exec_driver_sql(self._INSERT_RESULTS, [
                (run_id, r[0], r[1], r[2], dumps(r[3]), r[4], r[5], r[6], dumps(r[7]), r[8], r[9], dumps(r[10]),
                 r[11], r[12]) for r in results])
        return run_id

    def close_host_report(self, conn, *, sid: int, head: str, hid: int, host: dict, aid: str, ip: Optional[str],
                          now, report: dict) -> None:
        conn.execute(self._u_chain, {"sid": sid, "head": head})
        conn.execute(self._u_host, {"hid": hid, "now": now, **host})
        conn.execute(self._u_agent, {"aid": aid, "now": now, "ip": ip})
        conn.execute(self._i_report, report)


def _typed(statement, *, json_params=(), binary_params=(), time_params=_TIMES):
    names = set(statement.compile().params)
    binds = [bindparam(n, type_=JSONType) for n in json_params if n in names]
    binds += [bindparam(n, type_=LargeBinary) for n in binary_params if n in names]
    binds += [bindparam(n, type_=UTCDateTime) for n in time_params if n in names]
    return statement.bindparams(*binds)


class PostgresWriter:
    def __init__(self) -> None:
        columns = ", ".join(RUN_FIELDS)
        values = ", ".join(f":{f}" for f in RUN_FIELDS)
        fields = ", ".join(RESULT_FIELDS)
        self._run = _typed(text(
            f"WITH run AS (INSERT INTO runs ({columns}) VALUES ({values}) RETURNING id), "
            f"res AS (INSERT INTO check_results (run_id, {fields}) "
            f"SELECT run.id, {', '.join('x.' + f for f in RESULT_FIELDS)} "
            f"FROM run, ROWS FROM (jsonb_to_recordset(CAST(:results AS jsonb)) AS (check_id text, clause text, "
            f"item text, title jsonb, status text, severity text, high_risk text, observed jsonb, expected text, "
            f"reason text, evidence jsonb, waiver text, duration_ms float8)) WITH ORDINALITY AS x({fields}, n) "
            f"ORDER BY x.n) "
            f"SELECT id FROM run"), json_params=("summary",))
        self._close = _typed(text(
            "WITH s AS (UPDATE systems SET chain_head = :head WHERE id = :sid), "
            "h AS (UPDATE hosts SET " + ", ".join(f"{f} = :{f}" for f in HOST_FIELDS) +
            ", last_seen = :now WHERE id = :hid), "
            "a AS (UPDATE agents SET last_seen = :now, last_ip = :ip WHERE id = :aid) "
            f"INSERT INTO reports ({', '.join(REPORT_FIELDS)}) VALUES ({', '.join(':' + f for f in REPORT_FIELDS)})"),
            json_params=("outcome",), binary_params=("envelope",))

    def run_with_results(self, conn, run: dict, results: list[tuple]) -> int:
        # results keep their order: WITH ORDINALITY + ORDER BY gives ascending ids in report order
        payload = dumps([dict(zip(RESULT_FIELDS, r, strict=True)) for r in results])
        return conn.execute(self._run, {**run, "results": payload}).scalar_one()

    def close_host_report(self, conn, *, sid: int, head: str, hid: int, host: dict, aid: str, ip: Optional[str],
                          now, report: dict) -> None:
        conn.execute(self._close, {"sid": sid, "head": head, "hid": hid, **host, "aid": aid, "ip": ip, "now": now,
                                   **report})


def writer_for(dialect: str):
    if dialect == "postgresql":
        return PostgresWriter()
    if dialect == "sqlite":
        return SqliteWriter()
    raise ValueError(f"no ingest writer for {dialect}")
