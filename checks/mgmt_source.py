"""`ssh.source_restriction`: is SSH management limited to fixed source addresses (作业指导书 #32: hosts.allow/deny,
sshd AllowUsers, firewall rules for the management port; "固定源地址/堡垒机")? Each way is judged as the program
that enforces it reads it, not by the presence of a line:

- sshd, from its effective configuration (sshd.option: Include, Match, first value wins). `AllowUsers`
  restricts terminals only when every entry carries an address (`user@10.0.0.5`; an entry without one, or
  with host `*`, lets that user in from anywhere); `ListenAddress` only on specific addresses binds SSH to
  the management interface. A configuration sshd refuses (`sshd -t`) applies nothing: sshd does not start
  with it, so neither its settings nor tcp_wrappers count.
- tcp_wrappers, only when the sshd binary is linked with libwrap (Debian's is; EL8+'s is not), as
  hosts_access(5) decides: hosts.allow is searched first, then hosts.deny, the first matching rule wins and
  no match grants. So it restricts when hosts.deny denies sshd to every client and no hosts.allow rule
  admits sshd from every client.
- firewall rule files (iptables/nftables/ufw/firewalld), loaded by their own services: a rule with a source
  address for port 22 (lines matching `firewall_pattern`).

observed: one row per restriction found, `{how, where}`; empty when nothing restricts.
"""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field

from sentinel.hostview import NotApplicable, ProbeError
from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import expand, missing_evidence, read_lines
from .sshd import SSHD_BINARIES, SshdOptionParams, sshd_option

FIREWALL_PATTERN = (r"(?i)-s\s+[0-9a-f.:/]+\s.*--dport\s+(?:22|ssh)\b|--dport\s+(?:22|ssh)\b.*\s-s\s+[0-9a-f.:/]+|"
                    r"saddr\s.*dport\s+(?:22|ssh)\b|dport\s+(?:22|ssh)\b.*saddr\s|<source\s+address=")
_WILDCARD_LISTEN = {"0.0.0.0", "::", "[::]", "*"}  # noqa: S104 (addresses to recognise, nothing binds them)


class SourceParams(Strict):
    config: str = "/etc/ssh/sshd_config"
    firewall_paths: list[str] = Field(default_factory=list)
    firewall_pattern: str = FIREWALL_PATTERN


def _wrapper_rules(ctx: ProbeContext, path: str) -> list[tuple[int, str, list[str], list[str]]]:
    """(line, text, daemons, clients) of a hosts_access(5) file: `#` comments, `\\` continuations."""
    lines = read_lines(ctx, path) or []
    out, buf, start = [], "", 0
    for number, raw in enumerate(lines, 1):
        if not buf:
            start = number
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        text, buf = (buf + raw).strip(), ""
        if not text or text.startswith("#"):
            continue
        parts = text.split(":")
        if len(parts) < 2:
            continue
        daemons = [d.strip().lower() for d in re.split(r"[\s,]+", parts[0]) if d.strip()]
        clients = [c.strip().upper() for c in re.split(r"[\s,]+", parts[1]) if c.strip()]
        out.append((start, text, daemons, clients))
    return out


def _for_sshd(daemons: list[str]) -> bool:
    return any(d.split("@")[0] in ("sshd", "all") for d in daemons)


def _all_clients(clients: list[str]) -> bool:
    # "ALL" (or "ALL EXCEPT x": everyone but x) matches every client that matters here
    return bool(clients) and clients[0] == "ALL"


def _libwrap(ctx: ProbeContext) -> Optional[str]:
    """Where it shows that sshd uses tcp_wrappers: the binary's libwrap.so.0 dependency, or (an image without
    the binary) the dpkg record of openssh-server depending on libwrap0. None: it does not, or cannot be seen."""
    for binary in SSHD_BINARIES:
        if ctx.host.exists(binary):
            return binary if "libwrap.so" in ctx.host.read_text(binary, limit=16 << 20) else None
    status = ctx.host.read_optional("/var/lib/dpkg/status") or ""
    for stanza in status.split("\n\n"):
        if re.search(r"^Package: openssh-server$", stanza, re.M) and \
                re.search(r"^Depends:.*\blibwrap0\b", stanza, re.M):
            return "/var/lib/dpkg/status (openssh-server depends on libwrap0)"
    return None


