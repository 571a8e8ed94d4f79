"""sudoers read as sudo reads it: includes, aliases, Defaults and user specifications, then what each
account may run (the entries `sudo -ll -U USER` lists, in order).

What is modelled, after sudoers(5) of sudo 1.9:
- `@include`/`#include` FILE and `@includedir`/`#includedir` DIR (relative paths against the including file's
  directory; a directory's files in lexical order, skipping names that end in `~` or contain a `.`),
  `%h` in a path as the host name, line continuation with `\\`, `#` comments (but `#123` is a uid).
- `User_Alias`, `Runas_Alias`, `Host_Alias`, `Cmnd_Alias`/`Cmd_Alias` (several per line with `:`), nested
  aliases, `!` negation inside lists and of alias references; in a list the last matching member wins.
- User specifications `User_List Host_List = [(Runas)] [Tags:] Cmnd, ... : Host_List = ...`, where a Runas
  spec and tags carry on to the commands after them in the same list; digests (`sha256:...`) and options
  (`CWD=`, `ROLE=` ...) are skipped.
- Host lists match `ALL`, the host's name (short or qualified, wildcards) or an alias; IP addresses and
  netgroups are not matched (an offline root has no interfaces to compare with).
Not modelled: netgroups, non-Unix groups (`%:`), LDAP/SSSD sudo rules (see the check's rationale).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Optional

ALIAS_KINDS = {"User_Alias": "user", "Runas_Alias": "runas", "Host_Alias": "host", "Cmnd_Alias": "cmnd",
               "Cmd_Alias": "cmnd"}
_ALIAS_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TAGS = ("NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
         "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT", "NOINTERCEPT")
_TAG_END = re.compile(r"(?:^|[\s,)])(" + "|".join(_TAGS) + r")$")
_DIGEST_END = re.compile(r"(?:^|[\s,)])(sha224|sha256|sha384|sha512)$")
_OPTION = re.compile(r"^(ROLE|TYPE|CWD|CHROOT|NOTBEFORE|NOTAFTER|TIMEOUT|APPARMOR_PROFILE|PRIVS|LIMITPRIVS)=\S*\s*")
_INCLUDE = re.compile(r"^[#@](include|includedir)\s+(.+)$")
MAX_DEPTH = 128


@dataclass(frozen=True)
class Where:
    path: str
    line: int
    text: str


@dataclass
class CmndSpec:
    runas_users: Optional[list[str]]  # None: not given (sudo runs as root, its runas_default)
    runas_groups: Optional[list[str]]
    tags: dict[str, bool]  # tag name without NO -> set; e.g. {"PASSWD": False} for NOPASSWD
    negated: bool
    command: str  # a path with arguments, `ALL`, or an alias name


@dataclass
class Privilege:
    users: list[str]
    hosts: list[str]
    cmnds: list[CmndSpec]
    where: Where


@dataclass
class Sudoers:
    aliases: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    defaults: list[tuple[str, Where]] = field(default_factory=list)
    privileges: list[Privilege] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lines or files sudo would complain about


def _strip_comment(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
            continue
        if ch == "#":
            prev = text[i - 1] if i else " "
            if prev in " \t,=(!:%" and i + 1 < len(text) and text[i + 1].isdigit():
                out.append(ch)  # #uid
                i += 1
                continue
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes, honouring backslash escapes."""
    parts, cur, depth, quote, i = [], [], 0, False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth = max(0, depth - 1)
        elif not quote and depth == 0 and ch == sep:
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _members(text: str) -> list[str]:
    return [re.sub(r"^!\s+", "!", m.strip()) for m in _split(text, ",") if m.strip()]


def _logical_lines(raw: list[str]) -> list[tuple[int, str]]:
    out, buf, start = [], "", 0
    for number, line in enumerate(raw, 1):
        if not buf:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def parse(read: Callable[[str], Optional[str]], listdir: Callable[[str], Optional[list[str]]], hostname: str,
          path: str = "/etc/sudoers") -> Sudoers:
    """Parse `path` and everything it includes; `read`/`listdir` give None for what does not exist."""
    result = Sudoers()
    _parse_file(result, read, listdir, hostname, path, 0)
    return result


def _include_path(arg: str, current: str, hostname: str) -> str:
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] == '"':
        arg = arg[1:-1]
    arg = arg.replace("\\ ", " ").replace("%h", hostname.split(".")[0])
    if not arg.startswith("/"):
        arg = current.rsplit("/", 1)[0] + "/" + arg
    return arg


