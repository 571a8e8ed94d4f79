"""Account facts from the host's /etc/passwd, /etc/shadow, /etc/group and /etc/login.defs.

Evidence quotes shadow lines with the hash replaced by its kind (`<hash $6$>`): secrets never leave
the host, but an assessor still sees which account was locked, empty or aging.
"""
from __future__ import annotations

from collections import Counter
from typing import Literal, Optional

from pydantic import Field, field_validator

from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import line_evidence, read_lines, to_int
from ._users import PasswdEntry, ShadowEntry, describe_hash, groups, passwd, shadow
from .logindefs import LOGIN_DEFS, effective, parse_login_defs

NOLOGIN_SHELLS = frozenset({"nologin", "false"})
DEFAULT_UID_MIN = 1000
SHADOWED = "x"  # passwd's password field when the hash is in /etc/shadow


class NoParams(Strict):
    pass


def _password(entry: PasswdEntry, shadows: dict[str, ShadowEntry]) -> tuple[str, str, int]:
    """(password field, source path, line) in effect: /etc/shadow only when passwd says `x`."""
    if entry.password != SHADOWED:
        return entry.password, "/etc/passwd", entry.line
    sh = shadows.get(entry.name)
    if sh is None:
        return "!", "/etc/shadow", 0  # 'x' but no shadow entry: no password can ever match
    return sh.password, "/etc/shadow", sh.line


def is_locked(password: str) -> bool:
    return password.startswith(("!", "*"))


def usable_hash(password: str) -> bool:
    """A password someone can log in with: not empty, not locked."""
    return password != "" and not is_locked(password)


def _masked_passwd_line(entry: PasswdEntry) -> str:
    fields = entry.text.split(":")
    if fields[1] not in ("x", ""):
        fields[1] = describe_hash(fields[1])
    return ":".join(fields)


@probe("accounts.empty_password", NoParams)
def empty_password(ctx: ProbeContext, params: NoParams) -> Observation:
    """Sorted users whose password field is empty (anyone can log in without one)."""
    users = passwd(ctx)
    shadows = shadow(ctx)
    found, ev = [], []
    for entry in users:
        value, source, line = _password(entry, shadows)
        if value == "":
            found.append(entry.name)
            text = shadows[entry.name].text if source == "/etc/shadow" else _masked_passwd_line(entry)
            ev.append(evidence(source, text, line))
    names = sorted(set(found))
    if not names:
        ev.append(evidence("/etc/shadow", f"{len(shadows)} entries, none with an empty password field"))
    return Observation(observed=names, evidence=ev)


@probe("accounts.uid0", NoParams)
def uid0(ctx: ProbeContext, params: NoParams) -> Observation:
    """Sorted users with UID 0."""
    hits = [e for e in passwd(ctx) if e.uid == 0]
    return Observation(observed=sorted({e.name for e in hits}),
                       evidence=[line_evidence("/etc/passwd", [(e.line, _masked_passwd_line(e)) for e in hits])])


class DuplicateParams(Strict):
    field: Literal["uid", "name", "gid"]


@probe("accounts.duplicate", DuplicateParams)
def duplicate(ctx: ProbeContext, params: DuplicateParams) -> Observation:
    """Sorted values (as strings) that more than one passwd entry (uid, name) or group (gid) share."""
    if params.field == "gid":
        rows = [(str(g.gid), g.line, g.text) for g in groups(ctx)]
        source = "/etc/group"
    else:
        rows = [(str(e.uid) if params.field == "uid" else e.name, e.line, _masked_passwd_line(e))
                for e in passwd(ctx)]
        source = "/etc/passwd"
    counts = Counter(value for value, _, _ in rows)
    dups = sorted((v for v, c in counts.items() if c > 1), key=lambda v: (to_int(v) is None, to_int(v) or 0, v))
    if dups:
        ev = [line_evidence(source, [(line, text) for value, line, text in rows if value == dup]) for dup in dups]
    else:
        ev = [evidence(source, f"{len(rows)} entries, every {params.field} unique")]
    return Observation(observed=dups, evidence=ev)


