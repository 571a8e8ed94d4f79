"""What sudo grants each account, from sudoers read as sudo reads it (checks/_sudoers.py).

- `sudo.full_root`: accounts other than root that may run every command as root (`ALL` with a Runas that
  admits root; the last matching entry for `ALL` decides). 8.1.4.2 d: no ordinary account may do everything.
- `sudo.separation`: the administrators' duties as the grants show them (三权分立: system, security and audit
  administration held by different accounts), with the accounts that may do everything counted in every
  duty. The commands that make a duty are listed in ROLE_COMMANDS (a site may extend them).

Group membership comes from the host's own /etc/passwd and /etc/group (checks/_users.py). Evidence names
the sudoers lines that grant what is reported.
"""
from __future__ import annotations

import posixpath
import re
from typing import Optional

from pydantic import Field

from sentinel.hostview import NotApplicable
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from . import _sudoers as S
from ._users import groups, passwd

# Commands whose grant makes an account an administrator of that duty (basenames, or path prefixes).
ROLE_COMMANDS: dict[str, tuple[str, ...]] = {
    "system": ("systemctl", "service", "apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "zypper",
               "mount", "umount", "reboot", "shutdown", "poweroff", "halt", "init", "ip", "nmcli", "ifup",
               "ifdown", "hostnamectl", "timedatectl", "crontab", "kill", "pkill", "killall"),
    "security": ("useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "passwd", "chpasswd",
                 "chage", "gpasswd", "faillock", "pam_tally2", "visudo", "chmod", "chown", "chgrp", "setfacl",
                 "semanage", "setenforce", "setsebool", "chcon", "restorecon", "aa-enforce", "aa-complain",
                 "firewall-cmd", "iptables", "ip6tables", "nft", "ufw", "authselect", "pwconv"),
    "audit": ("ausearch", "aureport", "auditctl", "aulast", "aulastlog", "auditd", "augenrules", "journalctl",
              "lastb", "/var/log/audit/"),
}


class SudoParams(Strict):
    path: str = "/etc/sudoers"
    extra_commands: dict[str, list[str]] = Field(default_factory=dict)  # duty -> more commands (site file)


def _model(ctx: ProbeContext, path: str) -> S.Sudoers:
    def load() -> S.Sudoers:
        host = ctx.host
        if host.read_optional(path) is None:
            return S.Sudoers()  # no sudoers: sudo (if installed at all) grants nobody anything
        return S.parse(host.read_optional, lambda d: host.listdir(d) if host.is_dir(d) else None,
                       host.hostname(), path)

    return ctx.cached(("sudoers", path), load)


def accounts(ctx: ProbeContext) -> list[S.Account]:
    """Every local account with its groups (primary and supplementary), as the host's files say."""
    table = groups(ctx)
    by_gid = {g.gid: g.name for g in reversed(table)}
    members: dict[str, set[str]] = {}
    for g in table:
        fields = g.text.split(":")
        for name in (fields[3] if len(fields) > 3 else "").split(","):
            if name.strip():
                members.setdefault(name.strip(), set()).add(g.name)
    gid_of = {g.name: g.gid for g in table}
    out = []
    for entry in passwd(ctx):
        names = set(members.get(entry.name, set()))
        if entry.gid in by_gid:
            names.add(by_gid[entry.gid])
        gids = {gid_of[n] for n in names if n in gid_of} | {entry.gid}
        out.append(S.Account(entry.name, entry.uid, frozenset(names), frozenset(gids)))
    return out


def _where(entry: S.Entry):
    return evidence(entry.where.path, entry.where.text, entry.where.line)


def _describe(entry: S.Entry) -> str:
    runas = ",".join(entry.runas_users or ["root"])
    if entry.runas_groups:
        runas += ":" + ",".join(entry.runas_groups)
    tags = "".join(("" if on else "NO") + tag + ": " for tag, on in entry.tags.items())
    return f"({runas}) {tags}{', '.join(entry.commands)}"


def _common(ctx: ProbeContext, params: SudoParams):
    model = _model(ctx, params.path)
    hostname = ctx.host.hostname()
    grants = {a.name: (a, S.entries_for(model, a, hostname)) for a in accounts(ctx)}
    ev = [evidence(params.path, "read: " + ", ".join(model.files) if model.files
                   else f"no {params.path}: sudo grants nobody anything")]
    if model.problems:
        ev.append(evidence(params.path, "sudo would complain: " + "; ".join(model.problems[:10])))
    return model, grants, ev


def _is_root(account: S.Account) -> bool:
    return account.uid == 0 and account.name == "root"


