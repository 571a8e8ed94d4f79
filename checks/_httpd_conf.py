"""Apache httpd's configuration as httpd reads it: lines, sections, Include and the conditional sections.

Syntax (server/config.c, ap_getword_conf): one directive per line, a trailing backslash continues it; `#` starts a
comment only as a line's first non-blank character; arguments are words or "..." / '...' quoted; directive and
section names are case-insensitive. `<Section args>` ... `</Section>` nest. `${NAME}` is replaced by a Define or an
environment variable (Debian's /etc/apache2/envvars, which apache2ctl sources). Include/IncludeOptional are read in
place, relative to ServerRoot; a directory includes every file in it, a wildcard matches in sorted order, and
Include (not IncludeOptional) of a wildcard matching nothing is an error. <IfModule> is decided by the modules
loaded so far (static ones and LoadModule lines above it), <IfDefine> by Define and -D, <IfFile> by the file system;
<IfVersion> is kept (its condition needs the running version; sentinel reads what it encloses).
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import ProbeError

from ._conf_tree import ConfNode, Include

MAX_INCLUDE_DEPTH = 128  # httpd's AP_MAX_INCLUDE_DEPTH
_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|(\S+)')
_VAR = re.compile(r"\$\{([A-Za-z0-9_:.\-]+)\}")
CONDITIONALS = ("ifmodule", "ifdefine", "iffile", "ifdirective", "ifsection")


@dataclass
class Node(ConfNode["Node"]):
    name: str  # lower-cased
    args: tuple[str, ...]
    path: str
    line: int
    text: str
    children: Optional[list[Node]] = None  # a section
    parent: Optional[Node] = field(default=None, repr=False, compare=False)


@dataclass
class HttpdConf:
    root: Node
    config: str
    server_root: str
    files: list[str]
    includes: list[Include]
    modules: list[str]  # as LoadModule names them (ssl_module), static ones first
    defines: dict[str, str]


def module_name(word: str) -> str:
    """`mod_ssl.c` and `ssl_module` name the same module in <IfModule>."""
    m = re.fullmatch(r"mod_(\w+)\.c", word)
    return f"{m.group(1)}_module" if m else word


def words(rest: str, where: str) -> list[str]:
    out = []
    for m in _WORD.finditer(rest):
        if m.group(3) is not None:
            out.append(m.group(3))
        else:
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            out.append(re.sub(r"\\(.)", r"\1", raw))
    return out


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined and comment lines dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not full.startswith("#"):
            out.append((start, full))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def load(config: str, server_root: str, read: Callable[[str], Optional[str]], glob: Callable[[str], list[str]],
         is_dir: Callable[[str], bool], exists: Callable[[str], bool], static: list[str],
         env: dict[str, str], defines: Optional[list[str]] = None) -> HttpdConf:
    root = Node("main", (), config, 0, "", [])
    files: list[str] = []
    includes: list[Include] = []
    modules = list(static)
    defined: dict[str, str] = {d: "" for d in defines or []}
    state = {"server_root": server_root}

    def expand(text: str, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in defined:
                return defined[name]
            if name in env:
                return env[name]
            return m.group(0)  # httpd warns and leaves it as written
        return _VAR.sub(sub, text)

    def full(path: str) -> str:
        return path if path.startswith("/") else posixpath.join(state["server_root"], path)

    def condition(node_name: str, args: tuple[str, ...]) -> bool:
        arg = args[0] if args else ""
        neg = arg.startswith("!")
        arg = arg[1:] if neg else arg
        if node_name == "ifmodule":
            result = module_name(arg) in modules
        elif node_name == "ifdefine":
            result = arg in defined
        elif node_name == "iffile":
            result = exists(full(arg))
        else:
            result = True
        return result != neg

    def read_file(path: str, into: Node, depth: int) -> None:
        text = read(path)
        if text is None:
            raise ProbeError(f"{path}: no such file", f"{path}：文件不存在")
        files.append(path)
        stack = [into]
        skipping = 0  # depth inside a false conditional section
        for number, line in logical_lines(text):
            where = f"{path}:{number}"
            if line.startswith("</"):
                name = line[2:].rstrip(">").strip().lower()
                if skipping:
                    skipping -= 1
                    continue
                if len(stack) == 1 or stack[-1].name != name:
                    raise ProbeError(f"{where}: {line} closes nothing open: httpd refuses this file",
                                     f"{where}：{line} 没有对应的开始标记，httpd 拒绝该文件")
                done = stack.pop()
                if done.name in CONDITIONALS:  # a true conditional: its lines belong to the enclosing section
                    parent = stack[-1]
                    assert parent.children is not None and done.children is not None
                    parent.children.remove(done)
                    for child in done.children:
                        child.parent = parent
                    parent.children.extend(done.children)
                continue
            if line.startswith("<"):
                if not line.endswith(">"):
                    raise ProbeError(f"{where}: {line}: section not closed with '>': httpd refuses this file",
                                     f"{where}：{line} 缺少 '>'，httpd 拒绝该文件")
                head = expand(line[1:-1], where)
                parts = head.split(None, 1)
                name = parts[0].lower()
                args = tuple(words(parts[1], where)) if len(parts) > 1 else ()
                if skipping or (name in CONDITIONALS and not condition(name, args)):
                    skipping += 1
                    continue
                node = Node(name, args, path, number, line, [], stack[-1])
                assert stack[-1].children is not None
                stack[-1].children.append(node)
                stack.append(node)
                continue
            if skipping:
                continue
            line = expand(line, where)
            parts = line.split(None, 1)
            name = parts[0].lower()
            args = tuple(words(parts[1], where)) if len(parts) > 1 else ()
            if name == "define" and args:
                defined[args[0]] = args[1] if len(args) > 1 else ""
            if name == "serverroot" and args:
                state["server_root"] = args[0]
            if name == "loadmodule" and args:
                modules.append(args[0])
            if name in ("include", "includeoptional") and args:
                pattern = full(args[0])
                if any(ch in pattern for ch in "*?["):
                    matched = [p for p in glob(pattern) if not is_dir(p)]
                    if not matched and name == "include":
                        raise ProbeError(f"{where}: Include {pattern} matches no file: httpd refuses this "
                                         "(IncludeOptional would not)", f"{where}：Include {pattern} 未匹配任何文件，"
                                         "httpd 拒绝该配置")
                elif is_dir(pattern):
                    matched = glob(pattern.rstrip("/") + "/*")
                elif read(pattern) is None:
                    if name == "include":
                        raise ProbeError(f"{where}: Include {pattern}: no such file: httpd refuses this configuration",
                                         f"{where}：Include {pattern} 文件不存在，httpd 拒绝该配置")
                    matched = []
                else:
                    matched = [pattern]
                includes.append(Include(path, number, pattern, tuple(matched)))
                if depth + 1 > MAX_INCLUDE_DEPTH:
                    raise ProbeError(f"{where}: Include nested deeper than {MAX_INCLUDE_DEPTH} levels",
                                     f"{where}：Include 嵌套超过 {MAX_INCLUDE_DEPTH} 层")
                for one in matched:
                    read_file(one, stack[-1], depth + 1)
                continue
            node = Node(name, args, path, number, line, None, stack[-1])
            assert stack[-1].children is not None
            stack[-1].children.append(node)
        if len(stack) > 1 or skipping:
            raise ProbeError(f"{path}: <{stack[-1].name}> at line {stack[-1].line} is not closed: httpd refuses this "
                             "file", f"{path}：第 {stack[-1].line} 行的 <{stack[-1].name}> 未闭合，httpd 拒绝该文件")

    read_file(config, root, 0)
    return HttpdConf(root, config, state["server_root"], files, includes, modules, defined)


def parse_envvars(text: str) -> dict[str, str]:
    """`export NAME=value` lines of Debian's envvars, $SUFFIX taken as empty (the default instance)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        m = re.match(r"\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", raw)
        if m:
            value = m.group(2).strip().strip("'\"")
            value = re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda v: env.get(v.group(1), ""), value)
            env[m.group(1)] = value
    return env


def sections(node: Node, name: str) -> list[Node]:
    return [c for c in node.children or [] if c.name == name and c.children is not None]


def walk(node: Node) -> list[Node]:
    out = []
    for child in node.children or []:
        out.append(child)
        out.extend(walk(child))
    return out


def effective(scope: Node, name: str) -> Optional[Node]:
    """A server-level directive for a virtual host: the vhost's last line, else the main server's last line."""
    for level in (scope, scope.parent) if scope.name == "virtualhost" else (scope,):
        if level is None:
            continue
        found = level.find(name)
        if found:
            return found[-1]
    return None


def label(scope: Node) -> str:
    if scope.name == "virtualhost":
        names = [a for n in scope.find("servername") for a in n.args]
        return f"<VirtualHost {' '.join(scope.args)}>{' ' + names[0] if names else ''} ({scope.where})"
    return "main server"
