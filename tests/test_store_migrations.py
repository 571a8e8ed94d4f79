"""The store on SQLite and PostgreSQL: migrations from empty to head (and back), the schema matching
the models, and the database behaviours the collector relies on."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from sentinel.store.db import (
    Database,
    StoreError,
    current_revision,
    downgrade,
    ensure_current,
    head_revision,
    normalise_url,
    upgrade,
)
from sentinel.store.models import Agent, Department, Finding, Host, Run, System, metadata
from tests.dbfixtures import pg_url

pytest_plugins = ["tests.dbfixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_url(request.getfixturevalue("pg_schemas").create("sentinel_migr"))


def test_empty_to_head_and_back(empty_url):
    db = Database(empty_url)
    try:
        assert current_revision(db) is None
        with pytest.raises(StoreError, match="sentinel db upgrade"):
            ensure_current(db)
        assert upgrade(db) == head_revision()
        ensure_current(db)
        tables = set(inspect(db.engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= tables
        # the migrated schema is exactly what the models describe (types, indexes, constraints)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        assert upgrade(db) == head_revision()  # idempotent
        assert downgrade(db, "base") is None
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(db)
        ensure_current(db)
    finally:
        db.dispose()


def _dept_system_host(conn) -> tuple[int, int, int]:
    now = datetime.now(timezone.utc)
    d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)).inserted_primary_key[0]
    s = conn.execute(insert(System.__table__).values(
        name="s", department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="", zones=[],
        scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now)).inserted_primary_key[0]
    h = conn.execute(insert(Host.__table__).values(
        system_id=s, department_id=d, hostname="h", addresses=[], os_id="", os_version="", os_name="", arch="",
        first_seen=now, last_seen=now)).inserted_primary_key[0]
    return d, s, h


def _agent_and_run(conn, d: int, s: int, h: int, now: datetime) -> int:
    """Agent a1 of host h and one run of it (report r, conclusion 优); the run's id."""
    conn.execute(insert(Agent.__table__).values(
        id="a1", host_id=h, system_id=s, department_id=d, public_key="k", state="enrolled", enrolled_at=now))
    return conn.execute(insert(Run.__table__).values(
        report_id="r", agent_id="a1", host_id=h, system_id=s, department_id=d, baseline_id="b",
        baseline_version="1", baseline_level=3, started_at=now, finished_at=now, received_at=now, summary={},
        score=None, pass_rate=None, conclusion="优", checks_total=0, failed=0, high_risk=0, digest="0" * 64,
        prev_chain_hash="0" * 64, chain_hash="0" * 64)).inserted_primary_key[0]


def test_constraints_hold(db):
    with db.write() as conn:
        d, s, h = _dept_system_host(conn)
    now = datetime.now(timezone.utc)
    # foreign keys are enforced (SQLite needs PRAGMA foreign_keys=ON on every connection)
    with pytest.raises(IntegrityError):
        with db.write() as conn:
            conn.execute(insert(Host.__table__).values(
                system_id=9999, department_id=d, hostname="x", addresses=[], os_id="", os_version="", os_name="",
                arch="", first_seen=now, last_seen=now))
    # the 定级 level must be 2-4
    with pytest.raises(IntegrityError):
        with db.write() as conn:
            conn.execute(insert(System.__table__).values(
                name="bad", department_id=d, title="", level=5, s_grade=3, a_grade=2, label="S3A2", owner="",
                zones=[], scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now))


def test_one_open_finding_per_host_and_check(db):
    now = datetime.now(timezone.utc)
    with db.write() as conn:
        d, s, h = _dept_system_host(conn)
        run = _agent_and_run(conn, d, s, h, now)
    row = dict(host_id=h, system_id=s, department_id=d, check_id="c", clause="8.1.4.1", item="a", title={},
               remediation={}, severity="high", first_seen=now, last_seen=now, first_run_id=run, last_run_id=run,
               occurrences=1)
    with db.write() as conn:
        conn.execute(insert(Finding.__table__).values(**row))
    with pytest.raises(IntegrityError):
        with db.write() as conn:
            conn.execute(insert(Finding.__table__).values(**row))
    # resolved episodes do not count: history may hold many rows for one host+check
    with db.write() as conn:
        conn.execute(Finding.__table__.update().values(resolved_at=now, resolution="fixed"))
        conn.execute(insert(Finding.__table__).values(**row))
        conn.execute(insert(Finding.__table__).values(**{**row, "check_id": "other"}))


