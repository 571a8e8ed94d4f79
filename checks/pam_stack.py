"""The effective PAM stack of a service, and what it does, as Linux-PAM itself runs it.

Two halves:

- `chain(ctx, service, type)` reads /etc/pam.d the way libpam/pam_handlers.c does and returns the flat list
  of handlers libpam builds for one module type: `#` comments, `\\` continuations, `include` (the lines of
  that type from another file, inline), `substack` (the same, one stack level deeper, so `done`/`die` there
  end only the substack), Debian's `@include` (a whole file), simple controls and bracketed ones, `[..]`
  arguments. A service without its own file falls back to `other`, as libpam does. What libpam installs as a
  handler that always fails is kept as such: an include target that does not exist, an unknown module type,
  a module that is not installed (`-type` only stops libpam from logging that; the handler still returns
  PAM_MODULE_UNKNOWN and the control decides, pam.conf(5)).
- `explore(handlers, behave)` walks that list with libpam's own dispatch rules (pam_dispatch.c
  `_pam_dispatch_aux`: impression/status, ok/done/bad/die/reset/ignore, forward jumps that skip a substack
  as one, "bad jump" past the end, the final sanity check), taking every outcome a module may return in a
  scenario (`behave`), and returns every path with its final status, the handlers it ran and what they did.
  The questions the checks ask ("can a locked account still log in?") are asked over those paths in
  checks/pam.py.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Optional, Union

from sentinel.hostview import ProbeError
from sentinel.model import Evidence
from sentinel.probe import ProbeContext, evidence

from ._parse import read_lines

PAM_DIRS = ("/etc/pam.d", "/usr/lib/pam.d")
TYPES = ("auth", "account", "password", "session")
MAX_DEPTH = 32  # libpam's PAM_SUBSTACK_MAX_LEVEL/include depth is of this order; deeper is a loop in practice
MAX_PATHS = 50000
# Where distributions install modules (libpam's DEFAULT_MODULE_PATH differs per build).
MODULE_DIRS = ("/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
               "/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security",
               "/lib64/security", "/usr/lib64/security", "/lib/security", "/usr/lib/security")

# Return codes by name (pam_tokens.h); "default" is the fallback entry of a control.
RETURNS = ("success", "open_err", "symbol_err", "service_err", "system_err", "buf_err", "perm_denied",
           "auth_err", "cred_insufficient", "authinfo_unavail", "user_unknown", "maxtries",
           "new_authtok_reqd", "acct_expired", "session_err", "cred_unavail", "cred_expired", "cred_err",
           "no_module_data", "conv_err", "authtok_err", "authtok_recover_err", "authtok_lock_busy",
           "authtok_disable_aging", "try_again", "ignore", "abort", "authtok_expired", "module_unknown",
           "bad_item", "conv_again", "incomplete")
ACTIONS = ("ignore", "ok", "done", "bad", "die", "reset")
MUST_FAIL = "perm_denied"  # PAM_MUST_FAIL_CODE
Action = Union[str, int]  # one of ACTIONS, or a forward jump

_SIMPLE: dict[str, dict[str, Action]] = {
    "required": {"success": "ok", "new_authtok_reqd": "ok", "ignore": "ignore", "default": "bad"},
    "requisite": {"success": "ok", "new_authtok_reqd": "ok", "ignore": "ignore", "default": "die"},
    "optional": {"success": "ok", "new_authtok_reqd": "ok", "default": "ignore"},
    "sufficient": {"success": "done", "new_authtok_reqd": "done", "default": "ignore"},
}


@dataclass(frozen=True)
class Handler:
    """One entry of libpam's handler list for a module type."""

    type: str
    kind: str  # "module"; "fail" (libpam installs a handler that always fails); "substack" (a marker)
    control: str  # as written, brackets normalised
    actions: tuple[tuple[str, Action], ...]  # return code -> action, with "default"
    module: str  # as written ('' for a failing include)
    name: str  # pam_unix
    args: tuple[str, ...]
    path: str
    line: int
    text: str
    via: tuple[str, ...]  # the files from the service file down to this one
    level: int  # substack depth
    installed: Optional[bool] = None  # None: cannot tell (no module directory in this root)
    why: str = ""  # kind "fail": why libpam fails it; a module: what libpam made of a control it could not parse

    def action(self, code: str) -> Action:
        table = dict(self.actions)
        return table.get(code, table["default"])

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def ev(self, note: str = "") -> Evidence:
        via = f" (via {' -> '.join(self.via)})" if len(self.via) > 1 else ""
        return evidence(self.path, f"{self.text}{via}{note}", self.line)


