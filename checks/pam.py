"""PAM probes. `pam.lockout`, `pam.complexity`, `pam.nullok`: what a service's effective stack does (run
with libpam's dispatch rules by checks/pam_stack.py), the basis of the PAM checks. `pam.module`: which
module a stack lists and with which arguments (presence only; kept for argument checks such as the hash).

Follows Linux-PAM's reading of /etc/pam.d: `type control module-path args`, with `-type` (module may
be missing), bracket controls (`[success=1 default=ignore]`), bracketed args with spaces, `\\`
line continuation, `#` comments, `include`/`substack` (lines of the same type from another file) and
Debian's `@include` (the whole file), recursion guarded against loops. Module-side configuration
files fill in the arguments the line does not give: faillock.conf for pam_faillock, pwquality.conf
(+ pwquality.conf.d/*.conf, read first) for pam_pwquality.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, field_validator

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import conf_dir_files, read_lines, strip_comment, to_int
from .pam_stack import MAX_DEPTH, PAM_DIRS, TYPES, Chain, Handler, Outcome, Path, any_code, chain, explore, module_name
from .pam_stack import logical_lines as _logical_lines
from .pam_stack import service_path as _service_path
from .pam_stack import tokens as _tokens

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
                             "neither /etc/pam.d/system-auth nor /etc/pam.d/common-auth exists",
                             "无法判断系统 PAM 配置所在的服务文件：操作系统类别未知，且 /etc/pam.d/system-auth 与 "
                             "/etc/pam.d/common-auth 均不存在")
    return FAMILY_SERVICES[family][stack]


def _line_ev(line: PamLine, prefix: str = "") -> Evidence:
    via = f" (via {' -> '.join(line.via)})" if len(line.via) > 1 else ""
    return evidence(line.path, f"{prefix}{line.text}{via}", line.line)


@probe("pam.module", PamModuleParams)
def pam_module(ctx: ProbeContext, params: PamModuleParams) -> Observation:
    """One entry per service: {service, module, control, <arg>: value...}; module None when absent."""
    services = params.services or _default_services(ctx, params.stack)
    wanted = set(params.modules)
    rows: list[dict[str, object]] = []  # a found module's row carries its arguments' values
    ev: list[Evidence] = []
    notes: list[str] = []
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


# ---- what the effective stacks do ------------------------------------------------------------------------
# pam.lockout / pam.complexity / pam.nullok run the service's stack (checks/pam_stack.py) in a scenario and
# answer from every way through it, so position, control and jumps count, not the presence of a line.

LOCK_MODULES = ("pam_faillock", "pam_tally2", "pam_tally")
QUALITY_MODULES = ("pam_pwquality", "pam_cracklib", "pam_passwdqc")
# Modules that only set up the environment or the session: they succeed or step aside.
_BENIGN = {"pam_env", "pam_faildelay", "pam_nologin", "pam_keyinit", "pam_loginuid", "pam_group", "pam_cap",
           "pam_mail", "pam_motd", "pam_lastlog", "pam_umask", "pam_limits", "pam_warn", "pam_echo",
           "pam_systemd", "pam_selinux", "pam_namespace", "pam_xauth", "pam_mkhomedir", "pam_tty_audit",
           "pam_issue", "pam_shells"}
AUTH_SERVICES = ["sshd", "login", "su"]
# What an application takes as "authenticated": new_authtok_reqd is the right password, expired.
GRANTED = ("success", "new_authtok_reqd")
PASSWORD_SERVICES = ["passwd"]


def _faillock_mode(h: Handler) -> str:
    mode = "preauth"  # pam_faillock's default action; the last mode argument wins (args_parse)
    for arg in h.args:
        if arg in ("preauth", "authfail", "authsucc"):
            mode = arg
    return mode


def _auth_behaviour(locked: bool, password_ok: bool, empty: bool = False):
    """Auth modules for one person who is not root: account locked or not, right password or not; `empty`:
    the account has an empty password and the person enters nothing."""

    def behave(h: Handler, _state) -> list[Outcome]:
        if h.name == "pam_faillock":
            if locked:
                return [Outcome("auth_err")]  # check_tally: every mode refuses a locked account
            mode = _faillock_mode(h)
            return [Outcome("ignore", event="counted")] if mode == "authfail" else [Outcome("success")]
        if h.name in ("pam_tally2", "pam_tally"):
            return [Outcome("auth_err")] if locked else [Outcome("success", event="counted")]
        if h.name == "pam_unix":
            if empty:
                ok = any(a in ("nullok", "nullok_secure") for a in h.args)
                return [Outcome("success", event="empty-accepted")] if ok else [Outcome("auth_err")]
            return [Outcome("success", event="password")] if password_ok else \
                [Outcome("auth_err", event="password-failed")]
        if h.name == "pam_deny":
            return [Outcome("auth_err")]
        if h.name == "pam_permit":
            return [Outcome("success")]
        if h.name == "pam_rootok":
            return [Outcome("auth_err")]  # the person is not root
        if h.name in _BENIGN:
            return [Outcome("success"), Outcome("ignore")]
        return any_code(h)

    return behave


# What pam_pwquality / pam_cracklib use when neither the line nor pwquality.conf sets a value
# (libpwquality src/pwqprivate.h PWQ_DEFAULT_*; pam_cracklib.c CO_*): absence means these.
QUALITY_DEFAULTS: dict[str, dict[str, object]] = {
    "pam_pwquality": {"minlen": 8, "dcredit": 0, "ucredit": 0, "lcredit": 0, "ocredit": 0, "minclass": 0,
                      "retry": 1, "enforcing": 1, "enforce_for_root": False},
    "pam_cracklib": {"minlen": 9, "dcredit": 1, "ucredit": 1, "lcredit": 1, "ocredit": 1, "minclass": 0,
                     "retry": 1, "enforce_for_root": False},
}


def _quality_settings(ctx: ProbeContext, h: Handler) -> dict[str, object]:
    """One quality line's effective settings: its arguments, then its config file, then the defaults."""
    args = parse_args(h.args)
    on_line = set(args)
    for key, value, _path, _number, _text in _conf_settings(ctx, _module_conf(ctx, h.name, args)):
        if key not in on_line:
            args[key] = value  # the line beats the config files; among them the later one wins
    for key, value in QUALITY_DEFAULTS.get(h.name, {}).items():
        args.setdefault(key, value)
    return args


