"""pg_hba.conf as the server reads it (src/backend/libpq/hba.c of PostgreSQL 12-17).

Rules followed: `#` starts a comment outside double quotes; a line ending in a backslash continues on the next
(PostgreSQL 15 and later); fields are separated by spaces, a field is a comma-separated list of tokens (`all,foo`
and `all, foo` alike), a quoted token is never a keyword (`"all"` is a database named all); `@file` in the database
or user field is replaced by the tokens of that file (relative to the directory of the file naming it). PostgreSQL
16 adds `include`, `include_if_exists` and `include_dir` lines (include_dir: files ending `.conf`, not hidden, in
name order); earlier versions refuse them as an unknown connection type. A line the server cannot parse makes it
refuse the whole file (it does not start; a reload keeps the old rules), so that is an error, not a verdict. The
first line matching a connection decides it: a line every connection of which an earlier line already matches is
never reached, and is reported as such rather than judged.
"""
from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from sentinel.hostview import HostView, ProbeError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = ("trust", "reject", "md5", "password", "scram-sha-256", "gss", "sspi", "ident", "peer", "pam", "ldap",
           "radius", "cert", "bsd")
MAX_DEPTH = 10


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool

    def keyword(self, *words: str) -> bool:
        return not self.quoted and self.text in words


@dataclass
class Rule:
    type: str
    databases: list[Token]
    users: list[Token]
    address: Optional[str]  # None for local; "all", "samehost", "samenet", a CIDR, or a host name
    network: Optional[Network]
    method: str
    options: dict[str, str]
    path: str
    line: int
    text: str
    shadowed_by: Optional[Rule] = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


@dataclass
class HbaFile:
    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    includes: list[tuple[str, int, str]] = field(default_factory=list)


def _tokens(line: str) -> list[list[Token]]:
    """hba.c next_field_expand over a whole line: fields of tokens, comments cut."""
    fields: list[list[Token]] = []
    current: list[Token] = []
    i, n = 0, len(line)
    while True:
        while i < n and (line[i] in " \t\r" or line[i] == ","):
            i += 1
        if i >= n or line[i] == "#":
            break
        buf, in_quote, saw_quote, was_quote, comma = [], False, False, False, False
        while i < n and (line[i] not in " \t\r" or in_quote):
            c = line[i]
            if c == "#" and not in_quote:
                break
            if c == "," and not in_quote:
                comma = True
                i += 1
                break
            if c != '"' or was_quote:
                buf.append(c)
            was_quote = (not was_quote) if (in_quote and c == '"') else False
            if c == '"':
                in_quote = not in_quote
                saw_quote = True
            i += 1
        if buf or saw_quote:
            current.append(Token("".join(buf), saw_quote))
        if not comma:
            if current:
                fields.append(current)
            current = []
        if i < n and line[i] == "#":
            break
    if current:
        fields.append(current)
    return fields


def _logical_lines(text: str, continuation: bool) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: Optional[tuple[int, str]] = None
    for number, raw in enumerate(text.splitlines(), 1):
        if pending is not None:
            start, acc = pending
            raw, number = acc + raw, start
        if continuation and raw.endswith("\\"):
            pending = (number, raw[:-1])
            continue
        pending = None
        out.append((number, raw))
    if pending is not None:
        out.append(pending)
    return out


def _expand_at(host: HostView, toks: list[Token], base: str, where: str) -> list[Token]:
    out: list[Token] = []
    for t in toks:
        if t.quoted or not t.text.startswith("@") or len(t.text) == 1:
            out.append(t)
            continue
        target = t.text[1:] if t.text[1:].startswith("/") else posixpath.join(base, t.text[1:])
        text = host.read_optional(target)
        if text is None:  # hba.c logs the missing file and the token matches nothing
            continue
        for _n, raw in _logical_lines(text, False):
            for fld in _tokens(raw):
                out.extend(fld)
    return out


def read_hba(host: HostView, path: str, version: Optional[int]) -> HbaFile:
    result = HbaFile()
    text = host.read_optional(path)
    if text is None:
        raise ProbeError(f"{path}: no such file: the server does not start without its pg_hba.conf",
                         f"{path} 不存在：缺少 pg_hba.conf 时服务器无法启动")
    _walk(host, path, text, version, 0, result)
    _shadow(result.rules)
    return result