@probe("ssh.source_restriction", SourceParams)
def source_restriction(ctx: ProbeContext, params: SourceParams) -> Observation:
    rows: list[dict[str, str]] = []
    ev = []
    rx = re.compile(params.firewall_pattern)
    paths = expand(ctx, params.firewall_paths)
    for path in paths:
        for number, raw in enumerate(read_lines(ctx, path) or [], 1):
            if not raw.lstrip().startswith("#") and rx.search(raw):
                rows.append({"how": "firewall", "where": f"{path}:{number}: {raw.strip()}"})
                ev.append(evidence(path, raw.strip(), number))
    ev.extend(missing_evidence(params.firewall_paths, paths))

    try:
        users = sshd_option(ctx, SshdOptionParams(key="AllowUsers", config=params.config))
        listen = sshd_option(ctx, SshdOptionParams(key="ListenAddress", config=params.config))
    except NotApplicable as exc:  # no OpenSSH server: only the firewall's rules can say anything
        ev.append(evidence(params.config, str(exc)))
        return Observation(observed=rows, evidence=ev)
    except ProbeError as exc:
        if rows:  # the firewall's rules hold whatever sshd does
            ev.append(evidence(params.config, f"not counted: {exc}"))
            return Observation(observed=rows, evidence=ev)
        raise ProbeError(f"{exc}; no firewall rule restricts port 22 either", exc.zh) from exc
    allow = (users.observed[0] or "").split() if users.observed else []
    if allow:
        open_entries = [u for u in allow if "@" not in u or u.split("@", 1)[1] in ("*", "")]
        src = users.evidence[0]
        if open_entries:
            ev.append(evidence(src.source, f"AllowUsers {' '.join(allow)}: not a source restriction, "
                                           f"{', '.join(open_entries)} may log in from anywhere", src.line))
        else:
            rows.append({"how": "sshd AllowUsers", "where": f"{src.source}:{src.line}: AllowUsers {' '.join(allow)}"})
            ev.append(evidence(src.source, f"AllowUsers {' '.join(allow)}: every entry bound to an address", src.line))
    addrs = (listen.observed[0] or "").split() if listen.observed else []
    hosts = [re.sub(r"^\[(.*)\](:\d+)?$", r"\1", a) if a.startswith("[") else a.rsplit(":", 1)[0] if a.count(":") == 1
             else a for a in addrs if a != "rdomain"]
    if hosts and not _WILDCARD_LISTEN & set(hosts):
        src = listen.evidence[0]
        rows.append({"how": "sshd ListenAddress", "where": f"{src.source}:{src.line}: ListenAddress {' '.join(addrs)}"})
        ev.append(evidence(src.source, f"ListenAddress {' '.join(addrs)}: bound to specific addresses", src.line))

    binary = _libwrap(ctx)
    if binary is None:
        ev.append(evidence("/usr/sbin/sshd", "not linked with libwrap (or not found): hosts.allow/hosts.deny are not "
                                             "counted for sshd"))
    else:
        allow_all = [r for r in _wrapper_rules(ctx, "/etc/hosts.allow") if _for_sshd(r[2]) and _all_clients(r[3])]
        deny_all = [r for r in _wrapper_rules(ctx, "/etc/hosts.deny") if _for_sshd(r[2]) and _all_clients(r[3])]
        if deny_all and not allow_all:
            rows.append({"how": "tcp_wrappers", "where": f"/etc/hosts.deny:{deny_all[0][0]}: {deny_all[0][1]}"})
            ev.append(evidence("/etc/hosts.deny", f"{deny_all[0][1]}: sshd denied to every client not listed in "
                                                  "/etc/hosts.allow", deny_all[0][0]))
        elif allow_all:
            ev.append(evidence("/etc/hosts.allow", f"{allow_all[0][1]}: admits sshd from every client",
                               allow_all[0][0]))
        else:
            ev.append(evidence("/etc/hosts.deny", f"sshd uses tcp_wrappers ({binary}), but no hosts.deny rule "
                                                  "denies sshd to every client (no match grants)"))
    return Observation(observed=rows, evidence=ev)
