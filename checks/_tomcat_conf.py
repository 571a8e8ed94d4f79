"""Apache Tomcat 10.1's configuration as Catalina reads it: CATALINA_BASE/conf/server.xml, tomcat-users.xml, web.xml
and the deployed web applications.

Modelled (Tomcat 10.1.60, Debian 12's tomcat10; defaults from its classes and docs/config):
- XML elements with their attributes; `${name}` in an attribute is replaced as the Digester does, from
  catalina.properties and the catalina.base/catalina.home properties; an unknown name stays as written;
- `<Server port shutdown>`: port 8005 and command SHUTDOWN by default; port -1 disables the shutdown listener;
- `<Connector>`: protocol HTTP/1.1 by default (AJP/1.3 or a class name naming Ajp is AJP), `address` unset is
  every address (AJP: localhost since 9.0.31), `SSLEnabled` false; each `<SSLHostConfig protocols>` defaults to
  `all`, which Tomcat expands to SSLv2Hello+TLSv1+TLSv1.1+TLSv1.2+TLSv1.3 (SSLHostConfig's SSL_PROTO_ALL_SET; the
  JVM's jdk.tls.disabledAlgorithms then refuses some of them, checks/tomcat.py reads it); `+`/`-` prefixes add
  or remove from the list; AJP `secretRequired` defaults to true; the `server` attribute sets the
  Server header (unset: none is sent);
- `<Host appBase errorReportValveClass>` and its `<Valve>`s: the ErrorReportValve shows the server version
  (showServerInfo true) unless a Valve of that class says false; an AccessLogValve in the Engine or Host logs
  requests;
- applications of a Host: directories and .war files in appBase, and context files conf/<Engine>/<Host>/*.xml
  (`#` in a name is `/`); a context file wins over the application's own META-INF/context.xml, which is read only
  when there is none (copyXML aside). A RemoteAddrValve/RemoteCIDRValve in the context restricts its clients;
- web.xml's `<session-config><session-timeout>` (minutes; 30 when absent, StandardContext's default);
- ServerInfo.properties under CATALINA_BASE/lib or CATALINA_HOME/lib (org/apache/catalina/util/) overriding
  `server.info`, the version string error pages show.
"""
from __future__ import annotations

import posixpath
import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import ProbeError

