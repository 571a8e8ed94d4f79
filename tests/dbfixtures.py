"""Database fixtures for the store and collector tests (load with `pytest_plugins = ["tests.dbfixtures"]`).

`store_url` is parametrised over SQLite (a file per test) and the real PostgreSQL on 127.0.0.1:5432
(database `test`, a schema of its own per test session, dropped at the end). PostgreSQL being
unreachable is a test *failure*: CI starts it, and the store must be proven on both.
"""
from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("SENTINEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_url(schema: str) -> str:
    # every connection of the engine works inside `schema` (libpq options -> search_path)
    return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"


class PgSchemas:
    """Creates uniquely named schemas in the test database and drops them all at the end."""

    def __init__(self) -> None:
        try:
            self.engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); the store tests need it "
                        "(tests/setup-machine.sh starts it)", pytrace=False)
        self.made: list[str] = []

    def create(self, prefix: str = "sentinel_test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        self.made.append(name)
        return name

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.made:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def pg_schemas():
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()


@pytest.fixture(scope="session")
def _pg_template(pg_schemas):
    """One migrated schema for the session; each test empties it instead of migrating again."""
    from sentinel.store.db import upgrade

    url = pg_url(pg_schemas.create())
    upgrade(url)
    engine = create_engine(url)
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    from sentinel.store.db import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _empty_all(engine) -> None:
    from sentinel.store.models import metadata

    # DELETE beats TRUNCATE on tables this small (no lock escalation, no new relfilenodes)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """URL of an empty, migrated store on each backend."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "sentinel.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url, engine = request.getfixturevalue("_pg_template")
    _empty_all(engine)
    return url


@pytest.fixture
def db(store_url):
    from sentinel.store.db import Database

    database = Database(store_url)
    yield database
    database.dispose()
