"""Redis probes (测评对象 kind `redis`): redis.conf as Redis 7.0 reads it, and the running server, read-only.

File probes (`redis.config`, `redis.acl`, `redis.exposure`) read the configuration through the host view, so
they work offline under `--root` too: includes, precedence and compiled-in defaults as checks/_redis_conf.py
models them, ACL users as checks/_redis_acl.py builds them. The installed version comes from the package
database (redis-server on Debian, redis on the RHEL family); only 7.0 is modelled, another version is an
`error` saying so rather than a guess at its defaults.

Server probes (`redis.server_*`, live only) ask the running server over one connection per run, as the account
sentinel/objectcreds.py gives for kind `redis` (SENTINEL_REDIS_SOCKET/HOST/PORT/USER/PASSWORD or the site
file), else the Unix socket or loopback port the configuration names. They send only CONFIG GET (never of a
secret), ACL LIST, COMMAND INFO, INFO server and PING; whether a client without AUTH is served is asked on a
second connection that sends no credentials. Passwords, password hashes and new names of renamed commands never
reach the evidence.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.objectcreds import CredentialsError, ObjectCredentials, credentials
from sentinel.probe import ProbeContext, evidence, probe

from . import _redis_acl as acl
from . import _redis_conf as conf
from .packages import find_installed

DEBIAN_CONF = "/etc/redis/redis.conf"
PACKAGES = ["redis-server", "redis"]
TIMEOUT = 3.0


class ConfigParams(Strict):
    config: str = Field(default=DEBIAN_CONF, pattern=r"^/")


class KeyParams(ConfigParams):
    key: str = Field(min_length=1, pattern=r"^[a-z0-9.-]+$")

    @field_validator("key")
    @classmethod
    def _not_secret(cls, v: str) -> str:
        if v in conf.SECRET:
            raise ValueError(f"{v} is a secret: judge it with redis.acl, never by its value")
        return v


# ---- the configuration file ---------------------------------------------------------------------------


def installed_version(ctx: ProbeContext) -> tuple[str, Evidence]:
    """Upstream version of the installed Redis package, and where it was read."""

    def load() -> tuple[str, Evidence]:
        hits, db = find_installed(ctx, PACKAGES)
        if not hits:
            raise NotApplicable(f"Redis is not installed (no {' or '.join(PACKAGES)} package in {db.source})",
                                f"未安装 Redis（{db.source} 中没有 {' 或 '.join(PACKAGES)} 软件包）")
        pkg = hits[0]
        m = re.match(r"^(?:\d+:)?(\d+\.\d+(?:\.\d+)?)", pkg.version)
        if not m:
            raise ProbeError(f"cannot read Redis's version from package {pkg.name} {pkg.version}",
                             f"无法从软件包 {pkg.name} {pkg.version} 得出 Redis 版本")
        return m.group(1), evidence(db.source, f"{pkg.name} {pkg.version}", pkg.line)

    return ctx.cached(("redis", "version"), load)


def load_conf(ctx: ProbeContext, path: str) -> conf.RedisConf:
    """The configuration Redis builds from `path` (cached per run)."""

    def load() -> conf.RedisConf:
        version, _ = installed_version(ctx)
        if not version.startswith(conf.MODELLED + "."):
            raise ProbeError(f"Redis {version} is installed; sentinel models the configuration of Redis "
                             f"{conf.MODELLED} (its directives and compiled-in defaults)",
                             f"已安装 Redis {version}；sentinel 仅按 Redis {conf.MODELLED} 的指令和内置默认值解读配置")
        return conf.load(ctx.host.read_optional, ctx.host.glob, path, version)

    return ctx.cached(("redis", "conf", path), load)


def renames(rc: conf.RedisConf) -> dict[str, str]:
    """Original command -> its new name ("" removed), after every rename-command line in order."""
    out: dict[str, str] = {}
    for r in rc.renames:
        if r.command in out:  # the name is gone from the table after the first rename
            raise conf.fatal(r.line, f"no such command in rename-command: {r.command} (already renamed)",
                             f"rename-command 的命令不存在：{r.command}（已改名）")
        out[r.command] = r.new_name
    return out


def conf_users(ctx: ProbeContext, rc: conf.RedisConf) -> tuple[list[acl.User], list[Evidence]]:
    """The ACL users Redis has after start-up, and the evidence of where each came from."""
    renamed = renames(rc)
    ev: list[Evidence] = []
    default = acl.default_user()
    secret = rc.settings.get("requirepass")
    if secret is not None and secret.value:
        default.passwords, default.nopass = [("plain", secret.value)], False
        default.where = f"{secret.line.where} (requirepass)"
        ev.append(evidence(secret.line.path, secret.line.text, secret.line.number))
    aclfile = rc.value("aclfile")
    if aclfile and rc.users:
        first = rc.users[0].line
        raise conf.fatal(first, "users are defined both in the configuration and in the aclfile",
                         "同时在配置文件和 aclfile 中定义了用户")
    users: dict[str, acl.User] = {"default": default}
    if rc.users:
        for u in rc.users:
            where = u.line.where
            if u.name != "default" and u.name in users:
                raise conf.fatal(u.line, f"duplicate user {u.name}", f"重复定义的用户 {u.name}")
            base = acl.User("default") if u.name == "default" else None  # `user default` resets it first
            users[u.name] = acl.build_user(u.name, list(u.rules), renamed, where, base)
            ev.append(evidence(u.line.path, u.line.text, u.line.number))
    elif aclfile:
        users = _aclfile_users(ctx, aclfile, renamed, ev)
    else:
        ev.append(evidence(rc.main, "no `user` lines and no aclfile: the default user only"))
    return list(users.values()), ev


def _aclfile_users(ctx: ProbeContext, path: str, renamed: dict[str, str],
                   ev: list[Evidence]) -> dict[str, acl.User]:
    text = ctx.host.read_optional(path)
    if text is None:
        raise ProbeError(f"aclfile {path} does not exist: Redis aborts its start-up",
                         f"aclfile {path} 不存在：Redis 将中止启动")
    users: dict[str, acl.User] = {}
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r\n")
        if not line:
            continue
        words = line.split(" ")  # the ACL file is split on single spaces, without quotes (ACLLoadFromFile)
        where = f"{path}:{number}"
        if words[0] != "user" or len(words) < 2:
            raise ProbeError(f"{where} should start with user keyword followed by the username: Redis aborts "
                             "its start-up", f"{where} 应以 user 关键字和用户名开头：Redis 将中止启动")
        if words[1] in users:
            raise ProbeError(f"{where}: duplicate user {words[1]}: Redis aborts its start-up",
                             f"{where}：重复定义的用户 {words[1]}：Redis 将中止启动")
        users[words[1]] = acl.build_user(words[1], [w.strip("\t\r\n") for w in words[2:]], renamed, where)
        shown = " ".join(["user", words[1], *(conf.redact_rule(w) for w in words[2:])])
        ev.append(evidence(path, shown, number))
    if "default" not in users:  # ACLLoadFromFile re-creates it as it was compiled in, ignoring requirepass
        users["default"] = acl.default_user()
        users["default"].where = f"{path}: not named, so re-created on nopass ~* &* +@all"
        ev.append(evidence(path, "no default user in the aclfile: Redis re-creates it on nopass ~* &* +@all"))
    return users


def _value_evidence(rc: conf.RedisConf, key: str) -> Evidence:
    line = rc.source(key)
    if line is not None:
        return evidence(line.path, line.text, line.number)
    return evidence(rc.main, f"{key} not set in {', '.join(rc.files)}: Redis {rc.version}'s compiled-in "
                             f"default {rc.value(key)!r}")


@probe("redis.config", KeyParams)
def redis_config(ctx: ProbeContext, params: KeyParams) -> Observation:
    """The value Redis uses for one configuration (as CONFIG GET shows it), from redis.conf and its includes,
    else the compiled-in default of the installed version."""
    rc = load_conf(ctx, params.config)
    value = rc.value(params.key)
    _, version_ev = installed_version(ctx)
    ev = [_value_evidence(rc, params.key), version_ev]
    if params.key == "save":
        ev[1:1] = [evidence(line.path, line.text, line.number) for line in rc.save_lines[:-1]]
    if rc.source(params.key) is None:
        return Observation(observed=value, evidence=ev, note=f"{params.key} not set: compiled-in default",
                           note_zh=f"未设置 {params.key}：使用内置默认值")
    return Observation(observed=value, evidence=ev)


def available(units: set[str], renamed: dict[str, str], debug_command: str) -> list[str]:
    """Dangerous commands a user may run under their own names: renamed or removed ones are gone, DEBUG needs
    enable-debug-command yes (or local: every local client). CONFIG collapses when all its subcommands remain."""
    out = {u for u in units if acl.command_of(u) not in renamed}
    if debug_command == "no":
        out = {u for u in out if acl.command_of(u) != "debug"}
    config_units = {u for u in acl.UNITS if acl.command_of(u) == "config"}
    if config_units <= out:
        out = (out - config_units) | {"config"}
    return sorted(out)


def acl_facts(users: list[acl.User], renamed: dict[str, str], debug_command: str) -> dict[str, Any]:
    by_name = {u.name: u for u in users}
    default = by_name.get("default") or acl.default_user()
    weak = sorted(f"{u.name}: {why}" for u in users if u.enabled for p in u.passwords
                  if (why := acl.weakness(u, p)) is not None)
    weak += sorted(f"{u.name}: enabled without a password (nopass)" for u in users
                   if u.enabled and u.nopass)
    superusers = sorted(u.name for u in users if u.superuser)
    return {
        "unauthenticated": default.unauthenticated,
        "weak_passwords": weak,
        "superusers": superusers,
        "superuser_count": len(superusers),
        "default_superuser": default.superuser,
        "default_commands": available(default.units(), renamed, debug_command) if default.enabled else [],
        "enabled_users": sorted(u.name for u in users if u.enabled),
        "named_users": sum(1 for u in users if u.enabled and u.name != "default"),
        "default_enabled": default.enabled,
    }


def _acl_note(facts: dict[str, Any]) -> str:
    return (f"users {', '.join(facts['enabled_users']) or '(none enabled)'}; superusers "
            f"{', '.join(facts['superusers']) or '(none)'}")


@probe("redis.acl", ConfigParams)
def redis_acl(ctx: ProbeContext, params: ConfigParams) -> Observation:
    """`{unauthenticated, weak_passwords, superusers, superuser_count, default_superuser, default_commands,
    enabled_users}` of the ACL users Redis builds from redis.conf (requirepass, `user` lines or the aclfile)."""
    rc = load_conf(ctx, params.config)
    users, ev = conf_users(ctx, rc)
    renamed = renames(rc)
    ev += [evidence(r.line.path, r.line.text, r.line.number) for r in rc.renames]
    facts = acl_facts(users, renamed, rc.value("enable-debug-command"))
    ev.append(evidence(rc.main, _acl_note(facts)))
    return Observation(observed=facts, evidence=ev)


_LOOPBACK = re.compile(r"^-?(127\.\d+\.\d+\.\d+|::1|localhost)$", re.IGNORECASE)


@probe("redis.exposure", ConfigParams)
def redis_exposure(ctx: ProbeContext, params: ConfigParams) -> Observation:
    """`{tcp_port, tls_port, bind, beyond_loopback, plain_beyond_loopback, protected_mode, tls_auth_clients,
    unauthenticated}`: whether the TCP or TLS listener (the plain one alone) binds an address other than
    loopback, and whether a client without AUTH is served."""
    rc = load_conf(ctx, params.config)
    users, ev = conf_users(ctx, rc)
    ports = [int(rc.value("port")), int(rc.value("tls-port"))]
    bind = rc.value("bind")
    addresses = bind.split()
    # bind "" (no address) listens on nothing; without bind Redis 7.0 listens on every address
    wide = any(not _LOOPBACK.match(a) for a in addresses)
    default = next(u for u in users if u.name == "default")
    facts = {"tcp_port": ports[0], "tls_port": ports[1], "bind": bind, "beyond_loopback": bool(any(ports) and wide),
             "plain_beyond_loopback": bool(ports[0] and wide), "protected_mode": rc.value("protected-mode") == "yes",
             "tls_auth_clients": rc.value("tls-auth-clients"), "unauthenticated": default.unauthenticated}
    ev = [_value_evidence(rc, k) for k in ("bind", "port", "tls-port", "protected-mode", "tls-auth-clients")] + ev
    return Observation(observed=facts, evidence=ev)


class OptionsParams(ConfigParams):
    keys: list[str] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _not_secret(cls, v: list[str]) -> list[str]:
        for key in v:
            KeyParams(key=key)
        return v


@probe("redis.options", OptionsParams)
def redis_options(ctx: ProbeContext, params: OptionsParams) -> Observation:
    """`{key: value}` of several configurations (as `redis.config` reads each), for settings judged together."""
    rc = load_conf(ctx, params.config)
    return Observation(observed={k: rc.value(k) for k in params.keys},
                       evidence=[_value_evidence(rc, k) for k in params.keys])


# ---- the running server -------------------------------------------------------------------------------


def _account(ctx: ProbeContext) -> ObjectCredentials:
    try:
        return ctx.cached(("redis", "account"), lambda: credentials("redis"))
    except CredentialsError as exc:
        raise ProbeError(f"Redis credentials: {exc}", f"Redis 账户配置：{exc}") from None


def _address(ctx: ProbeContext, account: ObjectCredentials, config: str) -> dict[str, Any]:
    """Where to connect: the account's socket or host/port, else what the configuration says."""
    if account.socket:
        return {"unix_socket_path": account.socket}
    if account.host or account.port:
        return {"host": account.host or "127.0.0.1", "port": account.port or 6379}
    try:
        rc = load_conf(ctx, config)
    except (ProbeError, NotApplicable) as exc:
        raise ProbeError(f"no Redis address given (SENTINEL_REDIS_SOCKET/HOST/PORT) and none read from "
                         f"{config}: {exc}", f"未给出 Redis 地址，也无法从 {config} 读出：{exc}") from None
    if rc.value("unixsocket"):
        return {"unix_socket_path": rc.value("unixsocket")}
    if rc.value("port") != "0":
        return {"host": "127.0.0.1", "port": int(rc.value("port"))}
    raise ProbeError(f"{config} has neither a unixsocket nor a plain TCP port; give the address with "
                     "SENTINEL_REDIS_SOCKET or SENTINEL_REDIS_HOST/PORT",
                     f"{config} 既无 unixsocket 也无明文 TCP 端口；请用 SENTINEL_REDIS_SOCKET 或 "
                     "SENTINEL_REDIS_HOST/PORT 给出地址")


