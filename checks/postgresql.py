"""PostgreSQL (测评对象 kind `postgresql`): the cluster's configuration files read as the server reads them, and the
facts only the running server holds (roles) through a read-only connection. docs/objects/postgresql.md.

Which cluster: the configuration file of the object the engine was given (ctx.target.config, from
sentinel/discovery.py), else the postgresql.conf named by SENTINEL_POSTGRESQL_CONFIG (a host path, also under
--root), else the only one found in the Debian layout (/etc/postgresql/VERSION/CLUSTER/postgresql.conf) or the
RHEL/PGDG one (/var/lib/pgsql/data, /var/lib/pgsql/VERSION/data); several found without either is an error naming
them. The major version comes from PG_VERSION in the data directory (initdb writes it), else from the Debian path;
it picks the compiled-in defaults (checks/_pg_gucs.py) of parameters the files leave unset.

Files are parsed once per run (ctx.cached); the server is asked once per run, on one connection that is closed
before the probe returns (every query of this module in one go), as the account of sentinel/objectcreds.py (kind
"postgresql", the target's instance, else the default account), in a read-only transaction, with SELECT only.
psycopg (the `postgres` extra) is imported when a server probe runs: without it those checks are errors saying so,
never passes.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import Field, field_validator

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._pg_conf import ConfFiles, read_conf
from ._pg_gucs import GUCS, InvalidValue, Value, normalize
from ._pg_hba import HbaFile, Rule, admits_user, is_remote, is_wide, read_hba

CONFIG_ENV = "SENTINEL_POSTGRESQL_CONFIG"
_LAYOUTS = ("/etc/postgresql/*/*/postgresql.conf", "/var/lib/pgsql/data/postgresql.conf",
            "/var/lib/pgsql/*/data/postgresql.conf")
_DEBIAN = re.compile(r"^/etc/postgresql/(\d+)(?:\.\d+)?/[^/]+/postgresql\.conf$")
_NAME = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$")
PROCESS_NAMES = ("postgres", "postmaster")
MODELLED = (12, 17)  # the major versions whose compiled-in defaults checks/_pg_gucs.py holds


@dataclass
class Cluster:
    config: str
    data_dir: str
    version: Optional[int]
    version_source: str
    conf: ConfFiles


def _find_config(ctx: ProbeContext) -> str:
    target = ctx.target
    if target.kind == "postgresql" and target.config:  # the instance sentinel/discovery.py found
        if not ctx.host.exists(target.config):
            raise ProbeError(f"{target.config}: no such file (the configuration of PostgreSQL instance "
                             f"{target.instance or 'default'})", f"{target.config} 不存在（PostgreSQL 实例 "
                             f"{target.instance or '默认'} 的配置文件）")
        return target.config
    named = os.environ.get(CONFIG_ENV)
    if named:
        if not ctx.host.exists(named):
            raise ProbeError(f"{CONFIG_ENV}={named}: no such file", f"{CONFIG_ENV}={named}：文件不存在")
        return named
    found = sorted({p for pattern in _LAYOUTS for p in ctx.host.glob(pattern)})
    if not found:
        raise NotApplicable("no PostgreSQL cluster: no postgresql.conf in /etc/postgresql/*/*/ or /var/lib/pgsql/",
                            "未发现 PostgreSQL 集群：/etc/postgresql/*/*/ 与 /var/lib/pgsql/ 下均无 postgresql.conf")
    if len(found) > 1:
        raise ProbeError(f"several PostgreSQL clusters ({', '.join(found)}): name the one to judge with "
                         f"{CONFIG_ENV}", f"发现多个 PostgreSQL 集群（{', '.join(found)}），请用 {CONFIG_ENV} 指定")
    return found[0]


def cluster(ctx: ProbeContext) -> Cluster:
    """The cluster's configuration, read once per run."""

    def load() -> Cluster:
        config = _find_config(ctx)
        conf = read_conf(ctx.host, config)
        named = conf.last("data_directory")
        data_dir = named.value if named is not None and named.value else posixpath.dirname(config)
        version, source = None, ""
        text = ctx.host.read_optional(posixpath.join(data_dir, "PG_VERSION"))
        if text and re.match(r"^\d+", text.strip()):
            version, source = int(re.match(r"^\d+", text.strip()).group()), f"{data_dir}/PG_VERSION"  # type: ignore[union-attr]
        else:
            m = _DEBIAN.match(config)
            if m:
                version, source = int(m.group(1)), f"the Debian path {config}"
        return Cluster(config, data_dir, version, source, conf)

    return ctx.cached(("postgresql", "cluster"), load)


