"""Issue 20 item 7 (hardening): the collector's files are its owner's only, and a credential in a URL is
refused and never reaches the access log."""
from __future__ import annotations

import logging
import os
import stat
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from sentinel.collector.app import create_app
from sentinel.collector.settings import CollectorSettings
from sentinel.collector.urlguard import redact, secret_parameter
from sentinel.store.db import Database, upgrade
from sentinel.wiring import exporters
from tests.collector_helpers import World, audit_rows, bearer
from tests.test_collector_gate import _http, serving

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_a_collector_run_by_hand_keeps_its_files_to_itself(tmp_path):
    state = tmp_path / "new" / "state"
    settings = CollectorSettings(state_dir=state)
    with umask(0o022):  # a usual login shell's
        db = Database(settings.db_url)
        try:
            upgrade(db)
            with TestClient(create_app(settings, exporters=exporters(), db=db)) as client:
                assert client.get("/api/v1/health").status_code == 200
        finally:
            db.dispose()
    assert _mode(state) == 0o700 and _mode(state.parent) == 0o700
    files = {p.name: _mode(p) for p in state.iterdir() if p.is_file()}
    assert {"sentinel.db", "collector.key", "metrics-token"} <= set(files), files
    loose = {name: oct(mode) for name, mode in files.items() if mode & 0o077}
    assert not loose, f"readable by others: {loose}"  # includes sentinel.db-wal and -shm when present


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    path = state / "sentinel.db"
    path.touch()
    os.chmod(path, 0o644)
    db = Database(f"sqlite:///{path}")
    try:
        upgrade(db)
        create_app(CollectorSettings(state_dir=state), exporters=exporters(), db=db)
    finally:
        db.dispose()
    assert _mode(path) == 0o600 and _mode(state) == 0o700


@pytest.mark.parametrize("query, name", [("token=abc", "token"), ("Access_Token=abc", "Access_Token"),
                                         ("q=sntapi_0123456789", "q"), ("sntenr_abc=1", "REDACTED")])
def test_credential_parameters_are_recognised(query, name):
    assert secret_parameter(query) == name
    assert "abc" not in redact(f"/x?{query}") and "sntapi_0" not in redact(f"/x?{query}")
    assert redact("/api/v1/runs?status=fail&limit=5") == "/api/v1/runs?status=fail&limit=5"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_token_in_a_url_is_refused_and_kept_out_of_the_access_log(db, tmp_path):
    w = World(db)
    w.department("health")
    secret = w.token("root", "admin")
    app = create_app(CollectorSettings(state_dir=tmp_path / "state"), exporters=exporters(), db=db)
    access = logging.getLogger("uvicorn.access")
    lines = _Lines()
    try:
        with serving(app, log_level="info") as port:
            access.addHandler(lines)  # after uvicorn configured its loggers (which replaces their handlers)
            def get(target: str, headers: str = "") -> tuple[int, bytes]:
                status, _, body = _http(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                                              "Connection: close\r\n\r\n")
                return status, body

            status, body = get(f"/api/v1/systems?token={secret}")
            assert status == 400 and b"'token'" in body and b"Authorization header" in body
            assert get(f"/api/v1/systems?limit=5&q={secret}")[0] == 400
            assert get(f"/metrics?access_token={secret}")[0] == 400
            # the same request with the token where it belongs works, and its harmless query is logged as is
            assert get("/api/v1/systems?limit=5", f"Authorization: Bearer {secret}\r\n")[0] == 200
    finally:
        access.removeHandler(lines)
    logged = "\n".join(lines.lines)
    assert "/api/v1/systems?limit=5" in logged, logged  # the access log is on and was captured
    assert "token=REDACTED" in logged and secret not in logged
    assert all(secret not in e.detail and secret not in e.target for e in audit_rows(db))
    assert bearer(secret)  # (the helper builds the header the refusal points to)