def _password_behaviour(update: bool, settings: Callable[[Handler], dict] = lambda h: {}):
    """Password modules when a person who is not root (or root under enforce_for_root) picks a weak new
    password. State: the new password libpam holds (PAM_AUTHTOK), "" or "weak"."""

    def behave(h: Handler, state) -> list[Outcome]:
        authtok = dict(state).get("authtok", "")
        use_authtok = "use_authtok" in h.args
        if not update:  # PAM_PRELIM_CHECK: nothing is asked or stored yet
            if h.name == "pam_deny":
                return [Outcome("authtok_err", state)]
            if h.name in _BENIGN or h.name in QUALITY_MODULES + ("pam_unix", "pam_permit", "pam_pwhistory"):
                return [Outcome("success", state)]
            return any_code(h, ("success", "authtok_err", "ignore"))
        if h.name in QUALITY_MODULES:
            conf = settings(h)
            if to_int(conf.get("enforcing", 1)) == 0:  # pam_pwquality only warns, then hands the password on
                return [Outcome("success", (("authtok", "weak"),))]
            # refuses it and drops it (pam_set_item(AUTHTOK, NULL)); after several tries, MAXTRIES
            code = "maxtries" if (to_int(conf.get("retry", 1)) or 1) > 1 else "authtok_err"
            return [Outcome(code, (("authtok", ""),), "refused")]
        if h.name in ("pam_unix", "pam_pwhistory"):
            if not authtok:
                if use_authtok:
                    return [Outcome("authtok_err", state)]  # nothing approved to use
                authtok = "weak"  # prompts on its own and takes what the person types
            new = (("authtok", authtok),)
            return [Outcome("success", new, "stored-weak" if h.name == "pam_unix" else "")]
        if h.name == "pam_deny":
            return [Outcome("authtok_err", state)]
        if h.name == "pam_permit":
            return [Outcome("success", state)]
        if h.name in _BENIGN:
            return [Outcome("success", state), Outcome("ignore", state)]
        return [Outcome(o.code, state) for o in any_code(h, ("success", "authtok_err", "ignore"))]

    return behave