def _default(c: Cluster, name: str) -> tuple[Value, str, str]:
    """The compiled-in default of `name` for the cluster's version, with its note (en, zh)."""
    guc = GUCS.get(name)
    if guc is None:
        raise ProbeError(f"{name} is not set and sentinel does not know its default", f"{name} 未设置，且未知其默认值")
    values_repr = {repr(guc.default(v)) for v in range(MODELLED[0], MODELLED[1] + 1) if v >= guc.since}
    if c.version is None and len(values_repr) > 1:
        raise ProbeError(f"{name} is not set and its default depends on the PostgreSQL version, which is unknown "
                         f"(no PG_VERSION in {c.data_dir})",
                         f"{name} 未设置，其默认值随 PostgreSQL 版本而定，而版本未知（{c.data_dir} 下无 PG_VERSION）")
    if c.version is not None and not MODELLED[0] <= c.version <= MODELLED[1]:
        raise ProbeError(f"{name} is not set, and sentinel knows the defaults of PostgreSQL {MODELLED[0]}-"
                         f"{MODELLED[1]}, not of {c.version} ({c.version_source})",
                         f"{name} 未设置，sentinel 只掌握 PostgreSQL {MODELLED[0]}-{MODELLED[1]} 的默认值，"
                         f"不含 {c.version}（{c.version_source}）")
    version = c.version if c.version is not None else MODELLED[1]
    value = guc.default(version)
    if value is None or (c.version is not None and c.version < guc.since):
        return None, (f"{name} does not exist in PostgreSQL {c.version}"), f"PostgreSQL {c.version} 没有 {name} 参数"
    shown = value if not isinstance(value, list) else ",".join(value) or "''"
    which = f"PostgreSQL {c.version}" if c.version is not None else "every PostgreSQL version"
    return value, f"{name} not set: {which}'s compiled-in default {shown}", f"{name} 未设置：{which} 的默认值 {shown}"


def _libraries(c: Cluster) -> list[str]:
    s = c.conf.last("shared_preload_libraries")
    if s is None:
        return []
    try:
        value = normalize("shared_preload_libraries", s.value)
    except InvalidValue:
        return []
    return [str(v).lower() for v in value] if isinstance(value, list) else []


# Parameters whose value may hold a secret (a command with a password, a connection string): the report shows
# only whether they are set, and the evidence names their line without its text.
SECRET_PRONE = frozenset({"archive_command", "restore_command", "ssl_passphrase_command", "primary_conninfo",
                          "archive_cleanup_command", "recovery_end_command"})


def _conf_value(c: Cluster, name: str) -> tuple[Value, list[Evidence], Optional[tuple[str, str]]]:
    """(effective value, evidence, note) of one parameter from the files."""
    s = c.conf.last(name)
    ev: list[Evidence] = []
    if s is not None and name in SECRET_PRONE:
        ev.append(evidence(s.path, f"{name} = (value not shown: it may hold a secret)", s.line))
        return ("(set)" if s.value else ""), ev, None
    if s is not None:
        try:
            value = normalize(name, s.value)
        except InvalidValue as exc:
            raise ProbeError(f"{s.path}:{s.line}: {s.text}: invalid value for {name}: {exc}; the server does not "
                             "start with it (a reload ignores the line)",
                             f"{s.path}:{s.line}：{s.text}：{name} 的值无效（{exc}）；"
                             "服务器无法以此启动（重新加载时忽略该行）") from None
        ev.append(evidence(s.path, s.text, s.line))
        for old in c.conf.earlier(name):
            ev.append(evidence(old.path, f"overridden by {s.path}:{s.line} (the last setting wins): {old.text}",
                               old.line))
        return value, ev, None
    guc = GUCS.get(name)
    if guc is not None and guc.library and guc.library not in _libraries(c):
        ev.append(evidence(c.config, f"{name} not set and {guc.library} not in shared_preload_libraries"))
        return None, ev, (f"{guc.library} is not loaded (shared_preload_libraries), so {name} has no effect",
                          f"未加载 {guc.library}（shared_preload_libraries），{name} 不起作用")
    value, en, zh = _default(c, name)
    ev.append(evidence(c.config, f"{en} (files read: {', '.join(dict.fromkeys(c.conf.files))}; version from "
                                 f"{c.version_source or 'nowhere'})"))
    return value, ev, (en, zh)


