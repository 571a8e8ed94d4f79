"""`config.value`: one key from key/value configuration files (login.defs, pwquality.conf, profile...)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, field_validator

from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import expand, missing_evidence, read_lines, require_absolute, strip_comment, unquote

Separator = Literal["space", "equals", "auto"]

# Shell files set variables with these in front (`export TMOUT=600`, `readonly TMOUT=600`).
_SHELL_PREFIX = re.compile(r"^(?:(?:export|readonly|declare|typeset)\s+(?:-[a-zA-Z]+\s+)*)+")
_KEY_EQUALS = re.compile(r"^([^\s=]+)(\s*=\s*|\s+)(.*)$")
_KEY_SPACE = re.compile(r"^(\S+)(?:\s+(.*))?$")


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    path: str
    line: int
    text: str


def parse_settings(ctx: ProbeContext, path: str, separator: Separator) -> list[Setting]:
    """Every `key value` / `key = value` setting of one file, in order (cached per run)."""

    def load() -> list[Setting]:
        lines = read_lines(ctx, path)
        if lines is None:
            return []
        out = []
        for number, raw in enumerate(lines, 1):
            text = strip_comment(raw)
            pair = split_setting(text, separator) if text else None
            if pair:
                out.append(Setting(pair[0], pair[1], path, number, raw.strip()))
        return out

    return ctx.cached(("settings", path, separator), load)


def split_setting(text: str, separator: Separator) -> Optional[tuple[str, str]]:
    """`(key, value)` of one comment-free line, or None when it is not a setting in this syntax.

    `space`: `KEY value` (login.defs). `equals`: `key = value` (pwquality.conf), also shell
    assignments with export/readonly in front. `auto`: whichever the line uses.
    """
    if separator == "space":
        m = _KEY_SPACE.match(text)
        return (m.group(1), unquote((m.group(2) or "").strip())) if m else None
    m = _KEY_EQUALS.match(_SHELL_PREFIX.sub("", text))
    if not m:
        return None
    key, sep, value = m.groups()
    if "=" not in sep:
        if separator == "equals":
            return None
        return key, unquote(value.strip())
    if sep == "=" and ";" in value and not value.lstrip().startswith(("'", '"')):
        value = value.split(";", 1)[0]  # shell: `TMOUT=600; export TMOUT`
    return key, unquote(value.strip())


class ConfigValueParams(Strict):
    paths: list[str]
    key: str = Field(min_length=1)
    separator: Separator = "auto"
    precedence: Literal["first", "last"] = "last"
    default: Optional[str] = None
    case_sensitive: bool = True

    @field_validator("paths")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        return require_absolute(v)

    @field_validator("key")
    @classmethod
    def _no_space(cls, v: str) -> str:
        if any(ch.isspace() for ch in v) or "=" in v:
            raise ValueError(f"key {v!r} must be one word without '='")
        return v


@probe("config.value", ConfigValueParams)
def config_value(ctx: ProbeContext, params: ConfigValueParams) -> Observation:
    """The value of `key` over files in order (later files override earlier with precedence `last`)."""
    paths = expand(ctx, params.paths)
    want = params.key if params.case_sensitive else params.key.lower()
    hits: list[Setting] = []
    for path in paths:
        if path not in params.paths and ctx.host.is_dir(path):
            continue
        for setting in parse_settings(ctx, path, params.separator):
            key = setting.key if params.case_sensitive else setting.key.lower()
            if key == want:
                hits.append(setting)
    if hits:
        chosen = hits[-1] if params.precedence == "last" else hits[0]
        ev = [evidence(chosen.path, chosen.text, chosen.line)]
        others = [h for h in hits if h is not chosen]
        if others:
            ev.append(evidence(others[0].path, "also set (not effective, precedence "
                               f"{params.precedence}): " + "; ".join(f"{h.path}:{h.line}: {h.text}" for h in others),
                               others[0].line))
        return Observation(observed=chosen.value, evidence=ev)
    ev = [evidence(p, f"{params.key} not set") for p in paths] + missing_evidence(params.paths, paths)
    if not ev:
        ev.append(evidence(", ".join(params.paths), f"{params.key} not set"))
    if params.default is not None:
        return Observation(observed=params.default, evidence=ev,
                           note=f"{params.key} is not set; the documented default {params.default!r} applies",
                           note_zh=f"未设置 {params.key}，采用文档规定的默认值 {params.default}")
    return Observation(observed=None, evidence=ev, note=f"{params.key} is not set in " + ", ".join(params.paths),
                       note_zh=f"{', '.join(params.paths)} 中未设置 {params.key}")
