"""`pam.module`: which module a PAM stack uses and with which arguments.

Follows Linux-PAM's reading of /etc/pam.d: `type control module-path args`, with `-type` (module may
be missing), bracket controls (`[success=1 default=ignore]`), bracketed args with spaces, `\\`
line continuation, `#` comments, `include`/`substack` (lines of the same type from another file) and
Debian's `@include` (the whole file), recursion guarded against loops. Module-side configuration
files fill in the arguments the line does not give: faillock.conf for pam_faillock, pwquality.conf
(+ pwquality.conf.d/*.conf, read first) for pam_pwquality.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, field_validator

from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, ProbeError, evidence, probe

from ._parse import conf_dir_files, read_lines, strip_comment, to_int

PAM_DIRS = ("/etc/pam.d", "/usr/lib/pam.d")
MAX_DEPTH = 32
TYPES = ("auth", "account", "password", "session")
FAMILY_SERVICES = {
    "rhel": {t: ["system-auth", "password-auth"] for t in TYPES},
    # docs/probes.md names common-auth for account too, but Debian keeps that stack in common-account
    "debian": {"auth": ["common-auth"], "account": ["common-account"], "password": ["common-password"],
               "session": ["common-session"]},
}
_RESERVED = {"service", "module", "control"}
_CREDITS = ("ucredit", "lcredit", "dcredit", "ocredit")


@dataclass(frozen=True)
class PamLine:
    type: str
    control: str
    module: str  # as written: pam_unix.so, /lib64/security/pam_faillock.so
    name: str  # pam_unix
    args: tuple[str, ...]
    path: str
    line: int
    text: str
    via: tuple[str, ...]  # include chain from the service file down to this file


@dataclass
class PamStack:
    service: str
    path: Optional[str]  # None: service file absent
    lines: list[PamLine]
    problems: list[Evidence]  # include targets that do not exist


def module_name(module: str) -> str:
    base = module.rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".so") else base


def _service_path(ctx: ProbeContext, name: str) -> Optional[str]:
    if name.startswith("/"):
        return name if ctx.host.exists(name) else None
    for directory in PAM_DIRS:
        candidate = f"{directory}/{name}"
        if ctx.host.exists(candidate):
            return candidate
    return None


def _logical_lines(lines: list[str]):
    """(first line number, text) with `\\` continuations joined and `#` comments removed."""
    buf, start = "", 0
    for number, raw in enumerate(lines, 1):
        if not buf:
            start = number
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        buf += raw
        text = buf.split("#", 1)[0].strip()  # Linux-PAM cuts a comment anywhere on the line
        buf = ""
        if text:
            yield start, text
    if buf.strip():
        yield start, buf.split("#", 1)[0].strip()


def _tokens(text: str) -> list[str]:
    """Split on whitespace; `[...]` (a control, or an arg containing spaces) is one token."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "[":
            j = i + 1
            while j < n and not (text[j] == "]" and text[j - 1] != "\\"):
                j += 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append(text[i:j])
        i = j
    return out


def load_stack(ctx: ProbeContext, service: str) -> PamStack:
    """Every effective line of a service, includes expanded (cached per run)."""

    def load() -> PamStack:
        path = _service_path(ctx, service)
        if path is None:
            return PamStack(service, None, [], [])
        problems: list[Evidence] = []
        lines = _expand(ctx, path, None, (path,), problems)
        return PamStack(service, path, lines, problems)

    return ctx.cached(("pam", service), load)


def _expand(ctx: ProbeContext, path: str, only: Optional[str], chain: tuple[str, ...],
            problems: list[Evidence]) -> list[PamLine]:
    if len(chain) > MAX_DEPTH:
        raise ProbeError(f"PAM include nesting deeper than {MAX_DEPTH}: " + " -> ".join(chain))
    out: list[PamLine] = []
    for number, text in _logical_lines(read_lines(ctx, path) or []):
        tokens = _tokens(text)
        head = tokens[0].lower()
        if head == "@include":
            if len(tokens) < 2:
                raise ProbeError(f"{path}:{number}: @include without a file name")
            out.extend(_include(ctx, path, number, text, tokens[1], only, chain, problems))
            continue
        if len(tokens) < 3:
            raise ProbeError(f"{path}:{number}: malformed PAM line {text!r} (need type, control and module)")
        ptype = head.lstrip("-")
        if ptype not in TYPES:
            raise ProbeError(f"{path}:{number}: unknown PAM type {tokens[0]!r}")
        if only is not None and ptype != only:
            continue
        control = tokens[1]
        if control.lower() in ("include", "substack"):
            out.extend(_include(ctx, path, number, text, tokens[2], ptype, chain, problems))
            continue
        if control.startswith("["):
            control = "[" + " ".join(control[1:-1].split()) + "]"
        args = tuple(a[1:-1].replace("\\]", "]") if a.startswith("[") else a for a in tokens[3:])
        out.append(PamLine(ptype, control, tokens[2], module_name(tokens[2]), args, path, number, text,
                           chain))
    return out


def _include(ctx, path, number, text, target, only, chain, problems) -> list[PamLine]:
    target_path = _service_path(ctx, target)
    if target_path is None:
        problems.append(evidence(path, f"{text}: included file {target!r} does not exist "
                                       "(PAM fails this stack)", number))
        return []
    if target_path in chain:
        raise ProbeError(f"PAM include loop: {' -> '.join(chain + (target_path,))} ({path}:{number})")
    return _expand(ctx, target_path, only, chain + (target_path,), problems)


def parse_args(args: tuple[str, ...] | list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if key in _RESERVED or key in out:
            continue
        if not eq:
            out[key] = True
        else:
            number = to_int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else None
            out[key] = number if number is not None else value
    return out


def _conf_settings(ctx: ProbeContext, paths: list[str]) -> list[tuple[str, object, str, int, str]]:
    """`key = value` / bare-flag settings of module config files, later files last."""
    out = []
    for path in paths:
        for number, raw in enumerate(read_lines(ctx, path) or [], 1):
            text = strip_comment(raw)
            if not text:
                continue
            key, eq, value = text.partition("=")
            key, value = key.strip(), value.strip()
            if not key or " " in key:
                continue
            parsed: object = True if not eq else (to_int(value) if re.fullmatch(r"[+-]?\d+", value) else value)
            out.append((key, parsed, path, number, raw.strip()))
    return out


def _module_conf(ctx: ProbeContext, name: str, args: dict) -> list[str]:
    if name == "pam_faillock":
        conf = args.get("conf")
        return [conf if isinstance(conf, str) and conf.startswith("/") else "/etc/security/faillock.conf"]
    if name == "pam_pwquality":
        # libpwquality reads pwquality.conf.d/*.conf in ASCII order first, then pwquality.conf
        return conf_dir_files(ctx, "/etc/security/pwquality.conf.d") + ["/etc/security/pwquality.conf"]
    return []


class PamModuleParams(Strict):
    stack: Literal["auth", "account", "password", "session"]
    modules: list[str] = Field(min_length=1)
    services: Optional[list[str]] = None

    @field_validator("modules")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        names = []
        for item in v:
            name = module_name(item.strip())
            if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
                raise ValueError(f"{item!r} is not a PAM module name")
            names.append(name)
        return names

    @field_validator("services")
    @classmethod
    def _services(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None:
            if not v:
                raise ValueError("services must not be empty (omit it for the family default)")
            for s in v:
                if not s or ("/" in s and not s.startswith("/")) or s.strip() != s:
                    raise ValueError(f"{s!r} is not a PAM service name or absolute path")
        return v


def _default_services(ctx: ProbeContext, stack: str) -> list[str]:
    family = ctx.family
    if family not in FAMILY_SERVICES:
        # Unknown family: let the layout on disk decide
        if _service_path(ctx, "system-auth"):
            family = "rhel"
        elif _service_path(ctx, "common-auth"):
            family = "debian"
        else:
            raise ProbeError("cannot tell which PAM services hold the system stacks: unknown OS family and "
                             "neither /etc/pam.d/system-auth nor /etc/pam.d/common-auth exists")
    return FAMILY_SERVICES[family][stack]


def _line_ev(line: PamLine, prefix: str = "") -> Evidence:
    via = f" (via {' -> '.join(line.via)})" if len(line.via) > 1 else ""
    return evidence(line.path, f"{prefix}{line.text}{via}", line.line)


@probe("pam.module", PamModuleParams)
def pam_module(ctx: ProbeContext, params: PamModuleParams) -> Observation:
    """One entry per service: {service, module, control, <arg>: value...}; module None when absent."""
    services = params.services or _default_services(ctx, params.stack)
    wanted = set(params.modules)
    rows, ev, notes = [], [], []
    for service in services:
        stack = load_stack(ctx, service)
        ev.extend(stack.problems)
        if stack.path is None:
            rows.append({"service": service, "module": None, "control": None})
            where = service if service.startswith("/") else " or ".join(f"{d}/{service}" for d in PAM_DIRS)
            ev.append(evidence(where, "no such file"))
            notes.append(f"PAM service {service} does not exist")
            continue
        typed = [ln for ln in stack.lines if ln.type == params.stack]
        first = next((ln for ln in typed if ln.name in wanted), None)
        if first is None:
            rows.append({"service": service, "module": None, "control": None})
            shown = [f"{ln.path}:{ln.line}: {ln.text}" for ln in typed]
            ev.append(evidence(stack.path, f"no {'/'.join(params.modules)} in the {params.stack} stack; "
                                           f"{params.stack} lines:\n" + ("\n".join(shown) or "(none)")))
            continue
        same = [ln for ln in typed if ln.name == first.name]
        args: dict[str, object] = {}
        for ln in same:  # e.g. pam_faillock preauth + authfail lines: first value of each arg wins
            for key, value in parse_args(ln.args).items():
                args.setdefault(key, value)
            ev.append(_line_ev(ln, f"[{service}] "))
        on_line, from_conf = set(args), {}
        for key, value, path, number, text in _conf_settings(ctx, _module_conf(ctx, first.name, args)):
            if key in _RESERVED or key in on_line:
                continue  # an argument on the module line beats the config file
            args[key] = value  # among config files the later one wins
            from_conf[key] = (path, number, text)
        for key, (path, number, text) in from_conf.items():
            ev.append(evidence(path, f"[{service}] {text} (fills {key} for {first.name})", number))
        row: dict[str, object] = {"service": service, "module": first.name, "control": first.control}
        row.update(args)
        if first.name in ("pam_pwquality", "pam_cracklib"):
            minclass = to_int(args.get("minclass")) or 0
            negative = sum(1 for c in _CREDITS if (to_int(args.get(c)) or 0) < 0)
            row["classes_required"] = max(minclass, negative)
        rows.append(row)
    return Observation(observed=rows, evidence=ev, note="; ".join(notes) or None)
