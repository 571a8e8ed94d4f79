"""`sentinel up`: a collector and an agent for this host in one process, with SQLite in one state dir.

The state directory is the one every command shares (sentinel/state.py, docs/state.md), so
`sentinel department list`, `system add`, `export`, ... work on what `up` stored without flags:
  sentinel.db, collector.key, tls/   the collector's database (SQLite, WAL), signing key, TLS files
  agent/                             the local agent's identity, key and spool
  admin-token                        an admin API token for the local REST API (0600; made on the first
                                     run, never printed)

On the first run the department `local`, the system `this-host` (level 3, S3A3) and an enrollment token
are made in the database directly, and the agent enrolls through the HTTP API like any other agent.
This module imports the collector (FastAPI, SQLModel): the agent daemon itself never imports it.
"""
from __future__ import annotations

import getpass
import logging
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .atomicfile import write_atomic
from .plugins import Exporters

if TYPE_CHECKING:
    import uvicorn  # imported at run time only in start(): `up` loads the web stack when it serves

log = logging.getLogger("sentinel.up")

DEPARTMENT = "local"
SYSTEM = "this-host"
ADMIN_TOKEN_NAME = "sentinel-up-admin"  # noqa: S105  the name of the token row, not a secret


class UpError(Exception):
    """`sentinel up` cannot start; the message says why."""


def refuse_old_layout(state_dir: Path) -> None:
    """Before the shared layout, `up` kept its database in <state>/collector/: say so instead of starting
    over next to it (a second, empty database that the other commands would not see either)."""
    old = state_dir / "collector" / "sentinel.db"
    if old.exists() and not (state_dir / "sentinel.db").exists():
        raise UpError(f"{old}: this state directory has the layout of an older `sentinel up`; move the files of "
                      f"{state_dir / 'collector'} up into {state_dir} (database, collector.key) and run again")


