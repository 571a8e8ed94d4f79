"""Apache Tomcat probes (测评对象 kind `tomcat`): CATALINA_BASE's configuration as Tomcat 10.1 reads it.

File probes (`tomcat.server`, `tomcat.apps`, `tomcat.users`) read through the host view, so they work offline
under `--root` too (checks/_tomcat_conf.py says what is modelled). `tomcat.process` (live only) finds the JVM
running that CATALINA_BASE and the account it runs as. The installed version comes from the package database
(tomcat10 on Debian, tomcat on the RHEL family); only 10.x is modelled. Passwords never reach the evidence.
"""
from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Any, Optional

from pydantic import Field

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from . import _tomcat_conf as tc
from ._passwords import weak_reason
from .packages import find_installed

PACKAGES = ["tomcat10", "tomcat"]
ADMIN_ROLES = frozenset({"manager-gui", "manager-script", "manager-jmx", "manager-status", "admin-gui",
                         "admin-script", "manager", "admin"})
_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|0:0:0:0:0:0:0:1|localhost)$", re.IGNORECASE)
# Addresses an administrator's valve should refuse: an allow pattern matching one of them is not loopback-only.
_REMOTE_SAMPLES = ("10.1.2.3", "192.168.1.10", "172.16.0.5", "203.0.113.7", "2001:db8::1")
_DEFAULT_PAGE = re.compile(r"If you're seeing this|It works !|successfully installed Tomcat", re.IGNORECASE)


class TomcatParams(Strict):
    base: str = Field(default="/var/lib/tomcat10", pattern=r"^/")  # CATALINA_BASE
    home: str = Field(default="/usr/share/tomcat10", pattern=r"^/")  # CATALINA_HOME


def installed_version(ctx: ProbeContext) -> tuple[str, Evidence]:
    def load() -> tuple[str, Evidence]:
        hits, db = find_installed(ctx, PACKAGES)
        if not hits:
            raise NotApplicable(f"Tomcat is not installed (no {' or '.join(PACKAGES)} package in {db.source})",
                                f"未安装 Tomcat（{db.source} 中没有 {' 或 '.join(PACKAGES)} 软件包）")
        pkg = hits[0]
        m = re.match(r"^(?:\d+:)?(\d+\.\d+(?:\.\d+)?)", pkg.version)
        if not m or not m.group(1).startswith("10."):
            raise ProbeError(f"Tomcat {pkg.version} is installed; sentinel models Tomcat 10's configuration",
                             f"已安装 Tomcat {pkg.version}；sentinel 仅按 Tomcat 10 解读配置")
        return m.group(1), evidence(db.source, f"{pkg.name} {pkg.version}", pkg.line)

    return ctx.cached(("tomcat", "version"), load)


def load_conf(ctx: ProbeContext, params: TomcatParams) -> tc.TomcatConf:
    def load() -> tc.TomcatConf:
        installed_version(ctx)
        return tc.load(ctx.host.read_optional, params.base, params.home)

    return ctx.cached(("tomcat", "conf", params.base, params.home), load)


def _ev(el: tc.Element) -> Evidence:
    return evidence(el.path, el.shown(), el.line)


# Where Debian's tomcat-locate-java.sh looks for a JVM when /etc/default/tomcat10 sets no JAVA_HOME, in order.
_JVM_GLOBS = ["/usr/lib/jvm/default-java"] + [pattern.format(v) for v in (25, 24, 23, 22, 21, 17, 11) for pattern in (
    "/usr/lib/jvm/java-{}-openjdk-*", "/usr/lib/jvm/jdk-{}-oracle-*", "/usr/lib/jvm/jre-{}-oracle-*",
    "/usr/lib/jvm/java-{}-oracle", "/usr/lib/jvm/oracle-java{}-jdk-*", "/usr/lib/jvm/oracle-java{}-jre-*")]