def _describe(address: dict[str, Any]) -> str:
    if "unix_socket_path" in address:
        return f"redis unix:{address['unix_socket_path']}"
    return f"redis {address['host']}:{address['port']}"


class Server:
    """One read-only connection to the running server (cached per run)."""

    def __init__(self, ctx: ProbeContext, config: str) -> None:
        import redis  # only live runs pay for it

        self.account = _account(ctx)
        self.address = _address(ctx, self.account, config)
        self.where = _describe(self.address)
        self._redis = redis
        self.client = redis.Redis(**self.address, username=self.account.user, password=self.account.secret(),
                                  socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True)
        # redis-py's COMMAND parser fails on the nil a renamed command answers: keep the raw reply
        self.client.set_response_callback("COMMAND", lambda reply, **_: reply)
        self.call("PING")

    def call(self, *args: str) -> Any:
        try:
            return self.client.execute_command(*args)
        except self._redis.exceptions.AuthenticationError as exc:
            raise ProbeError(f"{self.where}: login refused ({_first_words(exc)}); give the read-only account "
                             "(docs/objects/redis.md)", f"{self.where}：登录被拒绝；请配置只读账户") from None
        except self._redis.exceptions.ConnectionError as exc:
            raise ProbeError(f"{self.where}: cannot connect ({_first_words(exc)})",
                             f"{self.where}：无法连接（{_first_words(exc)}）") from None
        except self._redis.exceptions.ResponseError as exc:
            raise ProbeError(f"{self.where}: {args[0]} {args[1] if len(args) > 1 else ''} refused: "
                             f"{_first_words(exc)}", f"{self.where}：{args[0]} 被拒绝：{_first_words(exc)}") from None
        except self._redis.exceptions.RedisError as exc:  # a timeout, a reply redis-py cannot read
            raise ProbeError(f"{self.where}: {args[0]} failed ({type(exc).__name__}: {_first_words(exc)})",
                             f"{self.where}：{args[0]} 失败（{type(exc).__name__}）") from None

    def config_get(self, key: str) -> str:
        reply = self.call("CONFIG", "GET", key)
        values = dict(zip(reply[::2], reply[1::2], strict=True)) if isinstance(reply, list) else dict(reply or {})
        if key not in values:
            raise ProbeError(f"{self.where}: CONFIG GET {key} returned nothing (no such configuration)",
                             f"{self.where}：CONFIG GET {key} 无结果（无此配置项）")
        return str(values[key])

    def served_without_auth(self) -> tuple[bool, str]:
        """Whether a client that sends no AUTH gets an answer (asked on a connection without credentials)."""
        bare = self._redis.Redis(**self.address, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                 decode_responses=True)
        try:
            bare.execute_command("PING")
            return True, "PING without AUTH: PONG"
        except self._redis.exceptions.AuthenticationError as exc:
            return False, f"PING without AUTH: {_first_words(exc)}"
        except self._redis.exceptions.ResponseError as exc:
            return False, f"PING without AUTH: {_first_words(exc)}"
        except self._redis.exceptions.RedisError as exc:  # unreachable, timed out
            raise ProbeError(f"{self.where}: no answer without credentials ({_first_words(exc)})",
                             f"{self.where}：不带凭据的连接无应答") from None
        finally:
            bare.close()