def _include_evidence(c: Cluster) -> list[Evidence]:
    return [evidence(path, what, line) for path, line, what in c.conf.includes]


class SettingParams(Strict):
    key: str = Field(min_length=1, description="parameter name, as in postgresql.conf")

    @field_validator("key")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v.lower()):
            raise ValueError(f"{v!r} is not a PostgreSQL parameter name")
        return v.lower()


@probe("postgresql.setting", SettingParams)
def setting(ctx: ProbeContext, params: SettingParams) -> Observation:
    """The parameter's value in effect from the cluster's files (postgresql.conf, its includes, then
    postgresql.auto.conf), else the version's compiled-in default; bool as on/off, an int in its base unit (ms for
    timeouts), a mode as four octal digits, a list parameter as its elements."""
    c = cluster(ctx)
    value, ev, note = _conf_value(c, params.key)
    ev.extend(_include_evidence(c))
    return Observation(observed=value, evidence=ev, note=note[0] if note else None, note_zh=note[1] if note else None)


class SettingsParams(Strict):
    keys: list[str] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if not _NAME.match(k.lower())]
        if bad:
            raise ValueError(f"not PostgreSQL parameter names: {', '.join(bad)}")
        return [k.lower() for k in v]


@probe("postgresql.settings", SettingsParams)
def settings(ctx: ProbeContext, params: SettingsParams) -> Observation:
    """{parameter: value} as `postgresql.setting` reads each, for settings that only mean something together
    (a library and its parameters, archive_mode and its command). Dotted keys are an extension's."""
    c = cluster(ctx)
    observed: dict[str, Any] = {}
    ev: list[Evidence] = []
    notes, notes_zh = [], []
    for key in params.keys:
        value, more, note = _conf_value(c, key)
        observed[key] = value
        ev.extend(more)
        if note:
            notes.append(note[0])
            notes_zh.append(note[1])
    ev.extend(_include_evidence(c))
    return Observation(observed=observed, evidence=ev, note="; ".join(notes) or None,
                       note_zh="；".join(notes_zh) or None)


def hba(ctx: ProbeContext) -> tuple[Cluster, str, HbaFile]:
    c = cluster(ctx)

    def load() -> tuple[str, HbaFile]:
        named = c.conf.last("hba_file")
        path = named.value if named is not None and named.value else posixpath.join(posixpath.dirname(c.config),
                                                                                     "pg_hba.conf")
        return path, read_hba(ctx.host, path, c.version)

    path, parsed = ctx.cached(("postgresql", "hba"), load)
    return c, path, parsed


class HbaParams(Strict):
    methods: Optional[list[str]] = None  # only lines with one of these authentication methods
    types: Optional[list[str]] = None  # only lines of these connection types (local, host, hostssl, ...)
    remote: bool = False  # only lines that may match a client on another machine (not loopback, not local)
    user: Optional[str] = None  # only lines whose user field may match this role (all, the name, +group)
    wide: bool = False  # only lines admitting a wide range: all, samenet, a domain, or a prefix below these
    min_prefix_v4: int = Field(default=16, ge=0, le=32)
    min_prefix_v6: int = Field(default=48, ge=0, le=128)


def _selected(rule: Rule, p: HbaParams) -> bool:
    return ((p.methods is None or rule.method in p.methods) and (p.types is None or rule.type in p.types)
            and (not p.remote or is_remote(rule)) and (p.user is None or admits_user(rule, p.user))
            and (not p.wide or is_wide(rule, p.min_prefix_v4, p.min_prefix_v6)))