def jvm_disabled_protocols(ctx: ProbeContext) -> tuple[frozenset[str], list[Evidence]]:
    """Protocols the JVM Tomcat runs on refuses (its java.security jdk.tls.disabledAlgorithms), and where that was
    read; the JVM as Debian's tomcat-locate-java.sh picks it (JAVA_HOME in /etc/default/tomcat10, else the first
    of its list with bin/java). No JVM found: nothing is known to be disabled."""

    def load() -> tuple[frozenset[str], list[Evidence]]:
        home = None
        defaults = ctx.host.read_optional("/etc/default/tomcat10") or ""
        m = re.search(r'^\s*(?:export\s+)?JAVA_HOME=["\']?([^"\'\s]+)', defaults, re.M)
        if m:
            home = m.group(1)
        else:
            for pattern in _JVM_GLOBS:
                found = [d for d in ctx.host.glob(pattern) if ctx.host.exists(posixpath.join(d, "bin", "java"))]
                if found:
                    home = found[0]
                    break
        if home is None:
            return frozenset(), [evidence("/usr/lib/jvm", "no JVM found: Tomcat's own protocol list is judged")]
        for rel in ("conf/security/java.security", "jre/lib/security/java.security"):
            path = posixpath.join(home, rel)
            text = ctx.host.read_optional(path)
            if text is not None:
                value = tc.parse_properties(text).get("jdk.tls.disabledAlgorithms", "")
                names = {t.strip() for t in value.split(",")}
                off = frozenset(p for p in (*tc.ALL_PROTOCOLS, "SSLv3", "SSLv2") if p in names)
                return off, [evidence(path, f"jdk.tls.disabledAlgorithms: {', '.join(sorted(off)) or 'no protocol'}"
                                            f" (JVM {home})")]
        return frozenset(), [evidence(home, "no java.security found: Tomcat's own protocol list is judged")]

    return ctx.cached(("tomcat", "jvm-tls"), load)


def _server_info(ctx: ProbeContext, conf: tc.TomcatConf) -> tuple[Optional[str], list[Evidence]]:
    """server.info from a ServerInfo.properties override, or None when the one in catalina.jar applies."""
    for root in (conf.base, conf.home):
        path = posixpath.join(root, "lib", "org", "apache", "catalina", "util", "ServerInfo.properties")
        text = ctx.host.read_optional(path)
        if text is not None:
            info = tc.parse_properties(text).get("server.info", "")
            return info, [evidence(path, f"server.info={info}")]
    return None, []


def _error_valve_shows_info(conf: tc.TomcatConf, host: tc.Element) -> tuple[bool, Optional[tc.Element]]:
    cls = conf.attr(host, "errorReportValveClass", "org.apache.catalina.valves.ErrorReportValve") or ""
    for valve in host.find_all("Valve"):
        if (conf.attr(valve, "className") or "") == cls:
            return (conf.attr(valve, "showServerInfo", "true") or "").lower() != "false", valve
    return cls.endswith("ErrorReportValve"), None