def _walk(host: HostView, path: str, text: str, version: Optional[int], depth: int, result: HbaFile) -> None:
    if depth > MAX_DEPTH:
        raise ProbeError(f"{path}: pg_hba files nested more than {MAX_DEPTH} deep",
                         f"{path}：pg_hba 文件嵌套超过 {MAX_DEPTH} 层")
    result.files.append(path)
    base = posixpath.dirname(path)
    continuation = version is None or version >= 15
    for number, raw in _logical_lines(text, continuation):
        fields = _tokens(raw)
        if not fields:
            continue
        where = f"{path}:{number}"

        def refuse(why: str, zh: str, where: str = where, raw: str = raw) -> ProbeError:
            return ProbeError(f"{where}: {raw.strip()}: {why}; the server refuses the whole file (it does not "
                              "start, a reload keeps the old rules)",
                              f"{where}：{raw.strip()}：{zh}；服务器拒绝整个文件（无法启动，重新加载时沿用旧规则）")

        first = fields[0][0]
        if first.keyword("include", "include_if_exists", "include_dir"):
            if version is not None and version < 16:
                raise refuse(f"'{first.text}' is a PostgreSQL 16 directive; version {version} reads it as an "
                             "unknown connection type", f"'{first.text}' 为 PostgreSQL 16 的指令，{version} 版将其视为"
                             "未知的连接类型")
            if len(fields) != 2 or len(fields[1]) != 1:
                raise refuse(f"{first.text} takes one file name", f"{first.text} 只接受一个文件名")
            name = fields[1][0].text
            target = name if name.startswith("/") else posixpath.join(base, name)
            if first.text == "include_dir":
                names = sorted((n for n in host.listdir(target) if n.endswith(".conf") and not n.startswith(".")),
                               key=lambda n: n.encode())
                result.includes.append((path, number, f"include_dir {target}: " + (", ".join(names) or "no file")))
                for n in names:
                    _walk(host, posixpath.join(target, n), host.read_text(posixpath.join(target, n)), version,
                          depth + 1, result)
                continue
            child = host.read_optional(target)
            if child is None:
                if first.text == "include":
                    raise refuse(f"{target}: no such file", f"{target} 不存在")
                result.includes.append((path, number, f"include_if_exists {target}: absent, skipped"))
                continue
            result.includes.append((path, number, f"{first.text} {target}"))
            _walk(host, target, child, version, depth + 1, result)
            continue
        if len(fields[0]) != 1 or first.quoted or first.text not in TYPES:
            raise refuse(f"invalid connection type {first.text!r}", f"无效的连接类型 {first.text!r}")
        kind = first.text
        if len(fields) < (4 if kind == "local" else 5):
            raise refuse("end-of-line before the authentication method", "缺少认证方法")
        databases = _expand_at(host, fields[1], base, where)
        users = _expand_at(host, fields[2], base, where)
        rest = fields[3:]
        address: Optional[str] = None
        network: Optional[Network] = None
        if kind != "local":
            addr_field, rest = rest[0], rest[1:]
            if len(addr_field) != 1:
                raise refuse("multiple values in the IP address field", "IP 地址字段有多个值")
            address = addr_field[0].text
            if addr_field[0].keyword("all", "samehost", "samenet"):
                pass
            elif "/" in address:
                try:
                    network = ipaddress.ip_network(address, strict=False)
                except ValueError:
                    raise refuse(f"invalid IP address/prefix {address!r}", f"无效的 IP 地址/前缀 {address!r}") from None
            else:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    ip = None  # a host name (".example.com" matches a domain)
                if ip is not None:
                    if not rest or len(rest[0]) != 1:
                        raise refuse("an IP address without a netmask", "IP 地址缺少掩码")
                    mask = rest[0][0].text
                    rest = rest[1:]
                    try:
                        network = ipaddress.ip_network(f"{address}/{mask}", strict=False)
                    except ValueError:
                        raise refuse(f"invalid netmask {mask!r}", f"无效的掩码 {mask!r}") from None
                    address = str(network)
        if not rest or len(rest[0]) != 1:
            raise refuse("end-of-line before the authentication method", "缺少认证方法")
        method = rest[0][0].text
        if method not in METHODS:
            raise refuse(f"invalid authentication method {method!r}", f"无效的认证方法 {method!r}")
        if kind == "local" and method in ("ident",):
            method = "peer"  # hba.c: ident on a local socket is peer
        options: dict[str, str] = {}
        for opt in rest[1:]:
            for t in opt:
                key, eq, val = t.text.partition("=")
                if not eq:
                    raise refuse(f"authentication option {t.text!r} is not name=value",
                                 f"认证选项 {t.text!r} 不是 名称=值 形式")
                options[key] = val
        result.rules.append(Rule(kind, databases, users, address, network, method, options, path, number,
                                 _masked(" ".join(raw.split()))))


