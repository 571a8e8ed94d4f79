"""MySQL/MariaDB option files (my.cnf) read as the server reads them, through the HostView.

The rules are those of mysys/my_default.c (MariaDB 10.11, the same in MySQL 8.0 except where noted) and of
my_getopt.c for what an option list means; tests/test_object_mysql_options.py holds them to the real
`my_print_defaults` and `mariadbd --help --verbose` of the installed server:

- start files in order (MariaDB on Linux: /etc/my.cnf, /etc/mysql/my.cnf; `~/.my.cnf` of the account the server
  runs as is not read: systemd runs it as mysql, whose home is /nonexistent on Debian);
- a line is stripped of leading white space; `#` or `;` first, or nothing, is a comment;
- `[group]` starts a group (names compared case-insensitively, trailing blanks dropped); an option before any
  group, or a `[` without `]`, is a fatal error (the server does not start);
- `!include FILE` reads FILE in place (a missing one is skipped); `!includedir DIR` reads DIR's files ending in
  `.cnf`, sorted by name (a missing DIR is fatal); nesting stops after 10 levels;
- `name = value`: `#` outside quotes ends the line, blanks around name and value go, one pair of matching quotes
  around the value goes, and `\\n \\t \\r \\b \\s \\" \\' \\\\` are escapes; `name` alone is an option without value;
- options of the groups the program reads are kept in file order; for a variable the last one wins, with `-` and
  `_` the same, `loose-` dropped, `skip-X`/`disable-X` meaning X=OFF and `enable-X` X=ON; a boolean is ON for
  no value, 1, ON, TRUE and OFF for 0, OFF, FALSE, anything else is OFF with a warning (as mariadbd does).
Unique-prefix abbreviations of option names (`bind=` for bind-address), which my_getopt also accepts, are not
resolved: the shipped configurations do not use them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from sentinel.probe import ProbeContext, ProbeError

MAX_INCLUDE_DEPTH = 10
_SPACE = " \t\n\r\v\f"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", '"': '"', "'": "'", "\\": "\\"}
BOOL_TRUE = frozenset({"1", "on", "true"})
BOOL_FALSE = frozenset({"0", "off", "false"})


@dataclass(frozen=True)
class Option:
    name: str  # as written, e.g. "bind-address", "loose-server_audit_logging"
    value: Optional[str]  # None: the option was given without `=`
    group: str
    path: str
    line: int
    text: str  # the line as written (never shown for a password-like option; see `safe_text`)

    @property
    def canonical(self) -> str:
        """Name with `_` as `-` and without `loose-`: the form my_getopt compares."""
        name = self.name.replace("_", "-")
        return name[len("loose-"):] if name.startswith("loose-") else name

    def safe_text(self) -> str:
        return f"{self.name}=<hidden>" if "password" in self.name.lower() else self.text


@dataclass
class OptionFiles:
    """Every option of every group, in the order the server reads them, and the files read."""

    options: list[Option] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # files read, in order
    missing: list[str] = field(default_factory=list)  # start files or !include targets that do not exist

    def for_groups(self, groups: set[str]) -> list[Option]:
        return [o for o in self.options if o.group.lower() in groups]


def _fatal(path: str, line: int, what: str, zh: str) -> ProbeError:
    return ProbeError(f"{path}:{line}: {what}; the server refuses to start with this option file",
                      f"{path} 第 {line} 行：{zh}，服务器无法以此配置启动")


def read_option_files(ctx: ProbeContext, start_files: tuple[str, ...]) -> OptionFiles:
    """All options of the start files and what they include (cached per run)."""

    def load() -> OptionFiles:
        out = OptionFiles()
        for path in start_files:
            _read_file(ctx, path, out, 0)
        return out

    return ctx.cached(("mysql-option-files", start_files), load)


def _read_file(ctx: ProbeContext, path: str, out: OptionFiles, depth: int) -> None:
    text = ctx.host.read_optional(path)
    if text is None:
        out.missing.append(path)
        return
    out.files.append(path)
    group: Optional[str] = None
    for number, raw in enumerate(text.splitlines(), 1):
        ptr = raw.lstrip(_SPACE)
        if not ptr or ptr[0] in "#;":
            continue
        if ptr[0] == "!":
            if depth >= MAX_INCLUDE_DEPTH:
                continue  # my_default.c: "skipping !include directive", the rest of the file is read
            directive = ptr[1:].lstrip(_SPACE)
            for keyword in ("includedir", "include"):
                if directive.startswith(keyword) and directive[len(keyword):len(keyword) + 1] in tuple(_SPACE):
                    target = directive[len(keyword):].strip(_SPACE)
                    if not target:
                        raise _fatal(path, number, f"'!{keyword}' without a path", f"'!{keyword}' 未给出路径")
                    if keyword == "include":
                        _read_file(ctx, target, out, depth + 1)
                    else:
                        _read_dir(ctx, path, number, target, out, depth)
                    break
            continue  # another `!word` is ignored, as the server does
        if ptr[0] == "[":
            end = ptr.find("]", 1)
            if end < 0:
                raise _fatal(path, number, "group header without ']'", "选项组缺少 ']'")
            group = ptr[1:end].rstrip(_SPACE)
            continue
        if group is None:
            raise _fatal(path, number, "option without a preceding [group]", "选项前没有 [选项组]")
        name, value = _split_option(ptr)
        out.options.append(Option(name, value, group, path, number, raw.strip()))


def _read_dir(ctx: ProbeContext, path: str, number: int, directory: str, out: OptionFiles, depth: int) -> None:
    if not ctx.host.is_dir(directory):
        raise _fatal(path, number, f"!includedir {directory}: no such directory",
                     f"!includedir {directory}：目录不存在")
    for name in sorted(ctx.host.listdir(directory)):
        dot = name.rfind(".")
        if dot > 0 and name[dot:] == ".cnf":  # fn_ext2: the text from the last dot; only .cnf on Unix
            _read_file(ctx, directory.rstrip("/") + "/" + name, out, depth + 1)


def _end_comment(text: str) -> str:
    """The line up to a `#` outside quotes (remove_end_comment)."""
    quote = ""
    escape = False
    for i, ch in enumerate(text):
        if ch in "'\"" and not escape:
            if not quote:
                quote = ch
            elif quote == ch:
                quote = ""
        if not quote and ch == "#":
            return text[:i]
        escape = bool(quote) and ch == "\\" and not escape
    return text


def _split_option(ptr: str) -> tuple[str, Optional[str]]:
    text = _end_comment(ptr)
    if "=" not in text:
        return text.rstrip(_SPACE), None
    name, _, value = text.partition("=")
    value = value.strip(_SPACE)
    if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i != len(value) - 1:
            nxt = value[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return name.rstrip(_SPACE), "".join(out)


@dataclass(frozen=True)
class Effective:
    """The value a variable gets from the option files, and the option that set it (None: not set)."""

    value: Optional[str]
    option: Optional[Option]
    warning: Optional[str] = None


def effective(options: list[Option], variable: str, kind: str) -> Effective:
    """The last option in `options` that sets `variable` (a server variable name, `_` or `-`).

    kind: `bool` (ON/OFF), `flag` (ON when given with or without a value, as log-bin; OFF by skip-/disable-),
    `str`/`int` (the text), `list` (every value, for options that add: plugin-load-add).
    """
    target = variable.replace("_", "-")
    found = Effective(None, None)
    values: list[str] = []
    for opt in options:
        name = opt.canonical
        if name == target:
            if kind == "bool":
                found = _bool(opt, opt.value)
            elif kind == "flag":
                found = Effective("ON", opt)
            elif kind == "list":
                values.extend(v for v in (opt.value or "").split(";") if v.strip())
                found = Effective(";".join(values), opt)
            else:
                found = Effective(opt.value if opt.value is not None else "", opt)
        elif kind in ("bool", "flag") and name in (f"skip-{target}", f"disable-{target}"):
            found = Effective("OFF", opt)
        elif kind in ("bool", "flag") and name == f"enable-{target}":
            found = Effective("ON", opt)
    return found


def _bool(opt: Option, value: Optional[str]) -> Effective:
    if value is None or value.lower() in BOOL_TRUE:
        return Effective("ON", opt)
    if value.lower() in BOOL_FALSE:
        return Effective("OFF", opt)
    return Effective("OFF", opt, f"boolean value {value!r} is not recognised by the server: it sets OFF")
