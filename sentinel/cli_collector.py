"""`sentinel collector`, `sentinel db` and the local admin bootstrap commands.

The admin commands (department, system, token, enroll-token) work on the database directly, as the
local operator (audited as `cli:<user>`), so a fresh collector can be set up before any API token
exists. Settings: the flags below > SENTINEL_COLLECTOR_* variables > the config file (SENTINEL_CONFIG, else
/etc/sentinel/collector.yaml; `sentinel collector --config FILE`) > defaults (sentinel/collector/settings.py).
"""
from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn, Optional

import typer

collector_app = typer.Typer(help="The collector daemon: REST API, agent enrollment and report ingestion.",
                            invoke_without_command=True)
db_app = typer.Typer(help="The collector's database.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the REST API.", no_args_is_help=True)
enroll_token_app = typer.Typer(help="One-time agent enrollment tokens.", no_args_is_help=True)
department_app = typer.Typer(help="Departments (tenants).", no_args_is_help=True)
system_app = typer.Typer(help="Graded systems (定级对象).", no_args_is_help=True)

StateDir = typer.Option(None, "--state-dir", help="State directory (database, keys, TLS files); default "
                        "state_dir of the config file (SENTINEL_CONFIG, /etc/sentinel/collector.yaml), else "
                        "SENTINEL_STATE_DIR, else /var/lib/sentinel (root) or ~/.local/state/sentinel, "
                        "the one `sentinel up` uses.")
DatabaseUrl = typer.Option(None, "--database-url", help="sqlite:////path.db or postgresql://user@host/db.")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _settings(config: Optional[Path] = None, **overrides):
    from .collector.settings import CollectorConfigError, load_collector_settings

    try:
        return load_collector_settings(config, **overrides)
    except CollectorConfigError as exc:
        _fail(str(exc))


def _database(settings, check: bool = True):
    """The collector's database; with check, refuse a missing or unmigrated one and say where it looked."""
    from .store.db import Database, StoreError, ensure_current

    if check:
        _refuse_missing_sqlite(settings)
    try:
        db = Database(settings.db_url, sqlite_synchronous=settings.sqlite_synchronous,
                      pg_synchronous_commit=settings.pg_synchronous_commit)
        if check:
            ensure_current(db)
    except StoreError as exc:
        _fail(f"{exc} (state directory {settings.state_dir}, from {_state_source(settings)})")
    except Exception as exc:  # driver errors: server down, authentication, ...
        _fail(f"database {settings.db_url.split('@')[-1]}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return db


def _state_source(settings) -> str:
    from .collector.settings import setting_origin
    from .state import default_state_dir, state_dir_source

    if settings.database_url:
        return setting_origin(settings, "database_url") or "--database-url or SENTINEL_COLLECTOR_DATABASE_URL"
    in_file = setting_origin(settings, "state_dir")
    if in_file:
        return f"state_dir in {in_file}"
    # a flag and an environment variable give the same path; the flag is the likelier when they differ
    flag = "state_dir" in settings.model_fields_set and settings.state_dir != default_state_dir()
    return state_dir_source(flag_given=flag and not _env("SENTINEL_COLLECTOR_STATE_DIR"),
                            part_env="SENTINEL_COLLECTOR_STATE_DIR")


def _env(name: str) -> bool:
    import os

    return bool(os.environ.get(name, "").strip())


def _refuse_missing_sqlite(settings) -> None:
    """A missing SQLite file would be created empty (and then refused as unmigrated): say where we looked
    and which command makes the database, instead of leaving an empty file behind."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    if not path.exists():
        _fail(f"no sentinel database at {path} (state directory {settings.state_dir}, from "
              f"{_state_source(settings)}): `sentinel up` makes one there, or `sentinel db upgrade` for a "
              "collector of its own")


@contextmanager
def _admin(state_dir: Optional[Path], database_url: Optional[str]) -> Iterator:
    """A write session as the local operator; ApiErrors become exit code 2 with their reason."""
    from .collector.auth import cli_principal
    from .collector.errors import ApiError
    from .collector.operations import Ctx

    db = _database(_settings(state_dir=state_dir, database_url=database_url))
    try:
        with db.session(write=True) as session:
            yield Ctx(session, cli_principal(getpass.getuser()))
    except ApiError as exc:
        _fail(exc.detail)
    finally:
        db.dispose()


# ---- sentinel collector --------------------------------------------------------------------------


@collector_app.callback()
def collector(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Collector config file (YAML); default "
                                          "SENTINEL_CONFIG, else /etc/sentinel/collector.yaml when it exists."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default 8443)."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="Server certificate (PEM)."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="Server key (PEM)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default 1)."),
) -> None:
    """Serve the collector (without a subcommand). TLS uses <state-dir>/tls/ from `sentinel collector init`
    unless --tls-cert/--tls-key are given; plain HTTP is allowed only on a loopback address."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(config, state_dir=state_dir, database_url=database_url, host=host, port=port,
                         tls_cert=tls_cert, tls_key=tls_key, workers=workers)
    serve(settings)


