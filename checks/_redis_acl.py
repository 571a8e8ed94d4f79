"""Redis 7.0 ACL users as the server builds them (src/acl.c of 7.0.15), and what they allow.

Start-up order (server.c, acl.c): the `default` user is created `on nopass ~* &* +@all`; `requirepass` then
replaces its passwords (`resetpass` + `>password`); then the users are loaded, either from `user` lines of the
configuration (`user default ...` first `reset`s default, which leaves it `off` unless the line says `on`) or from
the `aclfile` (a default user the file does not name is re-created `on nopass ~* &* +@all`, whatever requirepass
said). Both at once is fatal. A new user starts `off`, without passwords, commands or keys.

Rules are applied left to right as ACLSetUser does: on/off, nopass (drops the passwords), resetpass (drops them
and nopass), `>pw`/`#hash` add a password, `<pw`/`!hash` remove one (an unknown one is an error), `~pattern`,
`%R~`/`%W~`/`%RW~`, allkeys/resetkeys, channels, +@all/allcommands, -@all/nocommands, `+cmd`, `-cmd`, `+cmd|sub`,
`-cmd|sub`, `+@category`, `-@category`, `(selector)`, clearselectors, reset. A `+cmd`/`-cmd` naming a command
that `rename-command` moved away is an error (ACL rules are read against the renamed command table).

What is tracked: whether the user may log in, and how (passwords, nopass); whether it holds every command on
every key (+@all with no `-` rule after it, and ~* / allkeys); and which of the dangerous commands it may run
(units: a command, or a CONFIG subcommand), with their ACL categories as `COMMAND INFO` gives them in 7.0.15.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

from sentinel.hostview import ProbeError

from ._passwords import weak_reason, weak_sha256

# Dangerous commands the 作业指导书 names, each unit with its ACL categories (COMMAND INFO, Redis 7.0.15).
_DANGER = {"dangerous", "slow"}
UNITS: dict[str, frozenset[str]] = {
    "flushall": frozenset({"keyspace", "write"} | _DANGER),
    "flushdb": frozenset({"keyspace", "write"} | _DANGER),
    "keys": frozenset({"keyspace", "read"} | _DANGER),
    "debug": frozenset({"admin"} | _DANGER),
    "shutdown": frozenset({"admin"} | _DANGER),
    "config|get": frozenset({"admin"} | _DANGER),
    "config|set": frozenset({"admin"} | _DANGER),
    "config|rewrite": frozenset({"admin"} | _DANGER),
    "config|resetstat": frozenset({"admin"} | _DANGER),
}  # CONFIG HELP (@slow only) does nothing, so it is not tracked
COMMANDS = ("flushall", "flushdb", "config", "keys", "debug", "shutdown")
# Categories Redis 7.0 knows (ACL CAT); a rule naming another one is refused.
CATEGORIES = frozenset({"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
                        "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
                        "connection", "transaction", "scripting"})


def command_of(unit: str) -> str:
    return unit.split("|", 1)[0]


@dataclass
class Selector:
    all_commands: bool = False  # +@all and no `-` rule since
    all_keys: bool = False
    units: set[str] = field(default_factory=set)

    def apply(self, rule: str, renamed: dict[str, str]) -> None:
        low = rule.lower()
        if low in ("allkeys", "~*"):
            self.all_keys = True
        elif low == "resetkeys":
            self.all_keys = False
        elif low in ("allchannels", "&*", "resetchannels") or rule.startswith("&"):
            pass
        elif low in ("allcommands", "+@all"):
            self.all_commands = True
            self.units = set(UNITS)
        elif low in ("nocommands", "-@all"):
            self.all_commands = False
            self.units = set()
        elif rule[:1] in ("~", "%"):
            if self.all_keys:
                raise ProbeError(f"ACL rule {rule}: a key pattern after ~*/allkeys is refused by Redis",
                                 f"ACL 规则 {rule}：Redis 不接受 ~*/allkeys 之后的键模式")
            pattern = rule.split("~", 1)[1] if "~" in rule else ""
            if pattern == "*" and rule[:1] == "%" and "R" in rule.upper().split("~")[0] \
                    and "W" in rule.upper().split("~")[0]:
                self.all_keys = True
        elif rule[:2] in ("+@", "-@"):
            category = low[2:]
            if category not in CATEGORIES:
                raise ProbeError(f"ACL rule {rule}: unknown category", f"ACL 规则 {rule}：未知的命令类别")
            hit = {u for u, cats in UNITS.items() if category in cats}
            if rule[0] == "+":
                self.units |= hit
            else:
                self.units -= hit
                self.all_commands = False
        elif rule[:1] in ("+", "-") and len(rule) > 1:
            self.command_rule(rule, renamed)
        else:
            raise ProbeError(f"ACL rule {rule!r} is not one Redis 7.0 knows", f"Redis 7.0 不认识 ACL 规则 {rule!r}")

    def command_rule(self, rule: str, renamed: dict[str, str]) -> None:
        name, _, sub = rule[1:].lower().partition("|")
        # ACL rules are read against the command table after rename-command: the old name is gone
        original = next((o for o, new in renamed.items() if new and new.lower() == name), None)
        if name in renamed and original is None:
            raise ProbeError(f"ACL rule {rule}: {name} was renamed or removed by rename-command, so Redis refuses "
                             "the rule (unknown command)",
                             f"ACL 规则 {rule}：{name} 已被 rename-command 改名或删除，Redis 拒绝该规则（未知命令）")
        name = original or name
        if sub:
            unit = f"{name}|{sub}"
            hit = {unit} if unit in UNITS or name != "config" else set()
            if name == "config" and unit not in UNITS and sub != "help":
                raise ProbeError(f"ACL rule {rule}: CONFIG has no subcommand {sub}",
                                 f"ACL 规则 {rule}：CONFIG 没有子命令 {sub}")
        else:
            hit = {u for u in UNITS if command_of(u) == name}
        if rule[0] == "+":
            self.units |= hit
        else:
            self.all_commands = False
            # `-cmd` takes the command and any first-argument rules of it (ACLResetFirstArgsForCommand)
            self.units -= hit | {u for u in self.units if command_of(u) == name}


@dataclass
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: list[tuple[str, str]] = field(default_factory=list)  # ("plain", pw) or ("hash", sha256 hex)
    root: Selector = field(default_factory=Selector)
    selectors: list[Selector] = field(default_factory=list)
    where: str = ""  # where the user was defined (file:line, "compiled-in", "ACL LIST")

    @property
    def unauthenticated(self) -> bool:
        """A client that sends no AUTH is this user (only `default` is), and is served."""
        return self.name == "default" and self.enabled and self.nopass

    @property
    def superuser(self) -> bool:
        return self.enabled and any(s.all_commands and s.all_keys for s in [self.root, *self.selectors])

    def units(self) -> set[str]:
        out = set(self.root.units)
        for s in self.selectors:
            out |= s.units
        return out

    def apply(self, rule: str, renamed: dict[str, str]) -> None:
        low = rule.lower()
        if rule == "":
            return  # an empty rule is a no-operation
        if low == "on":
            self.enabled = True
        elif low == "off":
            self.enabled = False
        elif low in ("skip-sanitize-payload", "sanitize-payload"):
            pass
        elif low == "nopass":
            self.nopass, self.passwords = True, []
        elif low == "resetpass":
            self.nopass, self.passwords = False, []
        elif rule[0] in (">", "#"):
            entry = ("plain", rule[1:]) if rule[0] == ">" else ("hash", _check_hash(rule[1:]))
            digest = _digest(entry)
            if all(_digest(p) != digest for p in self.passwords):
                self.passwords.append(entry)
            self.nopass = False
        elif rule[0] in ("<", "!"):
            digest = hashlib.sha256(rule[1:].encode()).hexdigest() if rule[0] == "<" else _check_hash(rule[1:])
            kept = [p for p in self.passwords if _digest(p) != digest]
            if len(kept) == len(self.passwords):
                raise ProbeError(f"ACL user {self.name}: removing a password the user does not have is refused",
                                 f"ACL 用户 {self.name}：删除用户没有的口令会被拒绝")
            self.passwords = kept
        elif rule.startswith("(") and rule.endswith(")"):
            selector = Selector()
            for inner in rule[1:-1].split():
                selector.apply(inner, renamed)
            self.selectors.append(selector)
        elif low == "clearselectors":
            self.selectors = []
        elif low == "reset":
            self.nopass, self.passwords, self.enabled = False, [], False
            self.root, self.selectors = Selector(), []
        else:
            self.root.apply(rule, renamed)


def _check_hash(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text.lower()):
        raise ProbeError("ACL password hash is not 64 hex digits (SHA-256), so Redis refuses the rule",
                         "ACL 口令散列值不是 64 位十六进制（SHA-256），Redis 拒绝该规则")
    return text.lower()


def _digest(entry: tuple[str, str]) -> str:
    kind, value = entry
    return hashlib.sha256(value.encode()).hexdigest() if kind == "plain" else value


def default_user() -> User:
    user = User("default", enabled=True, nopass=True, where="compiled-in (on nopass ~* &* +@all)")
    user.root = Selector(all_commands=True, all_keys=True, units=set(UNITS))
    return user


def merge_selectors(rules: list[str]) -> list[str]:
    """Rules with `(` ... `)` selector words joined into one rule, as ACLMergeSelectorArguments does."""
    out: list[str] = []
    pending: Optional[list[str]] = None
    for rule in rules:
        if pending is not None:
            pending.append(rule)
            if rule.endswith(")"):
                out.append(" ".join(pending))
                pending = None
        elif rule.startswith("(") and not rule.endswith(")"):
            pending = [rule]
        else:
            out.append(rule)
    if pending is not None:
        raise ProbeError("ACL rules: unmatched parenthesis in selector definition",
                         "ACL 规则：选择器括号不配对")
    return out


def build_user(name: str, rules: list[str], renamed: dict[str, str], where: str,
               base: Optional[User] = None) -> User:
    user = base if base is not None else User(name)
    user.where = where
    for rule in merge_selectors(rules):
        try:
            user.apply(rule, renamed)
        except ProbeError as exc:
            raise ProbeError(f"{where}: {exc}", f"{where}：{exc.zh or exc}") from None
    return user


def weakness(user: User, entry: tuple[str, str]) -> Optional[str]:
    """Why a password is weak (never the password itself), or None (checks/_passwords.py)."""
    kind, value = entry
    return weak_sha256(value) if kind == "hash" else weak_reason(user.name, value)
