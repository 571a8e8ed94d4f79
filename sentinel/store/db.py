"""Engine, connections and migrations for the store: SQLite (WAL) embedded, or PostgreSQL by URL.

Writers use `Database.write()`. On SQLite it opens the transaction with BEGIN IMMEDIATE, taking the
single write lock up front: a deferred transaction that reads first and writes later can fail with
SQLITE_BUSY when another writer committed in between, which the busy timeout cannot cure. Readers use
`Database.read()` (plain BEGIN), which WAL lets run alongside the writer.
"""
from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("sentinel.store")

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(Exception):
    """The database cannot be used as configured; the message says why and what to do."""


_json_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def normalise_url(url: str) -> str:
    """Accept the usual spellings; PostgreSQL always goes through psycopg (v3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"database URL {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise StoreError(f"database URL {parsed.render_as_string(hide_password=True)}: "
                         "only sqlite:/// and postgresql:// are supported")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", pg_synchronous_commit: bool = True,
                pool_size: int = 8) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, sqlite_synchronous)
    # No pool_pre_ping: it costs a round trip per request. After a server restart the first statement
    # on a stale connection fails, SQLAlchemy sees the disconnect and discards the whole pool.
    engine = create_engine(url, pool_size=pool_size, max_overflow=2 * pool_size, json_serializer=_json_dumps)
    if not pg_synchronous_commit:
        @event.listens_for(engine, "connect")
        def _async_commit(dbapi_conn: Any, _record: Any) -> None:
            # Commit returns before the WAL is flushed: a server crash may lose the last ~0.6 s of
            # commits (never corrupting anything), and a system's chain lock is no longer held
            # across an fsync, which is what bounds one system's report rate.
            with dbapi_conn.cursor() as cur:
                cur.execute("SET synchronous_commit = off")
            dbapi_conn.commit()

    return engine


def private_dir(path: Path) -> None:
    """Make the directory `path` (0700) and any missing parents (0700 too, whatever the umask); an existing
    one of ours that others may read is tightened to 0700 (it is a sentinel state directory)."""
    missing = []
    parent = path
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    _tighten(path, 0o700)


def private_file(path: Path) -> None:
    """Make `path` (and its directory) readable by its owner only: the directory 0700, the file 0600,
    whatever the umask (issue 20: a collector run by hand made its database world-readable, and it holds
    every department's results, hashed tokens and agent keys). SQLite gives the -wal and -shm files the
    database file's permissions, so making the file first covers them. An existing file readable by
    others is tightened to 0600 (it is this program's own database)."""
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        _tighten(path, 0o600)
    else:
        os.close(fd)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, mode)
        log.warning("%s was open to other users (mode %o): now %o", path, stat.S_IMODE(st.st_mode), mode)


def _sqlite_engine(url: str, path: Optional[str], synchronous: str) -> Engine:
    if not path or path == ":memory:":
        raise StoreError("SQLite needs a database file (sqlite:////path/to/sentinel.db); "
                         "an in-memory database cannot be shared by the collector's threads")
    synchronous = synchronous.upper()
    if synchronous not in ("FULL", "NORMAL"):
        raise StoreError(f"sqlite synchronous {synchronous!r}: expected FULL or NORMAL")
    try:
        private_file(Path(path))
    except OSError as exc:
        raise StoreError(f"SQLite database {path}: cannot create it: {exc.strerror or exc}") from None
    engine = create_engine(url, json_serializer=_json_dumps, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so the "begin" hook below decides.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class _WriterLockFile:
    """An exclusive flock on `<database>-writer.lock`, held around each write transaction (under the
    process's own thread lock). Where the file cannot be made (a read-only directory) writers fall back
    to SQLite's own locking, which is just as correct, only slower under contention."""

    def __init__(self, db_path: str) -> None:
        self._path = f"{db_path}-writer.lock"
        self._fd: Optional[int] = None
        self._unusable = False

    def __enter__(self) -> None:
        if self._fd is None and not self._unusable:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._unusable = True
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Database:
    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", pg_synchronous_commit: bool = True,
                 pool_size: int = 8) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, sqlite_synchronous=sqlite_synchronous,
                                  pg_synchronous_commit=pg_synchronous_commit, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        # SQLite admits one writer; threads of this process queue here, and processes sharing the file
        # (the collector's --workers) on a lock file beside it, rather than in SQLite's busy handler,
        # which polls with sleeps of up to 100 ms and wastes most of the time under load.
        self._write_lock: Optional[threading.Lock] = None
        self._lock_file: Optional[_WriterLockFile] = None
        if self.dialect == "sqlite":
            self._write_lock = threading.Lock()
            self._lock_file = _WriterLockFile(make_url(self.url).database or "")  # make_engine refused no file

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        if self._write_lock is None or self._lock_file is None:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
            return
        with self._write_lock, self._lock_file, self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """An ORM session inside one read or write transaction (committed at the end of a write)."""
        with (self.write() if write else self.read()) as conn:
            with Session(bind=conn, expire_on_commit=False) as s:
                yield s
                if write:
                    s.flush()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()

    def describe(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


# ---- migrations ----------------------------------------------------------------------------------


def alembic_config(connection: Optional[Connection] = None, url: Optional[str] = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # ConfigParser interpolation: a literal % in a URL (escaped password) must be doubled
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads ({', '.join(heads)}); expected exactly one")
    return heads[0]


def current_revision(db: Database) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(target: Union[Database, str], revision: str = "head") -> str:
    """Bring the schema to `revision`; returns the revision now current."""
    from alembic import command

    db = target if isinstance(target, Database) else Database(target)
    try:
        with db.engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), revision)
        return current_revision(db) or ""
    finally:
        if db is not target:
            db.dispose()


def downgrade(db: Database, revision: str) -> Optional[str]:
    """Step the schema back to `revision` ("base": drop everything); returns the revision now current."""
    from alembic import command

    with db.engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), revision)
    return current_revision(db)


def ensure_current(db: Database) -> None:
    """Refuse to serve on a schema that is not at the head revision."""
    current, head = current_revision(db), head_revision()
    if current != head:
        state = "empty (no schema)" if current is None else f"at revision {current}"
        raise StoreError(f"database {db.describe()} is {state}, this sentinel needs {head}: "
                         "run `sentinel db upgrade` first")