SECRET_OPTIONS = ("ldapbindpasswd", "radiussecrets", "radiussecret")
_SECRET = re.compile(r'((?:^|\s)(?:' + "|".join(SECRET_OPTIONS) + r')=)("(?:[^"]|"")*"|\S+)', re.I)


def _masked(text: str) -> str:
    """The line as evidence shows it: the values of the LDAP bind password and RADIUS secrets replaced."""
    return _SECRET.sub(r"\1***", text)


def _covers_list(a: list[Token], b: list[Token]) -> bool:
    if any(t.keyword("all") for t in a):
        return True
    return {(t.text, t.quoted) for t in b} <= {(t.text, t.quoted) for t in a}


def _covers_address(a: Rule, b: Rule) -> bool:
    if a.type == "local" or b.type == "local":
        return a.type == b.type
    if a.address == "all":
        return True
    if a.network is not None and b.network is not None:
        return a.network.version == b.network.version and b.network.subnet_of(a.network)  # type: ignore[arg-type]
    return a.address == b.address


def _covers_type(a: str, b: str) -> bool:
    return a == b or (a == "host" and b != "local")


def _covers_databases(a: list[Token], b: list[Token]) -> bool:
    """`all` matches every database but not a physical replication connection, which only `replication` matches."""
    if any(t.keyword("replication") for t in b) and not any(t.keyword("replication") for t in a):
        return False
    return _covers_list(a, b)


def _shadow(rules: list[Rule]) -> None:
    """Mark each line that an earlier line matches for every connection it could match (first match wins)."""
    for i, later in enumerate(rules):
        for earlier in rules[:i]:
            if (_covers_type(earlier.type, later.type) and _covers_databases(earlier.databases, later.databases)
                    and _covers_list(earlier.users, later.users) and _covers_address(earlier, later)):
                later.shadowed_by = earlier
                break


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def is_remote(rule: Rule) -> bool:
    """Whether the line may match a client on another machine."""
    if rule.type == "local":
        return False
    if rule.address in ("samehost", "localhost"):
        return False
    if rule.network is not None:
        return not any(rule.network.version == lo.version and rule.network.subnet_of(lo)  # type: ignore[arg-type]
                       for lo in LOOPBACK)
    return True


def is_wide(rule: Rule, min_prefix_v4: int, min_prefix_v6: int) -> bool:
    """Whether the line admits clients from a wide address range: all, samenet (every subnet of the server), a
    domain suffix, or a network shorter than the given prefixes."""
    if rule.type == "local":
        return False
    if rule.address in ("all", "samenet"):
        return True
    if rule.network is not None:
        return rule.network.prefixlen < (min_prefix_v4 if rule.network.version == 4 else min_prefix_v6)
    return bool(rule.address and rule.address.startswith("."))


def admits_user(rule: Rule, user: str) -> bool:
    """Whether the line's user field may match `user` (+group membership cannot be known from files: counted)."""
    for t in rule.users:
        if t.keyword("all") or t.text == user or (not t.quoted and t.text.startswith("+")):
            return True
        if not t.quoted and t.text.startswith("/") and re.search(t.text[1:], user):  # PostgreSQL 16 regex
            return True
    return False
