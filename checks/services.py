"""Services: systemd unit state, running processes, listening sockets.

Unit enablement is read from disk the way `systemctl is-enabled` decides it, so it works on an offline
root too: a unit file symlinked to /dev/null (or empty) is masked; a link named after the unit in a
`*.wants`/`*.requires`/`*.upholds` directory of /etc/systemd/system, /run/systemd/system or the vendor
unit directories (/usr/lib/systemd/system, /lib/systemd/system) means enabled; a unit
file without an [Install] section is static; otherwise disabled. Alias links are followed, template
instances use their template file, and a SysV script with an rc?.d start link counts as enabled.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, field_validator

from sentinel.hostview import LiveOnly, ProbeError
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import read_lines

UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
CONFIG_DIRS = ("/etc/systemd/system", "/run/systemd/system")  # where enabling creates links
# where `*.wants` links start a unit at boot: the admin's and the vendor's (preset/static wiring)
WANTS_DIRS = CONFIG_DIRS + ("/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
ENABLED_RANK = ("enabled", "static", "disabled", "masked", "not-found")
ACTIVE_RANK = ("active", "activating", "reloading", "deactivating", "inactive", "failed", "unknown")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+"
                        r"\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$")
_INSTALL_KEYS = ("wantedby", "requiredby", "upheldby", "alias", "also")


@dataclass
class UnitState:
    unit: str
    state: str
    evidence: list[Evidence]


def _link_target(ctx: ProbeContext, path: str) -> Optional[str]:
    real = ctx.host.real_path(path, follow=False)
    try:
        return os.readlink(real) if os.path.islink(real) else None
    except OSError:
        return None


def _lexists(ctx: ProbeContext, path: str) -> bool:
    """Exists as a name, even as a link to a target absent from this view (a mask: -> /dev/null)."""
    return os.path.lexists(ctx.host.real_path(path, follow=False))


def _find_unit_file(ctx: ProbeContext, name: str) -> Optional[str]:
    for directory in UNIT_DIRS:
        candidate = f"{directory}/{name}"
        if _lexists(ctx, candidate):
            return candidate
    return None


def _wants_index(ctx: ProbeContext) -> dict[str, list[str]]:
    """unit name -> enablement links pointing at it (from *.wants/*.requires/*.upholds)."""

    def load() -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for directory in WANTS_DIRS:
            for sub in ctx.host.listdir(directory):
                if not sub.endswith((".wants", ".requires", ".upholds")):
                    continue
                for name in ctx.host.listdir(f"{directory}/{sub}"):
                    index.setdefault(name, []).append(f"{directory}/{sub}/{name}")
        return index

    return ctx.cached(("systemd", "wants"), load)


def _install_section(ctx: ProbeContext, path: str) -> dict[str, list[str]]:
    def load() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        section = None
        for raw in read_lines(ctx, path) or []:
            text = raw.strip()
            if not text or text[0] in "#;":
                continue
            if text.startswith("["):
                section = text.strip("[]").strip().lower()
                continue
            if section == "install" and "=" in text:
                key, _, value = text.partition("=")
                key = key.strip().lower()
                if key in _INSTALL_KEYS:
                    out.setdefault(key, []).extend(value.split())
        return out

    return ctx.cached(("systemd", "install", path), load)


def _is_masked(ctx: ProbeContext, path: str) -> bool:
    target = _link_target(ctx, path)
    if target is not None and os.path.normpath(target) == "/dev/null":
        return True
    try:
        return target is None and ctx.host.stat(path).st_size == 0
    except FileNotFoundError:
        return False


def unit_enabled_state(ctx: ProbeContext, unit: str, _seen: tuple[str, ...] = ()) -> UnitState:
    """is-enabled state of one unit: enabled, static, disabled, masked or not-found (cached per run)."""
    return ctx.cached(("systemd", "enabled", unit), lambda: _enabled_state(ctx, unit, _seen))


def _enabled_state(ctx: ProbeContext, unit: str, seen: tuple[str, ...]) -> UnitState:
    is_template = "@." in unit  # getty@.service itself
    path = _find_unit_file(ctx, unit)
    template = None
    if path is None and "@" in unit and not is_template:  # getty@tty1.service -> getty@.service
        template = unit.split("@", 1)[0] + "@." + unit.rsplit(".", 1)[1]
        path = _find_unit_file(ctx, template)
    if path is None:
        sysv = _sysv_state(ctx, unit)
        if sysv is not None:
            return sysv
        return UnitState(unit, "not-found", [evidence(f"{UNIT_DIRS[0]}, {UNIT_DIRS[3]}, {UNIT_DIRS[4]}",
                                                      f"{unit}: no unit file")])
    if _is_masked(ctx, path):
        return UnitState(unit, "masked", [evidence(path, f"{unit}: masked (-> /dev/null or empty)")])
    target = _link_target(ctx, path)
    if target is not None:
        target_name = os.path.basename(target)
        if target_name != unit and target_name != template and _UNIT_NAME.match(target_name) \
                and target_name not in seen and len(seen) < 8:
            inner = unit_enabled_state(ctx, target_name, seen + (unit,))
            return UnitState(unit, inner.state, [evidence(path, f"{unit} is an alias of {target_name}")]
                             + inner.evidence)
    index = _wants_index(ctx)
    if is_template:  # a template counts as enabled when any instance is
        prefix = unit.split("@", 1)[0] + "@"
        links = [p for name, ps in index.items() if name.startswith(prefix) for p in ps]
    else:
        links = index.get(unit, [])
    links = [p for p in links if not _is_masked(ctx, p)]
    admin_links = [p for p in links if p.startswith(CONFIG_DIRS)]
    if admin_links:
        return _enabled(ctx, unit, admin_links)
    install = _install_section(ctx, path)
    for alias in install.get("alias", []):
        for directory in CONFIG_DIRS:
            alias_path = f"{directory}/{alias}"
            if _link_target(ctx, alias_path) is not None:
                return UnitState(unit, "enabled", [evidence(alias_path, f"{unit}: enabled via Alias={alias}")])
    if not any(install.get(k) for k in ("wantedby", "requiredby", "upheldby", "alias")):
        if install.get("also"):
            return UnitState(unit, "disabled", [evidence(path, f"{unit}: indirect (only Also= "
                                                               f"{' '.join(install['also'])}), not enabled")])
        return UnitState(unit, "static", [evidence(path, f"{unit}: static (no [Install] section)")])
    if links:  # wired by the vendor's own *.wants: starts at boot like an enabled unit
        return _enabled(ctx, unit, links)
    wanted = " ".join(f"{k}={' '.join(v)}" for k, v in install.items() if v)
    return UnitState(unit, "disabled", [evidence(path, f"{unit}: disabled ([Install] {wanted}; no *.wants/"
                                                       "*.requires link to it)")])


def _enabled(ctx: ProbeContext, unit: str, links: list[str]) -> UnitState:
    return UnitState(unit, "enabled", [evidence(link, f"{unit}: enabled (link -> {_link_target(ctx, link) or 'file'})")
                                       for link in links])


def _sysv_state(ctx: ProbeContext, unit: str) -> Optional[UnitState]:
    """A SysV init script that systemd's generator would wrap (Debian-style rc?.d links)."""
    if not unit.endswith(".service"):
        return None
    name = unit[: -len(".service")]
    script = f"/etc/init.d/{name}"
    if not ctx.host.exists(script):
        return None
    for level in "2345":
        for entry in ctx.host.listdir(f"/etc/rc{level}.d"):
            if entry.startswith("S") and entry[3:] == name:
                link = f"/etc/rc{level}.d/{entry}"
                return UnitState(unit, "enabled",
                                 [evidence(link, f"{unit}: SysV script {script} started in runlevel {level}")])
    return UnitState(unit, "disabled", [evidence(script, f"{unit}: SysV script without a start link")])


def systemd_is_pid1(ctx: ProbeContext) -> tuple[bool, str]:
    try:
        comm = ctx.host.read_text("/proc/1/comm").strip()
    except (FileNotFoundError, ProbeError) as exc:
        return False, f"cannot read /proc/1/comm: {exc}"
    return comm == "systemd", comm


def _active_states(ctx: ProbeContext, units: list[str]) -> list[UnitState]:
    if not ctx.host.live:
        raise LiveOnly("unit activity is a live-host fact; not available for an offline root",
                            "服务运行状态只能在运行中的主机上查看，离线根目录不适用")
    ok, comm = systemd_is_pid1(ctx)
    if not ok:
        raise ProbeError(f"systemd is not PID 1 here (PID 1 is {comm!r}): unit activity cannot be queried",
                         f"本机 1 号进程不是 systemd（而是 {comm!r}），无法查询服务运行状态")
    argv = ["systemctl", "is-active", "--", *units]
    result = ctx.host.run(argv, timeout=10)
    if result.timed_out:
        raise ProbeError(f"{' '.join(argv)} timed out after 10s")
    states = result.stdout.split()
    if len(states) != len(units):
        raise ProbeError(f"{' '.join(argv)}: unexpected output {result.stdout.strip()!r} "
                         f"(exit {result.returncode}; {result.stderr.strip()[:300]})")
    cmd = "cmd: " + " ".join(argv)
    return [UnitState(u, s if s in ACTIVE_RANK else "unknown", [evidence(cmd, f"{u}: {s}")])
            for u, s in zip(units, states, strict=True)]  # lengths checked above


class UnitParams(Strict):
    units: list[str] = Field(min_length=1)
    state: Literal["enabled", "active"]
    require: Literal["any", "all"] = "any"

    @field_validator("units")
    @classmethod
    def _unit_names(cls, v: list[str]) -> list[str]:
        out = []
        for unit in v:
            name = unit if "." in unit.rsplit("@", 1)[-1] else f"{unit}.service"
            if not _UNIT_NAME.match(name):
                raise ValueError(f"{unit!r} is not a systemd unit name")
            out.append(name)
        return out


@probe("systemd.unit", UnitParams)
def systemd_unit(ctx: ProbeContext, params: UnitParams) -> Observation:
    """Best (require any) or worst (require all) state among the units; evidence lists each."""
    rank: tuple[str, ...]  # ACTIVE_RANK or ENABLED_RANK, of different lengths
    if params.state == "active":
        states, rank = _active_states(ctx, params.units), ACTIVE_RANK
    else:
        states, rank = [unit_enabled_state(ctx, u) for u in params.units], ENABLED_RANK
    ordered = sorted(states, key=lambda s: rank.index(s.state))
    chosen = ordered[0] if params.require == "any" else ordered[-1]
    ev = [e for s in states for e in s.evidence]
    summary = ", ".join(f"{s.unit}={s.state}" for s in states)
    return Observation(observed=chosen.state, evidence=ev,
                       note=summary if len(states) > 1 else None)


class ProcessParams(Strict):
    names: list[str] = Field(min_length=1)

    @field_validator("names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or "/" in name:
                raise ValueError(f"{name!r}: give a process name or executable basename, not a path")
        return v


@probe("process.running", ProcessParams, live_only=True)
def process_running(ctx: ProbeContext, params: ProcessParams) -> Observation:
    """Sorted names from `names` that match a running process's name or executable basename."""
    procs = ctx.host.processes()
    wanted = set(params.names)
    found, lines = set(), []
    for p in procs:
        candidates = {p.name, os.path.basename(p.exe)} if p.exe else {p.name}
        if p.cmdline:
            candidates.add(os.path.basename(p.cmdline[0]))
        hit = wanted & candidates
        if hit:
            found |= hit
            lines.append(f"pid {p.pid} {p.name} exe={p.exe or '?'} user={p.username or '?'} "
                         f"cmd={' '.join(p.cmdline)[:200]}")
    excerpt = "\n".join(lines[:50]) if lines else f"none of {', '.join(params.names)} among {len(procs)} processes"
    return Observation(observed=sorted(found), evidence=[evidence("proc", excerpt)])


class SocketParams(Strict):
    ports: Optional[list[int]] = None
    proto: Literal["tcp", "udp", "any"] = "any"
    include_loopback: bool = False

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: Optional[list[int]]) -> Optional[list[int]]:
        if v is not None:
            if not v:
                raise ValueError("ports must not be empty (omit it for all ports)")
            for port in v:
                if not 0 < port < 65536:
                    raise ValueError(f"port {port} out of range 1-65535")
        return v


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@probe("socket.listening", SocketParams, live_only=True)
def socket_listening(ctx: ProbeContext, params: SocketParams) -> Observation:
    """Sorted `proto/port address (process)` for listening TCP and bound UDP sockets."""
    out = []
    for sock in ctx.host.listening():
        if params.proto != "any" and not sock.proto.startswith(params.proto):
            continue
        if params.ports is not None and sock.port not in params.ports:
            continue
        if not params.include_loopback and _is_loopback(sock.address):
            continue
        owner = sock.process or (f"pid {sock.pid}" if sock.pid else "unknown")
        out.append(f"{sock.proto}/{sock.port} {sock.address} ({owner})")
    out = sorted(set(out))
    scope = (f"ports {params.ports}" if params.ports else "all ports") + f", {params.proto}" + \
        ("" if params.include_loopback else ", loopback excluded")
    return Observation(observed=out, evidence=[evidence("sockets", ("\n".join(out) or "none") + f"\n({scope})")])
