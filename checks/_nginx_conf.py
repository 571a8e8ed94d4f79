"""nginx's configuration as nginx reads it: its tokens, blocks and `include`, and the inheritance of directives.

Syntax (src/core/ngx_conf_file.c, ngx_conf_read_token): words are separated by whitespace; `;` ends a directive
and `{ ... }` holds a block; `#` starts a comment only where a word could start (`a#b` is one word); "..." and
'...' quote, with a backslash escaping the next character; `${name}` inside a word is a variable, not a block.
`include` is replaced in place by the directives of the files it names, in any context; a relative pattern is
relative to the directory of the main configuration file (ngx_conf_full_name with the conf prefix), and a glob
matches in sorted order without dot files (glob(3) as ngx_open_glob calls it).

Inheritance (every http module's merge_conf): a directive set in a location applies there; otherwise the
enclosing location's, then the server's, then http's, then the compiled-in default. Directives that may be
given several times (access_log, allow/deny, limit_req, add_header) follow the same rule as a group: the
nearest level that has any of them wins, and all of that level's lines apply.
"""
from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import ProbeError

from ._conf_tree import ConfNode, Include

MAX_INCLUDE_DEPTH = 32  # a cycle of includes would otherwise recurse forever (nginx itself has no limit)
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n"}


@dataclass
class Node(ConfNode["Node"]):
    name: str
    args: tuple[str, ...]
    path: str
    line: int
    children: Optional[list[Node]] = None  # None: a simple directive; a list: a block
    parent: Optional[Node] = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return " ".join((self.name, *self.args)).strip()


@dataclass
class NginxConf:
    root: Node  # the main context (name "main")
    config: str
    files: list[str]  # every configuration file read, in the order read
    includes: list[Include]
    source: str  # "nginx -T -c FILE" or "files"


def tokenize(text: str, path: str) -> Iterator[tuple[str, int, bool]]:
    """(token, line, quoted) per word; `;`, `{` and `}` come as their own unquoted tokens."""
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            yield ch, line, False
            i += 1
        elif ch in "\"'":
            start, i, out = line, i + 1, []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                    out.append(_ESCAPES.get(text[i], text[i]) if text[i] != ch else ch)
                else:
                    out.append(text[i])
                if text[i] == "\n":
                    line += 1
                i += 1
            if i >= n:
                raise ProbeError(f"{path}:{start}: unbalanced quote: nginx refuses this file",
                                 f"{path}:{start}：引号未闭合，nginx 拒绝该文件")
            i += 1
            yield "".join(out), start, True
        else:
            start, out, braced = line, [], False
            while i < n:
                c = text[i]
                if c.isspace() or c == ";":
                    break
                if c == "{":
                    if not (out and out[-1] == "$"):
                        break
                    braced = True  # ${name}
                elif c == "}":
                    if not braced:
                        break
                    braced = False
                elif c == "\\" and i + 1 < n:
                    i += 1
                    c = text[i]
                out.append(c)
                i += 1
            yield "".join(out), start, False


def parse(text: str, path: str, into: Node, on_include: Callable[[Node, Node], None]) -> None:
    """Directives of one file appended under `into` (blocks nested); `include` lines go to on_include."""
    stack = [into]
    words: list[str] = []
    first_line = 0
    for piece, line, quoted in tokenize(text, path):
        if not quoted and piece in (";", "{"):
            if not words:
                raise ProbeError(f"{path}:{line}: unexpected \"{piece}\": nginx refuses this file",
                                 f"{path}:{line}：意外的 \"{piece}\"，nginx 拒绝该文件")
            node = Node(words[0], tuple(words[1:]), path, first_line, [] if piece == "{" else None, stack[-1])
            if piece == ";" and node.name == "include":
                on_include(node, stack[-1])
            else:
                assert stack[-1].children is not None
                stack[-1].children.append(node)
            if piece == "{":
                stack.append(node)
            words = []
        elif not quoted and piece == "}":
            if words or len(stack) == 1:
                raise ProbeError(f"{path}:{line}: unexpected \"}}\": nginx refuses this file",
                                 f"{path}:{line}：意外的 \"}}\"，nginx 拒绝该文件")
            stack.pop()
        else:
            if not words:
                first_line = line
            words.append(piece)
    if words or len(stack) > 1:
        raise ProbeError(f"{path}: unexpected end of file, expecting \";\" or \"}}\": nginx refuses this file",
                         f"{path}：文件意外结束（缺少 \";\" 或 \"}}\"），nginx 拒绝该文件")


