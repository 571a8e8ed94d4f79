"""Audit rules: file watches and the immutable flag, as auditd would load them at boot.

Rules come from /etc/audit/rules.d/*.rules in lexical order (what augenrules compiles), or from
/etc/audit/audit.rules when rules.d holds none. Watches count in both forms: `-w PATH -p PERMS` and
`-a always,exit ... -F path=PATH|dir=DIR -F perm=PERMS`; a watch on a directory covers everything
below it; `-W` removes a watch again. Perms of several rules covering one path add up.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from pydantic import Field, field_validator

from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import conf_dir_files, read_lines

RULES_DIR = "/etc/audit/rules.d"
RULES_FILE = "/etc/audit/audit.rules"
ALL_PERMS = "rwxa"


@dataclass(frozen=True)
class Watch:
    path: str
    perms: str
    recursive: bool  # dir= or -w (a -w on a directory covers its subtree)
    source: str
    line: int
    text: str


@dataclass
class AuditRules:
    files: list[str]
    watches: list[Watch]
    enabled: list[tuple[str, str, int, str]]  # (-e value, path, line, text)
    skipped: list[tuple[str, int, str]]  # exit rules that name a path but cannot be shown to cover perms


def _norm(path: str) -> str:
    return path.rstrip("/") or "/"


def _parse_rule(tokens: list[str]) -> dict:
    """Options of one auditctl rule line: flags with their values, -F fields as a list."""
    out: dict = {"F": [], "S": []}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        value = None
        if tok.startswith("-") and len(tok) > 2 and not tok.startswith("--"):
            tok, value = tok[:2], tok[2:]  # -F"path=/x" style glued value
        elif i + 1 < len(tokens):
            value = tokens[i + 1]
            i += 1
        i += 1
        if tok in ("-F", "-S"):
            if value is not None:
                out[tok[1]].append(value)
        elif tok.startswith("-"):
            out[tok[1:]] = value
    return out


def load_rules(ctx: ProbeContext) -> AuditRules:
    def load() -> AuditRules:
        files = conf_dir_files(ctx, RULES_DIR, ".rules")
        if not files and ctx.host.exists(RULES_FILE):
            files = [RULES_FILE]
        rules = AuditRules(files, [], [], [])
        for path in files:
            for number, raw in enumerate(read_lines(ctx, path) or [], 1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    tokens = shlex.split(text, comments=True)
                except ValueError:
                    tokens = text.split()
                if not tokens:
                    continue
                _apply(rules, _parse_rule(tokens), tokens, path, number, text)
        return rules

    return ctx.cached(("audit", "rules"), load)


def _apply(rules: AuditRules, opts: dict, tokens: list[str], path: str, number: int, text: str) -> None:
    if "e" in opts and opts["e"] is not None:
        rules.enabled.append((opts["e"], path, number, text))
    if "w" in opts and opts["w"]:
        perms = (opts.get("p") or ALL_PERMS).lower()
        rules.watches.append(Watch(_norm(opts["w"]), perms, True, path, number, text))
        return
    if "W" in opts and opts["W"]:
        removed = _norm(opts["W"])
        rules.watches[:] = [w for w in rules.watches if w.path != removed]
        return
    action = opts.get("a") or opts.get("A")
    if not action:
        return
    parts = {p.strip().lower() for p in action.split(",")}
    if "always" not in parts or not (parts & {"exit"}):
        return
    fields: dict[str, str] = {}
    for f in opts["F"]:
        if "=" in f and "!=" not in f:
            key, _, value = f.partition("=")
            fields[key.strip().lower()] = value.strip()
    target = fields.get("path") or fields.get("dir")
    if not target:
        return
    perms = fields.get("perm")
    if perms is None:
        syscalls = {s for chunk in opts["S"] for s in chunk.split(",")}
        if syscalls and syscalls != {"all"}:
            rules.skipped.append((path, number, text))  # specific syscalls without perm= : coverage unknown
            return
        perms = ALL_PERMS
    rules.watches.append(Watch(_norm(target), perms.lower(), "dir" in fields, path, number, text))


def _covers(watch: Watch, target: str) -> bool:
    if watch.path == target:
        return True
    return watch.recursive and target.startswith(watch.path.rstrip("/") + "/")


class WatchParams(Strict):
    paths: list[str] = Field(min_length=1)
    perms: str = "wa"

    @field_validator("paths")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        for p in v:
            if not p.startswith("/"):
                raise ValueError(f"{p!r} is not an absolute path")
        return v

    @field_validator("perms")
    @classmethod
    def _perms(cls, v: str) -> str:
        v = v.lower()
        if not v or set(v) - set(ALL_PERMS):
            raise ValueError(f"perms {v!r} must be letters from {ALL_PERMS!r}")
        return v


def _no_rules_evidence():
    return evidence(RULES_DIR, f"no audit rules: neither {RULES_DIR}/*.rules nor {RULES_FILE} has any")


@probe("audit.watch", WatchParams)
def audit_watch(ctx: ProbeContext, params: WatchParams) -> Observation:
    """Sorted paths from `paths` that no loaded watch covers for all of `perms`."""
    rules = load_rules(ctx)
    missing, ev = [], []
    if not rules.files:
        ev.append(_no_rules_evidence())
    for target in params.paths:
        norm = _norm(target)
        covering = [w for w in rules.watches if _covers(w, norm)]
        have = set("".join(w.perms for w in covering))
        lacking = "".join(p for p in params.perms if p not in have)
        for w in covering:
            ev.append(evidence(w.source, f"{target}: {w.text}", w.line))
        if lacking:
            missing.append(target)
            if rules.files:
                ev.append(evidence(", ".join(rules.files), f"{target}: no watch for perms {lacking!r}"
                                   + (f" (watched for {''.join(sorted(have))!r})" if have else "")))
    for path, line, text in rules.skipped:
        ev.append(evidence(path, f"not counted (syscall rule without perm=): {text}", line))
    return Observation(observed=sorted(missing), evidence=ev)


class NoParams(Strict):
    pass


@probe("audit.immutable", NoParams)
def audit_immutable(ctx: ProbeContext, params: NoParams) -> Observation:
    """True when the last `-e` in the rules is `-e 2` (rules locked until reboot)."""
    rules = load_rules(ctx)
    if not rules.enabled:
        ev = [_no_rules_evidence()] if not rules.files else \
            [evidence(", ".join(rules.files), "no -e line: rules stay changeable")]
        return Observation(observed=False, evidence=ev)
    value, path, line, text = rules.enabled[-1]
    return Observation(observed=value.strip() == "2", evidence=[evidence(path, text, line)])