def _first_words(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]


def server(ctx: ProbeContext, config: str) -> Server:
    return ctx.cached(("redis", "server"), lambda: Server(ctx, config))


@probe("redis.server_config", KeyParams, live_only=True)
def redis_server_config(ctx: ProbeContext, params: KeyParams) -> Observation:
    """The running server's value of one configuration (CONFIG GET), as the read-only account sees it."""
    srv = server(ctx, params.config)
    value = ctx.cached(("redis", "config-get", params.key), lambda: srv.config_get(params.key))
    return Observation(observed=value, evidence=[evidence(f"{srv.where}: CONFIG GET {params.key}", value)])


def _server_users(srv: Server) -> tuple[list[acl.User], list[Evidence]]:
    lines = srv.call("ACL", "LIST")
    users, shown = [], []
    for line in lines:
        words = str(line).split()
        if len(words) < 2 or words[0] != "user":
            raise ProbeError(f"{srv.where}: ACL LIST line not understood", f"{srv.where}：无法解析 ACL LIST 的输出")
        users.append(acl.build_user(words[1], words[2:], {}, f"ACL LIST {words[1]}"))
        shown.append(" ".join(["user", words[1], *(conf.redact_rule(w) for w in words[2:])]))
    return users, [evidence(f"{srv.where}: ACL LIST", "\n".join(shown))]