@dataclass
class Chain:
    service: str
    type: str
    path: Optional[str]  # the file the service was read from (may be `other`); None: neither exists
    fallback: bool  # True when the service has no file of its own and `other` was used
    handlers: list[Handler]


def module_name(module: str) -> str:
    base = module.rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".so") else base


def service_path(ctx: ProbeContext, name: str) -> Optional[str]:
    if name.startswith("/"):
        return name if ctx.host.exists(name) else None
    for directory in PAM_DIRS:
        candidate = f"{directory}/{name}"
        if ctx.host.exists(candidate):
            return candidate
    return None


def logical_lines(lines: list[str]):
    """(first line number, text) of each configuration line, as libpam 1.5 (_pam_assemble_line) reads them:
    a physical line that is blank or starts with `#` is skipped, even inside a continuation; a `#` anywhere
    else cuts the rest of the line and ends the logical line; a `\\` at the end (trailing blanks allowed)
    joins the next line. (libpam 1.6+ ends a continuation at a comment-only line; the distributions
    judged here ship 1.3-1.5.)"""
    buf, start = "", 0
    for number, raw in enumerate(lines, 1):
        text = raw.lstrip(" \t\n")
        if not text or text.startswith("#"):
            continue
        if not buf:
            start = number
        if "#" in text:
            buf += text.split("#", 1)[0]
        else:
            body = text.rstrip(" \t\n")
            if body.endswith("\\"):
                buf += body[:-1] + " "
                continue
            buf += body
        if buf.strip():
            yield start, buf.strip()
        buf = ""
    if buf.strip():
        yield start, buf.strip()


def tokens(text: str) -> list[str]:
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


_CONTROL_ITEM = re.compile(r"\s*([A-Za-z_]+)\s*=\s*([A-Za-z]+|\d+)")


def parse_control(control: str) -> tuple[dict[str, Action], str]:
    """A control as libpam's action table (pam_handlers.c, _pam_parse_control), and what was wrong with it
    ('' when nothing). Unset entries of a bracket take `bad` ("by default the default is to treat as
    failure"); `default=` fills only what is still unset; a control libpam cannot parse makes every return
    code `bad` (it logs "pam_parse" and goes on)."""
    simple = _SIMPLE.get(control.lower())
    if simple is not None:
        return dict(simple), ""
    inner = control[1:-1] if control.startswith("[") and control.endswith("]") else control
    table: dict[str, Action] = {}
    pos = 0
    while inner[pos:].strip():
        m = _CONTROL_ITEM.match(inner, pos)
        problem = ""
        if m is None:
            problem = f"{inner[pos:].strip()!r} is not return_value=action"
        elif m.group(1) not in RETURNS and m.group(1) != "default":
            problem = f"{m.group(1)!r} is not a PAM return value"
        elif not (m.group(2) in ACTIONS or (m.group(2).isdigit() and int(m.group(2)) > 0)):
            problem = f"{m.group(2)!r} is not an action or a jump > 0"
        if problem:
            return {"default": "bad"}, f"control {control!r}: {problem}; libpam treats every result as bad"
        assert m is not None  # no match set a problem above
        code, act = m.group(1), m.group(2)
        value: Action = int(act) if act.isdigit() else act
        if code == "default":
            table.setdefault("default", value)
        else:
            table[code] = value
        pos = m.end()
    table.setdefault("default", "bad")
    return table, ""


def _installed(ctx: ProbeContext, module: str) -> Optional[bool]:
    def dirs() -> list[str]:
        return [d for d in MODULE_DIRS if ctx.host.exists(d)]

    present = ctx.cached(("pam-module-dirs",), dirs)
    if module.startswith("/"):
        return ctx.host.exists(module) if present else None
    if not present:
        return None
    return any(ctx.host.exists(f"{d}/{module}") for d in present)