class LocalCollector:
    """The collector app served by uvicorn on a loopback address, in a background thread."""

    def __init__(self, state_dir: Path, exporters: Exporters, host: str = "127.0.0.1", port: int = 0,
                 alerting_config: Optional[Path] = None, config_file: Optional[Path] = None) -> None:
        self.exporters = exporters  # what the composition root plugs in (sentinel/wiring.py)
        from .collector.settings import CollectorConfigError, load_collector_settings
        from .store.db import Database, StoreError

        # the collector config file (SENTINEL_CONFIG, /etc/sentinel/collector.yaml) applies as it does for
        # `sentinel collector`, below the address and state directory `up` gives; alerting_config None:
        # SENTINEL_COLLECTOR_ALERTING_CONFIG or the file's, if set, still applies
        try:
            self.settings = load_collector_settings(config_file, state_dir=state_dir, host=host, port=port or 1,
                                                    alerting_config=alerting_config)
        except CollectorConfigError as exc:
            raise UpError(str(exc)) from None
        if not self.settings.is_loopback:
            raise UpError(f"--host {host}: `sentinel up` serves plain HTTP, so only on a loopback address")
        self.host, self.port = host, port
        try:
            self.db = Database(self.settings.db_url, sqlite_synchronous=self.settings.sqlite_synchronous)
        except StoreError as exc:
            raise UpError(str(exc)) from None
        self._server: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._sock: Optional[socket.socket] = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def prepare(self) -> None:
        """Migrate the database to the current schema (a fresh state dir starts empty)."""
        from .store.db import StoreError, upgrade

        try:
            upgrade(self.db)
        except StoreError as exc:
            raise UpError(str(exc)) from None

    def agent_usable(self, agent_id: Optional[str]) -> bool:
        """The saved local agent is enrolled here and not revoked (else it enrolls again)."""
        from .store.models import Agent

        if not agent_id:
            return False
        with self.db.session() as session:
            row = session.get(Agent, agent_id)
            return row is not None and row.state == "enrolled"

    def bootstrap(self, want_token: bool, want_admin: bool = False) -> tuple[Optional[str], Optional[str]]:
        """Department and system (first run); an enrollment token when asked; an admin API token on the
        first run or when asked (the earlier `sentinel-up-admin` tokens are then revoked: their secret is
        gone with the file that held it).

        Returns (enrollment token or None, admin API token or None).
        """
        from sqlmodel import select

        from .collector import operations
        from .collector.auth import ADMIN, cli_principal
        from .collector.schemas import ApiTokenIn, EnrollmentTokenIn, SystemIn
        from .store.models import ApiToken, Department, System

        with self.db.session(write=True) as session:
            ctx = operations.Ctx(session, cli_principal(getpass.getuser()))
            dept = session.exec(select(Department).where(Department.name == DEPARTMENT)).first()
            if dept is None:
                dept = operations.create_department(ctx, DEPARTMENT, "sentinel up (this machine)")
            system = session.exec(select(System).where(System.name == SYSTEM)).first()
            if system is None:
                system = operations.create_system(ctx, SystemIn(name=SYSTEM, department_id=dept.id, level=3, s_grade=3,
                                                           a_grade=3, title="this host (sentinel up)"))
            admin_secret = None
            earlier = session.exec(select(ApiToken).where(ApiToken.name == ADMIN_TOKEN_NAME)).all()
            if want_admin or not earlier:
                for old in earlier:
                    operations.revoke_api_token(ctx, old.id)
                _, _, admin_secret = operations.create_api_token(ctx, ApiTokenIn(name=ADMIN_TOKEN_NAME, role=ADMIN))
            enroll_secret = None
            if want_token:
                # The saved agent is gone or revoked: the new one takes over this machine's host and its
                # history. The collector refuses a known hostname without an admin's allowance; whoever
                # runs `sentinel up` is this local collector's admin, so the token carries it.
                _, enroll_secret = operations.create_enrollment_token(
                    ctx, EnrollmentTokenIn(system_id=system.id, ttl_seconds=600, note="sentinel up local agent",
                                           reenroll_hostname=_known_local_host(session, system.id)))
        return enroll_secret, admin_secret

    def start(self) -> None:
        import uvicorn

        from .collector.app import create_app
        from .events.dispatch import DispatchConfigError

        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise UpError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc} "
                          "(another `sentinel up`? choose another --port)") from None
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.settings.port = self.port
        try:
            # also /metrics and, if configured, the event publisher
            app = create_app(self.settings, exporters=self.exporters, db=self.db)
        except DispatchConfigError as exc:
            sock.close()
            raise UpError(str(exc)) from None
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                                timeout_graceful_shutdown=5)
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                                 name="sentinel-collector", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise UpError(f"the collector did not start on {self.url}")
            time.sleep(0.02)
        self._sock = sock

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def close(self) -> None:
        self.stop()
        self.db.dispose()


SITE_BASELINES = "baselines"  # <state>/baselines/: the collector's site baselines (sentinel/collector/baselines.py)


def install_site_baseline(state_dir: Path, ref: str) -> Optional[Path]:
    """`up --baseline FILE`: give the local collector the same file, since it judges every report by its own
    copy of the baseline the report names (a shipped id needs nothing). Returns the copy, if one was made."""
    from .baseline import load_baseline, shipped

    source = Path(ref)
    if ref in shipped() or not source.is_file():
        return None
    baseline = load_baseline(ref)
    dest = state_dir / SITE_BASELINES / f"{baseline.id}.yaml"
    data = source.read_bytes()
    if dest.is_file() and dest.read_bytes() == data:
        return dest
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # whole or not at all: the collector may be reading the directory (0644: a baseline is no secret)
    write_atomic(dest, data, mode=0o644)
    return dest


def _known_local_host(session, system_id: int) -> Optional[str]:
    """This machine's hostname (as the agent enrolls it) if the local system already has that host."""
    from sqlmodel import select

    from .hostview import open_host
    from .osinfo import host_info
    from .store.models import Host

    hostname = host_info(open_host(None)).hostname
    known = session.exec(select(Host.id).where(Host.system_id == system_id, Host.hostname == hostname)).first()
    return hostname if known is not None else None


def write_secret(path: Path, secret: str) -> None:
    from .agent.enroll import write_private

    write_private(path, (secret + "\n").encode("ascii"))