@probe("postgresql.hba", HbaParams)
def hba_rules(ctx: ProbeContext, params: HbaParams) -> Observation:
    """Lines of pg_hba.conf (hba_file, its @files and PostgreSQL 16 includes) that a connection can reach (no
    earlier line matches all it matches; not hostssl while ssl is off) and that the filters select, as
    `file:line: line`, in file order."""
    c, path, parsed = hba(ctx)
    ssl_off = _conf_value(c, "ssl")[0] == "off"
    hits, ev = [], []
    for rule in parsed.rules:
        if not _selected(rule, params):
            continue
        if ssl_off and rule.type == "hostssl":  # hba.c: such a line is kept but cannot match while ssl is off
            ev.append(evidence(rule.path, f"never matches: hostssl while ssl is off: {rule.text}", rule.line))
            continue
        if rule.shadowed_by is not None:
            ev.append(evidence(rule.path, f"never reached: {rule.shadowed_by.where} matches first: {rule.text}",
                               rule.line))
            continue
        hits.append(rule.where)
        ev.append(evidence(rule.path, rule.text, rule.line))
    if not hits:
        ev.append(evidence(path, f"{len(parsed.rules)} rule(s) read from {', '.join(dict.fromkeys(parsed.files))}; "
                                 "none selected"))
    ev.extend(evidence(p, what, line) for p, line, what in parsed.includes)
    return Observation(observed=hits, evidence=ev)


# ---- the running server ----------------------------------------------------------------------------------------

_QUERIES = {
    "version": "SELECT current_setting('server_version_num')::int",
    "superusers": "SELECT rolname FROM pg_catalog.pg_roles WHERE rolsuper ORDER BY 1",
    "createrole": "SELECT rolname FROM pg_catalog.pg_roles WHERE rolcreaterole AND NOT rolsuper ORDER BY 1",
    "expired": "SELECT rolname || ' (VALID UNTIL ' || rolvaliduntil::text || ')' FROM pg_catalog.pg_roles "
               "WHERE rolcanlogin AND rolvaliduntil IS NOT NULL AND rolvaliduntil < now() ORDER BY 1",
    "settings": "SELECT name, setting, coalesce(unit, ''), source, coalesce(sourcefile, ''), "
                "coalesce(sourceline, 0), pending_restart FROM pg_catalog.pg_settings",
}


@dataclass
class ServerFacts:
    where: str  # user@host:port, never the password
    version: int
    rows: dict[str, list[tuple[Any, ...]]]


def server(ctx: ProbeContext) -> ServerFacts:
    """Every query of this module on one read-only connection, once per run."""
    return ctx.cached(("postgresql", "server"), lambda: _ask_server(ctx))


def _ask_server(ctx: ProbeContext) -> ServerFacts:
    from sentinel.objectcreds import CredentialsError, credentials

    instance = ctx.target.instance if ctx.target.kind == "postgresql" and ctx.target.instance else None
    try:
        creds = credentials("postgresql", instance)
        if instance is not None and not creds.user:  # nothing for this instance: the default account (environment)
            creds = credentials("postgresql")
    except CredentialsError as exc:
        raise ProbeError(str(exc)) from None
    if not creds.user:
        raise ProbeError("no read-only account for the PostgreSQL server: set SENTINEL_POSTGRESQL_USER (and "
                         "_PASSWORD, _HOST, _PORT) or the postgresql entry of the credentials file "
                         "(docs/objects/postgresql.md gives the GRANT)",
                         "未配置 PostgreSQL 只读账户：请设置 SENTINEL_POSTGRESQL_USER（及 _PASSWORD、_HOST、_PORT）"
                         "或凭据文件中的 postgresql 项（授权语句见 docs/objects/postgresql.md）")
    try:
        import psycopg
    except ImportError:
        raise ProbeError("psycopg is not installed: install sentinel with the postgres extra to ask the server",
                         "未安装 psycopg：请安装带 postgres 扩展的 sentinel 以查询服务器") from None
    host, port = creds.host, creds.port or (ctx.target.port if ctx.target.kind == "postgresql" else None)
    if creds.socket:  # a socket file .s.PGSQL.PORT or its directory
        m = re.match(r"^(.*)/\.s\.PGSQL\.(\d+)$", creds.socket)
        host, port = (m.group(1), port or int(m.group(2))) if m else (creds.socket, port)
    if host is None or port is None:  # the cluster's own socket directory and port, from its files
        try:
            c = cluster(ctx)
            if port is None:
                value, _, _ = _conf_value(c, "port")
                port = int(value) if isinstance(value, int) else 5432
            if host is None:
                dirs = c.conf.last("unix_socket_directories")
                host = dirs.value.split(",")[0].strip() if dirs is not None and dirs.value else "/var/run/postgresql"
        except (NotApplicable, ProbeError):
            host, port = host or "/var/run/postgresql", port or 5432
    where = f"{creds.user}@{host}:{port}"
    secret = creds.secret()
    try:
        conn = psycopg.connect(host=host, port=port, user=creds.user, password=secret, dbname=creds.database or
                               "postgres", connect_timeout=5, application_name="sentinel",
                               options="-c default_transaction_read_only=on")
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if secret:
            message = message.replace(secret, "***")
        raise ProbeError(f"cannot connect to PostgreSQL as {where}: {message}",
                         f"无法以 {where} 连接 PostgreSQL：{message}") from None
    rows: dict[str, list[tuple[Any, ...]]] = {}
    try:
        conn.read_only = True
        with conn.cursor() as cur:
            for name, sql in _QUERIES.items():
                cur.execute(sql)  # fixed text, no parameters: nothing from outside reaches the SQL
                rows[name] = list(cur.fetchall())
    except psycopg.Error as exc:
        raise ProbeError(f"PostgreSQL {where}: query failed: {str(exc).strip().splitlines()[0]}",
                         f"PostgreSQL {where}：查询失败：{str(exc).strip().splitlines()[0]}") from None
    finally:
        conn.close()
    return ServerFacts(where, int(rows["version"][0][0]), rows)


