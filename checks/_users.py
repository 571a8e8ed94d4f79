"""The inspected host's own user and group databases (/etc/passwd, /etc/group, /etc/shadow).

Names are always resolved from these files, never from the scanning machine's NSS: an offline root's
uid 1000 is whoever *its* /etc/passwd says.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sentinel.hostview import ProbeError
from sentinel.probe import ProbeContext

from ._parse import read_lines


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    shell: str
    line: int
    text: str


@dataclass(frozen=True)
class ShadowEntry:
    name: str
    password: str
    min_days: Optional[int]
    max_days: Optional[int]
    warn_days: Optional[int]
    line: int
    text: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    line: int
    text: str


def _opt_int(field: str) -> Optional[int]:
    field = field.strip()
    try:
        return int(field) if field else None
    except ValueError:
        return None


def _records(ctx: ProbeContext, path: str, min_fields: int) -> Optional[list[tuple[int, str, list[str]]]]:
    """(line, text, fields) of each account line; None when the file does not exist."""
    lines = read_lines(ctx, path)
    if lines is None:
        return None
    out = []
    for number, text in enumerate(lines, 1):
        # NIS compat lines (+/-) and comments are not local accounts
        if not text.strip() or text.startswith(("#", "+", "-")):
            continue
        fields = text.split(":")
        if len(fields) < min_fields:
            raise ProbeError(f"{path}:{number}: malformed entry ({len(fields)} fields, expected {min_fields})",
                             f"{path} 第 {number} 行格式错误（{len(fields)} 个字段，应为 {min_fields} 个）")
        out.append((number, text, fields))
    return out


def passwd(ctx: ProbeContext) -> list[PasswdEntry]:
    def load():
        records = _records(ctx, "/etc/passwd", 7)
        if records is None:
            raise ProbeError("/etc/passwd not found: cannot list accounts", "未找到 /etc/passwd，无法列出账户")
        out = []
        for number, text, f in records:
            uid, gid = _opt_int(f[2]), _opt_int(f[3])
            if uid is None or gid is None:
                raise ProbeError(f"/etc/passwd:{number}: non-numeric uid/gid in {text!r}",
                                 f"/etc/passwd 第 {number} 行的 uid/gid 不是数字: {text!r}")
            out.append(PasswdEntry(f[0], f[1], uid, gid, f[5], f[6], number, text))
        return out

    return ctx.cached(("users", "passwd"), load)


def shadow(ctx: ProbeContext) -> dict[str, ShadowEntry]:
    def load():
        records = _records(ctx, "/etc/shadow", 2)
        if records is None:
            raise ProbeError("/etc/shadow not found: password state cannot be determined",
                             "未找到 /etc/shadow，无法判断口令状态")
        out: dict[str, ShadowEntry] = {}
        for number, text, f in records:
            f = f + [""] * (9 - len(f))
            out.setdefault(f[0], ShadowEntry(f[0], f[1], _opt_int(f[3]), _opt_int(f[4]), _opt_int(f[5]),
                                             number, _mask(text)))
        return out

    return ctx.cached(("users", "shadow"), load)


def groups(ctx: ProbeContext) -> list[GroupEntry]:
    def load():
        records = _records(ctx, "/etc/group", 3)
        if records is None:
            return []
        out = []
        for number, text, f in records:
            gid = _opt_int(f[2])
            if gid is None:
                raise ProbeError(f"/etc/group:{number}: non-numeric gid in {text!r}",
                                 f"/etc/group 第 {number} 行的 gid 不是数字: {text!r}")
            out.append(GroupEntry(f[0], gid, number, text))
        return out

    return ctx.cached(("users", "group"), load)


def user_name(ctx: ProbeContext, uid: int) -> str:
    try:
        entries = passwd(ctx)
    except ProbeError:
        entries = []
    names = ctx.cached(("users", "uid-map"), lambda: {e.uid: e.name for e in reversed(entries)})
    return names.get(uid, str(uid))


def group_name(ctx: ProbeContext, gid: int) -> str:
    names = ctx.cached(("users", "gid-map"), lambda: {g.gid: g.name for g in reversed(groups(ctx))})
    return names.get(gid, str(gid))


def _mask(shadow_line: str) -> str:
    """A shadow line for evidence: the hash itself never leaves the host, only its kind."""
    fields = shadow_line.split(":")
    if len(fields) > 1:
        fields[1] = describe_hash(fields[1])
    return ":".join(fields)


def describe_hash(value: str) -> str:
    if value == "":
        return "<empty>"
    if value[0] in "!*":
        prefix = value[: len(value) - len(value.lstrip("!*"))]
        rest = value[len(prefix):]
        return prefix + (describe_hash(rest) if rest else "")
    if value.startswith("$"):
        kind = value.split("$")[1] if value.count("$") >= 2 else "?"
        return f"<hash ${kind}$>"
    return "<hash>"
