"""nginx (测评对象 kind `nginx`): the effective configuration, as nginx itself reads it.

On a live host, as root, with the nginx binary present, the configuration is nginx's own dump, `nginx -T -c
CONFIG` (every file nginx read, includes resolved by nginx; it only tests, it never signals a server): a
configuration nginx refuses is an error, since nginx would not start with it. Otherwise (an offline root, no
binary, not root) the files are read through the host view with nginx's rules (checks/_nginx_conf.py). Values
not set anywhere are nginx's compiled-in defaults for the installed version (nginx.org module documentation):
server_tokens on, autoindex off, ssl_ciphers HIGH:!aNULL:!MD5, ssl_protocols TLSv1 TLSv1.1 TLSv1.2 before
1.23.4, with TLSv1.3 from 1.23.4, TLSv1.2 TLSv1.3 from 1.27.3; access_log is the build's --http-log-path in the
`combined` format. What OpenSSL then offers for those protocols and ciphers: checks/_tls.py.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import Field, field_validator

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from . import _nginx_conf as nc
from ._tls import offer, openssl
from .packages import find_installed

DEFAULT_CONFIG = "/etc/nginx/nginx.conf"
BINARIES = ("/usr/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/usr/local/sbin/nginx")
PACKAGES = ["nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras", "nginx-mainline", "openresty"]
DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"
COMBINED = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" ' \
           '"$http_user_agent"'
# What an assessor needs of an access-log line (date and time, who, what, outcome), by the variables that give it.
LOG_FIELDS = {
    "time": ("$time_local", "$time_iso8601", "$msec"),
    "client": ("$remote_addr", "$binary_remote_addr", "$realip_remote_addr", "$http_x_forwarded_for"),
    "request": ("$request", "$request_uri", "$uri"),
    "status": ("$status",),
}
# Stock pages nginx (or a package's document root) serves before anyone puts a site there.
DEFAULT_PAGES = {"Welcome to nginx!": "nginx welcome page", "Apache2 Debian Default Page": "Debian apache2 page",
                 "Apache2 Ubuntu Default Page": "Ubuntu apache2 page", "Test Page for the Nginx HTTP Server":
                 "RHEL nginx test page", "Test Page for the HTTP Server": "RHEL test page"}
_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_TIME = re.compile(r"(\d+)(ms|y|M|w|d|h|m|s)?")
_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
SIZES = {"client_max_body_size", "client_body_buffer_size", "large_client_header_buffers"}
PASSES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass", "memcached_pass")
TIMES = {"keepalive_timeout", "client_body_timeout", "client_header_timeout", "send_timeout", "ssl_session_timeout"}


class NginxParams(Strict):
    config: Optional[str] = Field(None, description="main configuration file (nginx -c); None: the object's "
                                  "(ctx.target.config, as discovery or --object names it), else /etc/nginx/nginx.conf")
    binary: Optional[str] = Field(None, description="nginx binary; None: the first of /usr/sbin/nginx, ...")

    @field_validator("config", "binary")
    @classmethod
    def _absolute(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute host path")
        return v


def config_of(ctx: ProbeContext, params: NginxParams) -> str:
    """The instance's nginx.conf: the check's own, else the judged object's, else the packages' default."""
    target = ctx.target
    named = target.config or (target.instance if target.instance.startswith("/") else None)
    return params.config or (named if target.kind == "nginx" and named else None) or DEFAULT_CONFIG


@dataclass
class Loaded:
    conf: nc.NginxConf
    version: Optional[tuple[int, ...]]
    version_source: str
    prefix: str
    http_log: str
    evidence: list[Evidence]


# ---- loading -----------------------------------------------------------------------------------------------


def _binary(ctx: ProbeContext, params: NginxParams) -> Optional[str]:
    candidates = (params.binary,) if params.binary else BINARIES
    return next((b for b in candidates if b and ctx.host.exists(b)), None)


def _version(text: str) -> Optional[tuple[int, ...]]:
    m = re.search(r"nginx/(\d+(?:\.\d+)+)", text) or re.search(r"^(?:\d+:)?(\d+(?:\.\d+)+)", text)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def load(ctx: ProbeContext, params: NginxParams) -> Loaded:
    """The instance's whole configuration, its version and build paths (cached per run per instance)."""

    config = config_of(ctx, params)

    def compute() -> Loaded:
        binary = _binary(ctx, params)
        if binary is None and not ctx.host.exists(config):
            raise NotApplicable(f"nginx is not installed ({config} and the nginx binary are absent)",
                                f"未安装 nginx（{config} 与 nginx 程序均不存在）")
        if not ctx.host.exists(config):
            raise ProbeError(f"{config} does not exist: no nginx configuration to judge there (nginx is installed; "
                             "name the instance's file with --object nginx:FILE)",
                             f"{config} 不存在，无可判定的 nginx 配置（已安装 nginx；"
                             "请用 --object nginx:文件 指定实例）")
        ev: list[Evidence] = []
        version, vsource, prefix, http_log = None, "", "/usr/share/nginx", "/var/log/nginx/access.log"
        if ctx.host.live and binary and os.geteuid() == 0:
            info = ctx.host.run([binary, "-V"], timeout=10)
            text = info.stderr + info.stdout
            version, vsource = _version(text), f"{binary} -V"
            prefix = _flag(text, "prefix") or prefix
            http_log = _flag(text, "http-log-path") or http_log
            dump = ctx.host.run([binary, "-T", "-c", config], timeout=15)
            if not dump.ok:
                complaint = next((ln.strip() for ln in dump.stderr.splitlines() if "[emerg]" in ln),
                                 dump.stderr.strip()[:300] or f"exit status {dump.returncode}")
                raise ProbeError(f"nginx refuses this configuration ({binary} -t -c {config}: {complaint}); "
                                 "nginx would not start with it and a running nginx keeps its previous settings",
                                 f"nginx 拒绝该配置（{binary} -t -c {config}：{complaint}），nginx 无法以此配置"
                                 "启动，运行中的 nginx 仍沿用旧配置")
            files = nc.split_dump(dump.stdout)
            conf = nc.load(config, files.get, nc.dump_glob(files), f"{binary} -T -c {config}")
            ev.append(evidence(f"cmd: {binary} -T -c {config}",
                               f"accepted by nginx; {len(files)} configuration files: " + ", ".join(files)))
        else:
            conf = nc.load(config, ctx.host.read_optional, ctx.host.glob, "files")
            hits, _ = find_installed(ctx, PACKAGES) if _has_package_db(ctx) else ([], None)
            if hits:
                version, vsource = _version(hits[0].version), f"package {hits[0].label}"
            ev.append(evidence(config, "read as nginx reads it: " + ", ".join(conf.files)))
        for inc in conf.includes:
            ev.append(evidence(inc.path, f"include {inc.pattern} -> " + (", ".join(inc.files) or "no file"), inc.line))
        return Loaded(conf, version, vsource, prefix, http_log, ev)

    return ctx.cached(("nginx", config, params.binary), compute)


