"""Which 测评对象 a host runs besides its OS: the databases, middleware and web servers of DESIGN.md section 10.

`discover(host, level)` looks, read-only, where an assessor looks: the package database (dpkg or rpm, through
the HostView, so an offline root works too), systemd units (enabled by the administrator or by the vendor's
links), and on a live host the running processes and their listening sockets. Each instance found is a
`Discovered`: its `ObjectRef` (kind, instance, 测评对象 name), the baseline to run for the system's level
(`dengbao-l<level>-<kind>`, None while sentinel ships none for the kind) and what it was found by.

An instance is what tells two of one product on a host apart, and stays the same from run to run:
- Redis, MySQL/MariaDB, PostgreSQL: the TCP port (from each configuration file: Redis's `port`, PostgreSQL's
  cluster `port`; MySQL's default 3306), and on a live host the ports their server processes listen on;
- Nginx, Apache httpd, Tomcat: the main configuration file (or Tomcat's configuration directory), and on a live
  host the one a running server was started with (`nginx -c FILE`, `httpd -f FILE`).
A product found only by its package is an object too (installed but stopped: its configuration is still judged;
an operator who does not want it disables it in the agent configuration).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Optional

from pydantic import BaseModel, Field

from .hostview import HostView, NotApplicable, ProbeError, SocketInfo
from .model import ObjectKind, ObjectRef
from .probe import ProbeContext

OBJECT_KINDS: tuple[ObjectKind, ...] = ("mysql", "postgresql", "redis", "nginx", "httpd", "tomcat")


@dataclass(frozen=True)
class Product:
    kind: ObjectKind
    label: str  # the product as the record names it
    packages: tuple[str, ...]  # server package names (fnmatch patterns), dpkg and rpm
    units: tuple[str, ...]  # systemd units that run it
    processes: tuple[str, ...]  # process names of the server
    port: Optional[int] = None  # the compiled-in default port (network daemons)


PRODUCTS: dict[str, Product] = {p.kind: p for p in (
    Product("mysql", "MySQL", ("mariadb-server", "mariadb-server-[0-9]*", "mysql-server", "mysql-server-[0-9]*",
                               "mysql-community-server", "percona-server-server*", "greatsql-server"),
            ("mariadb.service", "mysql.service", "mysqld.service"), ("mariadbd", "mysqld"), 3306),
    Product("postgresql", "PostgreSQL", ("postgresql-[0-9]", "postgresql-[0-9][0-9]", "postgresql-[0-9].[0-9]",
                                         "postgresql-server", "postgresql[0-9]*-server"),
            ("postgresql.service",), ("postgres", "postmaster"), 5432),
    Product("redis", "Redis", ("redis-server", "redis", "redis[0-9]*"),
            ("redis-server.service", "redis.service"), ("redis-server",), 6379),
    Product("nginx", "Nginx", ("nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras", "tengine"),
            ("nginx.service",), ("nginx",)),
    Product("httpd", "Apache httpd", ("apache2", "apache2-bin", "httpd"), ("apache2.service", "httpd.service"),
            ("apache2", "httpd")),
    Product("tomcat", "Tomcat", ("tomcat[0-9]*", "tomcat"),
            ("tomcat10.service", "tomcat9.service", "tomcat.service"), ()),  # a JVM: found by its command line
)}
# the kind's server package is a client or library of the same name on some distributions: not a server
_NOT_SERVERS = re.compile(r"-(common|tools|tools-.*|doc|docs|client|libs|devel|admin|examples|user|sentinel)$")


class Discovered(BaseModel):
    """One object instance found on the host: what to judge, by which baseline, and how it was found."""

    object: ObjectRef
    baseline: Optional[str] = None  # shipped baseline id for the level, None when sentinel has none yet
    wanted_baseline: str  # dengbao-l<level>-<kind>: what `baseline` is, or would be once shipped
    found_by: list[str] = Field(default_factory=list)  # package, unit, process, socket facts, in words
    running: Optional[bool] = None  # None on an offline root (not knowable)


@dataclass
class _Found:
    kind: ObjectKind
    instance: str
    port: Optional[int] = None
    config: Optional[str] = None
    version: Optional[str] = None
    label: str = ""
    running: Optional[bool] = None
    facts: list[str] = field(default_factory=list)


def discover(host: HostView, level: int = 3, shipped: Optional[Iterable[str]] = None,
             ctx: Optional[ProbeContext] = None) -> list[Discovered]:
    """The object instances on `host`, in kind then instance order. `shipped`: the host baseline ids that
    exist (default: sentinel's shipped ones)."""
    if shipped is None:
        from .baseline import shipped as shipped_baselines

        shipped = shipped_baselines()
    known = set(shipped)
    if ctx is None:
        from .osinfo import host_info

        info = host_info(host)
        ctx = ProbeContext(host=host, family=info.family, os_release=host.os_release())
    hostname = host.hostname()
    packages = _packages(ctx)
    processes, sockets = _live(host)
    out = []
    for product in PRODUCTS.values():
        for f in _instances(ctx, product, packages, processes, sockets):
            wanted = f"dengbao-l{level}-{f.kind}"
            ref = ObjectRef(kind=f.kind, instance=f.instance, name=object_name(hostname, f), version=f.version,
                            port=f.port, config=f.config)
            out.append(Discovered(object=ref, baseline=wanted if wanted in known else None, wanted_baseline=wanted,
                                  found_by=f.facts, running=f.running))
    return out


def object_name(hostname: str, f: _Found) -> str:
    """The 测评对象 name an assessor writes: "db01 MariaDB 10.11 (3306)"."""
    where = str(f.port) if f.port else (f.instance or "")
    parts = [hostname, f.label or PRODUCTS[f.kind].label]
    if f.version:
        parts.append(f.version)
    return " ".join(parts) + (f" ({where})" if where else "")


def default_name(hostname: str, kind: str, instance: str) -> str:
    """The name of an object discovery did not find (pinned, or named on the command line)."""
    return f"{hostname} {PRODUCTS[kind].label}" + (f" ({instance})" if instance else "")


def short_version(version: str) -> Optional[str]:
    """A package version as people say it: "1:10.11.6-0+deb12u1" -> "10.11"."""
    v = version.split(":", 1)[-1]
    m = re.match(r"(\d+)(?:\.(\d+))?", v)
    if not m:
        return None
    return m.group(1) + (f".{m.group(2)}" if m.group(2) else "")


# ---- what the host holds -------------------------------------------------------------------------------


@dataclass
class _Package:
    name: str
    version: str
    source: str


def _packages(ctx: ProbeContext) -> list[_Package]:
    from .checks.packages import package_db

    try:
        db = package_db(ctx)
    except ProbeError:  # no package database (a minimal container): units and processes still tell
        return []
    return [_Package(p.name, p.version, p.source) for p in db.packages]


def _live(host: HostView) -> tuple[list, list[SocketInfo]]:
    if not host.live:
        return [], []
    try:
        return host.processes(), host.listening()
    except (NotApplicable, ProbeError, OSError):
        return [], []


def _unit_state(ctx: ProbeContext, unit: str) -> Optional[str]:
    from .checks.services import unit_enabled_state

    try:
        state = unit_enabled_state(ctx, unit).state
    except (ProbeError, NotApplicable, OSError):
        return None
    return state if state in ("enabled", "static") else None


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    lower = name.lower()
    return _pattern(patterns).match(lower) is not None and not _NOT_SERVERS.search(lower)


@cache
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """A product's package patterns as one compiled regex: a host has ~1,000 packages, six products to match."""
    from fnmatch import translate

    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


def _instances(ctx: ProbeContext, product: Product, packages: list[_Package], processes: list,
               sockets: list[SocketInfo]) -> list[_Found]:
    pkgs = [p for p in packages if _matches(p.name, product.packages)]
    # the first unit that starts it (the others are often its aliases: mysql.service -> mariadb.service)
    units = [(u, state) for u in product.units if (state := _unit_state(ctx, u)) is not None][:1]
    procs = [p for p in processes if _is_server(product, p)]
    if not (pkgs or units or procs):
        return []
    version = short_version(pkgs[0].version) if pkgs else None
    label = _label(product, pkgs, procs)
    common = [f"package {p.name} {p.version} ({p.source})" for p in pkgs]
    common += [f"systemd unit {u} {state}" for u, state in units]
    found: dict[str, _Found] = {}
    for inst in _configured(ctx, product):
        inst.facts = common + inst.facts
        found[inst.instance] = inst
    if ctx.host.live:
        for f in found.values():
            f.running = False
        pids = {p.pid: p for p in procs}
        for sock in sockets:
            if sock.pid not in pids or not sock.proto.startswith("tcp"):
                continue
            proc = _master(pids[sock.pid], pids)
            instance = _live_instance(product, proc, sock)
            live = found.get(instance)
            if live is None:
                live = found[instance] = _Found(product.kind, instance, facts=list(common))
                if product.port is not None:
                    live.port = sock.port
                else:  # a web server's instance is its configuration
                    live.config = instance
            live.running = True
            live.facts.append(f"process {proc.name} (pid {proc.pid}) listening on {sock.address}:{sock.port}")
        listening = {_master(pids[sock.pid], pids).pid for sock in sockets if sock.pid in pids}
        for proc in procs:  # servers without a TCP socket (a Unix socket only) or that set no known port
            if proc.pid in listening or (proc.ppid in pids):  # a worker: its master speaks for it
                continue
            config = _config_arg(product, proc)
            if config is not None:
                f = found.setdefault(config, _Found(product.kind, config, config=config, facts=list(common)))
                f.running = True
                f.facts.append(f"process {proc.name} (pid {proc.pid}) started with {config}")
    if not found:  # the product is there, its configuration is not where the distribution puts it
        default = str(product.port) if product.port else ""
        found[default] = _Found(product.kind, default, port=product.port, facts=list(common))
    for f in found.values():
        f.version, f.label = version, label
    return [found[k] for k in sorted(found, key=_order)]


def _master(proc, pids: dict):
    """The server process a worker belongs to (nginx and httpd workers hold the listening sockets; the master's
    command line names the configuration)."""
    seen = 0
    while proc.ppid in pids and seen < 8:
        proc, seen = pids[proc.ppid], seen + 1
    return proc


def _order(instance: str) -> tuple[int, str]:
    return (0, f"{int(instance):05d}") if instance.isdigit() else (1, instance)


def _label(product: Product, pkgs: list[_Package], procs: list) -> str:
    if product.kind == "mysql" and (any("mariadb" in p.name for p in pkgs) or any(p.name == "mariadbd"
                                                                                  for p in procs)):
        return "MariaDB"
    return product.label


def _is_server(product: Product, proc) -> bool:
    if product.kind == "tomcat":
        return any("org.apache.catalina.startup.Bootstrap" in a for a in proc.cmdline)
    return proc.name in product.processes or os.path.basename(proc.exe or "") in product.processes


def _config_arg(product: Product, proc) -> Optional[str]:
    """The configuration a running web server was started with (nginx -c, httpd -f, Tomcat's catalina.base)."""
    args = list(proc.cmdline)
    flag = {"nginx": "-c", "httpd": "-f"}.get(product.kind)
    if flag is not None:
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(flag) and len(a) > 2:
                return a[2:]
    if product.kind == "tomcat":
        for a in args:
            if a.startswith("-Dcatalina.base="):
                return a.split("=", 1)[1]
    return None


def _live_instance(product: Product, proc, sock: SocketInfo) -> str:
    if product.port is not None:  # a network daemon: its port
        return str(sock.port)
    return _config_arg(product, proc) or _DEFAULT_CONFIG.get(product.kind, "")


_DEFAULT_CONFIG = {"nginx": "/etc/nginx/nginx.conf", "httpd": "/etc/apache2/apache2.conf",
                   "tomcat": "/etc/tomcat10"}


def _configured(ctx: ProbeContext, product: Product) -> list[_Found]:
    """Instances the configuration files declare, as the product (or its distribution's packaging) lays them out."""
    host, kind = ctx.host, product.kind
    out: list[_Found] = []
    if kind == "redis":
        # Debian: /etc/redis/redis.conf, and redis-server@NAME.service reads /etc/redis/redis-NAME.conf
        paths = ["/etc/redis/redis.conf", "/etc/redis.conf"] + sorted(host.glob("/etc/redis/redis-*.conf"))
        for path in paths:
            text = host.read_optional(path)
            if text is None:
                continue
            port = _last_directive(text, "port", r"\d+")
            p = int(port) if port is not None else product.port  # redis.conf without `port`: 6379
            f = _Found(kind, str(p) if p else path, port=p or None, config=path, facts=[f"{path}: port {p}"])
            out.append(f)
    elif kind == "postgresql":
        # Debian's clusters (/etc/postgresql/VERSION/CLUSTER), RHEL's data directories
        rhel = ["/var/lib/pgsql/data/postgresql.conf", *sorted(host.glob("/var/lib/pgsql/*/data/postgresql.conf"))]
        paths = sorted(host.glob("/etc/postgresql/*/*/postgresql.conf")) + [p for p in rhel if host.exists(p)]
        for path in paths:
            text = host.read_optional(path) or ""
            port = _last_directive(text, "port", r"\d+", sep=r"\s*=?\s*")
            p = int(port) if port is not None else 5432
            out.append(_Found(kind, str(p), port=p, config=path, facts=[f"{path}: port {p}"]))
    elif kind == "mysql":
        option_files = _mysql_port(ctx)
        if option_files is not None:
            number, config, fact = option_files
            out.append(_Found(kind, str(number), port=number, config=config, facts=[fact]))
    else:
        candidates = {"nginx": ["/etc/nginx/nginx.conf"],
                      "httpd": ["/etc/apache2/apache2.conf", "/etc/httpd/conf/httpd.conf"],
                      "tomcat": [d for d in sorted(host.glob("/etc/tomcat*")) if host.exists(f"{d}/server.xml")]}
        for path in candidates[kind]:
            if host.exists(path):
                out.append(_Found(kind, path, config=path, facts=[f"{path} present"]))
    # one instance per key (two files naming one port are one server's, the first file is its config)
    unique: dict[str, _Found] = {}
    for f in out:
        unique.setdefault(f.instance, f)
    return list(unique.values())


def _mysql_port(ctx: ProbeContext) -> Optional[tuple[int, str, str]]:
    """The port the server's option files give (read as the server reads them, with their !include and
    !includedir: checks/mysql_options.py), else the compiled-in 3306; None without an option file."""
    from .checks.mysql import START_FILES, _server_options
    from .checks.mysql_options import effective

    try:
        _, files, options = _server_options(ctx, list(START_FILES))
    except (ProbeError, NotApplicable):
        return None
    if not files.files:
        return None
    setting = effective(options, "port", "int")
    if setting.option is not None and (setting.value or "").isdigit():
        return int(setting.value or 0), files.files[0], (f"{setting.option.path}:{setting.option.line}: "
                                                         f"port {setting.value}")
    return 3306, files.files[0], f"{', '.join(files.files)}: no port set (3306)"


def _last_directive(text: str, name: str, value: str, sep: str = r"\s+") -> Optional[str]:
    """The last uncommented `name value` line's value (Redis and PostgreSQL: the last setting wins)."""
    found = None
    for m in re.finditer(rf"(?im)^[ \t]*{name}{sep}['\"]?({value})['\"]?[ \t]*(?:#.*)?$", text):
        found = m.group(1)
    return found


__all__ = ["OBJECT_KINDS", "PRODUCTS", "Discovered", "default_name", "discover", "object_name", "short_version"]
