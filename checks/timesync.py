"""`time.sync`: which time synchronisation daemon is enabled and which servers it uses.

Daemons are tried in order chronyd, ntpd, systemd-timesyncd; the first whose unit is installed and
enabled is reported with its configured sources:
- chrony: chrony.conf (`server`/`pool`/`peer`/`refclock`), following `include`, `confdir` (*.conf)
  and `sourcedir` (*.sources; /etc/chrony/sources.d by default on Debian);
- ntpd/ntpsec: ntp.conf `server`/`pool`/`peer` (local-clock pseudo addresses 127.127.x.x excluded),
  following `includefile`;
- timesyncd: timesyncd.conf and its drop-ins, `NTP=` (an empty assignment resets the list), and
  `FallbackNTP=` only when NTP= ends up empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import conf_dir_files, has_glob, meaningful, read_lines
from .services import unit_enabled_state

DAEMONS = (
    ("chronyd", ("chronyd.service", "chrony.service"), ("/etc/chrony.conf", "/etc/chrony/chrony.conf")),
    ("ntpd", ("ntpd.service", "ntp.service", "ntpsec.service"), ("/etc/ntp.conf", "/etc/ntpsec/ntp.conf")),
    ("systemd-timesyncd", ("systemd-timesyncd.service",), ("/etc/systemd/timesyncd.conf",)),
)
TIMESYNCD_DROPINS = ("/etc/systemd/timesyncd.conf.d", "/run/systemd/timesyncd.conf.d",
                     "/usr/local/lib/systemd/timesyncd.conf.d", "/usr/lib/systemd/timesyncd.conf.d")
MAX_DEPTH = 10


@dataclass
class Sources:
    servers: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _chrony(ctx: ProbeContext, path: str, out: Sources, depth: int = 0, sources_only: bool = False) -> None:
    if depth > MAX_DEPTH or path in out.files:
        return
    lines = read_lines(ctx, path)
    if lines is None:
        return
    out.files.append(path)
    for number, text in meaningful(lines):
        words = text.split()
        key = words[0].lower()
        if key in ("server", "pool", "peer") and len(words) > 1:
            out.servers.append(words[1])
            out.evidence.append(evidence(path, text, number))
        elif key == "refclock" and len(words) > 2:
            out.servers.append(f"refclock:{words[1]}:{words[2]}")
            out.evidence.append(evidence(path, text, number))
        elif sources_only:
            continue
        elif key == "include" and len(words) > 1:
            files = ctx.host.glob(words[1]) if has_glob(words[1]) else [words[1]]
            for f in files:
                _chrony(ctx, f, out, depth + 1)
        elif key in ("confdir", "sourcedir"):
            suffix = ".conf" if key == "confdir" else ".sources"
            by_name: dict[str, str] = {}
            for directory in words[1:]:  # a name in an earlier directory hides it in later ones
                for f in conf_dir_files(ctx, directory, suffix):
                    by_name.setdefault(f.rsplit("/", 1)[1], f)
            for name in sorted(by_name):
                _chrony(ctx, by_name[name], out, depth + 1, sources_only=key == "sourcedir")


def _ntp(ctx: ProbeContext, path: str, out: Sources, depth: int = 0) -> None:
    if depth > MAX_DEPTH or path in out.files:
        return
    lines = read_lines(ctx, path)
    if lines is None:
        return
    out.files.append(path)
    for number, text in meaningful(lines):
        words = text.split()
        key = words[0].lower()
        if key in ("server", "pool", "peer") and len(words) > 1:
            if words[1].startswith("127.127."):
                continue  # reference-clock driver pseudo address, not a time server
            out.servers.append(words[1])
            out.evidence.append(evidence(path, text, number))
        elif key == "includefile" and len(words) > 1:
            _ntp(ctx, words[1], out, depth + 1)


def _timesyncd(ctx: ProbeContext, main: str, out: Sources) -> None:
    # systemd reads the first main file found (/etc beats the vendor copy), then every drop-in
    # by name across the drop-in directories (an earlier directory hides the same name)
    mains = [main] + [f"{d}/timesyncd.conf" for d in ("/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd")]
    first_main = next((m for m in mains if read_lines(ctx, m) is not None), None)
    by_name: dict[str, str] = {}
    for directory in TIMESYNCD_DROPINS:
        for f in conf_dir_files(ctx, directory):
            by_name.setdefault(f.rsplit("/", 1)[1], f)
    files = ([first_main] if first_main else []) + [by_name[n] for n in sorted(by_name)]
    ntp: list[str] = []
    fallback: list[str] = []
    ntp_ev: list[Evidence] = []
    fallback_ev: list[Evidence] = []
    for path in files:
        out.files.append(path)
        section = None
        for number, text in meaningful(read_lines(ctx, path) or []):
            if text.startswith("["):
                section = text.strip("[]").strip()
                continue
            if section != "Time" or "=" not in text:
                continue
            key, _, value = text.partition("=")
            key = key.strip()
            if key not in ("NTP", "FallbackNTP"):
                continue
            target, target_ev = (ntp, ntp_ev) if key == "NTP" else (fallback, fallback_ev)
            if not value.strip():  # an empty assignment resets the list
                target.clear()
                target_ev.clear()
            target.extend(value.split())
            target_ev.append(evidence(path, text, number))
    if ntp:
        out.servers, out.evidence = ntp, ntp_ev
    else:
        out.servers, out.evidence = fallback, fallback_ev


class NoParams(Strict):
    pass


@probe("time.sync", NoParams)
def time_sync(ctx: ProbeContext, params: NoParams) -> Observation:
    """{service, enabled, servers} of the first installed and enabled time synchronisation daemon."""
    ev: list[Evidence] = []
    disabled = []
    for service, units, configs in DAEMONS:
        states = [unit_enabled_state(ctx, u) for u in units]
        installed = [s for s in states if s.state != "not-found"]
        if not installed:
            continue
        enabled = [s for s in installed if s.state == "enabled"]
        if not enabled:
            disabled.append(f"{service} ({', '.join(f'{s.unit}={s.state}' for s in installed)})")
            for s in installed:
                ev.extend(s.evidence)
            continue
        sources = Sources()
        for cfg in configs:
            if service == "chronyd":
                _chrony(ctx, cfg, sources)
                if sources.files:  # the first chrony.conf found is the one in use
                    break
            elif service == "ntpd":
                _ntp(ctx, cfg, sources)
                if sources.files:
                    break
            else:
                _timesyncd(ctx, cfg, sources)
        ev.extend(enabled[0].evidence)
        ev.extend(sources.evidence)
        if not sources.servers:
            ev.append(evidence(", ".join(sources.files) or ", ".join(configs),
                               "no time source configured" if sources.files else "configuration file not found"))
        note = "installed but not enabled: " + "; ".join(disabled) if disabled else None
        return Observation(observed={"service": service, "enabled": True, "servers": sources.servers},
                           evidence=ev, note=note)
    if not disabled:
        ev.append(evidence("/etc/systemd/system, /usr/lib/systemd/system",
                           "no chronyd, ntpd or systemd-timesyncd unit installed"))
    return Observation(observed={"service": None, "enabled": False, "servers": []}, evidence=ev,
                       note=("installed but not enabled: " + "; ".join(disabled)) if disabled
                       else "no time synchronisation daemon installed")