def _parse_file(result: Sudoers, read, listdir, hostname: str, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        result.problems.append(f"{path}: too many levels of includes")
        return
    text = read(path)
    if text is None:
        result.problems.append(f"{path}: cannot open (included but missing)")
        return
    result.files.append(path)
    for number, line in _logical_lines(text.splitlines()):
        stripped = line.strip()
        inc = _INCLUDE.match(stripped)
        if inc:
            target = _include_path(inc.group(2), path, hostname)
            if inc.group(1) == "include":
                _parse_file(result, read, listdir, hostname, target, depth + 1)
            else:
                names = listdir(target) or []
                for name in sorted(n for n in names if not n.endswith("~") and "." not in n):
                    _parse_file(result, read, listdir, hostname, f"{target.rstrip('/')}/{name}", depth + 1)
            continue
        body = _strip_comment(line)
        if not body:
            continue
        where = Where(path, number, line.strip())
        try:
            _parse_entry(result, body, where)
        except ValueError as exc:
            result.problems.append(f"{path}:{number}: {exc}")


def _parse_entry(result: Sudoers, body: str, where: Where) -> None:
    word = body.split(None, 1)[0]
    kind = ALIAS_KINDS.get(word)
    if kind:
        for definition in _rejoin(_split(body[len(word):], ":")):
            name, eq, members = definition.partition("=")
            name = name.strip()
            if not eq or not _ALIAS_NAME.match(name):
                raise ValueError(f"bad {word} definition {definition.strip()!r}")
            result.aliases[(kind, name)] = _members(members)
        return
    if re.match(r"^Defaults([:@!>]|\s|$)", body):
        result.defaults.append((body, where))
        return
    left, eq, right = body.partition("=")
    if not eq:
        raise ValueError("not an alias, Defaults or user specification")
    users, hosts = _user_and_hosts(left)
    segments = _rejoin(_split(right, ":"), tags=True)
    first = True
    for segment in segments:
        if first:
            cmnd_text, first = segment, False
        else:
            more_hosts, eq, cmnd_text = segment.partition("=")
            if not eq:
                raise ValueError(f"expected 'Host_List = commands' after ':' in {segment.strip()!r}")
            hosts = _members(more_hosts)
        result.privileges.append(Privilege(users, hosts, _cmnd_specs(cmnd_text), where))


def _rejoin(pieces: list[str], tags: bool = False) -> list[str]:
    """Undo a split on ':' where the colon ends a digest name (sha256:) or, in a user specification, a tag
    (NOPASSWD:) rather than separating two definitions or two `Host_List = ...` parts."""
    out: list[str] = []
    buf = ""
    for piece in pieces:
        buf = f"{buf}:{piece}" if buf else piece
        tail = buf.rstrip()
        if _DIGEST_END.search(tail) or (tags and _TAG_END.search(tail)):
            continue
        out.append(buf)
        buf = ""
    if buf:
        out.append(buf)
    return out


def _user_and_hosts(left: str) -> tuple[list[str], list[str]]:
    squeezed = re.sub(r"\s*,\s*", ",", left.strip())
    squeezed = re.sub(r"!\s+", "!", squeezed)
    words = squeezed.split()
    if len(words) != 2:
        raise ValueError(f"expected 'User_List Host_List' before '=', found {left.strip()!r}")
    return _members(words[0]), _members(words[1])


def _cmnd_specs(text: str) -> list[CmndSpec]:
    out: list[CmndSpec] = []
    runas_users: Optional[list[str]] = None
    runas_groups: Optional[list[str]] = None
    tags: dict[str, bool] = {}
    for raw in _split(text, ","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("("):
            close = item.find(")")
            if close < 0:
                raise ValueError(f"unclosed Runas specification in {item!r}")
            spec, item = item[1:close], item[close + 1:].strip()
            users_part, _, groups_part = spec.partition(":")
            # `(:wheel)` names only a group: the command runs as the invoking user with that group
            runas_users = _members(users_part) or None
            runas_groups = _members(groups_part) or None
        while True:
            opt = _OPTION.match(item)
            if opt:
                item = item[opt.end():]
                continue
            tag = re.match(r"^(" + "|".join(_TAGS) + r")\s*:\s*", item)
            if tag:
                name = tag.group(1)
                base = name[2:] if name.startswith("NO") and name[2:] in _TAGS else name
                tags = {**tags, base: not name.startswith("NO") or base == name}
                item = item[tag.end():]
                continue
            dig = re.match(r"^(sha224|sha256|sha384|sha512)\s*:\s*\S+\s+", item)
            if dig:
                item = item[dig.end():]
                continue
            break
        negated = item.startswith("!")
        command = item.lstrip("!").strip()
        if not command:
            raise ValueError(f"a command is missing in {raw.strip()!r}")
        out.append(CmndSpec(None if runas_users is None else list(runas_users),
                            None if runas_groups is None else list(runas_groups), dict(tags), negated, command))
    return out


# ---- matching ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    groups: frozenset  # group names, the primary one included
    gids: frozenset


def _match_list(sudoers: Sudoers, kind: str, members: list[str], test: Callable[[str], bool],
                seen: tuple = ()) -> Optional[bool]:
    """True (allowed), False (denied by a `!` member) or None (no member matches); the last match wins."""
    for member in reversed(members):
        negated = member.startswith("!")
        name = member.lstrip("!").strip()
        if (kind, name) in sudoers.aliases and name not in seen:
            hit = _match_list(sudoers, kind, sudoers.aliases[(kind, name)], test, seen + (name,))
            if hit is None:
                continue
            return (not hit) if negated else hit
        if test(name):
            return not negated
    return None


def user_matches(sudoers: Sudoers, members: list[str], account: Account) -> bool:
    def test(name: str) -> bool:
        if name == "ALL":
            return True
        if name.startswith("%#"):
            return name[2:].isdigit() and int(name[2:]) in account.gids
        if name.startswith("%:") or name.startswith("+"):
            return False  # non-Unix groups and netgroups: not modelled
        if name.startswith("%"):
            return _unquote(name[1:]) in account.groups
        if name.startswith("#"):
            return name[1:].isdigit() and int(name[1:]) == account.uid
        return _unquote(name) == account.name

    return bool(_match_list(sudoers, "user", members, test))


def host_matches(sudoers: Sudoers, members: list[str], hostname: str) -> bool:
    short = hostname.split(".")[0].lower()

    def test(name: str) -> bool:
        if name == "ALL":
            return True
        low = name.lower()
        return fnmatchcase(short, low) or fnmatchcase(hostname.lower(), low)

    return bool(_match_list(sudoers, "host", members, test))


def _unquote(text: str) -> str:
    text = text.replace("\\", "")
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def expand(sudoers: Sudoers, kind: str, members: Optional[list[str]], seen: tuple = ()) -> Optional[list[str]]:
    """Alias references replaced by their members (as sudo -l prints them); a negated alias negates each."""
    if members is None:
        return None
    out: list[str] = []
    for member in members:
        negated = member.startswith("!")
        name = member.lstrip("!").strip()
        if (kind, name) in sudoers.aliases and name not in seen:
            for inner in expand(sudoers, kind, sudoers.aliases[(kind, name)], seen + (name,)) or []:
                out.append(_negate(inner) if negated else inner)
        else:
            out.append(member)
    return out


def _negate(member: str) -> str:
    return member[1:] if member.startswith("!") else "!" + member


@dataclass
class Entry:
    """One `Sudoers entry:` of `sudo -ll -U USER`: commands that share a Runas spec and tags."""

    runas_users: Optional[list[str]]
    runas_groups: Optional[list[str]]
    tags: dict[str, bool]
    commands: list[str]  # aliases expanded, `!` kept
    where: Where


def entries_for(sudoers: Sudoers, account: Account, hostname: str) -> list[Entry]:
    out: list[Entry] = []
    for priv in sudoers.privileges:
        if not user_matches(sudoers, priv.users, account) or not host_matches(sudoers, priv.hosts, hostname):
            continue
        current: Optional[Entry] = None
        for spec in priv.cmnds:
            users = expand(sudoers, "runas", spec.runas_users)
            groups = expand(sudoers, "runas", spec.runas_groups)
            commands = expand(sudoers, "cmnd", [("!" if spec.negated else "") + spec.command]) or []
            if current is None or (current.runas_users, current.runas_groups, current.tags) != (users, groups,
                                                                                               spec.tags):
                current = Entry(users, groups, spec.tags, [], priv.where)
                out.append(current)
            current.commands.extend(" ".join(c.split()) for c in commands)  # sudo prints words one space apart
    return out


def runs_as_root(entry: Entry) -> bool:
    """The entry's commands may run as root: no Runas (root is sudo's default) or a list that admits root."""
    if entry.runas_users is None:
        return entry.runas_groups is None  # (:group) alone runs as the invoking user with that group
    verdict = False
    for member in entry.runas_users:
        name = member.lstrip("!")
        if name in ("ALL", "root", "#0"):
            verdict = not member.startswith("!")
    return verdict


def may_run_everything_as_root(entries: list[Entry]) -> Optional[Entry]:
    """The entry that lets the account run any command as root (last match wins for `ALL`), or None.

    `ALL, !/bin/su` still counts: sudoers(5) warns that a negated command is easily bypassed (copy or
    rename the program), so it does not take 'everything' away."""
    decided: Optional[Entry] = None
    for entry in entries:
        if not runs_as_root(entry):
            continue
        for command in entry.commands:
            if command == "ALL":
                decided = entry
            elif command == "!ALL":
                decided = None
    return decided


def authenticates(sudoers: Sudoers, account: Account, hostname: str, entry: Entry) -> bool:
    """Whether sudo asks `account` for a password for `entry`: its PASSWD/NOPASSWD tag, else the last
    `authenticate` flag of the Defaults lines that apply (global, `Defaults:user`, `Defaults@host`), else on."""
    if "PASSWD" in entry.tags:
        return entry.tags["PASSWD"]
    value = True
    for text, _ in sudoers.defaults:
        m = re.match(r"^Defaults([:@!>]\S+)?\s+(.*)$", text)
        if m is None:
            continue
        scope, rest = m.group(1) or "", m.group(2)
        if scope.startswith(":") and not user_matches(sudoers, _members(scope[1:]), account):
            continue
        if scope.startswith("@") and not host_matches(sudoers, _members(scope[1:]), hostname):
            continue
        if scope.startswith(("!", ">")):
            continue  # per-command and per-runas Defaults: not the account's default
        for option in _members(rest):
            if option in ("authenticate", "!authenticate"):
                value = option == "authenticate"
    return value

