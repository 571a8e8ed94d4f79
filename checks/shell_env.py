"""`shell.variable` and `shell.umask`: what a regular user's bash login shell ends up with, modelled from
the files the login reads, in the order the programs read them:

1. PAM (the `service` stack, e.g. sshd): pam_env (auth or session, unless `readenv=0`) puts the `KEY=value`
   lines of its `envfile=` (default /etc/environment) into the environment; pam_umask sets the umask from its
   `umask=` argument or the first UMASK line of login.defs (read its own way: `#` starts a comment, leading
   octal digits count); with the `usergroups` argument the group bits copy the owner bits for a user whose
   primary group is their own (login.defs USERGROUPS_ENAB is useradd's, pam_umask ignores it). The user's
   GECOS `umask=` and /etc/default/login are not read. Without pam_umask the umask is the 022 the session
   inherits from init.
2. bash as a login shell reads /etc/profile, which sources what it sources (`. FILE`, `source FILE`, and
   `for i in /etc/profile.d/*.sh; do . $i; done` in glob order), including /etc/bash.bashrc or /etc/bashrc
   where the profile sources it. Per-user files (~/.bash_profile, ~/.profile) are the user's and not read.

The interpreter is deliberately small: assignments, `export`, `readonly`, `declare -r`/`typeset -r`, `unset`,
`umask`, sourcing, `return` at the top of a sourced file, `if`/`elif`/`else`, `case` branches, `while`/`until`
bodies (may run or not), `{ ...; }` groups after `&&`/`||`; here-documents are skipped as data. bash's rules
that matter here are kept: assigning to or unsetting a readonly variable fails and leaves the value as it was;
commands in a pipeline run in a subshell and change nothing; function bodies run only when called (not
modelled: they are skipped). A test it can decide (`[ -f /etc/bashrc ]` on the root, `[ "$PS1" ]` from
`interactive`, `[ -n "$BASH_VERSION" ]`, `shopt -q login_shell`, `$UID -gt 199` for a regular user) picks the
branch; a test it cannot decide makes what the branch does *possible*, and the observed value is then the
weakest possible one (the evidence lists the others), so an undecidable branch never makes a host look better
than it may be.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from pydantic import Field

from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import read_lines
from .logindefs import LOGIN_DEFS
from .pam_stack import chain

PROFILE = "/etc/profile"
ENVIRONMENT = "/etc/environment"
INIT_UMASK = 0o022  # what systemd/init hands a login session before PAM and the shell change it
USER_UID = 1000  # the modelled user: a regular account whose primary group is its own
_CMDSUBST = re.compile(r"\$\([^()]*\)|`[^`]*`")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_SEPARATORS = {";", "&&", "||", "|", "&", "\n", ";;", ";&", ";;&"}
_LOGIN_PROVIDED = {"HOME", "USER", "LOGNAME", "PATH", "SHELL", "TERM", "LANG", "MAIL", "DISPLAY", "PWD", "HOSTNAME"}
_MAX_DEPTH = 8  # sourcing depth, against a profile that sources itself


@dataclass
class Var:
    values: list[tuple[Optional[str], str]]  # possible values with the line that set each; None = unset
    readonly: bool = False


Snap = tuple  # (vars, umasks) as Shell.snapshot makes them


@dataclass
class Shell:
    ctx: ProbeContext
    interactive: bool
    vars: dict[str, Var] = field(default_factory=dict)
    umasks: list[tuple[int, str]] = field(default_factory=lambda: [(INIT_UMASK, "initial umask 022")])
    notes: list[Evidence] = field(default_factory=list)
    sourced: list[str] = field(default_factory=list)

    def snapshot(self) -> Snap:
        return ({k: Var(list(v.values), v.readonly) for k, v in self.vars.items()}, list(self.umasks))

    def restore(self, snap: Snap) -> None:
        self.vars = {k: Var(list(v.values), v.readonly) for k, v in snap[0].items()}
        self.umasks = list(snap[1])

    def merge(self, snaps: list[Snap]) -> None:
        names = {n for snap in snaps for n in snap[0]}
        merged: dict[str, Var] = {}
        for name in names:
            values: list = []
            for snap in snaps:
                var = snap[0].get(name)
                for entry in (var.values if var else [(None, "not set")]):
                    if entry not in values:
                        values.append(entry)
            merged[name] = Var(values, all(name in snap[0] and snap[0][name].readonly for snap in snaps))
        umasks: list = []
        for snap in snaps:
            umasks += [u for u in snap[1] if u not in umasks]
        self.vars, self.umasks = merged, umasks

    # -- state changes -------------------------------------------------------------------------------
    def assign(self, name: str, value: Optional[str], where: str, certain: bool, ev: Evidence) -> None:
        var = self.vars.get(name)
        if var and var.readonly:
            self.notes.append(evidence(ev.source, f"{ev.excerpt} (bash refuses: {name} is readonly)", ev.line))
            return
        entry = (value, where)
        if var is None:
            var = self.vars[name] = Var([(None, "not set")])
        var.values = [entry] if certain else var.values + [entry]

    def set_umask(self, mask: int, where: str, certain: bool) -> None:
        self.umasks = [(mask, where)] if certain else self.umasks + [(mask, where)]


@dataclass
class Frame:
    """An if (or case/while) being read. Each branch runs on the state from before the if; at `fi` the
    state becomes the union of what the branches that may run produced, so an undecided if/else that sets
    the same value in both branches still sets it for certain."""

    state: Optional[bool]  # this branch: True runs; False does not; None cannot tell
    decided: Optional[bool]  # a branch so far runs for certain (True) / may have run (None) / none did (False)
    snapshot: Snap
    ends: list[Snap] = field(default_factory=list)
    kind: str = "if"


def _words(text: str) -> Optional[list[str]]:
    lex = shlex.shlex(_CMDSUBST.sub("__CMDSUBST__", text), posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    try:
        return list(lex)
    except ValueError:
        return None  # an unclosed quote: the statement goes on on the next line


def _commands(words: list[str]) -> list[tuple[str, list[str]]]:
    """Split at ; && || | & into (separator before, words), dropping redirections."""
    out: list[tuple[str, list[str]]] = []
    cur: list[str] = []
    sep = ";"
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w in _SEPARATORS:
            out.append((sep, cur))
            cur, sep = [], w
        elif set(w) <= set("<>&") and w:
            skip = True  # the redirection target follows
        elif re.match(r"^\d*[<>]", w):
            continue
        else:
            cur.append(w)
    out.append((sep, cur))
    return [(s, c) for s, c in out if c or s == "|"]


def parse_umask(arg: str) -> Optional[int]:
    if re.fullmatch(r"[0-7]{1,4}", arg):
        return int(arg, 8) & 0o777
    if re.fullmatch(r"([ugoa]+=[rwx]*)(,[ugoa]+=[rwx]*)*", arg):  # symbolic: the permissions kept
        allowed = 0o777
        for part in arg.split(","):
            who, perms = part.split("=")
            bits = sum({"r": 4, "w": 2, "x": 1}[p] for p in perms)
            for w in ("ugo" if "a" in who else who):
                shift = {"u": 6, "g": 3, "o": 0}[w]
                allowed = (allowed & ~(7 << shift)) | (bits << shift)
        return 0o777 & ~allowed
    return None


class Interpreter:
    def __init__(self, shell: Shell):
        self.shell = shell

    # -- tests ---------------------------------------------------------------------------------------
    def decide(self, words: list[str], loop: dict[str, str]) -> Optional[bool]:
        """True/False when the condition's outcome is known for the modelled login, else None."""
        parts: list[tuple[str, list[str]]] = []
        cur: list[str] = []
        for w in words:
            if w in ("&&", "||"):
                parts.append((w, cur))
                cur = []
            else:
                cur.append(w)
        parts.append(("&&", cur))
        result: Optional[bool] = True
        for op, part in parts:
            one = self._test(part, loop)
            result = (None if result is None or one is None else result and one) if op == "&&" else \
                (True if result or one else (None if result is None or one is None else False))
        return result

    def _test(self, words: list[str], loop: dict[str, str]) -> Optional[bool]:
        if words and words[0] == "!":
            inner = self._test(words[1:], loop)
            return None if inner is None else not inner
        if words[:2] == ["shopt", "-q"] and words[2:] == ["login_shell"]:
            return True
        if not words or words[0] not in ("[", "[[", "test"):
            return None
        body = words[1:-1] if words[0] != "test" else words[1:]
        host = self.shell.ctx.host

        def val(w: str) -> Optional[str]:
            m = re.fullmatch(r"\$\{?(\w+)(?:-[^}]*)?\}?", w)
            if m:
                name = m.group(1)
                if name in loop:
                    return loop[name]
                if name == "PS1":
                    return "$ " if self.shell.interactive else ""
                if name in ("BASH_VERSION", "BASH"):
                    return "5"
                if name in ("UID", "EUID"):
                    return str(USER_UID)
                var = self.shell.vars.get(name)
                if var:
                    return (var.values[0][0] or "") if len(var.values) == 1 else None
                # a name nothing modelled has set is unset, unless login itself provides it
                return None if name in _LOGIN_PROVIDED or name.startswith(("LC_", "SSH_", "XDG_")) else ""
            return None if "$" in w or "__CMDSUBST__" in w else w

        if len(body) == 1:
            v = val(body[0])
            return None if v is None else v != ""
        if len(body) == 2 and body[0] in ("-n", "-z"):
            v = val(body[1])
            return None if v is None else (v != "") == (body[0] == "-n")
        if len(body) == 2 and body[0] in ("-f", "-r", "-e", "-d", "-s", "-x"):
            path = val(body[1])
            if path is None or not path.startswith("/"):
                return None
            return host.is_dir(path) if body[0] == "-d" else host.exists(path)
        if len(body) == 3 and body[1] in ("-eq", "-ne", "-gt", "-ge", "-lt", "-le", "=", "==", "!="):
            a, b = val(body[0]), val(body[2])
            if a is None or b is None:
                return None
            if body[1] in ("=", "==", "!="):
                return (a == b) != (body[1] == "!=")
            try:
                x, y = int(a), int(b)
            except ValueError:
                return None
            return {"-eq": x == y, "-ne": x != y, "-gt": x > y, "-ge": x >= y, "-lt": x < y, "-le": x <= y}[body[1]]
        return None

    # -- files ---------------------------------------------------------------------------------------
    def source(self, path: str, depth: int = 0, certain: bool = True) -> None:
        lines = read_lines(self.shell.ctx, path)
        if lines is None or depth > _MAX_DEPTH:
            return
        self.shell.sourced.append(path)
        frames: list[Frame] = []
        loop: dict[str, str] = {}
        loops: list[tuple[str, list[str], int]] = []  # (var, items, frame depth)
        func_depth = 0
        pending, start = "", 0
        body: list[tuple[int, str]] = []  # lines of a for loop being collected
        heredoc: Optional[str] = None  # the delimiter of a here-document being skipped
        for number, raw in enumerate(lines, 1):
            if heredoc is not None:  # here-document text is data, not commands
                if raw.strip() == heredoc:
                    heredoc = None
                continue
            text = (pending + "\n" + raw) if pending else raw
            if text.rstrip().endswith("\\"):
                pending, start = text.rstrip()[:-1], start or number
                continue
            words = _words(text)
            if words is None:
                pending, start = text, start or number
                continue
            line_no, pending, start = start or number, "", 0
            for k, w in enumerate(words[:-1]):
                if w in ("<<", "<<-"):
                    heredoc = words[k + 1].lstrip("-")
            if loops:
                body.append((line_no, text))
                opened = sum(1 for w in words if w in ("do",))
                closed = sum(1 for w in words if w == "done")
                var, items, level = loops[-1]
                level += opened - closed
                loops[-1] = (var, items, level)
                if level <= 0:
                    loops.pop()
                    if closed:  # the closing line may hold commands before `done` (`fi; done`): keep them
                        before = words[: len(words) - 1 - words[::-1].index("done")]
                        body[-1] = (line_no, " ".join(w if w in _SEPARATORS else shlex.quote(w) for w in before))
                    self._run_loop(path, var, items, body, frames, depth, certain)
                    body = []
                continue
            if func_depth:
                func_depth += words.count("{") - words.count("}")
                continue
            if len(words) >= 2 and (words[1] == "()" or words[1:3] == ["(", ")"]) or words[:1] == ["function"]:
                func_depth = words.count("{") - words.count("}")
                if func_depth <= 0 and "{" not in words:
                    func_depth = 1  # `f()` with `{` on the next line
                continue
            if words[:1] == ["for"] and len(words) >= 3 and words[2] == "in":
                var = words[1]
                items_words = []
                for w in words[3:]:
                    if w in (";", "do"):
                        break
                    items_words.append(w)
                items = []
                for w in items_words:
                    items.extend(self.shell.ctx.host.glob(w) if any(c in w for c in "*?[") else [w])
                rest = words[words.index("do") + 1:] if "do" in words else []
                if "done" in rest:  # one-line loop
                    inner = " ".join(shlex.quote(w) if w not in _SEPARATORS else w for w in rest[:rest.index("done")])
                    self._run_loop(path, var, items, [(line_no, inner)], frames, depth, certain)
                else:
                    loops.append((var, items, 1 if "do" in words else 0))
                    body = []
                    if rest:
                        body.append((line_no, " ".join(rest)))
                continue
            if self._statement(path, line_no, raw.strip(), words, frames, loop, depth, certain) == "return":
                break

    def _run_loop(self, path, var, items, body, frames, depth, certain) -> None:
        for item in items:
            frames_copy = list(frames)
            for number, text in body:
                words = _words(text)
                if words and self._statement(path, number, text.strip(), words, frames_copy, {var: item},
                                             depth, certain) == "return":
                    break

    def _statement(self, path, number, text, words, frames, loop, depth, certain) -> Optional[str]:
        """Run one line's commands; 'return' when the file stops here."""
        cmds = _commands(words)
        prev_ok: Optional[bool] = True
        prev_return = False  # the previous command was a `return` that did not surely stop the file
        i = 0
        while i < len(cmds):
            sep, cmd = cmds[i]
            nxt = cmds[i + 1][0] if i + 1 < len(cmds) else ";"
            if sep == "|" or nxt == "|":  # a pipeline member runs in a subshell
                i += 1
                prev_ok, prev_return = None, False
                continue
            gate: Optional[bool] = True
            if sep == "&&":
                gate = None if prev_return else prev_ok
            elif sep == "||":  # a `return` in a sourced file succeeds: what `||` chains to it never runs
                gate = False if prev_return else None if prev_ok is None else not prev_ok
            if not cmd:
                i += 1
                continue
            head = cmd[0]
            if head == "if":
                outcome = self._cond(cmds, i, loop)
                frames.append(Frame(outcome, outcome, self.shell.snapshot()))
            elif head == "elif" and frames:
                outcome = self._cond(cmds, i, loop)
                top = self._switch(frames[-1])
                if top.decided is True:
                    top.state = False
                elif top.decided is False:
                    top.state = top.decided = outcome
                else:  # an earlier branch may have run
                    top.state = None if outcome is not False else False
                    top.decided = True if outcome is True else None
            if head in ("if", "elif"):
                while i < len(cmds) and "then" not in cmds[i][1]:  # the condition runs to `then`
                    i += 1
                if i < len(cmds):
                    cmds[i] = (";", cmds[i][1][cmds[i][1].index("then") + 1:])
                    continue
                return None
            if head == "then":
                cmds[i] = (sep, cmd[1:])
                continue
            if head == "else":
                if frames:
                    top = self._switch(frames[-1])
                    top.state = False if top.decided is True else (True if top.decided is False else None)
                    top.decided = True
                cmds[i] = (sep, cmd[1:])
                continue
            if head in ("fi", "esac", "done"):
                if frames:
                    self._close(frames.pop())
                cmds[i] = (sep, cmd[1:])
                continue
            if head == "case":  # each `pattern)` below starts a branch; nothing runs before the first
                frames.append(Frame(False, False, self.shell.snapshot(), kind="case"))
                i += 1
                continue
            if head in ("while", "until"):  # the body runs any number of times, maybe none
                frames.append(Frame(None, False, self.shell.snapshot(), kind=head))
                i += 1
                continue
            if frames and frames[-1].kind == "case" and ")" in cmd:
                top = self._switch(frames[-1])
                pattern = cmd[: cmd.index(")")]
                top.state = None
                top.decided = True if pattern == ["*"] or top.decided is True else None
                cmds[i] = (";", cmd[cmd.index(")") + 1:])
                continue
            if head == "{":  # a group: what `&&`/`||` decided before it holds for every command inside
                frames.append(Frame(gate, gate, self.shell.snapshot(), kind="group"))
                cmds[i] = (";", cmd[1:])
                continue
            if head == "}":
                if frames and frames[-1].kind == "group":
                    self._close(frames.pop())
                cmds[i] = (sep, cmd[1:])
                continue
            reach = self._reach(frames, gate)
            if reach is False:
                prev_ok, prev_return = None, False
                i += 1
                continue
            sure = certain and gate is True  # inside an undecided branch the state is a fork of its own (see Frame)
            result = self._command(path, number, text, cmd, loop, depth, sure)
            if result == "return" and sure and all(f.state for f in frames):
                return "return"
            prev_return = result == "return"
            prev_ok = None if result is None or result == "return" else result
            i += 1
        return None

    def _cond(self, cmds, i, loop) -> Optional[bool]:
        flat: list[str] = []
        for k in range(i, len(cmds)):
            sep, c = cmds[k]
            if k > i:
                if sep in ("&&", "||"):
                    flat.append(sep)
            stop = "then" in c
            flat += c[: c.index("then")] if stop else c
            if stop:
                break
        return self.decide(flat[1:], loop)

    def _switch(self, frame: Frame) -> Frame:
        """End one branch of an if: keep the state it produced, start the next from the state before the if."""
        if frame.state is not False:
            frame.ends.append(self.shell.snapshot())
        self.shell.restore(frame.snapshot)
        return frame

    def _close(self, frame: Frame) -> None:
        """After `fi`: the state is any of the branches' results (and the state before, if no branch has to run)."""
        self._switch(frame)
        ends = frame.ends + ([frame.snapshot] if frame.decided is not True else [])
        self.shell.merge(ends)

    @staticmethod
    def _reach(frames: list[Frame], gate: Optional[bool]) -> Optional[bool]:
        states = [f.state for f in frames] + [gate]
        if any(s is False for s in states):
            return False
        return None if any(s is None for s in states) else True

    def _command(self, path, number, text, cmd, loop, depth, sure) -> Union[bool, None, Literal["return"]]:
        """Apply one simple command; its success when known, "return" for `return`/`exit`."""
        ev = evidence(path, text, number)
        where = f"{path}:{number}: {text}"
        head = cmd[0]

        def subst(w: str) -> str:
            for name, value in loop.items():
                w = w.replace("${" + name + "}", value).replace("$" + name, value)
            return w

        if head in ("[", "[[", "test", "!", "shopt"):
            return self.decide(cmd, loop)
        if head in (".", "source") and len(cmd) >= 2:
            target = subst(cmd[1])
            if target.startswith("/") and "$" not in target:
                self.source(target, depth + 1, sure)
            return True
        if head == "return" or head == "exit":
            return "return"
        if head == "umask" and len(cmd) == 2:
            mask = parse_umask(cmd[1])
            if mask is not None:
                self.shell.set_umask(mask, where, sure)
            return mask is not None
        assigns = [_ASSIGN.match(w) for w in cmd]
        if all(assigns):  # plain assignments (a command after them: its env only)
            for a in assigns:
                assert a is not None  # all() above
                name, value = a.groups()
                self.shell.assign(name, value, where, sure, ev)
            return True
        if head in ("export", "readonly", "declare", "typeset", "local"):
            flags = "".join(w[1:] for w in cmd[1:] if w.startswith("-"))
            make_ro = head == "readonly" or "r" in flags
            if head == "local" or "f" in flags:
                return True
            for w in cmd[1:]:
                if w.startswith("-"):
                    continue
                m = _ASSIGN.match(w)
                name, value = (m.group(1), m.group(2)) if m else (w, None)
                if not _NAME.match(name):
                    continue
                if m:
                    self.shell.assign(name, value, where, sure, ev)
                if make_ro:
                    var = self.shell.vars.setdefault(name, Var([(None, "not set")]))
                    if sure:
                        var.readonly = True
            return True
        if head == "unset":
            if "-f" in cmd[1:]:
                return True
            for name in cmd[1:]:
                if _NAME.match(name):
                    unset = self.shell.vars.get(name)
                    if unset and unset.readonly:
                        self.shell.notes.append(evidence(path, f"{text} (bash refuses: {name} is readonly)", number))
                        return False
                    self.shell.assign(name, None, where, sure, ev)
            return True
        return None


