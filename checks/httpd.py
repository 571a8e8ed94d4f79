"""Apache httpd (测评对象 kind `httpd`): the effective configuration, as httpd itself reads it.

The files are read through the host view with httpd's rules (checks/_httpd_conf.py): Debian's layout (apache2.conf
with mods-enabled/*.load/*.conf, ports.conf, conf-enabled, sites-enabled, and the variables of envvars) or the
RHEL family's (conf/httpd.conf, conf.modules.d, conf.d). On a live host, as root, httpd checks them itself first:
`apache2 -d ROOT -f CONFIG -t -D DUMP_MODULES -D DUMP_INCLUDES` (httpd on RHEL; envvars passed as apache2ctl does),
which only tests; a configuration it refuses is an error, and its module list is the loaded modules. Unset
directives take httpd 2.4's documented defaults (httpd.apache.org/docs/2.4): ServerTokens Full, ServerSignature Off,
TraceEnable On, Timeout 60, LimitRequestBody 1073741824 from 2.4.54 (0, unlimited, before), Options FollowSymLinks,
SSLProtocol all -SSLv3, SSLCipherSuite DEFAULT, User/Group #-1.
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

from . import _httpd_conf as hc
from ._tls import offer, openssl
from .nginx import DEFAULT_PAGES, config_files, file_facts, key_files
from .packages import find_installed

LAYOUTS = {"debian": ("/etc/apache2/apache2.conf", "/etc/apache2", "/usr/sbin/apache2"),
           "rhel": ("/etc/httpd/conf/httpd.conf", "/etc/httpd", "/usr/sbin/httpd")}
PACKAGES = ["apache2", "apache2-bin", "httpd", "httpd-core"]
# Compiled into Debian's apache2 (apache2 -l) and RHEL's httpd: always loaded, whatever LoadModule says.
STATIC = {"debian": ["core_module", "so_module", "watchdog_module", "http_module", "log_config_module",
                     "logio_module", "version_module", "unixd_module"],
          "rhel": ["core_module", "so_module", "http_module"]}
ALL_PROTOCOLS = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
COMMON = '%h %l %u %t "%r" %>s %b'  # TransferLog's format when no LogFormat sets one
LOG_FIELDS = {"time": ("%t", "%{"), "client": ("%h", "%a"), "request": ("%r", "%U"), "status": ("%s", "%>s")}
_ENV_ERRORS = re.compile(r"DefaultRuntimeDir must be a valid directory|Mutex.*directory|APACHE_RUN_DIR", re.I)


class HttpdParams(Strict):
    config: Optional[str] = Field(None, description="main configuration file (httpd -f); None: the judged object's "
                                  "(ctx.target.config), else the OS family's")
    server_root: Optional[str] = Field(None, description="ServerRoot (-d); None: the OS family's")
    binary: Optional[str] = None

    @field_validator("config", "server_root", "binary")
    @classmethod
    def _absolute(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute host path")
        return v


@dataclass
class Loaded:
    conf: hc.HttpdConf
    modules: list[str]
    version: Optional[tuple[int, ...]]
    family: str
    evidence: list[Evidence]


def _layout(ctx: ProbeContext, params: HttpdParams) -> tuple[str, str, str, str]:
    family = ctx.family if ctx.family in LAYOUTS else next(
        (f for f, (conf, _, _) in LAYOUTS.items() if ctx.host.exists(conf)), "debian")
    conf, root, binary = LAYOUTS[family]
    target = ctx.target
    named = target.config or (target.instance if target.instance.startswith("/") else None)
    config = params.config or (named if target.kind == "httpd" and named else None) or conf
    if params.server_root:
        server_root = params.server_root
    elif config == conf:
        server_root = root
    else:  # Debian's apache2.conf sits in its ServerRoot; RHEL's httpd.conf in ServerRoot/conf
        parent = os.path.dirname(config)
        server_root = os.path.dirname(parent) if os.path.basename(parent) == "conf" else parent
    return family, config, server_root, params.binary or binary


def load(ctx: ProbeContext, params: HttpdParams) -> Loaded:
    def compute() -> Loaded:
        family, config, server_root, binary = _layout(ctx, params)
        has_binary = ctx.host.exists(binary)
        if not has_binary and not ctx.host.exists(config):
            raise NotApplicable(f"Apache httpd is not installed ({config} and {binary} are absent)",
                                f"未安装 Apache httpd（{config} 与 {binary} 均不存在）")
        env = hc.parse_envvars(ctx.host.read_optional(f"{server_root}/envvars") or "")
        ev: list[Evidence] = []
        conf = hc.load(config, server_root, ctx.host.read_optional, ctx.host.glob, ctx.host.is_dir, ctx.host.exists,
                       STATIC[family], env)
        modules = list(conf.modules)
        version = None
        if ctx.host.live and has_binary and os.geteuid() == 0:
            argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items()), binary, "-d", server_root, "-f", config,
                    "-t", "-D", "DUMP_MODULES", "-D", "DUMP_INCLUDES"]
            shown = f"{binary} -d {server_root} -f {config} -t -D DUMP_MODULES -D DUMP_INCLUDES"
            result = ctx.host.run(argv, timeout=20)
            said = result.stdout + result.stderr
            if result.ok:
                modules = re.findall(r"^\s*(\w+_module) \((?:static|shared)\)", result.stdout, re.M)
                ev.append(evidence(f"cmd: {shown}", "accepted by httpd; loaded modules: " + ", ".join(modules)))
            elif _ENV_ERRORS.search(said):
                ev.append(evidence(f"cmd: {shown}", "httpd could not test here (" + said.strip()[-200:] + "); the "
                                   "files were read instead"))
            else:
                complaint = next((ln.strip() for ln in said.splitlines() if "rror" in ln), said.strip()[-300:])
                raise ProbeError(f"httpd refuses this configuration ({shown}: {complaint}); it would not start with "
                                 "it and a running httpd keeps its previous settings",
                                 f"httpd 拒绝该配置（{shown}：{complaint}），httpd 无法以此配置启动，"
                                 "运行中的 httpd 仍沿用旧配置")
            info = ctx.host.run([binary, "-v"], timeout=10)
            m = re.search(r"Apache/(\d+(?:\.\d+)+)", info.stdout)
            version = tuple(int(x) for x in m.group(1).split(".")) if m else None
        else:
            ev.append(evidence(config, "read as httpd reads it: " + ", ".join(conf.files)))
        if version is None and any(ctx.host.exists(p) for p in ("/var/lib/dpkg/status", "/var/lib/rpm",
                                                               "/usr/lib/sysimage/rpm")):
            hits, _ = find_installed(ctx, PACKAGES)
            m = re.match(r"(?:\d+:)?(\d+(?:\.\d+)+)", hits[0].version) if hits else None
            version = tuple(int(x) for x in m.group(1).split(".")) if m else None
        for inc in conf.includes:
            ev.append(evidence(inc.path, f"Include {inc.pattern} -> " + (", ".join(inc.files) or "no file"), inc.line))
        return Loaded(conf, modules, version, family, ev)

    return ctx.cached(("httpd", params.config, params.server_root, params.binary), compute)


def _scopes(loaded: Loaded) -> list[hc.Node]:
    """The main server and each virtual host (a request is answered by one of them)."""
    return [loaded.conf.root, *hc.sections(loaded.conf.root, "virtualhost")]


class DirectivesParams(HttpdParams):
    names: dict[str, Optional[str]] = Field(min_length=1, description="directive -> httpd's default (None: none)")


@probe("httpd.directives", DirectivesParams)
def httpd_directives(ctx: ProbeContext, params: DirectivesParams) -> Observation:
    """Per server (main, each VirtualHost): {scope, <directive>: value}, lower-cased; the vhost's, else the main
    server's, else the default."""
    loaded = load(ctx, params)
    observed, ev, defaulted = [], list(loaded.evidence), set()
    for scope in _scopes(loaded):
        row: dict[str, Any] = {"scope": hc.label(scope)}
        for name, default in params.names.items():
            default = _default(name, default, loaded.version)
            node = hc.effective(scope, name.lower())
            if node is None and default is None and name.lower() == "limitrequestbody":
                raise ProbeError("LimitRequestBody is not set and httpd's version is unknown: its default is 0 "
                                 "(unlimited) before 2.4.54 and 1 GiB from it", "未设置 LimitRequestBody 且无法得知 "
                                 "httpd 版本：2.4.54 之前默认 0（不限制），之后默认 1 GiB")
            value = " ".join(node.args) if node else default
            row[name] = _number(value.lower()) if value is not None else None
            if node is None:
                defaulted.add(f"{name} {default}")
            elif all(e.line != node.line or e.source != node.path for e in ev):
                ev.append(evidence(node.path, node.text, node.line))
        observed.append(row)
    note = note_zh = None
    if defaulted:
        note = "not set, httpd's default applies: " + ", ".join(sorted(defaulted))
        note_zh = "未设置，采用 httpd 默认值：" + "，".join(sorted(defaulted))
    return Observation(observed=observed, evidence=ev, note=note, note_zh=note_zh)