def _path_ev(path: Path, label: str) -> list[Evidence]:
    out = [evidence(path.steps[0][0].path if path.steps else "pam", f"{label}: {path.describe()}")]
    out.extend(h.ev(f"  -> {o.code}" + (f" ({h.why})" if h.why else "")) for h, o in path.steps)
    return out


def _where(c: Chain) -> str:
    if c.path is None:
        return f"no {PAM_DIRS[0]}/{c.service} and no {PAM_DIRS[0]}/other"
    return f"{c.path} (no file of its own; libpam uses other)" if c.fallback else c.path


def _module_row(ctx: ProbeContext, c: Chain, names: tuple[str, ...], ev: list[Evidence]) -> dict[str, object]:
    """Arguments of the first of `names` in the chain, merged over its lines, with its config file filled in."""
    found = [h for h in c.handlers if h.kind == "module" and h.name in names]
    if not found:
        return {"module": None, "control": None}
    first = found[0]
    same = [h for h in found if h.name == first.name]
    args: dict[str, object] = {}
    for h in same:
        for key, value in parse_args(h.args).items():
            args.setdefault(key, value)
    on_line = set(args)
    for key, value, path, number, text in _conf_settings(ctx, _module_conf(ctx, first.name, args)):
        if key in _RESERVED or key in on_line or key in ("enforced", "why", "nullok", "nobody"):
            continue
        args[key] = value
        ev.append(evidence(path, f"[{c.service}] {text} (fills {key} for {first.name})", number))
    defaults = {k: v for k, v in QUALITY_DEFAULTS.get(first.name, {}).items() if k not in args}
    if defaults:
        args.update(defaults)
        shown = " ".join(f"{k}={v}" for k, v in defaults.items())
        ev.append(evidence(first.path, f"[{c.service}] {first.name} defaults for what neither the line nor its "
                                       f"config file sets: {shown}", first.line))
    row: dict[str, object] = {"module": first.name, "control": first.control}
    row.update({k: v for k, v in args.items() if k not in ("enforced", "why", "nobody")})
    if first.name in ("pam_pwquality", "pam_cracklib"):
        minclass = to_int(args.get("minclass")) or 0
        negative = sum(1 for cr in _CREDITS if (to_int(args.get(cr)) or 0) < 0)
        row["classes_required"] = max(minclass, negative)
    return row


