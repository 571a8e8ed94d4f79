"""MySQL/MariaDB (测评对象 kind `mysql`): the option files as the server reads them, and the running server's truth
over one read-only connection.

Option-file probes (`mysql.option`, `mysql.options`, `mysql.configured_plugins`) read /etc/my.cnf and
/etc/mysql/my.cnf with their includes (checks/mysql_options.py) through the HostView, so they work under
`--root DIR`; a variable no file sets has the compiled-in default of the installed product
(checks/mysql_defaults.py). Live probes (`mysql.variables`, `mysql.plugin`, `mysql.accounts`, `mysql.databases`,
`mysql.server_user`) are `live_only`: one connection per run, as the account sentinel/objectcreds.py gives for
kind "mysql", sending only SELECT and SHOW statements; everything is read at the first live check and the
connection closed. docs/objects/mysql.md gives the GRANT the account needs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import Field

from sentinel.model import Evidence, Observation, Strict
from sentinel.objectcreds import CredentialsError, credentials
from sentinel.probe import NotApplicable, ProbeContext, ProbeError, evidence, probe

from .mysql_defaults import TABLES, plugin_of
from .mysql_options import Option, OptionFiles, effective, read_option_files
from .packages import find_installed

START_FILES = ["/etc/my.cnf", "/etc/mysql/my.cnf"]  # `mariadbd --help`: "read from the following files"
DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"
Kind = Literal["bool", "str", "int", "flag"]

_SERVER_PACKAGES = {"mariadb": ["mariadb-server-core*", "mariadb-server", "mariadb-server-10*", "mariadb-server-11*"],
                    "mysql": ["mysql-server-core-*", "mysql-community-server*", "mysql-server"]}
_SERVER_BINARIES = {"mariadb": ["/usr/sbin/mariadbd", "/usr/libexec/mariadbd"],
                    "mysql": ["/usr/sbin/mysqld", "/usr/libexec/mysqld"]}
_VERSION = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)(?:\.(\d+))?")


# ---- which product and version ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    name: Literal["mariadb", "mysql"]
    version: Optional[str]  # "10.11.19"; None when only the binary was found
    source: str  # where that came from (package and its database, or the binary)

    @property
    def series(self) -> Optional[str]:
        return ".".join(self.version.split(".")[:2]) if self.version else None

    @property
    def label(self) -> str:
        return f"{'MariaDB' if self.name == 'mariadb' else 'MySQL'} {self.version or '(version unknown)'}"

    def groups(self) -> set[str]:
        """Option groups the server reads (`mariadbd --help`: "The following groups are read")."""
        series = self.series or TABLES[self.name][0]
        if self.name == "mysql":
            return {"mysqld", "server", f"mysqld-{series}"}
        return {"mysqld", "server", f"mysqld-{series}", "mariadb", f"mariadb-{series}", "mariadbd",
                f"mariadbd-{series}", "client-server", "galera"}


def product(ctx: ProbeContext) -> Product:
    """The MySQL/MariaDB server installed on the host, from its package (else its binary); NotApplicable if none."""

    def load() -> Product:
        try:
            for name in ("mariadb", "mysql"):
                hits, db = find_installed(ctx, _SERVER_PACKAGES[name])
                for pkg in hits:
                    m = _VERSION.match(pkg.version)
                    if m:
                        version = ".".join(g for g in m.groups() if g is not None)
                        return Product(name, version, f"{db.source}: {pkg.name} {pkg.version}")
        except ProbeError:
            pass  # no package database (a container image): the binaries still tell which server it is
        for name in ("mariadb", "mysql"):
            for path in _SERVER_BINARIES[name]:
                if ctx.host.exists(path):
                    real = ctx.host.real_path(path)
                    kind = "mariadb" if name == "mariadb" or real.endswith("mariadbd") else "mysql"
                    return Product(kind, None, path)  # type: ignore[arg-type]
        raise NotApplicable("no MySQL/MariaDB server is installed (no server package, no mariadbd/mysqld)",
                            "未安装 MySQL/MariaDB 服务器（无服务器软件包，无 mariadbd/mysqld）")

    return ctx.cached(("mysql-product",), load)


# ---- option files ------------------------------------------------------------------------------------------------
def _files(ctx: ProbeContext, start_files: list[str]) -> OptionFiles:
    files = read_option_files(ctx, tuple(start_files))
    if not files.files:
        raise NotApplicable("no MySQL/MariaDB option file (" + ", ".join(start_files) + ")",
                            "没有 MySQL/MariaDB 配置文件（" + ", ".join(start_files) + "）")
    return files


def _server_options(ctx: ProbeContext, start_files: list[str]) -> tuple[Product, OptionFiles, list[Option]]:
    prod = product(ctx)
    files = _files(ctx, start_files)
    return prod, files, files.for_groups(prod.groups())


def configured_plugins(options: list[Option]) -> tuple[list[str], list[Option]]:
    """Plugins the option files load: `plugin-load` replaces the list, `plugin-load-add` adds (in file order),
    less those the plugin's own option turns off (`server_audit = OFF`, `skip-server-audit`; the last one wins).

    Entries are `name=library` or `library` (all plugins of the library, named as the library here).
    """
    names: list[str] = []
    used: list[Option] = []
    for opt in options:
        if opt.canonical not in ("plugin-load", "plugin-load-add"):
            continue
        entries = [e.strip() for e in (opt.value or "").split(";") if e.strip()]
        if opt.canonical == "plugin-load":
            names, used = [], []
        for entry in entries:
            name = entry.split("=", 1)[0] if "=" in entry else entry.rsplit("/", 1)[-1]
            names.append(re.sub(r"\.(so|dll)$", "", name).lower())
        used.append(opt)
    loaded = []
    for name in names:
        switch = effective(options, name, "bool")  # ON, FORCE, FORCE_PLUS_PERMANENT load it; OFF does not
        raw = (switch.option.value or "") if switch.option is not None else ""
        if switch.value == "OFF" and raw.upper() not in ("FORCE", "FORCE_PLUS_PERMANENT"):
            used.append(switch.option)  # type: ignore[arg-type]  # set whenever value is OFF
            continue
        loaded.append(name)
    return loaded, used


def _option(ctx: ProbeContext, key: str, kind: Kind, start_files: list[str]) -> tuple[Optional[str], list[Evidence],
                                                                                        Optional[str]]:
    """Value, evidence and a note (default used, warning) for one variable from the option files."""
    prod, files, options = _server_options(ctx, start_files)
    found = effective(options, key, kind)
    read = ", ".join(files.files)
    if found.option is not None:
        opt = found.option
        ev = [evidence(opt.path, f"[{opt.group}] {opt.safe_text()}", opt.line)]
        earlier = [o for o in options if o is not opt and effective([o], key, kind).option is not None]
        if earlier:
            ev.append(evidence(earlier[0].path, "overridden by a later option: " + "; ".join(
                f"{o.path}:{o.line}: {o.safe_text()}" for o in earlier[:5]), earlier[0].line))
        return found.value, ev, found.warning
    series, table, plugin_tables = TABLES[prod.name]
    plugin = plugin_of(prod.name, key)
    if plugin is not None:
        loaded, _ = configured_plugins(options)
        if plugin not in loaded:
            return None, [evidence(read, f"{key}: plugin {plugin} is not loaded by the option files (plugin-load, "
                                         "plugin-load-add), so the variable does not exist")], \
                f"plugin {plugin} not loaded by the option files"
        table = plugin_tables[plugin]
    if key not in table and _other_product_has(prod.name, key):
        other = "MySQL" if prod.name == "mariadb" else "MariaDB"
        raise NotApplicable(f"{key} is {other}'s; {prod.label} has no such variable (the live check judges its own "
                            "mechanism)", f"{key} 属于 {other}，{prod.label} 没有该变量（由运行态检查判断其自身机制）")
    if key not in table:
        raise ProbeError(f"{key} is not set in {read} and sentinel knows no compiled-in default for it",
                         f"{read} 中未设置 {key}，且 sentinel 不知道其编译默认值")
    default = table[key]
    where = f"compiled-in default of {'MariaDB' if prod.name == 'mariadb' else 'MySQL'} {series}"
    installed = f" (installed: {prod.label}, {prod.source})"
    note = f"{key} is not set in the option files; {where}: {default if default is not None else '(none)'}"
    if prod.series and prod.series != series:
        note += f"; the installed version is {prod.version}, whose defaults may differ"
    elif prod.version is None:
        note += f"; the installed version is unknown ({prod.source}), whose defaults may differ"
    return default, [evidence(read, f"{key} not set in groups {', '.join(sorted(prod.groups()))}; {where}"
                                    f"{installed}")], note


def _other_product_has(name: str, key: str) -> bool:
    other = "mysql" if name == "mariadb" else "mariadb"
    _, table, plugins = TABLES[other]
    return key in table or any(key in names for names in plugins.values())


class OptionParams(Strict):
    key: str = Field(min_length=1, pattern=r"^[a-z0-9_.]+$")
    kind: Kind = "str"
    start_files: list[str] = Field(default_factory=lambda: list(START_FILES))


@probe("mysql.option", OptionParams)
def mysql_option(ctx: ProbeContext, params: OptionParams) -> Observation:
    """The value the server takes for variable `key` from its option files (last wins), else its default."""
    value, ev, note = _option(ctx, params.key, params.kind, params.start_files)
    return Observation(observed=value, evidence=ev, note=note, note_zh=_zh(note))


class OptionsParams(Strict):
    keys: dict[str, Kind] = Field(min_length=1)
    start_files: list[str] = Field(default_factory=lambda: list(START_FILES))


@probe("mysql.options", OptionsParams)
def mysql_options(ctx: ProbeContext, params: OptionsParams) -> Observation:
    """`{variable: value}` from the option files for settings judged together (None: does not exist)."""
    out: dict[str, Optional[str]] = {}
    ev: list[Evidence] = []
    notes = []
    for key, kind in params.keys.items():
        out[key], got, note = _option(ctx, key, kind, params.start_files)
        ev.extend(got)
        if note:
            notes.append(note)
    text = "; ".join(notes) or None
    return Observation(observed=out, evidence=ev, note=text, note_zh=_zh(text))


def _zh(note: Optional[str]) -> Optional[str]:
    """The notes of the option probes in Chinese (their variable names and values stay as written)."""
    if note is None:
        return None
    note = re.sub(r"(\S+) is not set in the option files; compiled-in default of (\S+ [\d.]+): ",
                  r"配置文件未设置 \1，采用 \2 的编译默认值：", note)
    note = re.sub(r"plugin (\S+) not loaded by the option files", r"配置文件未加载插件 \1", note)
    note = note.replace("; the installed version is unknown (", "；已安装版本未知（").replace("), whose", "），whose")
    note = note.replace("; the installed version is ", "；已安装版本为 ")
    return note.replace(", whose defaults may differ", "，其默认值可能不同").replace("whose defaults may differ",
                                                                              "其默认值可能不同")


class ConfiguredPluginsParams(Strict):
    start_files: list[str] = Field(default_factory=lambda: list(START_FILES))


@probe("mysql.configured_plugins", ConfiguredPluginsParams)
def mysql_configured_plugins(ctx: ProbeContext, params: ConfiguredPluginsParams) -> Observation:
    """Sorted plugins the option files load (plugin-load / plugin-load-add)."""
    _, files, options = _server_options(ctx, params.start_files)
    names, used = configured_plugins(options)
    ev = [evidence(o.path, f"[{o.group}] {o.safe_text()}", o.line) for o in used] or \
        [evidence(", ".join(files.files), "no plugin-load / plugin-load-add option")]
    note = ("plugins installed with INSTALL SONAME are recorded in the mysql.plugin table of the data directory, "
            "which the option files do not show; the live check reads information_schema.PLUGINS")
    zh = ("以 INSTALL SONAME 安装的插件记录在数据目录的 mysql.plugin 表中，配置文件中看不到；"
          "运行态检查读取 information_schema.PLUGINS")
    return Observation(observed=sorted(set(names)), evidence=ev, note=note, note_zh=zh)


# ---- the running server --------------------------------------------------------------------------------------
PASSWORD_PLUGINS = frozenset({"mysql_native_password", "mysql_old_password", "ed25519", "parsec",
                              "caching_sha2_password", "sha256_password"})
# plugins that send the password itself over the connection (MariaDB's pam through the dialog plugin, MySQL's
# clear-text client plugin, LDAP simple bind): readable on the wire without TLS
CLEARTEXT_PLUGINS = frozenset({"pam", "mysql_clear_password", "authentication_pam", "authentication_ldap_simple"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_AUTH_OR = 4  # auth_or alternatives read per account (MariaDB 10.4+: IDENTIFIED VIA a OR b ...)
_MARIADB_ACL = {"GRANT OPTION": 1 << 10, "SUPER": 1 << 15, "CREATE USER": 1 << 25, "FILE": 1 << 9,
                "SHUTDOWN": 1 << 7}


@dataclass(frozen=True)
class Account:
    user: str
    host: str
    plugins: tuple[str, ...]
    empty_password: bool  # some password alternative has an empty password
    locked: bool
    role: bool
    privileges: tuple[str, ...]  # global admin privileges: SUPER, GRANT OPTION, CREATE USER, FILE, SHUTDOWN
    ssl_type: str  # '' (none), ANY, X509, SPECIFIED
    password_lifetime: int = -1  # the account's own: -1 the global default_password_lifetime, 0 never, N days

    @property
    def name(self) -> str:
        return f"{self.user or chr(39) * 2}@{self.host}"

    @property
    def can_log_in(self) -> bool:
        return not self.locked and not self.role


@dataclass
class Server:
    where: str  # how it was reached: "socket /run/mysqld/mysqld.sock as sentinel_ro"
    version: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    plugins: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower name -> (status, load option)
    accounts: Optional[list[Account]] = None
    databases: Optional[list[str]] = None
    ssl_ciphers: list[str] = field(default_factory=list)  # SHOW GLOBAL STATUS Ssl_cipher_list: what TLS offers
    denied: dict[str, str] = field(default_factory=dict)  # part -> why it could not be read

    @property
    def product(self) -> str:
        return "mariadb" if "mariadb" in self.version.lower() else "mysql"


# password hashes never leave the server: only whether each is empty; the auth_or alternatives (IDENTIFIED VIA a
# OR b, MariaDB 10.4+) are read for the first _AUTH_OR of them
_MARIADB_ACCOUNTS = (
    "SELECT User, Host, JSON_VALUE(Priv, '$.plugin'), IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '', "
    "IFNULL(JSON_VALUE(Priv, '$.account_locked'), 'false') IN ('true', '1'), "  # JSON true reads as '1'
    "IFNULL(JSON_VALUE(Priv, '$.is_role'), 'false') IN ('true', '1'), "
    "CAST(IFNULL(JSON_VALUE(Priv, '$.access'), 0) AS UNSIGNED), "
    "IFNULL(JSON_VALUE(Priv, '$.ssl_type'), 0), IFNULL(JSON_VALUE(Priv, '$.password_lifetime'), -1), "
    "IFNULL(JSON_LENGTH(Priv, '$.auth_or'), 0), "
    "JSON_VALUE(Priv, '$.auth_or[0].plugin'), IFNULL(JSON_VALUE(Priv, '$.auth_or[0].authentication_string'), '') = '', "
    "JSON_VALUE(Priv, '$.auth_or[1].plugin'), IFNULL(JSON_VALUE(Priv, '$.auth_or[1].authentication_string'), '') = '', "
    "JSON_VALUE(Priv, '$.auth_or[2].plugin'), IFNULL(JSON_VALUE(Priv, '$.auth_or[2].authentication_string'), '') = '', "
    "JSON_VALUE(Priv, '$.auth_or[3].plugin'), IFNULL(JSON_VALUE(Priv, '$.auth_or[3].authentication_string'), '') = '' "
    "FROM mysql.global_priv")
_MYSQL_ACCOUNTS = ("SELECT User, Host, plugin, authentication_string = '', account_locked = 'Y', Super_priv = 'Y', "
                   "Grant_priv = 'Y', Create_user_priv = 'Y', File_priv = 'Y', Shutdown_priv = 'Y', ssl_type, "
                   "IFNULL(password_lifetime, -1) FROM mysql.user")
# MariaDB before 10.4 has no mysql.global_priv: its mysql.user table keeps native hashes in Password, roles as rows
# with is_role = 'Y' (not login accounts), and no account locking or own password lifetime. Not tested here: Debian
# 12 ships 10.11.
_MARIADB_LEGACY_ACCOUNTS = ("SELECT User, Host, IF(plugin = '', 'mysql_native_password', plugin), "
                            "Password = '' AND authentication_string = '', 0, Super_priv = 'Y', Grant_priv = 'Y', "
                            "Create_user_priv = 'Y', File_priv = 'Y', Shutdown_priv = 'Y', ssl_type, -1 "
                            "FROM mysql.user WHERE is_role = 'N'")
_NO_SUCH_TABLE = 1146
_SSL_TYPES = ("", "ANY", "X509", "SPECIFIED")


def _mariadb_account(row: tuple[Any, ...]) -> Account:
    user, host, plugin, empty, locked, role, access, ssl_type, lifetime, n_or = row[:10]
    top = (plugin or "mysql_native_password", bool(empty))
    ways = [top]
    if int(n_or or 0):
        ways = []
        for i in range(min(int(n_or), _AUTH_OR)):
            p, e = row[10 + 2 * i], row[11 + 2 * i]
            ways.append(top if p is None else (p, bool(e)))
    privileges = tuple(name for name, bit in _MARIADB_ACL.items() if int(access) & bit)
    return Account(str(user), str(host), tuple(w[0] for w in ways),
                   any(p in PASSWORD_PLUGINS and e for p, e in ways), bool(locked), bool(role), privileges,
                   _SSL_TYPES[int(ssl_type)] if str(ssl_type).isdigit() and int(ssl_type) < 4 else str(ssl_type),
                   int(lifetime))


def _mysql_account(row: tuple[Any, ...]) -> Account:
    user, host, plugin, empty, locked, sup, grant, cuser, file_, shut, ssl_type, lifetime = row
    flags = {"SUPER": sup, "GRANT OPTION": grant, "CREATE USER": cuser, "FILE": file_, "SHUTDOWN": shut}
    return Account(str(user), str(host), (str(plugin),), bool(empty) and str(plugin) in PASSWORD_PLUGINS,
                   bool(locked), False, tuple(k for k, v in flags.items() if v), str(ssl_type or "").upper(),
                   int(lifetime))


def _where(ctx: ProbeContext) -> dict[str, Any]:
    instance = ctx.target.instance or None
    try:
        creds = credentials("mysql", instance)
        if instance and not creds.user:  # the environment names the default account: one account for every instance
            creds = credentials("mysql")
    except CredentialsError as exc:
        raise ProbeError(f"MySQL credentials: {exc}", f"MySQL 凭据：{exc}") from None
    if not creds.user:
        raise ProbeError("no read-only MySQL/MariaDB account is configured (SENTINEL_MYSQL_USER/PASSWORD, or the "
                         "mysql entry of /etc/sentinel/objects.yaml; see docs/objects/mysql.md)",
                         "未配置 MySQL/MariaDB 只读账户（SENTINEL_MYSQL_USER/PASSWORD 或 /etc/sentinel/objects.yaml "
                         "的 mysql 项，见 docs/objects/mysql.md）")
    args: dict[str, Any] = {"user": creds.user, "password": creds.secret() or "", "database": creds.database}
    if creds.socket or not creds.host:
        sock = creds.socket
        if not sock:  # the server's own socket option, as a client on this host would find it
            try:
                _, _, options = _server_options(ctx, START_FILES)
                sock = effective(options, "socket", "str").value
            except (NotApplicable, ProbeError):
                sock = None
        args["unix_socket"] = sock or DEFAULT_SOCKET
        args["_where"] = f"socket {args['unix_socket']} as {creds.user}"
    else:
        port = creds.port or ctx.target.port or 3306
        args.update(host=creds.host, port=port)
        args["_where"] = f"{creds.host}:{port} as {creds.user}"
    return args


def server(ctx: ProbeContext) -> Server:
    """Everything the live probes judge, read over one connection (cached per run)."""

    def load() -> Server:
        # only live runs with a MySQL object pay for it; PyMySQL ships no type information (types-PyMySQL is not
        # a dependency)
        import pymysql  # type: ignore[import-untyped]

        class ReadOnlyConnection(pymysql.connections.Connection):
            """Sends no SET NAMES: the handshake already names the character set (utf8mb4), and this connection
            sends SELECT and SHOW statements only."""

            def set_character_set(self, charset: str, collation: Optional[str] = None) -> None:
                self.encoding = pymysql.charset.charset_by_name(charset).encoding
                self.charset, self.collation = charset, collation

        args = _where(ctx)
        where = args.pop("_where")
        try:
            # autocommit=None: PyMySQL sends no SET AUTOCOMMIT; no init_command, no sql_mode
            conn = ReadOnlyConnection(**args, autocommit=None, connect_timeout=5, read_timeout=15, write_timeout=15)
        except pymysql.err.MySQLError as exc:
            raise ProbeError(f"cannot connect to MySQL/MariaDB ({where}): {_said(exc)}",
                             f"无法连接 MySQL/MariaDB（{where}）：{_said(exc)}") from None
        out = Server(where)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                out.version = str(cur.fetchone()[0])
                cur.execute("SHOW GLOBAL VARIABLES")
                out.variables = {str(k).lower(): "" if v is None else str(v) for k, v in cur.fetchall()}
                cur.execute("SELECT PLUGIN_NAME, PLUGIN_STATUS, LOAD_OPTION FROM information_schema.PLUGINS")
                out.plugins = {str(n).lower(): (str(s), str(o)) for n, s, o in cur.fetchall()}
                try:
                    out.accounts = _read_accounts(cur, out.product, pymysql.err.MySQLError)
                except pymysql.err.MySQLError as exc:  # no SELECT on mysql.*: the account checks say so
                    out.denied["accounts"] = _said(exc)
                # the list of this session's TLS context: empty unless the connection itself uses TLS, which
                # PyMySQL's preferred mode does whenever the server offers it (on the socket too)
                cur.execute("SHOW GLOBAL STATUS LIKE 'Ssl_cipher_list'")
                row = cur.fetchone()
                out.ssl_ciphers = [c for c in str(row[1] if row else "").split(":") if c]
                cur.execute("SHOW GRANTS")
                grants = " ".join(str(r[0]) for r in cur.fetchall()).upper()
                if "SHOW DATABASES" in grants or "ALL PRIVILEGES ON *.*" in grants:
                    cur.execute("SHOW DATABASES")
                    out.databases = sorted(str(r[0]) for r in cur.fetchall())
                else:  # without the privilege SHOW DATABASES lists only the account's own: not the answer
                    out.denied["databases"] = "the account lacks the SHOW DATABASES privilege"
        except pymysql.err.MySQLError as exc:
            raise ProbeError(f"MySQL/MariaDB ({where}): {_said(exc)}", f"MySQL/MariaDB（{where}）：{_said(exc)}") \
                from None
        finally:
            conn.close()
        return out

    return ctx.cached(("mysql-server",), load)


def _read_accounts(cur: Any, product: str, error: type[Exception]) -> list[Account]:
    try:
        cur.execute(_MARIADB_ACCOUNTS if product == "mariadb" else _MYSQL_ACCOUNTS)
        parse = _mariadb_account if product == "mariadb" else _mysql_account
    except error as exc:
        if product != "mariadb" or exc.args[0] != _NO_SUCH_TABLE:
            raise
        cur.execute(_MARIADB_LEGACY_ACCOUNTS)  # MariaDB < 10.4
        parse = _mysql_account
    return sorted((parse(r) for r in cur.fetchall()), key=lambda a: (a.user, a.host))


def _said(exc: Exception) -> str:
    """PyMySQL's (code, message) as one line; the server's messages name accounts, never a password."""
    args: tuple[Any, ...] = exc.args
    return f"{args[0]} {args[1]}" if len(args) >= 2 else str(exc)


class VariablesParams(Strict):
    names: list[str] = Field(min_length=1)


@probe("mysql.variables", VariablesParams, live_only=True)
def mysql_variables(ctx: ProbeContext, params: VariablesParams) -> Observation:
    """`{name: value}` from SHOW GLOBAL VARIABLES of the running server; None for a variable it does not have."""
    srv = server(ctx)
    out = {n: srv.variables.get(n.lower()) for n in params.names}
    shown = "\n".join(f"{n} = {'(no such variable)' if v is None else v}" for n, v in out.items())
    return Observation(observed=out, evidence=[evidence(f"SHOW GLOBAL VARIABLES ({srv.version}, {srv.where})",
                                                        shown)])


class PluginParams(Strict):
    name: str = Field(min_length=1)


@probe("mysql.plugin", PluginParams, live_only=True)
def mysql_plugin(ctx: ProbeContext, params: PluginParams) -> Observation:
    """`{status, load_option}` of one plugin from information_schema.PLUGINS; None when the server has not got it."""
    srv = server(ctx)
    got = srv.plugins.get(params.name.lower())
    obs = None if got is None else {"status": got[0], "load_option": got[1]}
    text = f"{params.name}: " + ("not installed" if got is None else f"PLUGIN_STATUS={got[0]}, LOAD_OPTION={got[1]}")
    source = "SELECT PLUGIN_NAME, PLUGIN_STATUS, LOAD_OPTION FROM information_schema.PLUGINS"
    return Observation(observed=obs, evidence=[evidence(f"{source} ({srv.where})", text)])


Select = Literal["anonymous", "empty_password", "any_host", "remote_root", "duplicate_names", "admin", "super",
                 "cleartext_without_tls", "own_password_lifetime"]


class AccountsParams(Strict):
    select: Select
    # accounts a site accepts for `admin`/`super` (the DBA's own): written user@host
    allowed: list[str] = Field(default_factory=list)
    # own_password_lifetime: accounts whose own lifetime (ALTER USER ... PASSWORD EXPIRE NEVER / INTERVAL N DAY)
    # overrides default_password_lifetime with never (0) or more than this many days
    max_days: int = Field(default=90, ge=1)


def _selected(srv: Server, accounts: list[Account], params: AccountsParams) -> list[str]:
    live = [a for a in accounts if a.can_log_in]
    sel = params.select
    if sel == "anonymous":
        return [a.name for a in accounts if a.user == "" and not a.role]
    if sel == "empty_password":
        return [a.name for a in live if a.empty_password]
    if sel == "any_host":
        return [a.name for a in live if "%" in a.host]
    if sel == "remote_root":
        return [a.name for a in live if a.user == "root" and a.host.lower() not in LOCAL_HOSTS]
    if sel == "duplicate_names":
        seen: dict[str, int] = {}
        for a in live:
            seen[a.user] = seen.get(a.user, 0) + 1
        return [a.name for a in live if seen[a.user] > 1]
    if sel in ("admin", "super"):
        wanted = {"SUPER", "GRANT OPTION", "CREATE USER"} if sel == "admin" else {"SUPER"}
        allowed = set(params.allowed)
        return [a.name for a in live if wanted & set(a.privileges) and a.name not in allowed]
    if sel == "own_password_lifetime":
        return [a.name for a in live if PASSWORD_PLUGINS & set(a.plugins)
                and (a.password_lifetime == 0 or a.password_lifetime > params.max_days)]
    # cleartext_without_tls: the password crosses the network readable unless TLS is required
    if srv.variables.get("require_secure_transport", "OFF").upper() == "ON":
        return []
    return [a.name for a in live if CLEARTEXT_PLUGINS & set(a.plugins) and a.ssl_type == ""]


@probe("mysql.accounts", AccountsParams, live_only=True)
def mysql_accounts(ctx: ProbeContext, params: AccountsParams) -> Observation:
    """Sorted `user@host` accounts of the running server that match `select` (mysql.global_priv / mysql.user)."""
    srv = server(ctx)
    if srv.accounts is None:
        raise ProbeError(f"cannot read the accounts ({srv.where}): {srv.denied.get('accounts')}; the account needs "
                         "SELECT on mysql.global_priv (MariaDB) or mysql.user (MySQL)",
                         f"无法读取账户（{srv.where}）：{srv.denied.get('accounts')}；只读账户需要 mysql.global_priv"
                         "（MariaDB）或 mysql.user（MySQL）的 SELECT 权限")
    hits = sorted(_selected(srv, srv.accounts, params))
    rows = "\n".join(f"{a.name}: plugins {'/'.join(a.plugins)}, {'locked' if a.locked else 'open'}"
                     + (", role" if a.role else "") + (f", {', '.join(a.privileges)}" if a.privileges else "")
                     + (", empty password" if a.empty_password else "")
                     + (f", password lifetime {'never' if a.password_lifetime == 0 else a.password_lifetime}"
                        if a.password_lifetime >= 0 else "") + (f", REQUIRE {a.ssl_type}" if a.ssl_type
                                                                            else "")
                     for a in srv.accounts)
    table = "mysql.global_priv" if srv.product == "mariadb" else "mysql.user"
    source = f"accounts of {table} ({srv.where}); select {params.select}"
    return Observation(observed=hits, evidence=[evidence(source, rows or "(no accounts)")])


class NoParams(Strict):
    pass


@probe("mysql.databases", NoParams, live_only=True)
def mysql_databases(ctx: ProbeContext, params: NoParams) -> Observation:
    """Sorted database (schema) names of the running server (SHOW DATABASES)."""
    srv = server(ctx)
    if srv.databases is None:
        raise ProbeError(f"cannot list the databases ({srv.where}): {srv.denied.get('databases')}",
                         f"无法列出数据库（{srv.where}）：只读账户缺少 SHOW DATABASES 权限")
    return Observation(observed=srv.databases, evidence=[evidence(f"SHOW DATABASES ({srv.where})",
                                                                  ", ".join(srv.databases))])


@probe("mysql.server_user", NoParams, live_only=True)
def mysql_server_user(ctx: ProbeContext, params: NoParams) -> Observation:
    """Sorted OS accounts the mariadbd/mysqld processes run as."""
    procs = [p for p in ctx.host.processes()
             if p.name in ("mariadbd", "mysqld") or p.exe.rsplit("/", 1)[-1] in ("mariadbd", "mysqld")]
    if not procs:
        raise ProbeError("no mariadbd/mysqld process is running", "没有运行中的 mariadbd/mysqld 进程")
    port = ctx.target.port
    if port is not None and len(procs) > 1:  # several servers on the host: the one listening on the object's port
        pids = {s.pid for s in ctx.host.listening() if s.port == port}
        procs = [p for p in procs if p.pid in pids] or procs
    users = sorted({p.username for p in procs})
    return Observation(observed=users, evidence=[evidence("processes", "\n".join(
        f"pid {p.pid} {p.name} user {p.username}" for p in procs))])


# log files the server writes: error log, general query log (when on), the audit plugin's file (when it logs to one)
_LOGS = (("log_error", None), ("general_log_file", "general_log"), ("server_audit_file_path", "server_audit_logging"))


@probe("mysql.log_files", NoParams, live_only=True)
def mysql_log_files(ctx: ProbeContext, params: NoParams) -> Observation:
    """`[{variable, path, mode, owner, group}]` of the log files the running server writes (relative names are in
    its datadir); logs sent to stderr/journald or syslog are not files and are not listed."""
    from ._users import group_name, user_name

    srv = server(ctx)
    datadir = srv.variables.get("datadir", "").rstrip("/")
    out: list[dict[str, Any]] = []
    ev: list[Evidence] = []
    for variable, switch in _LOGS:
        value = srv.variables.get(variable, "")
        if not value or (switch is not None and srv.variables.get(switch, "OFF").upper() != "ON"):
            continue
        if variable == "server_audit_file_path" and srv.variables.get("server_audit_output_type", "file") != "file":
            continue
        path = value if value.startswith("/") else f"{datadir}/{value.removeprefix('./')}"
        try:
            st = ctx.host.stat(path)
        except FileNotFoundError:
            ev.append(evidence(path, f"{variable} = {value}: not written yet"))
            continue
        mode = f"{st.st_mode & 0o7777:04o}"
        row = {"variable": variable, "path": path, "mode": mode, "owner": user_name(ctx, st.st_uid),
               "group": group_name(ctx, st.st_gid)}
        out.append(row)
        ev.append(evidence(path, f"{variable} = {value}: mode {mode}, owner {row['owner']}:{row['group']}"))
    if not ev:
        ev.append(evidence(f"SHOW GLOBAL VARIABLES ({srv.where})", "no log file: log_error empty (stderr), "
                           "general_log OFF, server_audit not logging to a file"))
    return Observation(observed=out, evidence=ev)


# suites that do not keep the data confidential: no encryption or authentication, export grade, RC4, 64-bit blocks
# ((3)DES, IDEA: Sweet32), MD5. OpenSSL's default list also names PSK and SRP suites, which the server cannot
# negotiate without a pre-shared key or SRP verifier: not weak.
WEAK_CIPHER = re.compile(r"NULL|EXP|ADH|AECDH|anon|RC4|DES|IDEA|MD5", re.IGNORECASE)


def weak_ciphers(ciphers: list[str]) -> list[str]:
    return [c for c in ciphers if WEAK_CIPHER.search(c)]


@probe("mysql.tls", NoParams, live_only=True)
def mysql_tls(ctx: ProbeContext, params: NoParams) -> Observation:
    """`{versions, ciphers, weak}` the running server offers over TLS (tls_version, Ssl_cipher_list); not
    applicable while TLS is off (the TLS checks fail then)."""
    srv = server(ctx)
    if srv.variables.get("have_ssl", "").upper() == "YES" and not srv.ssl_ciphers:
        raise ProbeError(f"the server offers TLS but sentinel's connection does not use it ({srv.where}), and "
                         "Ssl_cipher_list shows the suites only to a TLS session",
                         f"服务器提供 TLS，但 sentinel 的连接未使用 TLS（{srv.where}），"
                         "Ssl_cipher_list 只对 TLS 会话显示套件")
    if srv.variables.get("have_ssl", "").upper() != "YES":
        raise NotApplicable(f"TLS is off (have_ssl={srv.variables.get('have_ssl')}): no cipher to judge",
                            f"未启用 TLS（have_ssl={srv.variables.get('have_ssl')}），无密码套件可判断")
    weak = weak_ciphers(srv.ssl_ciphers)
    return Observation(observed={"versions": srv.variables.get("tls_version"), "ciphers": srv.ssl_ciphers,
                                 "weak": weak},
                       evidence=[evidence(f"SHOW GLOBAL STATUS LIKE 'Ssl_cipher_list' ({srv.where})",
                                          ":".join(srv.ssl_ciphers)),
                                 evidence(f"SHOW GLOBAL VARIABLES ({srv.where})",
                                          f"tls_version = {srv.variables.get('tls_version')}\n"
                                          f"ssl_cipher = {srv.variables.get('ssl_cipher')}")])