def test_times_come_back_utc_aware(db):
    with db.write() as conn:
        _dept_system_host(conn)
        when = datetime(2026, 5, 1, 18, 30, tzinfo=timezone(timedelta(hours=8)))
        conn.execute(Department.__table__.update().values(created_at=when))
    with db.read() as conn:
        stored = conn.execute(select(Department.__table__.c.created_at)).scalar_one()
    assert stored == when and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive"):
        with db.write() as conn:
            conn.execute(Department.__table__.update().values(created_at=datetime(2026, 1, 1)))


def test_json_keeps_chinese_and_structure(db):
    with db.write() as conn:
        _dept_system_host(conn)
        conn.execute(System.__table__.update().values(zones=["互联网区", "核心区"], scan_scope=["10.0.0.0/8"]))
    with db.read() as conn:
        row = conn.execute(select(System.__table__.c.zones, System.__table__.c.scan_scope)).one()
    assert row.zones == ["互联网区", "核心区"] and row.scan_scope == ["10.0.0.0/8"]


@pytest.mark.parametrize("synchronous, level", [(None, 1), ("FULL", 2)])
def test_sqlite_pragmas(tmp_path, synchronous, level):
    kw = {"sqlite_synchronous": synchronous} if synchronous else {}
    db = Database(f"sqlite:///{tmp_path / 'p.db'}", **kw)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level  # 1 NORMAL, 2 FULL
    finally:
        db.dispose()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgres_asynchronous_commit_option(store_url):
    for flag, expected in ((True, "on"), (False, "off")):
        db = Database(store_url, pg_synchronous_commit=flag)
        try:
            with db.read() as conn:
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == expected
        finally:
            db.dispose()