class PamEffectiveParams(Strict):
    services: Optional[list[str]] = None

    @field_validator("services")
    @classmethod
    def _services(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        return PamModuleParams._services(v)


def _nobody_why(c: Chain, what: str) -> str:
    if c.path is None:
        return f"no PAM configuration for {c.service} and no other: libpam lets nobody {what}"
    return f"nobody can {what} through this stack (see the way shown), so there is nothing to enforce"


def _nobody(c: Chain, behave) -> Optional[Path]:
    """None when someone with the right credentials gets through; else a failing path to show."""
    paths = explore(c.handlers, behave)
    return None if any(p.status in GRANTED for p in paths) else paths[0]


def _sshd_without_pam(ctx: ProbeContext) -> Optional[tuple[bool, list[Evidence]]]:
    """None when sshd hands password logins to PAM (or is not installed); else (does sshd take passwords
    itself, evidence). UsePAM is global only, OpenSSH's default is no; PasswordAuthentication defaults to
    yes and a Match block may turn it on for some."""
    from .sshd import load_sshd  # the sshd probe's own reading of sshd_config

    config = "/etc/ssh/sshd_config"
    try:
        cfg = load_sshd(ctx, config)
    except (NotApplicable, ProbeError):
        return None  # not installed, or a configuration the sshd checks report on
    use = next((d for d in cfg.directives if d.key == "usepam" and d.block is None), None)
    if use is not None and use.args and use.args[0].lower() == "yes":
        return None
    ev = [evidence(use.path, use.text, use.line) if use is not None else
          evidence(config, "UsePAM not set: OpenSSH's default is no")]
    pw = [d for d in cfg.directives if d.key == "passwordauthentication"]
    first_global = next((d for d in pw if d.block is None), None)
    takes = first_global is None or (first_global.args and first_global.args[0].lower() == "yes")
    takes = bool(takes or any(d.block is not None and d.args and d.args[0].lower() == "yes" for d in pw))
    ev.extend(evidence(d.path, d.text, d.line) for d in pw)
    return takes, ev


@probe("pam.lockout", PamEffectiveParams)
def pam_lockout(ctx: ProbeContext, params: PamEffectiveParams) -> Observation:
    """Per service: does a failed-login lockout hold on the effective auth stack? {service, enforced, why,
    module, control, <lockout args>}."""
    rows, ev = [], []
    for service in params.services or AUTH_SERVICES:
        c = chain(ctx, service, "auth")
        ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}", f"[{service}] auth stack read from {_where(c)}"))
        row: dict[str, object] = {"service": service, "nobody": False}
        row.update(_module_row(ctx, c, LOCK_MODULES, ev))
        locks = [h for h in c.handlers if h.kind == "module" and h.name in LOCK_MODULES]
        ev.extend(h.ev(f"  [{service}]") for h in locks)
        if service == "sshd":
            no_pam = _sshd_without_pam(ctx)
            if no_pam is not None:
                takes_passwords, sshd_ev = no_pam
                ev.extend(sshd_ev)
                if takes_passwords:
                    row.update(enforced=False, why="sshd_config has UsePAM no: sshd checks passwords itself, so "
                               "no PAM lockout counts or refuses an SSH password login")
                else:
                    row.update(enforced=True, nobody=True, why="sshd_config has UsePAM no and accepts no "
                               "passwords (PasswordAuthentication no): nothing to lock")
                rows.append(row)
                continue
        blocked = _nobody(c, _auth_behaviour(locked=False, password_ok=True))
        if blocked is not None:
            row.update(enforced=True, nobody=True, why=_nobody_why(c, "authenticate"))
            ev.extend(_path_ev(blocked, f"[{service}] the right password is refused"))
            rows.append(row)
            continue
        if not locks:
            row.update(enforced=False, why="no pam_faillock or pam_tally2 in the effective auth stack")
            rows.append(row)
            continue
        bypass = next((p for p in explore(c.handlers, _auth_behaviour(locked=True, password_ok=True))
                       if p.status in GRANTED), None)
        if bypass is not None:
            row.update(enforced=False, why="a locked account still logs in with its password: "
                       + bypass.describe())
            ev.extend(_path_ev(bypass, f"[{service}] locked account gets in"))
            rows.append(row)
            continue
        uncounted = next((p for p in explore(c.handlers, _auth_behaviour(locked=False, password_ok=False))
                          if p.status not in GRANTED and "password-failed" in p.events()
                          and "counted" not in p.events()), None)
        if uncounted is not None:
            row.update(enforced=False, why="a wrong password is never counted (no pam_faillock authfail or "
                       "pam_tally2 on this way): " + uncounted.describe())
            ev.extend(_path_ev(uncounted, f"[{service}] failure not counted"))
            rows.append(row)
            continue
        row.update(enforced=True, why="every way through the stack refuses a locked account and counts a "
                   "wrong password")
        rows.append(row)
    return Observation(observed=rows, evidence=ev)