def serve(settings) -> None:
    import logging
    import os

    import uvicorn

    try:
        tls = settings.tls_files()
    except ValueError as exc:
        _fail(f"collector settings: {exc}")
    if tls is None and not settings.is_loopback:
        _fail(f"no TLS certificate for {settings.host}: run `sentinel collector init` (or give --tls-cert and "
              "--tls-key); plain HTTP is allowed only on a loopback address")
    for path in tls or ():
        if not Path(path).is_file():
            _fail(f"TLS file {path}: not found")
    db = _database(settings)  # refuse early on an unmigrated schema
    db.dispose()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheme = "https" if tls else "http"
    typer.echo(f"sentinel collector on {scheme}://{settings.host}:{settings.port} "
               f"(database {settings.db_url.split('@')[-1]})", err=True)
    if tls is None:
        typer.echo("warning: serving plain HTTP (loopback only)", err=True)
    from .collector.metrics import metrics_token_path

    token_path = metrics_token_path(settings)
    typer.echo(f"/metrics asks for Authorization: Bearer <token>; the token is in {token_path} (made at the "
               "first start; give Prometheus a copy)" if token_path else
               "/metrics: the token is SENTINEL_COLLECTOR_METRICS_TOKEN" if settings.metrics_token else
               "warning: /metrics is served without a token (metrics_open)", err=True)
    common = dict(host=settings.host, port=settings.port, log_level=settings.log_level, proxy_headers=False,
                  server_header=False, ssl_certfile=str(tls[0]) if tls else None,
                  ssl_keyfile=str(tls[1]) if tls else None)
    if settings.workers > 1:
        # Each worker process builds its app from the environment, so hand the settings over there.
        for name, value in settings.model_dump(exclude_none=True).items():
            os.environ[f"SENTINEL_COLLECTOR_{name.upper()}"] = str(value)
        uvicorn.run("sentinel.wiring:collector_app_from_env", factory=True, workers=settings.workers, **common)
    else:
        from .collector.app import create_app, tune_gc
        from .wiring import exporters

        app = create_app(settings, exporters=exporters())
        tune_gc()
        uvicorn.run(app, **common)


@collector_app.command("init")
def collector_init(
    state_dir: Optional[Path] = StateDir,
    name: Optional[list[str]] = typer.Option(None, "--name", help="DNS name or IP address the agents use to "
                                             "reach the collector (repeat; default: this host's names and loopback)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing CA and certificate."),
) -> None:
    """Make a CA and a server certificate for a closed network, and the collector's signing key."""
    from .collector.app import load_or_create_signing_key
    from .collector.tls import TlsError, init_pki

    settings = _settings(state_dir=state_dir)
    try:
        pki = init_pki(settings.tls_dir, names=name or None, force=force)
    except TlsError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{settings.tls_dir}: {exc.strerror or exc}")
    load_or_create_signing_key(settings)
    typer.echo(f"CA certificate:     {pki.ca_cert}   (give this file to the agents: they pin it)")
    typer.echo(f"CA fingerprint:     SHA256 {pki.ca_fingerprint}")
    typer.echo(f"server certificate: {pki.server_cert} for {', '.join(pki.names)}")
    typer.echo(f"signing key:        {settings.signing_key_file}")