def chain(ctx: ProbeContext, service: str, ptype: str) -> Chain:
    """libpam's handler list of `service` for one module type (cached per run)."""

    def load() -> Chain:
        path, fallback = service_path(ctx, service), False
        if path is None and not service.startswith("/"):
            path, fallback = service_path(ctx, "other"), True
        if path is None:
            return Chain(service, ptype, None, fallback, [])
        return Chain(service, ptype, path, fallback, _expand(ctx, path, ptype, (path,), 0))

    return ctx.cached(("pam-chain", service, ptype), load)


def _fail(ptype: str, path: str, number: int, text: str, chain_: tuple[str, ...], level: int,
          why: str) -> Handler:
    return Handler(ptype, "fail", "", (("default", "bad"),), "", "", (), path, number, text, chain_, level,
                   None, why)


def _expand(ctx: ProbeContext, path: str, ptype: str, via: tuple[str, ...], level: int) -> list[Handler]:
    if len(via) > MAX_DEPTH:
        raise ProbeError(f"PAM include nesting deeper than {MAX_DEPTH}: " + " -> ".join(via))
    out: list[Handler] = []
    for number, text in logical_lines(read_lines(ctx, path) or []):
        where = f"{path}:{number}"
        toks = tokens(text)
        head = toks[0].lower()
        if head == "@include":  # Debian: the whole file, every type
            if len(toks) < 2:
                raise ProbeError(f"{where}: @include without a file name")
            out.extend(_include(ctx, path, number, text, toks[1], ptype, via, level))
            continue
        typ = head[1:] if head.startswith("-") else head
        if typ not in TYPES:
            # libpam installs a handler that always fails in the requested stack ("most sensitive")
            out.append(_fail(ptype, path, number, text, via, level, f"unknown PAM type {toks[0]!r}"))
            continue
        if typ != ptype:
            continue
        if len(toks) < 3:
            out.append(_fail(ptype, path, number, text, via, level, "no control or no module on the line"))
            continue
        control = toks[1]
        if control.lower() in ("include", "substack"):
            sub = control.lower() == "substack"
            if sub:
                out.append(Handler(ptype, "substack", "substack", (("default", "ignore"),), toks[2], "", (),
                                   path, number, text, via, level))
            out.extend(_include(ctx, path, number, text, toks[2], ptype, via, level + (1 if sub else 0)))
            continue
        if control.startswith("["):
            control = "[" + " ".join(control[1:-1].split()) + "]"
        actions, _problem = parse_control(control)
        args = tuple(a[1:-1].replace("\\]", "]") if a.startswith("[") else a for a in toks[3:])
        installed = _installed(ctx, toks[2])
        out.append(Handler(ptype, "module", control, tuple(actions.items()), toks[2], module_name(toks[2]), args,
                           path, number, text, via, level, installed, _problem))
    return out


def _include(ctx, path, number, text, target, ptype, via, level) -> list[Handler]:
    target_path = service_path(ctx, target)
    if target_path is None:
        return [_fail(ptype, path, number, text, via, level, f"included file {target!r} does not exist")]
    if target_path in via:
        raise ProbeError(f"PAM include loop: {' -> '.join(via + (target_path,))} ({path}:{number})")
    return _expand(ctx, target_path, ptype, via + (target_path,), level)


# ---- dispatch ------------------------------------------------------------------------------------------

State = tuple  # a scenario's own facts along a path, e.g. (("authtok", "weak"),): hashable, immutable


@dataclass(frozen=True)
class Outcome:
    """One thing a module may do in a scenario: its return code, the scenario state after it, a tag."""

    code: str
    state: State = ()
    event: str = ""  # e.g. "stored-weak", "counted"


@dataclass
class Path:
    status: str  # what the stack returns
    steps: list[tuple[Handler, Outcome]] = field(default_factory=list)  # handlers run, in order
    decided_by: Optional[Handler] = None  # the handler whose action ended the walk (done/die), if any

    def events(self) -> set[str]:
        return {o.event for _, o in self.steps if o.event}

    def ran(self, handler: Handler) -> Optional[Outcome]:
        return next((o for h, o in self.steps if h is handler), None)

    def describe(self) -> str:
        parts = [f"{h.where} {h.name or h.text} -> {o.code}" for h, o in self.steps]
        return "; ".join(parts) + f" => {self.status}"