def _server_renamed(srv: Server) -> tuple[dict[str, str], Evidence]:
    """Dangerous commands the server no longer has under their own names (COMMAND INFO answers nil)."""
    reply = srv.call("COMMAND", "INFO", *acl.COMMANDS)
    gone = {name: "" for name, entry in zip(acl.COMMANDS, reply, strict=True) if not entry}
    text = "renamed or removed: " + (", ".join(sorted(gone)) or "none")
    return gone, evidence(f"{srv.where}: COMMAND INFO {' '.join(acl.COMMANDS)}", text)


@probe("redis.server_acl", ConfigParams, live_only=True)
def redis_server_acl(ctx: ProbeContext, params: ConfigParams) -> Observation:
    """`redis.acl`'s facts from the running server: ACL LIST, COMMAND INFO of the dangerous commands,
    enable-debug-command, and whether a client without AUTH is served (asked, not inferred)."""
    srv = server(ctx, params.config)

    def load() -> Observation:
        users, ev = _server_users(srv)
        renamed, renamed_ev = _server_renamed(srv)
        facts = acl_facts(users, renamed, srv.config_get("enable-debug-command"))
        served, how = srv.served_without_auth()
        facts["unauthenticated"] = served
        ev += [renamed_ev, evidence(f"{srv.where}: PING", how), evidence(srv.where, _acl_note(facts))]
        return Observation(observed=facts, evidence=ev)

    return ctx.cached(("redis", "server-acl"), load)


@probe("redis.server_process", ConfigParams, live_only=True)
def redis_server_process(ctx: ProbeContext, params: ConfigParams) -> Observation:
    """`{user, pid, version, config_file}` of the running server: INFO server's process_id, and the account
    that process runs as (from the host's process table)."""
    srv = server(ctx, params.config)
    info = ctx.cached(("redis", "info-server"), lambda: srv.call("INFO", "server"))
    pid = int(info.get("process_id", 0))
    proc = next((p for p in ctx.host.processes() if p.pid == pid), None)
    if proc is None:
        raise ProbeError(f"{srv.where}: process {pid} (INFO server) is not in this host's process table: the "
                         "server runs elsewhere (another host or PID namespace)",
                         f"{srv.where}：进程 {pid} 不在本机进程表中（服务运行在别处）")
    facts = {"user": proc.username, "pid": pid, "version": info.get("redis_version"),
             "config_file": info.get("config_file") or None}
    return Observation(observed=facts, evidence=[
        evidence(f"{srv.where}: INFO server", f"redis_version:{facts['version']} process_id:{pid} "
                                              f"config_file:{facts['config_file'] or ''}"),
        evidence(f"process {pid}", f"{proc.name} running as {proc.username}")])