@probe("tomcat.server", TomcatParams)
def tomcat_server(ctx: ProbeContext, params: TomcatParams) -> Observation:
    """`{shutdown_port, shutdown_default_command, plaintext_beyond_loopback, ajp_exposed, weak_tls,
    tls_connectors, version_disclosed, access_log, session_timeout, lockout_failures, lockout_seconds}` from
    server.xml and conf/web.xml."""
    conf = load_conf(ctx, params)
    server = conf.server
    ev = [_ev(server)]
    port = int(conf.attr(server, "port", "8005") or "8005")
    command = conf.attr(server, "shutdown", "SHUTDOWN")
    plaintext, ajp, weak, tls_count, headers = [], [], [], 0, []
    jvm_off, jvm_ev = jvm_disabled_protocols(ctx)
    for conn in server.find_all("Connector"):
        ev.append(_ev(conn))
        protocol = conf.attr(conn, "protocol", "HTTP/1.1") or "HTTP/1.1"
        is_ajp = "ajp" in protocol.lower()
        address = conf.attr(conn, "address") or ("localhost" if is_ajp else "*")
        where = f"{conn.path}:{conn.line} port {conf.attr(conn, 'port', '?')} ({protocol}, address {address})"
        loopback = bool(_LOOPBACK.match(address))
        if is_ajp:
            secret_required = (conf.attr(conn, "secretRequired", "true") or "").lower() != "false"
            if not loopback or not secret_required:
                ajp.append(where + ("" if secret_required else ", secretRequired false"))
            continue
        if (conf.attr(conn, "SSLEnabled", "false") or "").lower() == "true":
            tls_count += 1
            hosts: list[Optional[tc.Element]] = list(conn.find_all("SSLHostConfig")) or [None]
            for host_cfg in hosts:
                value = (conf.attr(host_cfg, "protocols", "all") if host_cfg is not None else "all") or "all"
                configured = tc.expand_protocols(value)
                bad = [p for p in configured if p in tc.WEAK_PROTOCOLS and p not in jvm_off]
                if bad:
                    weak.append(f"{where}: {', '.join(bad)} (protocols {value!r})")
                if host_cfg is not None:
                    ev.append(_ev(host_cfg))
        elif not loopback:
            plaintext.append(where)
        if conf.attr(conn, "server"):
            headers.append(conf.attr(conn, "server") or "")
    if tls_count:
        ev += jvm_ev
    info, info_ev = _server_info(ctx, conf)
    ev += info_ev
    shows = []
    for host in server.find_all("Host"):
        show, valve = _error_valve_shows_info(conf, host)
        ev.append(_ev(valve) if valve is not None else _ev(host))
        if show:
            shows.append(conf.attr(host, "name", "localhost"))
    versioned = info is None or bool(re.search(r"\d", info))  # catalina.jar's server.info names the version
    disclosed = bool(shows and versioned) or any(re.search(r"tomcat|\d+\.\d+", h, re.I) for h in headers)
    access = [v for v in server.find_all("Valve") if (conf.attr(v, "className") or "").endswith("AccessLogValve")]
    ev += [_ev(v) for v in access]
    lockout = next((r for r in server.find_all("Realm")
                    if (conf.attr(r, "className") or "").endswith(".LockOutRealm")), None)
    if lockout is not None:
        ev.append(_ev(lockout))
    timeout, timeout_ev = _session_timeout(ctx, conf)
    facts = {"shutdown_port": port, "shutdown_default_command": port != -1 and command == "SHUTDOWN",
             "plaintext_beyond_loopback": plaintext, "ajp_exposed": ajp, "weak_tls": weak,
             "tls_connectors": tls_count, "version_disclosed": disclosed, "access_log": bool(access),
             "session_timeout": timeout,
             # LockOutRealm's defaults: 5 failures lock a user for 300 s
             "lockout_failures": int(conf.attr(lockout, "failureCount", "5") or "5") if lockout else None,
             "lockout_seconds": int(conf.attr(lockout, "lockOutTime", "300") or "300") if lockout else None}
    return Observation(observed=facts, evidence=[*ev, timeout_ev])


def _session_timeout(ctx: ProbeContext, conf: tc.TomcatConf) -> tuple[int, Evidence]:
    path = posixpath.join(conf.conf_dir, "web.xml")
    text = ctx.host.read_optional(path)
    if text is None:
        raise ProbeError(f"{path}: no such file (Tomcat needs the global web.xml)", f"{path}：文件不存在")
    root = tc.parse_xml(text, path)
    for cfg in root.find_all("session-config"):
        for el in cfg.find_all("session-timeout"):
            value = el.text.strip()
            if not re.fullmatch(r"-?\d+", value):
                raise ProbeError(f"{path}:{el.line}: session-timeout {value!r} is not a number",
                                 f"{path}:{el.line}：session-timeout 不是数字")
            return int(value), evidence(path, f"<session-timeout>{value}</session-timeout>", el.line)
    return tc.SESSION_TIMEOUT_DEFAULT, evidence(path, "no session-timeout: Tomcat's default, 30 minutes")


def _allows_remote(restriction: Optional[str]) -> bool:
    """Whether a context's client-address valve (`KIND allow`, checks/_tomcat_conf.py) lets a remote address in."""
    if restriction is None or restriction.startswith("deny") or restriction.startswith("host "):
        return True  # no valve; a deny list lets everything else in; host names are not judged
    kind, _, allow = restriction.partition(" ")
    if kind == "cidr":
        try:
            nets = [ipaddress.ip_network(n.strip(), strict=False) for n in allow.split(",") if n.strip()]
        except ValueError:
            return True
        return any(ipaddress.ip_address(a) in n for a in _REMOTE_SAMPLES for n in nets
                   if ipaddress.ip_address(a).version == n.version)
    try:
        rx = re.compile(allow)  # RemoteAddrValve: a Java regular expression matched against the whole address
    except re.error:
        return True
    return any(rx.fullmatch(a) for a in _REMOTE_SAMPLES)