def _flag(text: str, name: str) -> Optional[str]:
    m = re.search(rf"--{name}=(\S+)", text)
    return m.group(1) if m else None


def _has_package_db(ctx: ProbeContext) -> bool:
    return any(ctx.host.exists(p) for p in ("/var/lib/dpkg/status", "/var/lib/rpm", "/usr/lib/sysimage/rpm"))


def _servers(loaded: Loaded) -> list[nc.Node]:
    found = nc.servers(loaded.conf)
    if not found:
        raise NotApplicable("nginx serves no HTTP site: the configuration has no server block",
                            "nginx 未配置任何 HTTP 站点（无 server 块）")
    return found


def _scopes(loaded: Loaded) -> list[nc.Node]:
    return [s for srv in _servers(loaded) for s in (srv, *nc.locations(srv))]


def _value(name: str, nodes: list[nc.Node], default: Optional[str]) -> Any:
    raw = "; ".join(" ".join(n.args) for n in nodes) if nodes else default
    if raw is None:
        return None
    if name in SIZES:
        m = _SIZE.match(raw.split()[0])
        return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()] if m else raw
    if name in TIMES:
        word = raw.split()[0]
        parts = _TIME.findall(word)
        if parts and "".join(n + u for n, u in parts) == word:
            return sum(int(n) * _TIME_UNITS[u or "s"] for n, u in parts)
        return raw
    return raw.lower() if name in ("server_tokens", "autoindex") else raw