def test_urls():
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u@h/db").startswith("postgresql+psycopg://")
    with pytest.raises(StoreError, match="only sqlite"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(StoreError):
        normalise_url("not a url")
    with pytest.raises(StoreError, match="in-memory"):
        Database("sqlite://")


# ---- 0003: assessment attachments --------------------------------------------------------------------


def _first_use_attachments_table():
    """The table exactly as sentinel/evidence/attachments.py created it on first use before migration 0003:
    on a MetaData of its own (no naming convention), outside the migrations."""
    from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table

    from sentinel.store.models import ManualAssessment
    from sentinel.store.types import UTCDateTime

    return Table(
        "assessment_attachments", MetaData(),
        Column("id", Integer, primary_key=True),
        Column("assessment_id", Integer, ForeignKey(ManualAssessment.__table__.c.id, ondelete="CASCADE"),
               nullable=False),
        Column("name", String(200), nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("size", Integer, nullable=False),
        Column("content", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Index("ix_assessment_attachments_assessment", "assessment_id", "id"),
    )


def _assessment(conn) -> int:
    from sentinel.store.models import ManualAssessment

    d, s, _ = _dept_system_host(conn)
    return conn.execute(insert(ManualAssessment.__table__).values(
        system_id=s, department_id=d, clause="8.1.4.11", item="a", verdict="符合", note="", assessor="cli:t",
        at=datetime.now(timezone.utc))).inserted_primary_key[0]


def test_0003_keeps_a_table_made_on_first_use(empty_url):
    """A store at 0002 whose attachments table the old code made on first use upgrades cleanly, its files
    intact, to a schema that is exactly the models'."""
    from sentinel.evidence import attachments as att

    db = Database(empty_url)
    try:
        assert upgrade(db, "0002") == "0002"
        old = _first_use_attachments_table()
        with db.write() as conn:
            old.create(conn)
            assessment = _assessment(conn)
            conn.execute(insert(old).values(assessment_id=assessment, name="访谈记录.txt", sha256=sha256(b"notes"),
                                            size=5, content=b"notes", created_at=datetime.now(timezone.utc)))
        assert upgrade(db) == head_revision()
        with db.read() as conn:
            files = att.for_assessments(conn, [assessment], with_content=True)[assessment]
            assert [(i.name, i.size, c) for i, c in files] == [("访谈记录.txt", 5, b"notes")]
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
        # and new ones go in the same table
        with db.write() as conn:
            att.add(conn, assessment, "second.pdf", b"%PDF")
        with db.read() as conn:
            assert [i.name for i, _ in att.for_assessments(conn, [assessment])[assessment]] == ["访谈记录.txt",
                                                                                                "second.pdf"]
        # downgrading below 0003 removes the table, as for one 0003 created
        assert downgrade(db, "0002") == "0002"
        assert "assessment_attachments" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_0003_refuses_a_foreign_table_of_that_name(empty_url):
    from sqlalchemy import Column, Integer, MetaData, Table, Text

    db = Database(empty_url)
    try:
        upgrade(db, "0002")
        with db.write() as conn:
            Table("assessment_attachments", MetaData(), Column("id", Integer, primary_key=True),
                  Column("body", Text)).create(conn)
        with pytest.raises(RuntimeError, match="assessment_attachments exists with columns .*not made by sentinel"):
            upgrade(db)
        assert current_revision(db) == "0002"
    finally:
        db.dispose()


def test_attachments_go_with_their_assessment(db):
    from sentinel.evidence import attachments as att
    from sentinel.store.models import AssessmentAttachment, ManualAssessment

    with db.write() as conn:
        assessment = _assessment(conn)
        info = att.add(conn, assessment, "a.txt", b"abc")
    assert info.sha256 == sha256(b"abc") and info.size == 3
    with db.read() as conn:
        assert att.get(conn, assessment, info.id)[1] == b"abc"
        assert att.get(conn, assessment + 1, info.id) is None  # only through its own assessment
    with db.write() as conn:
        conn.execute(ManualAssessment.__table__.delete())
    with db.read() as conn:
        assert conn.execute(select(AssessmentAttachment.__table__.c.id)).all() == []


def test_altered_attachment_content_is_refused(db):
    from sentinel.evidence import attachments as att
    from sentinel.store.models import AssessmentAttachment

    with db.write() as conn:
        assessment = _assessment(conn)
        info = att.add(conn, assessment, "a.txt", b"abc")
        conn.execute(AssessmentAttachment.__table__.update().values(content=b"abd"))
    with db.read() as conn:
        with pytest.raises(att.AttachmentError, match="does not match its recorded SHA-256"):
            att.get(conn, assessment, info.id)
        with pytest.raises(att.AttachmentError, match="does not match"):
            att.for_assessments(conn, [assessment], with_content=True)
        assert att.for_assessments(conn, [assessment])[assessment][0][0].sha256 == info.sha256  # metadata only


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# ---- 0005: the address plan, and systems an earlier PATCH left with a JSON null ----------------------------


def test_0005_repairs_json_null_zones_and_scope(empty_url):
    """Before 0005 `PATCH /systems/{id}` stored {"zones": null}, after which every listing of the system
    failed; the migration turns such values into [] and leaves good rows as they are."""
    db = Database(empty_url)
    try:
        assert upgrade(db, "0004") == "0004"
        now = datetime.now(timezone.utc)
        table = System.__table__
        with db.engine.begin() as conn:
            d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)
                             ).inserted_primary_key[0]
            common = dict(department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="",
                          chain_head="0" * 64, created_at=now, updated_at=now)
            conn.execute(insert(table).values(name="broken", zones=None, scan_scope=None, **common))  # JSON null
            conn.execute(insert(table).values(name="good", zones=["dmz"], scan_scope=["10.0.0.0/24"], **common))
            assert conn.execute(select(table.c.zones).where(table.c.name == "broken")).scalar() is None
        assert upgrade(db) == head_revision()
        with db.engine.connect() as conn:
            rows = {r.name: (r.zones, r.scan_scope) for r in conn.execute(select(table.c.name, table.c.zones,
                                                                                 table.c.scan_scope))}
        assert rows == {"broken": ([], []), "good": (["dmz"], ["10.0.0.0/24"])}
        assert "address_blocks" in inspect(db.engine).get_table_names()
        assert downgrade(db, "0004") == "0004"
        assert "address_blocks" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


# ---- 0004: report ids unique per agent; re-enrollment allowance on enrollment tokens ------------------------


def test_0004_scopes_report_ids_per_agent(empty_url):
    """From 0004 two agents may store the same report id (never one agent twice); going back below 0004 is
    refused while such a pair exists, rather than dropping reports, and works once it is gone."""
    from sqlalchemy import delete

    from sentinel.store.models import Report

    db = Database(empty_url)
    try:
        assert upgrade(db, "0003") == "0003"
        now = datetime.now(timezone.utc)
        with db.engine.begin() as conn:
            d, s, h = _dept_system_host(conn)
            for aid, key in (("a", "k1"), ("b", "k2")):
                conn.execute(insert(Agent.__table__).values(id=aid, host_id=h, system_id=s, department_id=d,
                                                            public_key=key, state="enrolled", enrolled_at=now))

        def report(conn, agent: str, rid: str = "r1") -> None:
            conn.execute(insert(Report.__table__).values(
                report_id=rid, kind="inventory", agent_id=agent, host_id=h, department_id=d, digest="0" * 64,
                sent_at=now, received_at=now, outcome={}, signature="s", envelope=b"e"))

        with db.engine.begin() as conn:
            report(conn, "a")
        with pytest.raises(IntegrityError):  # 0003: ids are global
            with db.engine.begin() as conn:
                report(conn, "b")
        assert upgrade(db, "0004") == "0004"
        with db.engine.begin() as conn:
            report(conn, "b")  # the same id from another agent is another report
        with pytest.raises(IntegrityError):  # but one agent never has an id twice
            with db.engine.begin() as conn:
                report(conn, "a")
        columns = {c["name"] for c in inspect(db.engine).get_columns("enrollment_tokens")}
        assert "reenroll_hostname" in columns
        with pytest.raises(IntegrityError):
            downgrade(db, "0003")
        assert current_revision(db) == "0004"
        with db.engine.begin() as conn:
            conn.execute(delete(Report.__table__).where(Report.__table__.c.agent_id == "b"))
        assert downgrade(db, "0003") == "0003"
        assert "reenroll_hostname" not in {c["name"] for c in inspect(db.engine).get_columns("enrollment_tokens")}
        assert upgrade(db) == head_revision()
    finally:
        db.dispose()


def test_0007_advisory_mark_and_resolution(empty_url):
    """0007 (issue 14): results get an `advisory` column; a finding may be resolved as `advisory` (its check
    became advisory evidence), other values stay refused; the findings already stored are kept. Back down,
    an `advisory` episode stays closed (as `fixed`, the older schema's nearest) and the column goes."""
    db = Database(empty_url)
    try:
        assert upgrade(db, "0006") == "0006"
        now = datetime.now(timezone.utc)
        with db.write() as conn:
            d, s, h = _dept_system_host(conn)
            run = _agent_and_run(conn, d, s, h, now)
            fid = conn.execute(insert(Finding.__table__).values(
                host_id=h, system_id=s, department_id=d, check_id="l3-ac-inactive-lock", clause="8.1.4.2", item="c",
                title={}, remediation={}, severity="low", first_seen=now, last_seen=now, first_run_id=run,
                last_run_id=run, occurrences=1)).inserted_primary_key[0]
        with pytest.raises(IntegrityError):  # the old schema knows fixed and waived only
            with db.write() as conn:
                conn.execute(Finding.__table__.update().values(resolved_at=now, resolution="advisory"))
        assert upgrade(db) == head_revision()
        assert "advisory" in {c["name"] for c in inspect(db.engine).get_columns("check_results")}
        with pytest.raises(IntegrityError):
            with db.write() as conn:
                conn.execute(Finding.__table__.update().values(resolved_at=now, resolution="bogus"))
        with db.write() as conn:
            conn.execute(Finding.__table__.update().values(resolved_at=now, resolution="advisory",
                                                           resolved_run_id=run))
        with db.read() as conn:
            assert conn.execute(select(Finding.id, Finding.resolution)).all() == [(fid, "advisory")]
        assert downgrade(db, "0006") == "0006"
        assert "advisory" not in {c["name"] for c in inspect(db.engine).get_columns("check_results")}
        with db.read() as conn:
            assert conn.execute(select(Finding.id, Finding.resolution)).all() == [(fid, "fixed")]
    finally:
        db.dispose()


def test_0008_credential_probes_off_for_every_stored_system(empty_url):
    """0008 (issue 19 item 4): systems stored before get the credential-probe switch off (never on by default),
    with no one recorded; down again, the systems and what points at them stay (no table copy on SQLite)."""
    db = Database(empty_url)
    try:
        assert upgrade(db, "0007") == "0007"
        with db.write() as conn:
            d, s, h = _dept_system_host(conn)
            _agent_and_run(conn, d, s, h, datetime.now(timezone.utc))
        assert upgrade(db) == head_revision()
        with db.read() as conn:
            assert conn.execute(select(System.credential_probes, System.credential_probes_by,
                                       System.credential_probes_at)).all() == [(False, None, None)]
        assert downgrade(db, "0007") == "0007"
        assert "credential_probes" not in {c["name"] for c in inspect(db.engine).get_columns("systems")}
        with db.read() as conn:
            assert conn.execute(select(System.__table__.c.id)).scalars().all() == [s]
            assert conn.execute(select(Run.__table__.c.system_id)).scalars().all() == [s]
    finally:
        db.dispose()
