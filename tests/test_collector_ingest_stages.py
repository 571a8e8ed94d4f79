"""Ingest's write stage (sentinel/collector/ingest/write.py): SQL derived from the tables, the same statements on
SQLite and PostgreSQL, and the reads under the lock that drift and events depend on (on both stores)."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from sentinel.collector.ingest.write import RESULT_FIELDS, BatchSQL
from sentinel.store.models import CheckResultRow, Event, Finding, Report, Run
from tests.collector_helpers import TEST_SITE_ID, envelope, his_site, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

INSERTS = {"i_run": Run, "i_result": CheckResultRow, "i_finding": Finding, "i_event": Event, "i_report": Report}


def test_the_batch_inserts_write_every_column_of_their_tables_on_both_dialects():
    sqlite, postgres = BatchSQL(SQLiteDialect_pysqlite()), BatchSQL(PGDialect_psycopg())
    for name, model in INSERTS.items():
        columns = [c.name for c in model.__table__.columns]
        expected = columns if model is Run else [c for c in columns if c != "id"]  # run ids are taken under the lock
        assert list(getattr(sqlite, name).names) == expected, name
        assert getattr(postgres, name).names == getattr(sqlite, name).names, name
        assert "RETURNING" not in getattr(postgres, name).sql  # nothing is read back per row
    assert RESULT_FIELDS == tuple(c for c in sqlite.i_result.names if c != "run_id")
    for name in ("u_resolve", "u_head", "u_host", "u_agent"):
        assert getattr(postgres, name).names == getattr(sqlite, name).names, name


def test_json_values_are_sql_null_when_absent_and_json_otherwise():
    sql = BatchSQL(SQLiteDialect_pysqlite())
    row = dict(zip(RESULT_FIELDS, ("c", "8.1.4.1", "a", {"zh": "题", "en": "t"}, "pass", "low", None, None, "x", None,
                                   [], None, 1.5, None), strict=True))
    (converted,) = sql.result_rows([tuple(row[f] for f in RESULT_FIELDS)])
    out = dict(zip(RESULT_FIELDS, converted, strict=True))
    assert out["title"] == '{"zh":"题","en":"t"}' and out["evidence"] == "[]"
    assert out["observed"] is None and out["advisory"] is None  # `advisory IS NULL` selects the counted results


@pytest.fixture
def agent_env(db, make_client):
    site = his_site(db, make_client)
    return site.client, site.agent


def _send(client, agent, statuses, **kw):
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report(statuses, **kw)))
    r = client.post("/api/v1/agent/reports", content=raw, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def _drops(db):
    with db.read() as conn:
        rows = conn.execute(select(Event.__table__).where(Event.kind == "score_drop").order_by(Event.id)).all()
    return [(e.run_id, e.payload["previous_score"], e.payload["score"]) for e in rows]


def test_a_score_drop_is_measured_from_the_latest_run_on_the_same_baseline(agent_env, db):
    client, agent = agent_env
    _send(client, agent, {"a": "pass", "b": "pass"})  # sentinel-test: 100
    _send(client, agent, {"a": "fail", "b": "fail"}, baseline_id=TEST_SITE_ID)  # another baseline: 0
    half = _send(client, agent, {"a": "pass", "b": "fail"})  # 100 -> 50 on sentinel-test, whatever the site's 0
    assert _drops(db) == [(half["run_id"], 100.0, 50.0)]
    zero = _send(client, agent, {"a": "fail", "b": "fail"})  # from the latest run (50), not the first (100)
    assert _drops(db) == [(half["run_id"], 100.0, 50.0), (zero["run_id"], 50.0, 0.0)]
    with db.read() as conn:
        stored = conn.execute(select(CheckResultRow.__table__).where(CheckResultRow.run_id == zero["run_id"])
                              .order_by(CheckResultRow.id)).all()
        run = conn.execute(select(Run.__table__).where(Run.id == zero["run_id"])).one()
    # rows written on the driver's cursor read back through the tables' types as the ORM wrote them
    assert [(r.check_id, r.status, r.title["en"]) for r in stored] == [("a", "fail", "check a"),
                                                                        ("b", "fail", "check b")]
    assert isinstance(stored[0].evidence, list) and stored[0].advisory is None
    assert run.finished_at.tzinfo is not None and run.received_at.tzinfo is not None
    assert run.summary["score"] == 0.0


def test_check_results_are_stored_as_sent_whatever_their_text(agent_env, db):
    """Results go by executemany on SQLite and by COPY on PostgreSQL: text with tabs, newlines, backslashes,
    COPY's own markers and Chinese, JSON nulls and empty lists all read back as the agent sent them."""
    client, agent = agent_env
    body = make_report({"a": "fail", "b": "pass"})
    awkward = "第\t25 行\nPASS_MAX_DAYS\\t99999 \\N \\. end\r"
    body["results"][0].update(reason=awkward, observed={"value": awkward, "lines": [awkward, ""], "none": None},
                              evidence=[{"source": "/etc/login.defs", "excerpt": awkward, "line": 25, "at": None}])
    body["results"][1].update(observed=None, evidence=[])
    raw, headers = sign(agent.key, envelope(agent.agent_id, body))
    r = client.post("/api/v1/agent/reports", content=raw, headers=headers)
    assert r.status_code == 202, r.text
    with db.read() as conn:
        rows = {row.check_id: row for row in conn.execute(
            select(CheckResultRow.__table__).where(CheckResultRow.run_id == r.json()["run_id"])).all()}
    a, b = rows["a"], rows["b"]
    assert a.reason == awkward and a.observed == body["results"][0]["observed"]
    assert a.evidence == body["results"][0]["evidence"] and a.waiver is None and a.advisory is None
    assert b.observed is None and b.evidence == [] and b.reason is None and b.duration_ms == 1.5