def _line_evidence(nodes: list[nc.Node], what: str) -> list[Evidence]:
    return [evidence(n.path, f"{n.text}; ({what})", n.line) for n in nodes]


# ---- probes ------------------------------------------------------------------------------------------------


class DirectivesParams(NginxParams):
    names: dict[str, Optional[str]] = Field(min_length=1, description="directive -> nginx's default (None: none)")


@probe("nginx.directives", DirectivesParams)
def nginx_directives(ctx: ProbeContext, params: DirectivesParams) -> Observation:
    """Per server and location: {scope, <directive>: effective value} (inherited from server/http, else default)."""
    loaded = load(ctx, params)
    observed, ev, defaulted = [], list(loaded.evidence), set()
    for scope in _scopes(loaded):
        row: dict[str, Any] = {"scope": nc.label(scope)}
        for name, default in params.names.items():
            nodes, level = nc.effective(scope, name)
            row[name] = _value(name, nodes, default)
            if level is None:
                defaulted.add(name)
            elif level is scope or level.name in ("http", "main"):
                ev.extend(e for e in _line_evidence(nodes, f"applies in {nc.label(scope)}")
                          if all(e.source != x.source or e.line != x.line for x in ev))
        observed.append(row)
    note = note_zh = None
    if defaulted:
        note = "not set, nginx's default applies: " + ", ".join(f"{n} {params.names[n]}" for n in sorted(defaulted))
        note_zh = "未设置，采用 nginx 默认值：" + "，".join(f"{n} {params.names[n]}" for n in sorted(defaulted))
        ev.append(evidence(loaded.conf.config, note))
    return Observation(observed=observed, evidence=ev, note=note, note_zh=note_zh)


class MainParams(NginxParams):
    name: str = Field(min_length=1)
    default: Optional[str] = None


@probe("nginx.main", MainParams)
def nginx_main(ctx: ProbeContext, params: MainParams) -> Observation:
    """A directive of the main context (user, worker_processes): its value (first line's), or the default."""
    loaded = load(ctx, params)
    nodes = loaded.conf.root.find(params.name)
    ev = list(loaded.evidence)
    if nodes:
        ev.append(evidence(nodes[0].path, nodes[0].text, nodes[0].line))
        return Observation(observed=" ".join(nodes[0].args), evidence=ev)
    ev.append(evidence(loaded.conf.config, f"{params.name} not set in the main context; default {params.default}"))
    return Observation(observed=params.default, evidence=ev, note=f"{params.name} not set; default {params.default}",
                       note_zh=f"未设置 {params.name}，采用默认值 {params.default}")


def _listens(server: nc.Node) -> list[nc.Node]:
    return server.find("listen") or [nc.Node("listen", ("*:80",), server.path, server.line, None, server)]


def _is_ssl(server: nc.Node, listen: nc.Node) -> bool:
    on = any(n.args[:1] == ("on",) for n in server.find("ssl"))  # `ssl on;` (removed in 1.25.1)
    return on or "ssl" in listen.args[1:]