def load(config: str, read: Callable[[str], Optional[str]], glob: Callable[[str], list[str]],
         source: str) -> NginxConf:
    """The whole configuration from `config`, includes expanded in place. `read` gives a file's text (None:
    absent), `glob` the sorted files matching a pattern (both read the host, or nginx -T's dump)."""
    conf_prefix = posixpath.dirname(config) or "/"
    root = Node("main", (), config, 0, [])
    files: list[str] = []
    includes: list[Include] = []

    def read_file(path: str, into: Node, depth: int) -> None:
        text = read(path)
        if text is None:
            raise ProbeError(f"{path}: no such file", f"{path}：文件不存在")
        files.append(path)

        def on_include(node: Node, parent: Node) -> None:
            if len(node.args) != 1:
                raise ProbeError(f"{node.where}: include takes one file or pattern: nginx refuses this file",
                                 f"{node.where}：include 只接受一个文件或通配模式，nginx 拒绝该文件")
            pattern = node.args[0]
            full = pattern if pattern.startswith("/") else posixpath.join(conf_prefix, pattern)
            if any(ch in full for ch in "*?["):
                matched = glob(full)
            else:
                if read(full) is None:  # nginx: open() failed, [emerg]
                    raise ProbeError(f"{node.where}: include {full}: no such file: nginx refuses this configuration",
                                     f"{node.where}：include {full} 文件不存在，nginx 拒绝该配置")
                matched = [full]
            includes.append(Include(node.path, node.line, full, tuple(matched)))
            if depth + 1 > MAX_INCLUDE_DEPTH:
                raise ProbeError(f"{node.where}: include nested deeper than {MAX_INCLUDE_DEPTH} levels (a cycle?)",
                                 f"{node.where}：include 嵌套超过 {MAX_INCLUDE_DEPTH} 层（可能循环包含）")
            for one in matched:
                read_file(one, parent, depth + 1)

        parse(text, path, into, on_include)

    read_file(config, root, 0)
    return NginxConf(root, config, files, includes, source)


def split_dump(stdout: str) -> dict[str, str]:
    """nginx -T's output: `# configuration file PATH:` then the file's bytes and one newline, per file."""
    files: dict[str, str] = {}
    marker = re.compile(r"^# configuration file (.+):$", re.M)
    found = list(marker.finditer(stdout))
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(stdout)
        body = stdout[m.end() + 1:end]
        files.setdefault(m.group(1), body[:-1] if body.endswith("\n") else body)
    return files


def dump_glob(files: dict[str, str]) -> Callable[[str], list[str]]:
    def glob(pattern: str) -> list[str]:
        parts = pattern.split("/")

        def matches(path: str) -> bool:
            comps = path.split("/")
            return len(comps) == len(parts) and all(
                fnmatch.fnmatchcase(c, p) and not (c.startswith(".") and not p.startswith("."))
                for c, p in zip(comps, parts, strict=True))

        return sorted(p for p in files if matches(p))

    return glob


# ---- contexts and inheritance -----------------------------------------------------------------------------


def blocks(node: Node, name: str) -> list[Node]:
    return [c for c in node.children or [] if c.name == name and c.children is not None]


def servers(conf: NginxConf) -> list[Node]:
    return [s for http in blocks(conf.root, "http") for s in blocks(http, "server")]


def locations(scope: Node) -> list[Node]:
    """Every location of a server, nested ones after their parent (if-blocks are conditional: left out)."""
    out = []
    for loc in blocks(scope, "location"):
        out.append(loc)
        out.extend(locations(loc))
    return out


def chain(scope: Node) -> list[Node]:
    """The levels a directive is looked up in for `scope`: itself, enclosing locations, server, http, main."""
    out: list[Node] = []
    node: Optional[Node] = scope
    while node is not None:
        if node.name in ("location", "server", "http", "main"):
            out.append(node)
        node = node.parent
    return out


def effective(scope: Node, name: str) -> tuple[list[Node], Optional[Node]]:
    """The lines of `name` that apply in `scope`, and the level they come from (None: the default)."""
    for level in chain(scope):
        found = level.find(name)
        if found:
            return found, level
    return [], None


def label(scope: Node) -> str:
    """`server 127.0.0.1:80 (file:line)` / `location /x in server ... (file:line)`, for observed values."""
    if scope.name == "server":
        listens = [" ".join(n.args[:1]) for n in scope.find("listen")] or ["*:80"]
        names = [a for n in scope.find("server_name") for a in n.args][:2]
        who = ",".join(listens) + (f" {' '.join(names)}" if names else "")
        return f"server {who} ({scope.where})"
    if scope.name == "location":
        srv = next((n for n in chain(scope) if n.name == "server"), None)
        return f"location {' '.join(scope.args)} ({scope.where}) in " + (label(srv) if srv else "?")
    return f"{scope.name} ({scope.where})"