Behave = Callable[[Handler, State], Iterable[Outcome]]


def explore(handlers: list[Handler], behave: Behave, state: State = ()) -> list[Path]:
    """Every way libpam's dispatch can walk `handlers` when each module may do what `behave` says."""
    paths: list[Path] = []
    n = len(handlers)
    if n == 0:  # "no modules loaded for service"
        return [Path(MUST_FAIL)]

    def finish(impression: str, status: str, steps, decided) -> None:
        if status == "success" and impression != "positive":
            status = MUST_FAIL  # libpam's sanity check
        paths.append(Path(status, list(steps), decided))
        if len(paths) > MAX_PATHS:
            raise ProbeError(f"PAM stack has more than {MAX_PATHS} ways through it; not evaluated")

    seen: set = set()

    def walk(i: int, prev_level: int, impression: str, status: str, subst: tuple, st: State, steps: tuple,
             decided_by: Optional[Handler] = None):
        # Two ways that reach the same handler in the same dispatch state, with the same scenario state and
        # the same events so far, end the same way: keep one (what the questions read is status and
        # events), so the walk grows with the stack's states, not with the product of module outcomes.
        key = (i, prev_level, impression, status, subst, st, frozenset(o.event for _, o in steps if o.event))
        if key in seen:
            return
        seen.add(key)
        while i < n:
            h = handlers[i]
            level = h.level
            if prev_level < level:  # entering a substack: remember the state to `reset` to
                subst = subst[:level] + ((impression, status),)
            if h.kind == "substack":
                prev_level, i = level, i + 1
                continue
            outcomes = [Outcome(MUST_FAIL, st)] if h.kind == "fail" else (
                [Outcome("module_unknown", st)] if h.installed is False else list(behave(h, st)))
            if len(outcomes) > 1:
                for out in outcomes:
                    _apply(i, h, out, impression, status, subst, steps)
                return
            _apply(i, h, outcomes[0], impression, status, subst, steps)
            return
        finish(impression, status, steps, decided_by)

    def _apply(i, h, out: Outcome, impression, status, subst, steps):
        level = h.level
        steps = steps + ((h, out),)
        code = out.code
        action = h.action(code)
        decided = False
        if action == "reset":
            impression, status = subst[level] if level < len(subst) else ("undef", MUST_FAIL)
        elif action in ("ok", "done"):
            if impression == "undef" or (impression == "positive" and status == "success"):
                impression, status = "positive", code
            if impression == "positive" and action == "done":
                decided = True
        elif action in ("bad", "die"):
            if impression != "negative":
                impression = "negative"
                status = MUST_FAIL if code == "ignore" else code
            if action == "die":
                decided = True
        elif isinstance(action, int):
            j, left = i, action
            while j + 1 < n and handlers[j + 1].level >= level and left > 0:
                j += 1
                while j + 1 < n and handlers[j + 1].level > level:
                    j += 1
                left -= 1
            if left:  # "bad jump in stack"
                impression, status = "negative", MUST_FAIL
            walk(j + 1, level, impression, status, subst, out.state, steps)
            return
        if decided:
            j = i
            while j + 1 < n and handlers[j + 1].level >= level:
                j += 1
            walk(j + 1, level, impression, status, subst, out.state, steps, h if level == 0 else None)
            return
        walk(i + 1, level, impression, status, subst, out.state, steps)

    walk(0, 0, "undef", MUST_FAIL, (("undef", MUST_FAIL),), state, ())
    return paths


def any_code(h: Handler, usual: Iterable[str] = ("success", "auth_err", "ignore")) -> list[Outcome]:
    """A module whose answer sentinel cannot know: every code its control treats differently."""
    codes = list(dict.fromkeys(list(usual) + [c for c, _ in h.actions if c != "default"]))
    named = {c for c, _ in h.actions}
    for fallback in ("auth_err", "perm_denied", "system_err"):
        if fallback not in named:
            codes.append(fallback)  # one code that takes the control's default
            break
    return [Outcome(c) for c in dict.fromkeys(codes)]
