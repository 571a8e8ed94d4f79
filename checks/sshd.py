"""`sshd.option`: effective OpenSSH server settings, as sshd itself would resolve them.

sshd rules followed here: keywords are case-insensitive and separated from their arguments by
whitespace and/or one `=`; for most keywords the first value obtained wins; `Include` (several
patterns, globs expanded in lexical order, relative to /etc/ssh) is processed in place, also inside a
`Match` block (conditional inclusion); a `Match` block lasts until the next `Match` or the end of the
file it appears in (a Match inside an included file does not leak into the including file).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from pydantic import Field, field_validator

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import has_glob, read_lines
from .sshd_valid import problem

SSH_DIR = "/etc/ssh"
MAX_INCLUDE_DEPTH = 16  # sshd's own limit
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_KEYWORD = re.compile(r"^\s*([^\s=]+)\s*=?\s*(.*)$")
# Keywords whose every occurrence adds to a list instead of the first one winning.
_ACCUMULATE = frozenset({"port", "listenaddress", "hostkey", "hostcertificate", "allowusers", "denyusers",
                         "allowgroups", "denygroups", "acceptenv", "subsystem"})


@dataclass(frozen=True)
class Block:
    label: str  # "Match User bob"
    path: str
    line: int


@dataclass(frozen=True)
class Directive:
    key: str  # lower-cased keyword
    args: tuple[str, ...]
    path: str
    line: int
    text: str
    block: Optional[Block]  # None: global context


@dataclass
class SshdConfig:
    directives: list[Directive]
    includes: list[tuple[str, int, str, list[str]]]  # (path, line, pattern, files matched)


def _tokens(rest: str) -> list[str]:
    out = []
    for m in _TOKEN.finditer(rest):
        word = m.group(1) if m.group(1) is not None else m.group(2)
        if m.group(2) is not None and word.startswith("#"):
            break  # trailing comment
        out.append(word)
    return out


def load_sshd(ctx: ProbeContext, config: str) -> SshdConfig:
    """All directives of the server configuration, Includes expanded in place (cached per run)."""

    def load() -> SshdConfig:
        if read_lines(ctx, config) is None:
            raise NotApplicable(f"{config} not found: the OpenSSH server is not installed",
                                f"未找到 {config}：未安装 OpenSSH 服务端")
        result = SshdConfig([], [])
        _walk(ctx, config, None, 0, [config], result)
        return result

    return ctx.cached(("sshd", config), load)


def _walk(ctx: ProbeContext, path: str, block: Optional[Block], depth: int, chain: list[str],
          result: SshdConfig) -> None:
    lines = read_lines(ctx, path) or []
    current = block
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _KEYWORD.match(stripped)
        if not m:
            continue
        key, args = m.group(1).lower(), _tokens(m.group(2))
        if key == "match":
            current = Block("Match " + " ".join(args), path, number)
            continue
        if key == "include":
            if depth + 1 > MAX_INCLUDE_DEPTH:
                raise ProbeError(f"{path}:{number}: Include nested deeper than {MAX_INCLUDE_DEPTH} levels: "
                                 + " -> ".join(chain))
            for pattern in args:
                full = pattern if pattern.startswith("/") else f"{SSH_DIR}/{pattern}"
                files = ctx.host.glob(full) if has_glob(full) else ([full] if ctx.host.exists(full) else [])
                result.includes.append((path, number, full, files))
                for included in files:
                    if ctx.host.is_dir(included):
                        raise ProbeError(f"{path}:{number}: Include {full} matches a directory: {included}")
                    _walk(ctx, included, current, depth + 1, chain + [included], result)
            continue
        result.directives.append(Directive(key, tuple(args), path, number, stripped, current))


class SshdOptionParams(Strict):
    key: str = Field(min_length=1)
    default: Optional[str] = None
    config: str = "/etc/ssh/sshd_config"

    @field_validator("key")
    @classmethod
    def _keyword(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", v):
            raise ValueError(f"{v!r} is not an sshd_config keyword")
        if v.lower() in ("match", "include"):
            raise ValueError(f"{v} is structure, not an option")
        return v

    @field_validator("config")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"config {v!r} must be an absolute host path")
        return v


def refusal(cfg: SshdConfig) -> Optional[tuple[Directive, str]]:
    """The first directive `sshd -t` rejects (checks/sshd_valid.py), with why; None when sshd accepts all."""
    for d in cfg.directives:
        why = problem(d.key, d.args, d.block is not None)
        if why:
            return d, why
    return None


SSHD_BINARIES = ("/usr/sbin/sshd", "/usr/bin/sshd")
_REFUSAL = re.compile(r"line \d+|bad configuration option|terminating", re.I)


def live_test(ctx: ProbeContext, config: str) -> Optional[tuple[bool, str]]:
    """On a live host, as root, the real `sshd -t -f config`: (accepted, first line of its complaint); None
    offline, without root or sshd, or when sshd failed for a reason other than the file (no host key readable,
    no privilege separation directory): then the model in sshd_valid.py decides. Cached per run."""

    def load() -> Optional[tuple[bool, str]]:
        binary = next((b for b in SSHD_BINARIES if ctx.host.exists(b)), None)
        if not ctx.host.live or binary is None or os.geteuid() != 0:
            return None
        result = ctx.host.run([binary, "-t", "-f", config], timeout=15)
        if result.ok:
            return True, ""
        complaint = next((ln.strip() for ln in result.stderr.splitlines() if _REFUSAL.search(ln)), None)
        return None if result.timed_out or complaint is None else (False, complaint)

    return ctx.cached(("sshd -t", config), load)


def _where(d: Directive) -> str:
    return f"{d.block.label} ({d.block.path}:{d.block.line})" if d.block else "global"


@probe("sshd.option", SshdOptionParams)
def sshd_option(ctx: ProbeContext, params: SshdOptionParams) -> Observation:
    """[global value, then one value per Match block that sets the key], lower-cased."""
    cfg = load_sshd(ctx, params.config)
    live = live_test(ctx, params.config)
    if live is not None and not live[0]:  # the real sshd -t refused it: that is the answer
        raise ProbeError(f"sshd refuses this configuration (sshd -t -f {params.config}: {live[1]}); sshd would not "
                         "start with it and a running sshd keeps its previous settings, so no value can be judged",
                         f"sshd 拒绝该配置（sshd -t -f {params.config}：{live[1]}），sshd 无法以此配置启动，"
                         "运行中的 sshd 仍沿用旧配置，故无法据此判定任何取值")
    refused = refusal(cfg) if live is None else None  # offline (or sshd -t inconclusive): the model decides
    if refused:  # sshd -t would fail: nothing in these files is in effect
        d, why = refused
        raise ProbeError(f"sshd refuses this configuration ({d.path}:{d.line}: {d.text}: {why}); sshd would not "
                         "start with it and a running sshd keeps its previous settings, so no value can be judged",
                         f"sshd 拒绝该配置（{d.path}:{d.line}: {d.text}：{why}），sshd 无法以此配置启动，"
                         "运行中的 sshd 仍沿用旧配置，故无法据此判定任何取值")
    key = params.key.lower()
    hits = [d for d in cfg.directives if d.key == key]
    accumulate = key in _ACCUMULATE

    def value_of(group: list[Directive]) -> str:
        chosen = group if accumulate else group[:1]
        return " ".join(" ".join(d.args) for d in chosen).lower()

    observed: list[Optional[str]] = []
    ev = []
    note = note_zh = None
    global_hits = [d for d in hits if d.block is None]
    if global_hits:
        observed.append(value_of(global_hits))
        for d in (global_hits if accumulate else global_hits[:1]):
            ev.append(evidence(d.path, d.text, d.line))
        if not accumulate and len(global_hits) > 1:
            ignored = global_hits[1:]
            ev.append(evidence(ignored[0].path, "later value ignored (first one wins): "
                               + "; ".join(f"{d.path}:{d.line}: {d.text}" for d in ignored), ignored[0].line))
    else:
        observed.append(params.default.lower() if params.default is not None else None)
        read = [params.config] + [f for inc in cfg.includes for f in inc[3]]
        ev.append(evidence(params.config, f"{params.key} not set globally in " + ", ".join(dict.fromkeys(read))))
        note = (f"{params.key} not set; sshd default {params.default!r} applies" if params.default is not None
                else f"{params.key} not set and no default given")
        note_zh = (f"未设置 {params.key}，采用 sshd 默认值 {params.default}" if params.default is not None
                   else f"未设置 {params.key}，且无默认值")
    blocks: dict[Block, list[Directive]] = {}
    for d in hits:
        if d.block is not None:
            blocks.setdefault(d.block, []).append(d)
    for group in blocks.values():
        observed.append(value_of(group))
        first = group[0]
        ev.append(evidence(first.path, f"in {_where(first)}: {first.text}", first.line))
    for path, line, pattern, files in cfg.includes:
        ev.append(evidence(path, f"Include {pattern} -> " + (", ".join(files) if files else "no file"), line))
    if live is not None:
        ev.append(evidence(f"sshd -t -f {params.config}", "accepted by sshd"))
    return Observation(observed=observed, evidence=ev, note=note, note_zh=note_zh)


class SshdOptionsParams(Strict):
    keys: dict[str, Optional[str]] = Field(min_length=1, description="keyword -> sshd's default for it")
    config: str = "/etc/ssh/sshd_config"


@probe("sshd.options", SshdOptionsParams)
def sshd_options(ctx: ProbeContext, params: SshdOptionsParams) -> Observation:
    """{keyword: sshd.option's list} for several keywords at once, for settings that only mean something
    together (ClientAliveCountMax counts probes that are only sent when ClientAliveInterval > 0)."""
    observed, ev, notes, notes_zh = {}, [], [], []
    for key, default in params.keys.items():
        one = sshd_option(ctx, SshdOptionParams(key=key, default=default, config=params.config))
        observed[key] = one.observed
        ev.extend(one.evidence)
        if one.note:
            notes.append(one.note)
            notes_zh.append(one.note_zh or one.note)
    return Observation(observed=observed, evidence=ev, note="; ".join(notes) or None,
                       note_zh="；".join(notes_zh) or None)