# ---- PAM -----------------------------------------------------------------------------------------------


def _pam_handlers(ctx: ProbeContext, service: str, module: str):
    found = []
    for ptype in ("auth", "session"):
        for h in chain(ctx, service, ptype).handlers:
            if h.kind == "module" and h.name == module:
                found.append(h)
    return found


def _environment(ctx: ProbeContext, shell: Shell, service: str) -> None:
    """What pam_env's env files put into the environment: each pam_env line reads its `envfile=` (default
    /etc/environment) unless `readenv=0`; lines are `KEY=value` (an `export ` in front is allowed), quotes
    removed. Each file once, in stack order."""
    files: dict[str, str] = {}
    for h in _pam_handlers(ctx, service, "pam_env"):
        if "readenv=0" in h.args:
            continue
        envfile = next((a[len("envfile="):] for a in h.args if a.startswith("envfile=")), ENVIRONMENT)
        files.setdefault(envfile, h.where)
    for envfile, where in files.items():
        for number, raw in enumerate(read_lines(ctx, envfile) or [], 1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("export "):
                text = text[7:].lstrip()
            m = _ASSIGN.match(text)
            if m:
                value = m.group(2).strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                shell.assign(m.group(1), value, f"{envfile}:{number}: {raw.strip()} (pam_env, {where})",
                             True, evidence(envfile, raw.strip(), number))


def _pam_umask(ctx: ProbeContext, shell: Shell, service: str) -> None:
    handlers = [h for h in _pam_handlers(ctx, service, "pam_umask") if h.type == "session"]
    if not handlers:
        return
    h = handlers[0]
    mask, src = None, ""
    for arg in h.args:
        if arg.startswith("umask="):
            mask, src = _octal_prefix(arg[6:]), f"{h.where}: {h.text}"
    lines = read_lines(ctx, LOGIN_DEFS) or []
    if mask is None:  # pam_umask's own reading of login.defs: first UMASK line, `#` starts a comment
        for number, raw in enumerate(lines, 1):
            text = raw.split("#", 1)[0].split()
            if len(text) >= 2 and text[0].upper() == "UMASK":
                mask, src = _octal_prefix(text[1]), f"{LOGIN_DEFS}:{number}: {raw.strip()} (pam_umask, {h.where})"
                break
    if mask is None:
        return
    # only the `usergroups` argument: pam_umask does not read login.defs USERGROUPS_ENAB (useradd does)
    if "usergroups" in h.args and "nousergroups" not in h.args:  # the user's own group gets the owner's bits
        mask = (mask & ~0o070) | ((mask >> 3) & 0o070)
        src += " with usergroups (group bits = owner bits)"
    shell.set_umask(mask & 0o777, src, True)


def _octal_prefix(text: str) -> Optional[int]:
    m = re.match(r"\s*([0-7]+)", text)
    return int(m.group(1), 8) if m else None


def login_shell(ctx: ProbeContext, service: str, interactive: bool) -> Shell:
    def load() -> Shell:
        shell = Shell(ctx, interactive)
        _environment(ctx, shell, service)
        _pam_umask(ctx, shell, service)
        Interpreter(shell).source(PROFILE)
        return shell

    return ctx.cached(("login-shell", service, interactive), load)


class ShellParams(Strict):
    service: str = Field(default="sshd", min_length=1, description="the PAM service the login goes through")
    interactive: bool = True


class ShellVariableParams(ShellParams):
    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the variable's name")


def _possible_evidence(shell: Shell, lines: list[str], label: str) -> list[Evidence]:
    order = list(dict.fromkeys(shell.sourced))  # a file sourced in two undecided branches is named once
    ev = [evidence(PROFILE, "read in order: " + ", ".join(order) if order else "no /etc/profile")]
    for where in lines:
        path, _, rest = where.partition(":")
        number, _, text = rest.partition(":")
        ev.append(evidence(path, f"{label}: {text.strip()}" if text else where,
                           int(number) if number.isdigit() else None))
    return ev + shell.notes


@probe("shell.variable", ShellVariableParams)
def shell_variable(ctx: ProbeContext, params: ShellVariableParams) -> Observation:
    """A variable of a regular user's bash login shell after PAM (pam_env) and /etc/profile with what it
    sources; None when unset. When branches the model cannot decide leave several values possible, the
    weakest for a timeout (unset, non-numeric, 0, else the largest) is observed."""
    shell = login_shell(ctx, params.service, params.interactive)
    var = shell.vars.get(params.key)
    values = var.values if var else [(None, "not set")]

    def weakness(v: Optional[str]) -> tuple[int, int]:
        if v is None or not v.strip().isdigit() or int(v) == 0:
            return (0, 0)
        return (1, -int(v))

    chosen = min(values, key=lambda e: weakness(e[0]))
    ev = _possible_evidence(shell, [w for _, w in values if w != "not set"], "sets")
    note: Optional[str]
    note_zh: Optional[str]
    if len(values) > 1:
        note = (f"{len(values)} values of {params.key} are possible (branches the model cannot decide); "
                f"the weakest is observed")
        note_zh = f"{params.key} 可能有 {len(values)} 个取值（存在无法判定的分支），取最弱者"
    elif chosen[0] is None:
        note, note_zh = f"{params.key} is not set in a login shell", f"登录 shell 中未设置 {params.key}"
    else:
        note = note_zh = None
    if var and var.readonly:
        source = chosen[1].split(":")[0]
        ev.append(evidence(source if source.startswith("/") else PROFILE, f"{params.key} is readonly"))
    return Observation(observed=chosen[0], evidence=ev, note=note, note_zh=note_zh)


@probe("shell.umask", ShellParams)
def shell_umask(ctx: ProbeContext, params: ShellParams) -> Observation:
    """The umask of a regular user's bash login shell (four octal digits): 022 from init, then pam_umask,
    then /etc/profile and what it sources. Several possible (undecidable branches): the one masking fewest
    bits is observed."""
    shell = login_shell(ctx, params.service, params.interactive)
    chosen = min(shell.umasks, key=lambda e: bin(e[0]).count("1"))
    ev = _possible_evidence(shell, [w for _, w in shell.umasks if ":" in w], "umask")
    note = note_zh = None
    if len(shell.umasks) > 1:
        note = (f"{len(shell.umasks)} umask values are possible (branches the model cannot decide): "
                + ", ".join(f"{m:04o}" for m, _ in shell.umasks) + "; the least restrictive is observed")
        note_zh = "可能的 umask：" + "、".join(f"{m:04o}" for m, _ in shell.umasks) + "（存在无法判定的分支），取最宽者"
    elif chosen[1] == "initial umask 022":
        note = "no umask is set by PAM or the profiles; the login keeps the 022 it inherits"
        note_zh = "PAM 与 profile 均未设置 umask，登录会话沿用继承的 022"
    return Observation(observed=f"{chosen[0]:04o}", evidence=ev, note=note, note_zh=note_zh)