@collector_app.command("revoke-agent")
def collector_revoke_agent(
    agent_id: str = typer.Argument(..., help="Agent id."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit log)."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Revoke an agent: its reports are refused from now on."""
    from .collector import operations

    with _admin(state_dir, database_url) as ctx:
        agent = operations.revoke_agent(ctx, agent_id, reason)
    typer.echo(f"agent {agent.id}: {agent.state}")


# ---- sentinel db ---------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl,
               revision: str = typer.Option("head", "--revision", help="Target revision.")) -> None:
    """Create or migrate the schema (safe to run again)."""
    from .store.db import upgrade

    settings = _settings(state_dir=state_dir, database_url=database_url)
    db = _database(settings, check=False)
    try:
        current = upgrade(db, revision)
    except Exception as exc:
        _fail(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    finally:
        db.dispose()
    typer.echo(f"database {db.describe()} at revision {current}")


@db_app.command("current")
def db_current(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    """Print the schema revision (exit 1 when it is not the head)."""
    from .store.db import current_revision, head_revision

    db = _database(_settings(state_dir=state_dir, database_url=database_url), check=False)
    try:
        current, head = current_revision(db), head_revision()
    finally:
        db.dispose()
    typer.echo(f"current {current or '(empty)'}, head {head}")
    raise typer.Exit(0 if current == head else 1)


# ---- admin bootstrap -----------------------------------------------------------------------------


@department_app.command("add")
def department_add(name: str = typer.Argument(..., help="Short unique code."),
                   title: str = typer.Option("", "--title", help="Display name, e.g. 市卫健委."),
                   state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    """Add a department."""
    from .collector import operations
    from .collector.schemas import DepartmentIn

    spec = _validated(DepartmentIn, name=name, title=title)
    with _admin(state_dir, database_url) as ctx:
        dept = operations.create_department(ctx, spec.name, spec.title)
    typer.echo(f"department {dept.name} (id {dept.id})")


@department_app.command("list")
def department_list(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    from sqlmodel import col, select

    from .store.models import Department

    with _admin(state_dir, database_url) as ctx:
        for d in ctx.session.exec(select(Department).order_by(col(Department.id))).all():
            typer.echo(f"{d.id}\t{d.name}\t{d.title}")


@system_app.command("add")
def system_add(
    name: str = typer.Argument(..., help="Unique system name."),
    department: str = typer.Option(..., "--department", help="Department code."),
    level: int = typer.Option(..., "--level", help="定级 protection level, 2-4."),
    s_grade: int = typer.Option(..., "--s-grade", help="Business-information security grade S (1-4)."),
    a_grade: int = typer.Option(..., "--a-grade", help="System-service security grade A (1-4)."),
    title: str = typer.Option("", "--title"),
    owner: str = typer.Option("", "--owner", help="Responsible person or unit."),
    zone: Optional[list[str]] = typer.Option(None, "--zone", help="Network zone (repeat)."),
    scope: Optional[list[str]] = typer.Option(None, "--scope", help="CIDR a network scan may touch (repeat)."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Add a graded system; its label (e.g. S3A2) follows from the grades, whose higher one is the level."""
    from .collector import operations
    from .collector.schemas import SystemIn

    with _admin(state_dir, database_url) as ctx:
        dept = operations.department_by_name(ctx.session, department)
        spec = _validated(SystemIn, _SYSTEM_OPTIONS, name=name, department_id=dept.id, title=title, level=level,
                          s_grade=s_grade, a_grade=a_grade, owner=owner, zones=zone or [], scan_scope=scope or [])
        system = operations.create_system(ctx, spec)
    typer.echo(f"system {system.name} (id {system.id}): level {system.level} {system.label}, department {department}")


@system_app.command("update")
def system_update(
    name: str = typer.Argument(..., help="System name."),
    credential_probes: Optional[bool] = typer.Option(
        None, "--credential-probes/--no-credential-probes",
        help="Run (or stop running) the opt-in credential probes in this system's scans: anonymous FTP, "
             "MySQL/MariaDB root with an empty password, SNMP community private, default pairs of HTTP "
             "Basic-auth consoles (docs/network.md). Audited as system.update with before and after."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Change a system's settings, as the API's PATCH /api/v1/systems/{id} does (same checks, same audit)."""
    from .collector import operations
    from .collector.schemas import SystemPatch

    changes = {k: v for k, v in {"credential_probes": credential_probes}.items() if v is not None}
    if not changes:
        _fail("nothing to change: give --credential-probes or --no-credential-probes")
    patch = _validated(SystemPatch, {"credential_probes": "--credential-probes"}, **changes)
    with _admin(state_dir, database_url) as ctx:
        system = operations.system_by_name(ctx.session, name)
        before = system.credential_probes
        # the API's own operation: admin check, whole-row validation, who/when on the system, audit entry
        assert system.id is not None  # a stored row
        system = operations.update_system(ctx, system.id, patch)
        state = "ON" if system.credential_probes else "off"
        who = (f" (set by {system.credential_probes_by} at {system.credential_probes_at.isoformat()})"
               if system.credential_probes_by and system.credential_probes_at else "")
        what = "unchanged" if before == system.credential_probes else "changed"
    typer.echo(f"system {name} (id {system.id}): credential probes {state}{who}, {what}")


@system_app.command("list")
def system_list(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    from sqlmodel import col, select

    from .store.models import Department, System

    with _admin(state_dir, database_url) as ctx:
        rows = ctx.session.exec(select(System, Department.name).join(Department).order_by(col(System.id))).all()
        for s, dept in rows:
            typer.echo(f"{s.id}\t{s.name}\t{dept}\tlevel {s.level}\t{s.label}\t{','.join(s.scan_scope)}")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who or what uses the token."),
    role: str = typer.Option(..., "--role", help="admin | dept_operator | assessor | readonly"),
    department: Optional[list[str]] = typer.Option(None, "--department", help="Department code (repeat)."),
    all_departments: bool = typer.Option(False, "--all-departments", help="assessor/readonly: every department."),
    expires_days: Optional[int] = typer.Option(None, "--expires-days", min=1, help="Expire after N days."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Create an API token; the secret is printed once on stdout (details on stderr)."""
    from .collector import operations
    from .collector.schemas import ApiTokenIn

    with _admin(state_dir, database_url) as ctx:
        ids = [operations.department_by_name(ctx.session, d).id for d in department or []]
        expires = datetime.now(timezone.utc) + timedelta(days=expires_days) if expires_days else None
        spec = _validated(ApiTokenIn, name=name, role=role, department_ids=ids, all_departments=all_departments,
                          expires_at=expires)
        token, _, secret = operations.create_api_token(ctx, spec)
    scope = "all departments" if token.all_departments else "departments " + ", ".join(department or [])
    typer.echo(f"API token {token.id} ({token.name}): role {token.role}, {scope}", err=True)
    typer.echo(secret)


@token_app.command("list")
def token_list(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    from sqlmodel import col, select

    from .collector import operations
    from .store.models import ApiToken

    with _admin(state_dir, database_url) as ctx:
        for t in ctx.session.exec(select(ApiToken).order_by(col(ApiToken.id))).all():
            out = operations.api_token_out(ctx.session, t)
            state = "revoked" if t.revoked_at else "active"
            scope = "all" if t.all_departments else ",".join(map(str, out.department_ids))
            typer.echo(f"{t.id}\t{t.name}\t{t.role}\t{scope}\t{state}")


@token_app.command("revoke")
def token_revoke(token_id: int = typer.Argument(...), state_dir: Optional[Path] = StateDir,
                 database_url: Optional[str] = DatabaseUrl) -> None:
    from .collector import operations

    with _admin(state_dir, database_url) as ctx:
        token = operations.revoke_api_token(ctx, token_id)
    typer.echo(f"API token {token.id} revoked")


@enroll_token_app.command("create")
def enroll_token_create(
    system: str = typer.Option(..., "--system", help="System name the agent will belong to."),
    ttl: int = typer.Option(86400, "--ttl", help="Seconds until the token expires."),
    note: str = typer.Option("", "--note"),
    reenroll: Optional[str] = typer.Option(
        None, "--reenroll", metavar="HOSTNAME",
        help="Allow this token to re-enroll a known host of the system: its agents are revoked and the new "
             "agent takes over its history. Without it, enrolling a known hostname is refused (409)."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Create a one-time enrollment token; the secret is printed once on stdout (details on stderr)."""
    from .collector import operations
    from .collector.schemas import EnrollmentTokenIn

    with _admin(state_dir, database_url) as ctx:
        sys_row = operations.system_by_name(ctx.session, system)
        spec = _validated(EnrollmentTokenIn, system_id=sys_row.id, ttl_seconds=ttl, note=note,
                          reenroll_hostname=reenroll)
        token, secret = operations.create_enrollment_token(ctx, spec)
    what = f", may re-enroll host {reenroll}" if reenroll else ""
    typer.echo(f"enrollment token {token.id} for system {system}{what}, expires {token.expires_at.isoformat()}",
               err=True)
    typer.echo(secret)


def _validated(model, _options: Optional[dict] = None, **values):
    """`values` validated by `model`; errors name the command-line option (`_options`: field -> option)."""
    from pydantic import ValidationError

    from .cli_errors import validation_lines

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        _fail("\n".join(validation_lines(exc, _options)))


# system add: the SystemIn fields a person typed, by the option that set them
_SYSTEM_OPTIONS = {"scan_scope": "--scope", "zones": "--zone", "level": "--level", "s_grade": "--s-grade",
                   "a_grade": "--a-grade", "title": "--title", "owner": "--owner", "name": "NAME"}


def register(app: typer.Typer) -> None:
    app.add_typer(collector_app, name="collector")
    app.add_typer(db_app, name="db")
    app.add_typer(token_app, name="token")
    app.add_typer(enroll_token_app, name="enroll-token")
    app.add_typer(department_app, name="department")
    app.add_typer(system_app, name="system")

