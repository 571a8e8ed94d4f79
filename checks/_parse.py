"""Shared helpers for probes: cached file reading, comment stripping, globbing and evidence building.

Every helper reads through `ctx.host` and memoises per run with `ctx.cached`, so a file read by ten
checks is read and split once.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Optional

from sentinel.model import Evidence
from sentinel.probe import ProbeContext, evidence

Line = tuple[int, str]  # (1-based line number, text)

_GLOB_CHARS = frozenset("*?[")
_INLINE_COMMENT = re.compile(r"\s#.*$")


def has_glob(pattern: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in pattern)


def read_lines(ctx: ProbeContext, path: str) -> Optional[list[str]]:
    """Raw lines of a host file, cached per run; None when the file does not exist.

    An unreadable path (a directory, a symlink loop, permission denied) raises ProbeError.
    """

    def load() -> Optional[list[str]]:
        text = ctx.host.read_optional(path)
        return None if text is None else text.splitlines()

    return ctx.cached(("lines", path), load)


def strip_comment(text: str, inline: bool = True) -> str:
    """Text without a leading-`#` comment line or a ` # trailing comment`; stripped."""
    text = text.strip()
    if not text or text.startswith("#"):
        return ""
    if inline and "#" in text:
        text = _INLINE_COMMENT.sub("", text).rstrip()
    return text


def meaningful(lines: Iterable[str], inline: bool = True) -> list[Line]:
    """(line number, text) for each line that is not blank or a comment."""
    out = []
    for number, raw in enumerate(lines, 1):
        text = strip_comment(raw, inline)
        if text:
            out.append((number, text))
    return out


def expand(ctx: ProbeContext, patterns: Sequence[str]) -> list[str]:
    """Existing host paths for absolute paths or shell globs, in pattern order, each once."""
    seen: dict[str, None] = {}
    for pattern in patterns:
        if has_glob(pattern):
            for path in ctx.host.glob(pattern):
                seen.setdefault(path, None)
        elif ctx.host.exists(pattern):
            seen.setdefault(pattern, None)
    return list(seen)


def missing_evidence(patterns: Sequence[str], found: Sequence[str]) -> list[Evidence]:
    """Evidence for patterns that matched nothing, so an absence is visibly a looked-for absence."""
    out = []
    for pattern in patterns:
        if has_glob(pattern):
            if not any(fnmatchcase(p, pattern) for p in found):
                out.append(evidence(pattern, "no path matches"))
        elif pattern not in found:
            out.append(evidence(pattern, "no such file"))
    return out


def conf_dir_files(ctx: ProbeContext, directory: str, suffix: str = ".conf") -> list[str]:
    """Files named *suffix in a directory, in lexical order (the drop-in convention)."""
    return [f"{directory.rstrip('/')}/{name}" for name in ctx.host.listdir(directory)
            if name.endswith(suffix) and not name.startswith(".")]


def quote_lines(items: Sequence[Line]) -> str:
    """Excerpt text: one line as-is, several as `N: text` lines."""
    if len(items) == 1:
        return items[0][1]
    return "\n".join(f"{n}: {t}" for n, t in items)


def line_evidence(path: str, items: Sequence[Line]) -> Evidence:
    """Evidence for lines of one file; `line` is the first line's number."""
    if not items:
        return evidence(path, "(no relevant line)")
    return evidence(path, quote_lines(items), items[0][0])


def to_int(value: object) -> Optional[int]:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def require_absolute(paths: Sequence[str], what: str = "paths") -> list[str]:
    """Validator body for params holding host paths."""
    if not paths:
        raise ValueError(f"{what} must not be empty")
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{what}: {path!r} is not an absolute host path")
    return list(paths)


def compile_regex(pattern: str, group: int = 0) -> re.Pattern:
    """Validator body: the pattern compiles and has the requested group."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern {pattern!r} is not a valid regex: {exc}") from exc
    if group < 0 or group > rx.groups:
        raise ValueError(f"group {group} does not exist in pattern {pattern!r} ({rx.groups} groups)")
    return rx