def _require_grants(grants: dict[str, tuple[S.Account, list[S.Entry]]], ev: list) -> None:
    """"Nobody but root may do everything" is only a finding about grants that exist: where sudo grants no
    account but root anything (no sudoers, or only the stock root line) it restates that absence, and passing
    lifted a host with no administrators and su open to all from 不符合 to 部分符合 (bench/agreement.py).
    Separation (sudo.separation) still fails there; these two have nothing to judge."""
    if not any(entries for account, entries in grants.values() if not _is_root(account)):
        where = ev[0].excerpt if ev else ""
        raise NotApplicable(f"sudo grants no account but root anything ({where}): no grant to judge",
                            f"sudo 未向 root 以外的任何账户授权（{where}），无授权可判定")


@probe("sudo.full_root", SudoParams)
def full_root(ctx: ProbeContext, params: SudoParams) -> Observation:
    """Sorted accounts other than root that may run any command as root through sudo."""
    _, grants, ev = _common(ctx, params)
    _require_grants(grants, ev)
    found = []
    for name, (account, entries) in grants.items():
        decided = S.may_run_everything_as_root(entries)
        if decided is not None and not _is_root(account):
            found.append(name)
            ev.append(evidence(decided.where.path, f"{name}: {_describe(decided)}  <- {decided.where.text}",
                               decided.where.line))
    return Observation(observed=sorted(set(found)), evidence=ev)


@probe("sudo.nopasswd_all", SudoParams)
def nopasswd_all(ctx: ProbeContext, params: SudoParams) -> Observation:
    """Sorted accounts other than root that may run any command as root without giving a password
    (`NOPASSWD:` on the deciding `ALL` entry, or `Defaults !authenticate` that applies to them)."""
    model, grants, ev = _common(ctx, params)
    _require_grants(grants, ev)
    hostname = ctx.host.hostname()
    found = []
    for name, (account, entries) in grants.items():
        decided = S.may_run_everything_as_root(entries)
        if decided is None or _is_root(account) or S.authenticates(model, account, hostname, decided):
            continue
        found.append(name)
        ev.append(evidence(decided.where.path, f"{name}: {_describe(decided)}  <- {decided.where.text}",
                           decided.where.line))
    return Observation(observed=sorted(set(found)), evidence=ev)


def _duties(entries: list[S.Entry], table: dict[str, tuple[str, ...]]) -> set[str]:
    if S.may_run_everything_as_root(entries) is not None:
        return set(table)
    out: set[str] = set()
    for entry in entries:
        if not S.runs_as_root(entry):
            continue
        for command in entry.commands:
            if command.startswith("!") or command == "ALL":  # ALL taken back later (!ALL): decided above
                continue
            words = re.sub(r"^(sha224|sha256|sha384|sha512):\S+\s+", "", command).split()
            base = posixpath.basename(words[0])
            for duty, names in table.items():
                if base in names or any(n.endswith("/") and any(w.startswith(n) for w in words) for n in names):
                    out.add(duty)
    return out


@probe("sudo.separation", SudoParams)
def separation(ctx: ProbeContext, params: SudoParams) -> Observation:
    """{separated, full_root, system, security, audit, shared}: which accounts hold which administrative duty.

    `separated` is true when no account but root may do everything, security and audit administration are
    each held by at least one account, and no account holds two duties (system administration may stay
    with root)."""
    _, grants, ev = _common(ctx, params)
    table = {duty: names + tuple(params.extra_commands.get(duty, ())) for duty, names in ROLE_COMMANDS.items()}
    holders: dict[str, list[str]] = {duty: [] for duty in table}
    full, shared = [], []
    for name, (account, entries) in grants.items():
        if _is_root(account):
            continue
        duties = _duties(entries, table)
        if S.may_run_everything_as_root(entries) is not None:
            full.append(name)
        for duty in duties:
            holders[duty].append(name)
        if len(duties) > 1:
            shared.append(name)
        for entry in entries:
            ev.append(evidence(entry.where.path, f"{name}: {_describe(entry)}", entry.where.line))
    problems = []
    if full:
        problems.append("may run everything as root: " + ", ".join(sorted(full)))
    for duty in ("security", "audit"):
        if not holders[duty]:
            problems.append(f"no account is granted {duty} administration")
    if shared:
        problems.append("hold more than one duty: " + ", ".join(sorted(shared)))
    observed = {"separated": not problems, "full_root": sorted(full), "shared": sorted(shared),
                **{duty: sorted(names) for duty, names in holders.items()}, "problems": problems}
    return Observation(observed=observed, evidence=ev)


def entries(ctx: ProbeContext, user: str, path: str = "/etc/sudoers") -> Optional[list[S.Entry]]:
    """The entries `sudo -ll -U user` would list on this host (None: no such account); for tests and tools."""
    model = _model(ctx, path)
    for account in accounts(ctx):
        if account.name == user:
            return S.entries_for(model, account, ctx.host.hostname())
    return None