@probe("tomcat.apps", TomcatParams)
def tomcat_apps(ctx: ProbeContext, params: TomcatParams) -> Observation:
    """`{deployed, admin_apps, admin_unrestricted, sample_apps, default_root}`: the applications each Host
    deploys (context files and appBase), the manager/host-manager ones and whether a valve keeps them to loopback,
    docs/examples, and whether ROOT still serves the package's default page."""
    conf = load_conf(ctx, params)
    apps = tc.applications(conf, ctx.host.read_optional, ctx.host.listdir, ctx.host.is_dir)
    ev: list[Evidence] = []
    for app in apps:
        detail = f"{app.host}: {app.name} from {app.source}" + (f" (allow {app.restricted_to})" if app.restricted_to
                                                                else "")
        ev.append(evidence(app.source, detail, app.context.line if app.context else None))
    admin = [a for a in apps if a.name in tc.ADMIN_APPS]
    root_default = False
    for app in apps:
        if app.name == "ROOT":
            for page in ("index.html", "index.jsp"):
                text = ctx.host.read_optional(posixpath.join(app.doc_base, page))
                if text is not None and _DEFAULT_PAGE.search(text):
                    root_default = True
                    ev.append(evidence(posixpath.join(app.doc_base, page), "the package's default home page"))
    facts = {"deployed": sorted({a.name for a in apps}),
             "admin_apps": sorted({a.name for a in admin}),
             "admin_unrestricted": sorted({a.name for a in admin if _allows_remote(a.restricted_to)}),
             "sample_apps": sorted({a.name for a in apps if a.name in tc.SAMPLE_APPS}),
             "default_root": root_default}
    return Observation(observed=facts, evidence=ev or [evidence(conf.base, "no application deployed")])


def _users_file(conf: tc.TomcatConf) -> Optional[str]:
    for res in conf.server.find_all("Resource"):
        if "UserDatabase" in (conf.attr(res, "type") or "") or conf.attr(res, "name") == "UserDatabase":
            return tc.resolve(conf, conf.attr(res, "pathname", "conf/tomcat-users.xml") or "conf/tomcat-users.xml")
    return None


@probe("tomcat.users", TomcatParams)
def tomcat_users(ctx: ProbeContext, params: TomcatParams) -> Observation:
    """`{users, weak, admins}` of the UserDatabase (tomcat-users.xml): weak plain passwords (checks/_passwords.py;
    a Realm with a CredentialHandler stores hashes, whose strength is not judged) and the users holding a
    manager or admin role."""
    conf = load_conf(ctx, params)
    path = _users_file(conf)
    if path is None:
        return Observation(observed={"users": [], "weak": [], "admins": []},
                           evidence=[evidence(conf.files[0], "no UserDatabase resource: no tomcat-users.xml users")])
    text = ctx.host.read_optional(path)
    if text is None:
        raise ProbeError(f"{path}: no such file (the UserDatabase resource names it)", f"{path}：文件不存在")
    hashed = any(conf.server.find_all("CredentialHandler"))
    root = tc.parse_xml(text, path)
    users: list[str] = []
    weak: list[str] = []
    admins: list[str] = []
    ev: list[Evidence] = []
    for user in root.find_all("user"):
        name = user.attrs.get("username") or user.attrs.get("name") or ""
        roles = {r.strip() for r in (user.attrs.get("roles") or "").split(",") if r.strip()}
        users.append(name)
        ev.append(_ev(user))
        if not hashed:
            why = weak_reason(name, user.attrs.get("password", ""))
            if why:
                weak.append(f"{name}: {why}")
        if roles & ADMIN_ROLES:
            admins.append(f"{name} ({', '.join(sorted(roles & ADMIN_ROLES))})")
    facts: dict[str, Any] = {"users": sorted(users), "weak": sorted(weak), "admins": sorted(admins)}
    return Observation(observed=facts, evidence=ev or [evidence(path, "no <user> element")])


@probe("tomcat.process", TomcatParams, live_only=True)
def tomcat_process(ctx: ProbeContext, params: TomcatParams) -> Observation:
    """Sorted accounts of the JVMs running this CATALINA_BASE (`-Dcatalina.base=BASE` on their command line)."""
    flag = f"-Dcatalina.base={params.base}"
    procs = [p for p in ctx.host.processes() if flag in p.cmdline]
    if not procs:
        raise ProbeError(f"no running Tomcat with {flag}", f"未发现以 {flag} 运行的 Tomcat")
    return Observation(observed=sorted({p.username for p in procs}),
                       evidence=[evidence(f"process {p.pid}", f"{p.name} {flag} running as {p.username}")
                                 for p in procs])