class ServerParams(Strict):
    query: str = Field(description="superusers | createrole | expired | drift")
    keys: list[str] = Field(default_factory=list)  # drift: the parameters compared

    @field_validator("query")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ("superusers", "createrole", "expired", "drift"):
            raise ValueError(f"{v!r}: expected superusers, createrole, expired or drift")
        return v


@probe("postgresql.server", ServerParams, live_only=True)
def server_facts(ctx: ProbeContext, params: ServerParams) -> Observation:
    """From the running server (read-only account): `superusers` (roles with SUPERUSER), `createrole` (other
    roles that may create and alter roles), `expired` (login roles whose VALID UNTIL has passed, still present), or
    `drift`: for `keys`, where the server's pg_settings value differs from what the files give (a -c option, an
    unreloaded edit) or a change waits for a restart, as `name: server X (source), files Y`."""
    facts = server(ctx)
    if params.query != "drift":
        found = [str(r[0]) for r in facts.rows[params.query]]
        shown = ", ".join(found) or "none"
        return Observation(observed=found, evidence=[evidence(f"postgresql://{facts.where}", f"{_QUERIES[params.query]}"
                                                                                              f" -> {shown}")])
    c = cluster(ctx)
    by_name = {str(r[0]): r for r in facts.rows["settings"]}
    out, ev = [], []
    for key in params.keys:
        row = by_name.get(key.lower())
        files, _, _ = _conf_value(c, key.lower())
        if row is None:  # superuser-only parameters are hidden from an account without pg_read_all_settings
            if files is None:
                continue
            user = facts.where.split("@")[0]
            raise ProbeError(f"pg_settings shows no {key} to {facts.where}: GRANT pg_read_all_settings TO {user}",
                             f"pg_settings 未向 {facts.where} 显示 {key}：请 GRANT pg_read_all_settings TO {user}")
        _, setting_, unit, source, sourcefile, sourceline, pending = row
        try:
            live = normalize(key.lower(), setting_)  # pg_settings gives ints in the base unit: the files' form
        except InvalidValue:
            live = setting_
        where = f"{sourcefile}:{sourceline}" if sourcefile else source
        ev.append(evidence(f"postgresql://{facts.where}", f"pg_settings {key} = {setting_}{unit} ({where})"))
        if _show(live).lower() != _show(files).lower():
            out.append(f"{key}: server {_show(live)} ({where}), files {_show(files)}")
        elif pending:
            out.append(f"{key}: a changed value waits for a restart (pending_restart)")
    return Observation(observed=out, evidence=ev)


def _show(value: Value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


class ProcessParams(Strict):
    names: list[str] = Field(default_factory=lambda: list(PROCESS_NAMES))


@probe("postgresql.process_user", ProcessParams, live_only=True)
def process_user(ctx: ProbeContext, params: ProcessParams) -> Observation:
    """Sorted accounts the server's processes run as (every process named postgres/postmaster)."""
    procs = [p for p in ctx.host.processes() if p.name in params.names]
    if not procs:
        raise NotApplicable("no PostgreSQL server process is running", "未运行 PostgreSQL 服务进程")
    users = sorted({p.username for p in procs})
    return Observation(observed=users, evidence=[evidence("processes", "; ".join(
        f"pid {p.pid} {p.name} user {p.username}" for p in procs[:20]))])