@probe("pam.complexity", PamEffectiveParams)
def pam_complexity(ctx: ProbeContext, params: PamEffectiveParams) -> Observation:
    """Per service: is a weak new password refused by the effective password stack? {service, enforced,
    why, module, control, <quality args>, classes_required}."""
    rows, ev = [], []
    for service in params.services or PASSWORD_SERVICES:
        c = chain(ctx, service, "password")
        ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}",
                           f"[{service}] password stack read from {_where(c)}"))
        row: dict[str, object] = {"service": service, "nobody": False}
        row.update(_module_row(ctx, c, QUALITY_MODULES, ev))
        ev.extend(h.ev(f"  [{service}]") for h in c.handlers if h.kind == "module" and h.name in QUALITY_MODULES)
        prelim = _nobody(c, _password_behaviour(update=False))
        if prelim is not None:
            row.update(enforced=True, nobody=True, why=_nobody_why(c, "change a password"))
            ev.extend(_path_ev(prelim, f"[{service}] preliminary check fails"))
        elif row["module"] is None:
            row.update(enforced=False, why="no pam_pwquality or pam_cracklib in the effective password stack")
        else:
            update = _password_behaviour(True, lambda h: _quality_settings(ctx, h))
            weak = next((p for p in explore(c.handlers, update)
                         if "stored-weak" in p.events()), None)
            if weak is not None:
                row.update(enforced=False, why="a weak password is stored anyway: " + weak.describe())
                ev.extend(_path_ev(weak, f"[{service}] weak password stored"))
            else:
                row.update(enforced=True, why="every way that stores a password goes through the quality check")
        rows.append(row)
    return Observation(observed=rows, evidence=ev)


@probe("pam.nullok", PamEffectiveParams)
def pam_nullok(ctx: ProbeContext, params: PamEffectiveParams) -> Observation:
    """Per service: does an account with an empty password get in with nothing typed? {service, nullok, why}."""
    rows, ev = [], []
    for service in params.services or AUTH_SERVICES:
        c = chain(ctx, service, "auth")
        ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}", f"[{service}] auth stack read from {_where(c)}"))
        ev.extend(h.ev(f"  [{service}]") for h in c.handlers if h.kind == "module" and h.name == "pam_unix")
        empty = next((p for p in explore(c.handlers, _auth_behaviour(False, False, empty=True))
                      if p.status in GRANTED and "empty-accepted" in p.events()), None)
        if empty is None:
            rows.append({"service": service, "nullok": False,
                         "why": "no way through the stack accepts an empty password"})
        else:
            rows.append({"service": service, "nullok": True,
                         "why": "pam_unix nullok lets an empty password in: " + empty.describe()})
            ev.extend(_path_ev(empty, f"[{service}] empty password accepted"))
    return Observation(observed=rows, evidence=ev)


def _wheel_behaviour(h: Handler, _state) -> list[Outcome]:
    """su by a person outside the wheel group who knows the target's (root's) password (pam_wheel.c
    perform_check: a non-member gets PERM_DENIED, or with `deny` IGNORE / SUCCESS under `trust`)."""
    if h.name == "pam_wheel":
        if "deny" in h.args:
            return [Outcome("success" if "trust" in h.args else "ignore")]
        return [Outcome("perm_denied")]
    if h.name == "pam_unix":
        return [Outcome("success")]
    return _auth_behaviour(locked=False, password_ok=True)(h, _state)


@probe("pam.wheel", PamEffectiveParams)
def pam_wheel(ctx: ProbeContext, params: PamEffectiveParams) -> Observation:
    """Per service (default su): can a person outside the pam_wheel group get in with the root password?
    {service, restricted, why, module, control, <pam_wheel args>}."""
    rows, ev = [], []
    for service in params.services or ["su"]:
        c = chain(ctx, service, "auth")
        ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}", f"[{service}] auth stack read from {_where(c)}"))
        row: dict[str, object] = {"service": service}
        row.update(_module_row(ctx, c, ("pam_wheel",), ev))
        ev.extend(h.ev(f"  [{service}]") for h in c.handlers if h.kind == "module" and h.name == "pam_wheel")
        way = next((p for p in explore(c.handlers, _wheel_behaviour) if p.status in GRANTED), None)
        if way is None:
            row.update(restricted=True, why="no way through the stack lets a non-member of the wheel group in")
        else:
            row.update(restricted=False, why="a person outside the wheel group gets in with the password: "
                       + way.describe())
            ev.extend(_path_ev(way, f"[{service}] non-member gets in"))
        rows.append(row)
    return Observation(observed=rows, evidence=ev)