def _https_redirect(server: nc.Node) -> Optional[nc.Node]:
    """A server-level (or `location /`) return/rewrite that sends every request to https://."""
    scopes = [server] + [loc for loc in nc.blocks(server, "location") if loc.args in (("/",), ("=", "/"))]
    for scope in scopes:
        for node in scope.find("return"):
            if len(node.args) == 2 and node.args[0] in ("301", "302", "303", "307", "308") \
                    and node.args[1].startswith("https://"):
                return node
        for node in scope.find("rewrite"):
            if len(node.args) >= 2 and node.args[1].startswith("https://"):
                return node
    return None


@probe("nginx.listeners", NginxParams)
def nginx_listeners(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per listen of each server: {server, listen, ssl, redirect} (redirect: every request is sent to https://)."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    for server in _servers(loaded):
        redirect = _https_redirect(server)
        for listen in _listens(server):
            ssl = _is_ssl(server, listen)
            observed.append({"server": nc.label(server), "listen": " ".join(listen.args), "ssl": ssl,
                             "redirect": redirect is not None})
            ev.append(evidence(listen.path, listen.text + (" (TLS)" if ssl else "") +
                               (f"; redirected by {redirect.where}: {redirect.text}" if redirect else ""), listen.line))
    return Observation(observed=observed, evidence=ev)


def default_protocols(version: Optional[tuple[int, ...]]) -> Optional[list[str]]:
    if version is None:
        return None
    if version >= (1, 27, 3):
        return ["TLSv1.2", "TLSv1.3"]
    if version >= (1, 23, 4):
        return ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    return ["TLSv1", "TLSv1.1", "TLSv1.2"]


@probe("nginx.tls", NginxParams)
def nginx_tls(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per TLS server: {server, configured, protocols, weak_protocols, weak_ciphers, security_level}: what a
    handshake can negotiate with the effective ssl_protocols/ssl_ciphers and the host's OpenSSL."""
    loaded = load(ctx, params)
    lib = openssl(ctx)
    observed, ev = [], list(loaded.evidence) + list(lib.evidence)
    for server in _servers(loaded):
        if not any(_is_ssl(server, listen) for listen in _listens(server)):
            continue
        pnodes, _ = nc.effective(server, "ssl_protocols")
        cnodes, _ = nc.effective(server, "ssl_ciphers")
        if pnodes:
            protocols = list(pnodes[-1].args)
            ev.append(evidence(pnodes[-1].path, f"{pnodes[-1].text}; (applies in {nc.label(server)})", pnodes[-1].line))
        else:
            default = default_protocols(loaded.version)
            if default is None:
                raise ProbeError(f"ssl_protocols is not set for {nc.label(server)} and nginx's version is unknown, so "
                                 "its default cannot be told", f"{nc.label(server)} 未设置 ssl_protocols，且无法得知 "
                                 "nginx 版本，无法确定其默认值")
            protocols = default
            ev.append(evidence(loaded.conf.config, f"ssl_protocols not set for {nc.label(server)}: nginx "
                               f"{'.'.join(map(str, loaded.version or ()))} default {' '.join(default)} "
                               f"({loaded.version_source})"))
        ciphers = cnodes[-1].args[0] if cnodes and cnodes[-1].args else DEFAULT_CIPHERS
        if cnodes:
            ev.append(evidence(cnodes[-1].path, f"{cnodes[-1].text}; (applies in {nc.label(server)})", cnodes[-1].line))
        got = offer(lib, protocols, ciphers)
        observed.append({"server": nc.label(server), "configured": list(got.configured),
                         "protocols": list(got.protocols), "refused_by_openssl": list(got.refused),
                         "weak_protocols": list(got.weak_protocols), "weak_ciphers": list(got.weak_ciphers),
                         "ciphers": ciphers, "security_level": got.level})
    if not observed:
        raise NotApplicable("no nginx server listens with TLS", "nginx 没有启用 TLS 的站点")
    return Observation(observed=observed, evidence=ev)


def _access_rules(scope: nc.Node) -> list[tuple[str, str]]:
    """(allow|deny, address) in order, from the nearest level that has any (the access module's inheritance)."""
    for level in nc.chain(scope):
        rules = [(c.name, c.args[0] if c.args else "") for c in level.children or [] if c.name in ("allow", "deny")]
        if rules:
            return rules
    return []


def restriction(scope: nc.Node) -> tuple[bool, str]:
    """Whether a request from an arbitrary address without credentials is refused in `scope`, and how."""
    rules = _access_rules(scope)
    first_all = next((verb for verb, addr in rules if addr == "all"), None)
    by_address = first_all == "deny"  # a rule list without `deny all` lets unlisted addresses through
    open_to_all = first_all == "allow"
    auth_nodes, _ = nc.effective(scope, "auth_basic")
    auth = bool(auth_nodes) and auth_nodes[-1].args[:1] != ("off",)
    internal = bool(scope.find("internal"))
    satisfy, _ = nc.effective(scope, "satisfy")
    any_ = bool(satisfy) and satisfy[-1].args[:1] == ("any",)
    how = [w for w, on in (("allow/deny ending in deny all", by_address), ("auth_basic", auth),
                           ("internal", internal)) if on]
    if internal:
        return True, "internal"
    restricted = (by_address or auth) and not (any_ and open_to_all)
    return restricted, ", ".join(how) if restricted else ("open: " + (
        "satisfy any with allow all" if any_ and open_to_all else "no allow/deny ending in deny all, no auth_basic"))


@probe("nginx.status_pages", NginxParams)
def nginx_status_pages(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per location serving stub_status (or nginx Plus `status`/`api`): {location, restricted, how}."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    for scope in _scopes(loaded):
        if scope.name != "location":
            continue
        hit = next((n for n in scope.children or [] if n.name in ("stub_status", "status", "api")
                    and n.args[:1] != ("off",)), None)
        if hit is None:
            continue
        restricted, how = restriction(scope)
        observed.append({"location": nc.label(scope), "directive": hit.text, "restricted": restricted, "how": how})
        ev.append(evidence(hit.path, f"{hit.text}; ({how})", hit.line))
    return Observation(observed=observed, evidence=ev)


@probe("nginx.default_pages", NginxParams)
def nginx_default_pages(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Servers whose `/` is a stock page: ["SERVER serves FILE (PAGE)"], from the effective root and index of `/`."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    for server in _servers(loaded):
        if _https_redirect(server) is not None or server.find("return"):
            continue
        slash = next((loc for loc in nc.blocks(server, "location") if loc.args in (("/",), ("=", "/"))), None)
        scope = slash or server
        if any(scope.find(d) for d in PASSES + ("return",)):
            continue  # `/` is answered by an application, not by a file
        roots, _ = nc.effective(scope, "root")
        root = roots[-1].args[0] if roots else "html"
        if not root.startswith("/"):
            root = f"{loaded.prefix.rstrip('/')}/{root}"
        if "$" in root:
            continue
        indexes, _ = nc.effective(scope, "index")
        names = [a for n in indexes for a in n.args] if indexes else ["index.html"]
        for name in names:
            path = f"{root.rstrip('/')}/{name}"
            if "$" in name or not ctx.host.exists(path) or ctx.host.is_dir(path):
                continue
            text = ctx.host.read_text(path, limit=1 << 16)
            page = next((what for marker, what in DEFAULT_PAGES.items() if marker in text), None)
            ev.append(evidence(path, f"index of / for {nc.label(server)}: {page or 'not a stock page'}"))
            if page:
                observed.append(f"{nc.label(server)} serves {path} ({page})")
            break
    return Observation(observed=observed, evidence=ev)


@probe("nginx.access_logs", NginxParams)
def nginx_access_logs(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per server and location: {scope, disabled, targets, formats, missing} (missing: record fields some log
    format in use lacks: time, client, request, status; an undefined format lacks all)."""
    loaded = load(ctx, params)
    formats = {"combined": COMBINED}
    for http in nc.blocks(loaded.conf.root, "http"):
        for node in http.find("log_format"):
            if node.args:
                formats[node.args[0]] = " ".join(a for a in node.args[1:] if a not in ("escape=default",
                                                                                      "escape=json", "escape=none"))
    observed, ev = [], list(loaded.evidence)
    for scope in _scopes(loaded):
        nodes, level = nc.effective(scope, "access_log")
        off = any(n.args[:1] == ("off",) for n in nodes)
        targets = [n.args[0] for n in nodes if n.args and n.args[0] != "off"] or ([] if nodes else [loaded.http_log])
        used = [n.args[1] if len(n.args) > 1 and "=" not in n.args[1] else "combined"
                for n in nodes if n.args and n.args[0] != "off"] or ["combined"]
        missing = [f for f, names in LOG_FIELDS.items()
                   if any(formats.get(fmt) is None or not any(v in formats[fmt] for v in names) for fmt in used)]
        devnull = [t for t in targets if t == "/dev/null"]
        observed.append({"scope": nc.label(scope), "disabled": off or bool(devnull) or not targets, "targets": targets,
                         "formats": list(dict.fromkeys(used)), "missing": missing})
        if level is None:
            ev.append(evidence(loaded.conf.config, f"access_log not set for {nc.label(scope)}: default "
                               f"{loaded.http_log} combined"))
        elif level is scope or off:
            ev.extend(_line_evidence(nodes, f"applies in {nc.label(scope)}"))
    return Observation(observed=observed, evidence=ev)


@probe("nginx.log_files", NginxParams)
def nginx_log_files(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Every file access_log/error_log writes to: [{path, mode, owner_uid, directive}], from the file system."""
    loaded = load(ctx, params)
    paths: dict[str, nc.Node] = {}

    def walk(node: nc.Node) -> None:
        for child in node.children or []:
            if child.name in ("access_log", "error_log") and child.args:
                target = child.args[0]
                if target in ("off", "stderr", "/dev/null") or target.startswith(("syslog:", "memory:")) \
                        or "$" in target:
                    continue
                full = target if target.startswith("/") else f"{loaded.prefix.rstrip('/')}/{target}"
                paths.setdefault(full, child)
            walk(child)

    walk(loaded.conf.root)
    if not any(c.name == "access_log" for c in _all(loaded.conf.root)):
        paths.setdefault(loaded.http_log, loaded.conf.root)
    observed, ev = [], list(loaded.evidence)
    for path, node in paths.items():
        try:
            st = ctx.host.stat(path)
        except FileNotFoundError:
            ev.append(evidence(path, "not created yet (nginx creates it when it starts)"))
            continue
        facts, text = file_facts(st, path)
        observed.append({**facts, "directive": node.text if node.name != "main" else "access_log (default)"})
        ev.append(evidence(path, f"{text} ({node.where}: {node.text})"))
    if not observed:
        raise NotApplicable("no nginx log file exists yet", "nginx 日志文件尚未生成")
    return Observation(observed=observed, evidence=ev)


def _all(node: nc.Node) -> list[nc.Node]:
    out = []
    for child in node.children or []:
        out.append(child)
        out.extend(_all(child))
    return out


@probe("nginx.config_files", NginxParams)
def nginx_config_files(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Every configuration file nginx reads: [{path, mode, owner_uid}]."""
    loaded = load(ctx, params)
    return config_files(ctx, loaded.conf.files, list(loaded.evidence))


def file_facts(st: Any, path: str) -> tuple[dict[str, Any], str]:
    """{path, mode, owner_uid} of a file a web server reads or writes, from its stat, and the evidence text;
    shared with httpd."""
    mode = f"{st.st_mode & 0o7777:04o}"
    return {"path": path, "mode": mode, "owner_uid": st.st_uid}, f"mode {mode} uid {st.st_uid}"


def config_files(ctx: ProbeContext, files: list[str], ev: list[Evidence]) -> Observation:
    """[{path, mode, owner_uid}] of every configuration file the server reads (each once); shared with httpd."""
    observed = []
    for path in dict.fromkeys(files):
        facts, text = file_facts(ctx.host.stat(path), path)
        observed.append(facts)
        ev.append(evidence(path, text))
    return Observation(observed=observed, evidence=ev)


_METHOD_IF = re.compile(r"^\(?\$request_method$")


@probe("nginx.methods", NginxParams)
def nginx_methods(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per server: {server, restricted, how}: methods outside a list are refused, by a server-level
    `if ($request_method !~ ^(GET|POST)$) { return 4xx; }` (a negated match: a list of what is allowed), by
    limit_except in every location that passes requests to an application, or because the server only serves
    files (the static module answers other methods with 405; nginx answers TRACE with 405 in any case)."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    for server in _servers(loaded):
        how = None
        for node in nc.blocks(server, "if"):
            if len(node.args) >= 3 and _METHOD_IF.match(node.args[0]) and node.args[1] in ("!~", "!~*", "!=") and any(
                    r.args[:1] and r.args[0].isdigit() and int(r.args[0]) >= 400 for r in node.find("return")):
                how = f"{node.where}: if {' '.join(node.args)} return"
        locs = nc.locations(server)
        passing = [loc for loc in locs if any(loc.find(d) for d in PASSES + ("dav_methods",))]
        if how is None and locs and all(nc.blocks(loc, "limit_except") for loc in passing or locs):
            how = "limit_except in every location" + (" that passes requests on" if passing else "")
        if how is None and not passing and not any(server.find(d) for d in PASSES + ("dav_methods",)):
            how = "static files only: nginx's static module refuses methods other than GET, HEAD and POST (405)"
        observed.append({"server": nc.label(server), "restricted": how is not None, "how": how or "no restriction"})
        ev.append(evidence(server.path, f"{nc.label(server)}: {how or 'any method accepted'}", server.line))
    return Observation(observed=observed, evidence=ev)


def key_files(ctx: ProbeContext, pairs: list[tuple[str, str, Evidence]]) -> Observation:
    """[{server, path, mode, owner_uid}] for (server label, key path, where it is set); shared with httpd."""
    observed, ev = [], []
    for server, path, where in pairs:
        try:
            st = ctx.host.stat(path)
        except FileNotFoundError:
            raise ProbeError(f"{path}: the private key {server} names does not exist; the server would not start",
                             f"{path}：{server} 配置的私钥文件不存在，服务器无法启动") from None
        facts, text = file_facts(st, path)
        observed.append({"server": server, **facts})
        ev.append(where)
        ev.append(evidence(path, text))
    if not observed:
        raise NotApplicable("no server uses TLS, so no private key is configured", "没有启用 TLS 的站点，未配置私钥")
    return Observation(observed=observed, evidence=ev)


@probe("nginx.tls_keys", NginxParams)
def nginx_tls_keys(ctx: ProbeContext, params: NginxParams) -> Observation:
    """Per TLS server: {server, path, mode, owner_uid} of each ssl_certificate_key in effect (files only)."""
    loaded = load(ctx, params)
    conf_dir = os.path.dirname(loaded.conf.config)
    pairs = []
    for server in _servers(loaded):
        if not any(_is_ssl(server, listen) for listen in _listens(server)):
            continue
        nodes, _ = nc.effective(server, "ssl_certificate_key")
        for node in nodes:
            key = node.args[0] if node.args else ""
            if not key or key.startswith(("data:", "engine:")) or "$" in key:
                continue
            path = key if key.startswith("/") else f"{conf_dir}/{key}"
            pairs.append((nc.label(server), path, evidence(node.path, node.text, node.line)))
    unique = {(server, path): (server, path, where) for server, path, where in pairs}
    obs = key_files(ctx, list(unique.values()))
    obs.evidence = loaded.evidence + obs.evidence
    return obs
