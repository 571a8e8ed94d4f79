"""Migration 0009 (issue 15) on SQLite and PostgreSQL: runs and findings stored before objects are the host's OS;
afterwards two objects of a host each hold an open finding for the same check; back down, the older schema's
one open finding per host and check is restored by closing the later episode."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from sentinel.store.db import Database, downgrade, head_revision, upgrade
from sentinel.store.models import Finding, Run
from tests.test_store_migrations import _agent_and_run, _dept_system_host

pytest_plugins = ["tests.dbfixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    from tests.dbfixtures import pg_url

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_url(request.getfixturevalue("pg_schemas").create("sentinel_objects"))


def test_0009_objects_on_runs_and_findings(empty_url):
    db = Database(empty_url)
    try:
        assert upgrade(db, "0008") == "0008"
        now = datetime.now(timezone.utc)
        with db.write() as conn:
            d, s, h = _dept_system_host(conn)
            run = _agent_and_run(conn, d, s, h, now)
            row = dict(host_id=h, system_id=s, department_id=d, check_id="c", clause="8.1.4.1", item="a", title={},
                       remediation={}, severity="high", first_seen=now, last_seen=now, first_run_id=run,
                       last_run_id=run, occurrences=1)
            first = conn.execute(insert(Finding.__table__).values(**row)).inserted_primary_key[0]
        assert upgrade(db) == head_revision()
        with db.read() as conn:
            assert conn.execute(select(Run.object_kind, Run.object_instance, Run.object_name)).all() == [
                ("os", "", "")]
            assert conn.execute(select(Finding.object_kind, Finding.object_instance)).all() == [("os", "")]
        with db.write() as conn:  # another object of the host fails the same check: its own episode
            second = conn.execute(insert(Finding.__table__).values(
                **row, object_kind="redis", object_instance="6380")).inserted_primary_key[0]
        with pytest.raises(IntegrityError):  # still one open episode per object and check
            with db.write() as conn:
                conn.execute(insert(Finding.__table__).values(**row, object_kind="redis", object_instance="6380"))
        assert downgrade(db, "0008") == "0008"
        assert "object_kind" not in {c["name"] for c in inspect(db.engine).get_columns("runs")}
        with db.read() as conn:
            got = conn.execute(select(Finding.__table__.c.id, Finding.__table__.c.resolution)
                               .order_by(Finding.__table__.c.id)).all()
        assert [tuple(r) for r in got] == [(first, None), (second, "fixed")]
    finally:
        db.dispose()