ALL_PROTOCOLS = ("SSLv2Hello", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# SSLv2Hello is only the old hello format (the session is TLS), so it is not counted as a protocol in use
WEAK_PROTOCOLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
SESSION_TIMEOUT_DEFAULT = 30
ADMIN_APPS = ("manager", "host-manager")
SAMPLE_APPS = ("docs", "examples")


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    path: str
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def find_all(self, tag: str) -> list[Element]:
        out = []
        for child in self.children:
            if child.tag == tag:
                out.append(child)
            out.extend(child.find_all(tag))
        return out

    def shown(self) -> str:
        """The start tag as evidence may show it (password-like attributes withheld)."""
        attrs = " ".join(f'{k}="{"<withheld>" if _secret(k) else v}"' for k, v in self.attrs.items())
        return f"<{self.tag}{' ' + attrs if attrs else ''}>"


def _secret(name: str) -> bool:
    low = name.lower()
    return "pass" in low or low in ("secret", "requiredsecret")


def parse_xml(text: str, path: str) -> Element:
    """The element tree of an XML file, each element with its line (expat; no external entities are loaded)."""
    parser = xml.parsers.expat.ParserCreate()
    root = Element("#document", {}, 0, path)
    stack = [root]

    def start(tag: str, attrs: dict[str, str]) -> None:
        el = Element(tag.rsplit(":", 1)[-1], dict(attrs), parser.CurrentLineNumber, path)
        stack[-1].children.append(el)
        stack.append(el)

    def end(tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        raise ProbeError(f"{path}: not well-formed XML ({exc}): Tomcat cannot start with it",
                         f"{path}：XML 格式错误（{exc}），Tomcat 无法以此启动") from None
    if not root.children:
        raise ProbeError(f"{path}: no root element", f"{path}：没有根元素")
    return root.children[0]


def parse_properties(text: str) -> dict[str, str]:
    """A Java .properties file (comments #/!, key=value, key:value or key value, backslash continuation)."""
    out: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        m = re.match(r"^((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", logical)
        if m:
            out[m.group(1).replace("\\", "")] = m.group(2)
        elif logical:
            out[logical] = ""
        logical = ""
    return out


def substitute(value: str, props: dict[str, str]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: props.get(m.group(1), m.group(0)), value)


def expand_protocols(value: str) -> list[str]:
    """SSLHostConfig.setProtocols: the value is cut before each `+`, `-` or `,`; `+name` or a bare name adds,
    `-name` removes, `all` stands for every protocol Tomcat knows."""
    out: list[str] = []
    for raw in re.split(r"(?=[-+,])", value.strip()):
        token = raw.strip().lstrip(",").strip()
        if not token:
            continue
        sign = token[0] if token[0] in "+-" else "+"
        name = token[1:].strip() if token[0] in "+-" else token
        names = list(ALL_PROTOCOLS) if name.lower() == "all" else [name]
        for n in names:
            if sign == "+" and n not in out:
                out.append(n)
            elif sign == "-" and n in out:
                out.remove(n)
    return out


@dataclass(frozen=True)
class App:
    name: str  # ROOT, manager, host-manager, docs, examples, ...
    host: str
    source: str  # the directory, war or context file it is deployed from
    doc_base: str
    restricted_to: Optional[str]  # a RemoteAddrValve/RemoteCIDRValve allow pattern, or None
    context: Optional[Element]


@dataclass
class TomcatConf:
    base: str
    home: str
    server: Element
    props: dict[str, str]
    files: list[str] = field(default_factory=list)

    def attr(self, el: Element, name: str, default: Optional[str] = None) -> Optional[str]:
        value = el.attrs.get(name)
        return default if value is None else substitute(value, self.props)

    @property
    def conf_dir(self) -> str:
        return posixpath.join(self.base, "conf")


def load(read: Callable[[str], Optional[str]], base: str, home: str) -> TomcatConf:
    conf_dir = posixpath.join(base, "conf")
    server_xml = posixpath.join(conf_dir, "server.xml")
    text = read(server_xml)
    if text is None:
        raise ProbeError(f"{server_xml}: no such file", f"{server_xml}：文件不存在")
    props = {"catalina.base": base, "catalina.home": home}
    props_text = read(posixpath.join(conf_dir, "catalina.properties"))
    if props_text is not None:
        props = {**parse_properties(props_text), **props}
    server = parse_xml(text, server_xml)
    if server.tag != "Server":
        raise ProbeError(f"{server_xml}: the root element is <{server.tag}>, not <Server>",
                         f"{server_xml}：根元素为 <{server.tag}>，不是 <Server>")
    return TomcatConf(base, home, server, props, [server_xml])


def resolve(conf: TomcatConf, path: str) -> str:
    """A path of server.xml: absolute, or relative to CATALINA_BASE."""
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(conf.base, path))


def _restriction(ctx: Optional[Element], conf: TomcatConf) -> Optional[str]:
    """`KIND allow` of the first client-address valve of a context (KIND: addr regex, cidr list, host regex)."""
    if ctx is None:
        return None
    for valve in ctx.find_all("Valve"):
        cls = conf.attr(valve, "className", "") or ""
        kind = {".RemoteAddrValve": "addr", ".RemoteCIDRValve": "cidr", ".RemoteHostValve": "host"}.get(
            cls[cls.rfind("."):] if "." in cls else "")
        if kind:
            allow = conf.attr(valve, "allow")
            return f"{kind} {allow}" if allow is not None else f"deny {conf.attr(valve, 'deny') or ''}".strip()
    return None


def applications(conf: TomcatConf, read: Callable[[str], Optional[str]], listdir: Callable[[str], list[str]],
                 is_dir: Callable[[str], bool]) -> list[App]:
    """Every application each Host deploys, from its context files and its appBase."""
    apps: list[App] = []
    # conf/context.xml applies to every application (ContextConfig's default context)
    shared_text = read(posixpath.join(conf.conf_dir, "context.xml"))
    shared = parse_xml(shared_text, posixpath.join(conf.conf_dir, "context.xml")) if shared_text else None
    for engine in conf.server.find_all("Engine"):
        engine_name = conf.attr(engine, "name", "Catalina") or "Catalina"
        for host in engine.find_all("Host"):
            host_name = conf.attr(host, "name", "localhost") or "localhost"
            app_base = resolve(conf, conf.attr(host, "appBase", "webapps") or "webapps")
            seen: set[str] = set()
            descriptors = posixpath.join(conf.conf_dir, engine_name, host_name)
            for entry in listdir(descriptors):
                if not entry.endswith(".xml"):
                    continue
                path = posixpath.join(descriptors, entry)
                text = read(path)
                if text is None:
                    continue
                ctx = parse_xml(text, path)
                name = entry[:-4].replace("#", "/")
                doc_base = conf.attr(ctx, "docBase", "") or posixpath.join(app_base, entry[:-4])
                apps.append(App(name, host_name, path, resolve(conf, doc_base) if doc_base else "",
                                _restriction(ctx, conf) or _restriction(shared, conf), ctx))
                seen.add(name)
            for entry in listdir(app_base):
                name = entry[:-4] if entry.endswith(".war") else entry
                full = posixpath.join(app_base, entry)
                if name in seen or entry.startswith(".") or not (is_dir(full) or entry.endswith(".war")):
                    continue
                seen.add(name)
                own: Optional[Element] = None
                if is_dir(full):
                    meta = read(posixpath.join(full, "META-INF", "context.xml"))
                    own = parse_xml(meta, posixpath.join(full, "META-INF", "context.xml")) if meta else None
                apps.append(App(name, host_name, full, full, _restriction(own, conf) or _restriction(shared, conf),
                                own))
    return apps