class UnlockedDefaultParams(Strict):
    names: list[str] = Field(min_length=1)

    @field_validator("names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or ":" in name or any(ch.isspace() for ch in name):
                raise ValueError(f"{name!r} is not a user name")
        return v


def _login_shell(shell: str) -> bool:
    base = shell.strip().rsplit("/", 1)[-1]
    return base not in NOLOGIN_SHELLS  # an empty shell field means /bin/sh


@probe("accounts.unlocked_default", UnlockedDefaultParams)
def unlocked_default(ctx: ProbeContext, params: UnlockedDefaultParams) -> Observation:
    """Users from `names` that exist and can log in: password not locked and a real shell."""
    users = {e.name: e for e in reversed(passwd(ctx))}
    shadows = shadow(ctx)
    found, ev = [], []
    for name in params.names:
        entry = users.get(name)
        if entry is None:
            ev.append(evidence("/etc/passwd", f"{name}: no such account"))
            continue
        value, source, line = _password(entry, shadows)
        locked = is_locked(value)
        shell_ok = _login_shell(entry.shell)
        state = ("locked" if locked else "not locked") + ", shell " + (entry.shell or "(empty: /bin/sh)")
        ev.append(evidence("/etc/passwd", _masked_passwd_line(entry), entry.line))
        if source == "/etc/shadow" and line:
            ev.append(evidence(source, f"{shadows[name].text}  => {state}", line))
        else:
            ev.append(evidence(source, f"{name}: password {describe_hash(value)} => {state}", line or None))
        if not locked and shell_ok:
            found.append(name)
    return Observation(observed=sorted(set(found)), evidence=ev)


class PasswordAgingParams(Strict):
    uid_min: Optional[int] = Field(default=None, ge=0)


def uid_min_from_login_defs(ctx: ProbeContext):
    """UID_MIN as useradd reads it (getdef_ulong, default 1000): an unparsable value is the default."""
    lines = read_lines(ctx, LOGIN_DEFS)
    item = parse_login_defs("\n".join(lines or [])).get("UID_MIN")
    value, why = effective(item, "unum", DEFAULT_UID_MIN)
    if item is None:
        return DEFAULT_UID_MIN, evidence(LOGIN_DEFS, f"UID_MIN not set; default {DEFAULT_UID_MIN}")
    if why:
        return DEFAULT_UID_MIN, evidence(LOGIN_DEFS, f"{item.text} (shadow-utils: {why}; default "
                                         f"{DEFAULT_UID_MIN})", item.line)
    return value, evidence(LOGIN_DEFS, item.text, item.line)


@probe("accounts.password_aging", PasswordAgingParams)
def password_aging(ctx: ProbeContext, params: PasswordAgingParams) -> Observation:
    """{user, max_days, warn_days, min_days} for root and users with uid >= uid_min that have a usable password."""
    if params.uid_min is None:
        uid_min, source_ev = uid_min_from_login_defs(ctx)
        ev = [source_ev]
    else:
        uid_min, ev = params.uid_min, []
    shadows = shadow(ctx)
    rows, seen = [], set()
    for entry in passwd(ctx):
        if entry.name in seen or not (entry.uid == 0 or entry.uid >= uid_min):
            continue
        seen.add(entry.name)
        value, source, line = _password(entry, shadows)
        if not usable_hash(value):
            continue
        sh = shadows.get(entry.name)
        rows.append({"user": entry.name, "max_days": sh.max_days if sh else None,
                     "warn_days": sh.warn_days if sh else None, "min_days": sh.min_days if sh else None})
        ev.append(evidence(source, sh.text if sh else f"{entry.name}: password in /etc/passwd, no aging",
                           line or None))
    if not rows:
        ev.append(evidence("/etc/shadow", f"no account with uid 0 or >= {uid_min} has a usable password"))
    return Observation(observed=rows, evidence=ev)