# pam_unix's hash options (modules/pam_unix/support.h unix_args, is_hash_algo): each clears the others, so
# the last on the line wins, over login.defs ENCRYPT_METHOD, over the built-in DES.
_HASHES = ("md5", "bigcrypt", "sha256", "sha512", "blowfish", "des", "gost_yescrypt", "yescrypt")
_WEAKEST_FIRST = ("des", "bigcrypt", "md5", "sha256", "blowfish", "sha512", "gost_yescrypt", "yescrypt")


def _search_key(ctx: ProbeContext, path: str, key: str) -> Optional[tuple[str, int, str]]:
    """pam_modutil_search_key: the first `KEY value` / `KEY=value` line, `#` cut anywhere, key in any case."""
    for number, raw in enumerate(read_lines(ctx, path) or [], 1):
        text = raw.split("#", 1)[0].lstrip()
        if not text:
            continue
        m = re.match(r"([^ \t=]*)(?:[ \t=][\s=]*(.*))?$", text)  # strsep(" \t="), then skip blanks and '='
        if m and m.group(1).lower() == key.lower():
            return m.group(2) or "", number, raw.strip()
    return None


def _hash_of(ctx: ProbeContext, h: Handler) -> tuple[str, Evidence]:
    method, ev = "des", h.ev(" (no hash option: pam_unix's built-in DES)")
    found = _search_key(ctx, "/etc/login.defs", "ENCRYPT_METHOD")
    if found is not None:
        value, number, text = found
        algo = next((t for t in _HASHES if value.lower().startswith(t)), None)
        if algo is not None:
            method, ev = algo, evidence("/etc/login.defs", f"{text} (pam_unix {h.where} has no hash option)",
                                        number)
    for arg in h.args:  # pam_unix matches an option by its prefix
        algo = next((t for t in _HASHES if arg.startswith(t)), None)
        if algo is not None:
            method, ev = algo, h.ev(f" (hash: {algo})")
    return method, ev


def _storing(h: Handler, state) -> list[Outcome]:
    """A good new password: the quality modules pass it on; which pam_unix lines store it."""
    if h.name in QUALITY_MODULES:
        return [Outcome("success", (("authtok", "good"),))]
    if h.name == "pam_unix":
        authtok = dict(state).get("authtok", "")
        if not authtok and "use_authtok" in h.args:
            return [Outcome("authtok_err", state)]
        return [Outcome("success", (("authtok", "good"),), "stored")]
    return _password_behaviour(True)(h, state)


@probe("pam.hash", PamEffectiveParams)
def pam_hash(ctx: ProbeContext, params: PamEffectiveParams) -> Observation:
    """Per service (default passwd): the hash a new password gets from the pam_unix lines that store it on
    the effective password stack. {service, method, nobody, module}; the weakest when several may."""
    rows, ev = [], []
    for service in params.services or PASSWORD_SERVICES:
        c = chain(ctx, service, "password")
        ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}",
                           f"[{service}] password stack read from {_where(c)}"))
        stores = [h for p in explore(c.handlers, _storing) if p.status in GRANTED
                  for h, o in p.steps if o.event == "stored"]
        if not stores:
            rows.append({"service": service, "module": None, "method": None, "nobody": True})
            ev.append(evidence(c.path or f"{PAM_DIRS[0]}/{service}",
                               f"[{service}] no way through the stack stores a new password with pam_unix"))
            continue
        methods = []
        for h in dict.fromkeys(stores):
            method, mev = _hash_of(ctx, h)
            methods.append(method)
            ev.append(mev)
        weakest = min(methods, key=_WEAKEST_FIRST.index)
        rows.append({"service": service, "module": "pam_unix", "method": weakest, "nobody": False})
    return Observation(observed=rows, evidence=ev)
