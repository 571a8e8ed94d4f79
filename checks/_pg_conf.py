"""postgresql.conf as the server reads it (src/backend/utils/misc/guc-file.l and guc.c of PostgreSQL 12-17).

Rules followed: a line is `name [=] value` with an optional `#` comment; names are case-insensitive (a dotted name
is an extension's placeholder); the value is one token: a quoted string (`''` and backslash escapes as
GUC_scanstr decodes them), an unquoted word, an integer with unit letters (`128MB`, `90s`, `0x10`) or a real
*without* units (`1.5min` unquoted is a syntax error: the lexer's REAL token takes no unit letters); anything else
on the line is a syntax error, and a file with one is refused as a whole (the server does not start with it, a
reload keeps the old values). `include`, `include_if_exists` and `include_dir` are processed in place, relative to
the including file's directory; include_dir takes the files ending `.conf` that do not start with `.`, in byte
order of their names; nesting deeper than 10 files is an error (CONF_FILE_MAX_DEPTH). A later line for a name wins.
postgresql.auto.conf (ALTER SYSTEM) in the data directory is read after the main file, so it wins over it.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import HostView, ProbeError

MAX_DEPTH = 10  # CONF_FILE_MAX_DEPTH in guc.h
AUTO_CONF = "postgresql.auto.conf"

# guc-file.l's tokens, in its rule order (flex takes the longest match; on a tie, the rule listed first)
_LETTER = r"[A-Za-z_\x80-\xff]"
_LOD = r"[A-Za-z_0-9\x80-\xff]"
_ID = rf"{_LETTER}{_LOD}*"
_TOKENS = [
    ("ID", re.compile(_ID)),
    ("QUALIFIED_ID", re.compile(rf"{_ID}\.{_ID}")),
    ("STRING", re.compile(r"'(?:[^'\\\n]|\\.|'')*'")),
    ("UNQUOTED_STRING", re.compile(rf"{_LETTER}(?:{_LOD}|[-._:/])*")),
    ("INTEGER", re.compile(r"[-+]?(?:0x[0-9a-fA-F]+|[0-9]+)[a-zA-Z]*")),
    ("REAL", re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[Ee][-+]?[0-9]+)?")),
    ("EQUALS", re.compile(r"=")),
]
_SPACE = re.compile(r"[ \t\r]+")
_VALUE_TOKENS = {"STRING", "UNQUOTED_STRING", "INTEGER", "REAL", "ID"}


@dataclass(frozen=True)
class Setting:
    name: str  # lower-cased
    value: str  # as the server hands it to the parameter's parser (quotes removed, escapes decoded)
    path: str
    line: int
    text: str  # the line as written


@dataclass
class ConfFiles:
    """Every setting line of the configuration, in the order the server applies them (the last one wins)."""

    settings: list[Setting] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # files read, in order
    includes: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, what it included)

    def last(self, name: str) -> Optional[Setting]:
        name = name.lower()
        for s in reversed(self.settings):
            if s.name == name:
                return s
        return None

    def earlier(self, name: str) -> list[Setting]:
        """Lines for `name` that a later line overrides."""
        name = name.lower()
        hits = [s for s in self.settings if s.name == name]
        return hits[:-1]


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
            continue
        if text[i] == "#":
            break
        best: Optional[tuple[str, str]] = None
        for kind, rx in _TOKENS:
            m = rx.match(text, i)
            if m and (best is None or len(m.group()) > len(best[1])):
                best = (kind, m.group())
        if best is None:
            raise ProbeError(f"{where}: syntax error near {text[i:i + 20]!r}: the server refuses this file",
                             f"{where}：{text[i:i + 20]!r} 附近有语法错误，服务器拒绝该文件")
        out.append(best)
        i += len(best[1])
    return out


def unquote(token: str) -> str:
    """GUC_scanstr: strip the quotes, '' -> ', backslash escapes \\b \\f \\n \\r \\t, octal \\NNN, \\x -> x."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "bfnrt":
                out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}[nxt])
                i += 2
            elif nxt in "01234567":
                m = re.match(r"[0-7]{1,3}", body[i + 1:])
                assert m is not None  # nxt is an octal digit
                out.append(chr(int(m.group(), 8)))
                i += 1 + len(m.group())
            else:
                out.append(nxt)
                i += 2
        elif ch == "'" and body[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_line(text: str, where: str) -> Optional[tuple[str, str]]:
    """(name, value) of one line, None for a blank or comment line; ProbeError for a line the server refuses."""
    toks = _tokens(text, where)
    if not toks:
        return None
    if toks[0][0] not in ("ID", "QUALIFIED_ID"):
        raise ProbeError(f"{where}: syntax error: a line starts with a parameter name: the server refuses this file",
                         f"{where}：语法错误（行首应为参数名），服务器拒绝该文件")
    rest = toks[1:]
    if rest and rest[0][0] == "EQUALS":
        rest = rest[1:]
    if len(rest) != 1 or rest[0][0] not in _VALUE_TOKENS:
        raise ProbeError(f"{where}: syntax error: expected one value after {toks[0][1]}: the server refuses this "
                         "file", f"{where}：语法错误（{toks[0][1]} 后应有且只有一个值），服务器拒绝该文件")
    kind, raw = rest[0]
    return toks[0][1].lower(), unquote(raw) if kind == "STRING" else raw


def read_conf(host: HostView, config: str, data_dir: Optional[str] = None) -> ConfFiles:
    """The main file with its includes, then postgresql.auto.conf of the data directory (the one the main file's
    data_directory names, else `data_dir`, else the main file's own directory, as on RHEL where it lives in PGDATA).
    """
    result = ConfFiles()
    text = host.read_optional(config)
    if text is None:
        raise ProbeError(f"{config}: no such file", f"{config} 不存在")
    _walk(host, config, text, 0, result)
    named = result.last("data_directory")
    data = named.value if named is not None and named.value else (data_dir or posixpath.dirname(config))
    auto = posixpath.join(data, AUTO_CONF)
    auto_text = host.read_optional(auto)
    if auto_text is not None:
        _walk(host, auto, auto_text, 0, result)
    return result


def _walk(host: HostView, path: str, text: str, depth: int, result: ConfFiles) -> None:
    if depth > MAX_DEPTH:
        raise ProbeError(f"{path}: configuration files nested more than {MAX_DEPTH} deep: the server refuses them",
                         f"{path}：配置文件嵌套超过 {MAX_DEPTH} 层，服务器拒绝")
    result.files.append(path)
    base = posixpath.dirname(path)
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        parsed = parse_line(raw, where)
        if parsed is None:
            continue
        name, value = parsed
        if name in ("include", "include_if_exists", "include_dir"):
            target = value if value.startswith("/") else posixpath.join(base, value)
            if name == "include_dir":
                if not host.is_dir(target):
                    raise ProbeError(f"{where}: include_dir {target}: no such directory: the server refuses this "
                                     "configuration", f"{where}：include_dir {target} 目录不存在，服务器拒绝该配置")
                # byte order of the names (the server sorts with strcmp); hidden files and other suffixes skipped
                names = sorted((n for n in host.listdir(target) if n.endswith(".conf") and not n.startswith(".")),
                               key=lambda n: n.encode())
                result.includes.append((path, number, f"include_dir {target}: " + (", ".join(names) or "no file")))
                for n in names:
                    child = posixpath.join(target, n)
                    if not host.is_dir(child):
                        _walk(host, child, host.read_text(child), depth + 1, result)
                continue
            child_text = host.read_optional(target)
            if child_text is None:
                if name == "include":
                    raise ProbeError(f"{where}: include {target}: no such file: the server refuses this "
                                     "configuration", f"{where}：include {target} 文件不存在，服务器拒绝该配置")
                result.includes.append((path, number, f"include_if_exists {target}: absent, skipped"))
                continue
            result.includes.append((path, number, f"{name} {target}"))
            _walk(host, target, child_text, depth + 1, result)
            continue
        result.settings.append(Setting(name, value, path, number, raw.strip()))