def _default(name: str, default: Optional[str], version: Optional[tuple[int, ...]]) -> Optional[str]:
    if name.lower() == "limitrequestbody" and default is None:
        return None if version is None else ("1073741824" if version >= (2, 4, 54) else "0")
    return default


def _number(value: str) -> Any:
    return int(value) if re.fullmatch(r"\d+", value) else value


@probe("httpd.main", DirectivesParams)
def httpd_main(ctx: ProbeContext, params: DirectivesParams) -> Observation:
    """{directive: value} of the main server (User, Group): its last line, else the default."""
    loaded = load(ctx, params)
    observed, ev = {}, list(loaded.evidence)
    for name, default in params.names.items():
        found = loaded.conf.root.find(name.lower())
        observed[name] = " ".join(found[-1].args) if found else default
        ev.append(evidence(found[-1].path, found[-1].text, found[-1].line) if found else
                  evidence(loaded.conf.config, f"{name} not set; default {default}"))
    return Observation(observed=observed, evidence=ev)


@probe("httpd.modules", HttpdParams)
def httpd_modules(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Sorted loaded modules (httpd -M live, else static + LoadModule lines)."""
    loaded = load(ctx, params)
    return Observation(observed=sorted(set(loaded.modules)), evidence=loaded.evidence)


def _options(loaded: Loaded) -> list[tuple[hc.Node, set[str]]]:
    """Each <Directory> with the Options in effect there: the sections for its path and its parents merged in path
    order (a list without +/- replaces, +X/-X modify), starting from the default FollowSymLinks."""
    dirs = [n for n in hc.walk(loaded.conf.root) if n.name == "directory" and n.args and n.children is not None]
    out = []
    for d in dirs:
        path = d.args[0].rstrip("/") or "/"
        chain = sorted((x for x in dirs if path == (x.args[0].rstrip("/") or "/") or
                        path.startswith((x.args[0].rstrip("/") or "") + "/")), key=lambda x: len(x.args[0]))
        opts = {"followsymlinks"}
        for x in chain:
            for line in x.find("options"):
                words = [w.lower() for w in line.args]
                if words and not any(w[:1] in "+-" for w in words):
                    opts = set(words)
                    if "all" in opts:
                        opts |= {"indexes", "includes", "followsymlinks", "execcgi"}
                for w in words:
                    if w.startswith("+"):
                        opts.add(w[1:])
                    elif w.startswith("-"):
                        opts.discard(w[1:])
        out.append((d, opts))
    return out


@probe("httpd.indexes", HttpdParams)
def httpd_indexes(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Sorted `<Directory PATH> (file:line)` where Options Indexes is in effect and mod_autoindex is loaded."""
    loaded = load(ctx, params)
    ev = list(loaded.evidence)
    if "autoindex_module" not in loaded.modules:
        ev.append(evidence(loaded.conf.config, "mod_autoindex is not loaded: no directory is ever listed"))
        return Observation(observed=[], evidence=ev)
    hits = []
    for d, opts in _options(loaded):
        if "indexes" in opts:
            hits.append(f"<Directory {d.args[0]}> ({d.where})")
            ev.append(evidence(d.path, f"{d.text}: Options in effect {' '.join(sorted(opts))}", d.line))
    return Observation(observed=sorted(hits), evidence=ev)


def _require_restricts(section: hc.Node) -> tuple[bool, str]:
    requires = [n for n in hc.walk(section) if n.name == "require"]
    old_deny = [n for n in hc.walk(section) if n.name == "deny" and n.args[:2] == ("from", "all")]
    open_all = [n for n in requires if [a.lower() for a in n.args] == ["all", "granted"]]
    limited = [n for n in requires if [a.lower() for a in n.args] != ["all", "granted"]]
    if limited and not open_all:
        return True, "; ".join(n.text for n in limited)
    if old_deny and not requires:
        return True, old_deny[0].text
    return False, "Require all granted" if open_all else "no Require"


@probe("httpd.status_pages", HttpdParams)
def httpd_status_pages(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per section handing requests to mod_status or mod_info (SetHandler server-status/server-info, module
    loaded): {location, handler, restricted, how}."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    mods = {"server-status": "status_module", "server-info": "info_module"}
    for node in hc.walk(loaded.conf.root):
        if node.name != "sethandler" or not node.args or node.args[0].lower() not in mods:
            continue
        handler = node.args[0].lower()
        if mods[handler] not in loaded.modules:
            continue
        section = node.parent or loaded.conf.root
        restricted, how = _require_restricts(section)
        where = f"<{section.name} {' '.join(section.args)}> ({section.where})"
        observed.append({"location": where, "handler": handler, "restricted": restricted, "how": how})
        ev.append(evidence(node.path, f"{node.text} in {where}: {how}", node.line))
    return Observation(observed=observed, evidence=ev)


@probe("httpd.default_pages", HttpdParams)
def httpd_default_pages(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Servers whose `/` is a stock page: ["SERVER serves FILE (PAGE)"], from DocumentRoot and DirectoryIndex."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    vhosts = hc.sections(loaded.conf.root, "virtualhost")
    index_nodes = [n for n in hc.walk(loaded.conf.root) if n.name == "directoryindex"]
    names = list(index_nodes[-1].args) if index_nodes else ["index.html"]
    for scope in vhosts or [loaded.conf.root]:
        node = hc.effective(scope, "documentroot")
        root = node.args[0] if node else "/var/www/html"
        if any(scope.find(d) for d in ("redirect", "redirectmatch", "proxypass")):
            continue
        for name in names:
            path = f"{root.rstrip('/')}/{name}"
            if not ctx.host.exists(path) or ctx.host.is_dir(path):
                continue
            text = ctx.host.read_text(path, limit=1 << 16)
            page = next((what for marker, what in DEFAULT_PAGES.items() if marker in text), None)
            ev.append(evidence(path, f"DirectoryIndex of / for {hc.label(scope)}: {page or 'not a stock page'}"))
            if page:
                observed.append(f"{hc.label(scope)} serves {path} ({page})")
            break
    return Observation(observed=sorted(observed), evidence=ev)


def _ssl_on(scope: hc.Node, loaded: Loaded) -> bool:
    node = hc.effective(scope, "sslengine")
    return "ssl_module" in loaded.modules and node is not None and bool(node.args) and node.args[0].lower() == "on"


def _redirects(scope: hc.Node) -> bool:
    for node in scope.find("redirect") + scope.find("redirectpermanent") + scope.find("redirectmatch"):
        if any(a.startswith("https://") for a in node.args):
            return True
    return any(any(a.startswith("https://") for a in n.args) for n in scope.find("rewriterule"))


@probe("httpd.listeners", HttpdParams)
def httpd_listeners(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per virtual host (or the main server without any): {server, ssl, redirect}."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    for scope in hc.sections(loaded.conf.root, "virtualhost") or [loaded.conf.root]:
        row = {"server": hc.label(scope), "ssl": _ssl_on(scope, loaded), "redirect": _redirects(scope)}
        observed.append(row)
        ev.append(evidence(scope.path, f"{hc.label(scope)}: TLS {'on' if row['ssl'] else 'off'}, redirect to "
                           f"https:// {'yes' if row['redirect'] else 'no'}", scope.line or None))
    return Observation(observed=observed, evidence=ev)


def protocols(node: Optional[hc.Node]) -> list[str]:
    """SSLProtocol as mod_ssl reads it: `all`, +X adds, -X removes, a bare name after the first replaces."""
    words = list(node.args) if node else ["all", "-SSLv3"]
    out: list[str] = []
    for w in words:
        sign, name = (w[0], w[1:]) if w[:1] in "+-" else ("", w)
        names = ALL_PROTOCOLS if name.lower() == "all" else [p for p in ALL_PROTOCOLS if p.lower() == name.lower()]
        if sign == "-":
            out = [p for p in out if p not in names]
        else:
            out += [p for p in names if p not in out]
    return [p for p in ALL_PROTOCOLS if p in out]


@probe("httpd.tls", HttpdParams)
def httpd_tls(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per TLS virtual host: {server, configured, protocols, weak_protocols, weak_ciphers, ciphers, security_level}."""
    loaded = load(ctx, params)
    lib = openssl(ctx)
    observed, ev = [], list(loaded.evidence) + list(lib.evidence)
    for scope in _scopes(loaded):
        if not _ssl_on(scope, loaded):
            continue
        pnode = hc.effective(scope, "sslprotocol")
        # SSLCipherSuite [protocol] spec: TLSv1.3 lines name TLS 1.3 suites (always strong), "SSL" lines TLS <= 1.2
        lines = scope.find("sslciphersuite") or (loaded.conf.root.find("sslciphersuite") if scope.name == "virtualhost"
                                                 else [])
        legacy = [n for n in lines if n.args and not (len(n.args) > 1 and n.args[0].lower().startswith("tlsv1.3"))]
        cnode = legacy[-1] if legacy else None
        ciphers = cnode.args[-1] if cnode else "DEFAULT"
        for n in (pnode, cnode):
            if n is not None:
                ev.append(evidence(n.path, f"{n.text} (applies in {hc.label(scope)})", n.line))
        got = offer(lib, protocols(pnode), ciphers)
        observed.append({"server": hc.label(scope), "configured": list(got.configured),
                         "protocols": list(got.protocols),
                         "refused_by_openssl": list(got.refused), "weak_protocols": list(got.weak_protocols),
                         "weak_ciphers": list(got.weak_ciphers), "ciphers": ciphers, "security_level": got.level})
    if not observed:
        raise NotApplicable("no httpd virtual host uses TLS (SSLEngine on with mod_ssl)",
                            "httpd 没有启用 TLS 的虚拟主机（mod_ssl 且 SSLEngine on）")
    return Observation(observed=observed, evidence=ev)


def _formats(loaded: Loaded) -> dict[str, str]:
    out = {}
    for n in hc.walk(loaded.conf.root):
        if n.name == "logformat" and len(n.args) >= 2:
            out[n.args[1]] = n.args[0]
    return out


@probe("httpd.access_logs", HttpdParams)
def httpd_access_logs(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per server: {scope, disabled, targets, formats, missing}: CustomLog lines in effect (a vhost without any
    logs to the main server's), and the record fields (time, client, request, status) a format lacks."""
    loaded = load(ctx, params)
    formats = _formats(loaded)
    observed, ev = [], list(loaded.evidence)
    for scope in _scopes(loaded):
        nodes = scope.find("customlog") + scope.find("transferlog") or (
            loaded.conf.root.find("customlog") + loaded.conf.root.find("transferlog"))
        targets = [n.args[0] for n in nodes if n.args]
        used = [formats.get(n.args[1], n.args[1]) if len(n.args) > 1 else formats.get("common", COMMON)
                for n in nodes if n.args]
        missing = [f for f, marks in LOG_FIELDS.items()
                   if not used or any(not any(m in u for m in marks) for u in used)]
        observed.append({"scope": hc.label(scope), "disabled": not targets or all(t == "/dev/null" for t in targets),
                         "targets": targets, "formats": [n.args[1] if len(n.args) > 1 else "common" for n in nodes],
                         "missing": missing})
        ev.extend(evidence(n.path, f"{n.text} (applies in {hc.label(scope)})", n.line) for n in nodes)
    return Observation(observed=observed, evidence=ev)


@probe("httpd.log_files", HttpdParams)
def httpd_log_files(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """[{path, mode, owner_uid, directive}] of each file CustomLog/TransferLog/ErrorLog write to (not pipes, syslog)."""
    loaded = load(ctx, params)
    observed, ev, seen = [], list(loaded.evidence), set()
    for node in hc.walk(loaded.conf.root):
        if node.name not in ("customlog", "transferlog", "errorlog") or not node.args:
            continue
        target = node.args[0]
        if target.startswith(("|", "syslog")) or "${" in target or target == "/dev/null":
            continue
        path = target if target.startswith("/") else f"{loaded.conf.server_root.rstrip('/')}/{target}"
        if path in seen:
            continue
        seen.add(path)
        try:
            st = ctx.host.stat(path)
        except FileNotFoundError:
            ev.append(evidence(path, "not created yet (httpd creates it when it starts)"))
            continue
        facts, text = file_facts(st, path)
        observed.append({**facts, "directive": node.text})
        ev.append(evidence(path, f"{text} ({node.where}: {node.text})"))
    if not observed:
        raise NotApplicable("no httpd log file exists yet", "httpd 日志文件尚未生成")
    return Observation(observed=observed, evidence=ev)


@probe("httpd.config_files", HttpdParams)
def httpd_config_files(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """[{path, mode, owner_uid}] of every configuration file httpd reads."""
    loaded = load(ctx, params)
    return config_files(ctx, loaded.conf.files, list(loaded.evidence))


# Directives that hand a request to a program rather than to the file handler (which refuses other methods: 405).
_PASSES = ("proxypass", "proxypassmatch", "scriptalias", "scriptaliasmatch", "fcgiwrapper", "wsgiscriptalias",
           "jkmount")
_HANDLERS = re.compile(r"cgi-script|proxy:|php|fcgid|fastcgi|wsgi", re.I)


@probe("httpd.methods", HttpdParams)
def httpd_methods(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per server (main, each VirtualHost): {server, restricted, how}: `<LimitExcept ...>` with a Require that
    refuses (or Deny from all), AllowMethods (mod_allowmethods loaded), or a server that only serves files (no
    ProxyPass, ScriptAlias, CGI/PHP/FastCGI handler, Dav On: httpd's file handler answers PUT, DELETE ... 405)."""
    loaded = load(ctx, params)
    observed, ev = [], list(loaded.evidence)
    everywhere = hc.walk(loaded.conf.root)
    for scope in hc.sections(loaded.conf.root, "virtualhost") or [loaded.conf.root]:
        mine = hc.walk(scope) if scope is not loaded.conf.root else [
            n for n in everywhere if not any(p.name == "virtualhost" for p in _parents(n))]
        shared = [n for n in everywhere if not any(p.name == "virtualhost" for p in _parents(n))]
        nodes = mine + ([] if scope is loaded.conf.root else shared)
        how = None
        for n in nodes:
            if n.name == "limitexcept" and n.children is not None and _require_restricts(n)[0]:
                how = f"<LimitExcept {' '.join(n.args)}> ({n.where})"
            elif n.name == "allowmethods" and "allowmethods_module" in loaded.modules:
                how = f"{n.text} ({n.where})"
        passing = [n for n in nodes if n.name in _PASSES or (n.name in ("sethandler", "addhandler") and n.args and
                   _HANDLERS.search(n.args[0])) or (n.name == "dav" and n.args[:1] and n.args[0].lower() == "on")]
        if how is None and not passing:
            how = "static files only: httpd's file handler answers PUT, DELETE and the like with 405"
        observed.append({"server": hc.label(scope), "restricted": how is not None,
                         "how": how or "requests passed on without a method list: " + "; ".join(
                             f"{n.text} ({n.where})" for n in passing[:3])})
        ev.append(evidence(scope.path, f"{hc.label(scope)}: {observed[-1]['how']}", scope.line or None))
    return Observation(observed=observed, evidence=ev)


def _parents(node: hc.Node) -> list[hc.Node]:
    out, p = [], node.parent
    while p is not None:
        out.append(p)
        p = p.parent
    return out


@probe("httpd.tls_keys", HttpdParams)
def httpd_tls_keys(ctx: ProbeContext, params: HttpdParams) -> Observation:
    """Per TLS server: {server, path, mode, owner_uid} of the SSLCertificateKeyFile in effect (else the key inside
    SSLCertificateFile)."""
    loaded = load(ctx, params)
    pairs = []
    for scope in _scopes(loaded):
        if not _ssl_on(scope, loaded):
            continue
        node = hc.effective(scope, "sslcertificatekeyfile") or hc.effective(scope, "sslcertificatefile")
        if node is None or not node.args:
            continue
        key = node.args[0]
        path = key if key.startswith("/") else f"{loaded.conf.server_root.rstrip('/')}/{key}"
        pairs.append((hc.label(scope), path, evidence(node.path, node.text, node.line)))
    obs = key_files(ctx, pairs)
    obs.evidence = loaded.evidence + obs.evidence
    return obs
