"""One network scan end to end: scope check, discovery, probes, version detection, scoring, diff.

`run_scan` is what `sentinel scan` and the collector's scheduled scans call. Order of work:
scope check (raises before any packet) -> nmap pass 1 (open ports) -> our own probes on each open TCP port ->
nmap pass 2 (`-sV`) only on the open TCP ports our probes could not identify, each port bounded on its own
(`version_all`: every open TCP port) -> our UDP probes, only once every nmap pass is over
(a UDP agent such as snmpd answers one request at a time: nmap's UDP payloads or version probes on the same
port would make our request time out) -> follow-up probes that nmap's service names make applicable ->
findings scored against the zone baseline at the system's level (sentinel/network/scoring.py) -> events against
the previous scan's findings (diff.py). The probes themselves live in `sentinel.checks.network`.

A UDP port nmap reports `open|filtered` stays a finding in that state unless one of our probes got an answer
(then it is `open`): it is undetermined, never a pass and never an open service (findings.py). What the scan
covered (TCP ports, UDP ports or none, version detection) is in the report's `coverage` and in the evidence of
every verdict, so a verdict never silently stands for a protocol that was not scanned.
"""
from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Optional

from pydantic import BaseModel, Field

from sentinel.checks.network.credentials import (
    BASIC_AUTH_CONSOLES,
    CREDENTIALS,
    MAX_ATTEMPTS_PER_PORT,
    audit_log,
    pair_label,
)
from sentinel.checks.network.discovery import (
    OPEN_STATES,
    NmapRun,
    PortHit,
    Progress,
    ScanOptions,
    detect_versions,
    discover,
)
from sentinel.checks.network.findings import OPEN, ServiceFinding
from sentinel.checks.network.probes import PortProbe, icmp_echo, os_hint
from sentinel.checks.network.scope import Scope, ensure_in_scope, expand_ports, format_ports, merge_ranges
from sentinel.checks.network.services import DEFAULT_UDP_PORTS
from sentinel.model import CheckResult, Evidence, ItemResult, Summary, utcnow

from .diff import ScanEvent, carry_first_seen, diff_findings
from .scoring import NotScored, Reachability, level_of, score_network
from .zones import ZoneBaseline


class NmapRunInfo(BaseModel):
    command: list[str]
    elapsed: float
    warnings: list[str] = Field(default_factory=list)


class ScanCoverage(BaseModel):
    """What a scan looked at, in the report and in the evidence of each verdict."""

    tcp_ports: str  # nmap port syntax, e.g. "1-1024,3306"
    tcp_count: int
    udp_ports: Optional[str] = None  # None: UDP was not scanned
    udp_count: int = 0
    version_detection: bool = True
    # The opt-in credential probes (credentials.py) this scan tried, protocol -> accounts/communities; empty:
    # none was tried (they were off). A reader of the report must see that logins were attempted.
    credential_probes: dict[str, list[str]] = Field(default_factory=dict)
    note: str  # one sentence for people (English)
    note_zh: str


def credential_list() -> dict[str, list[str]]:
    """The documented credential list by protocol: accounts only (an empty password reads `(empty password)`),
    except the Basic-auth consoles' default pairs, listed per path with their passwords."""
    def label(proto: str, user: str, password: str) -> str:
        if proto == "snmp":
            return f"community {user}"
        return f"{user} (empty password)" if not password else user

    listed = {proto: [label(proto, u, pw) for u, pw in pairs[:MAX_ATTEMPTS_PER_PORT]]
              for proto, pairs in CREDENTIALS.items()}
    # Basic-auth consoles: per path its pairs, shown with their (documented, default) passwords, since one
    # account is tried with two of them; a port tries the pairs of the first path that asks for Basic auth
    listed["http-basic"] = [f"{path} ({', '.join(pair_label(u, pw) for u, pw in pairs[:MAX_ATTEMPTS_PER_PORT])})"
                            for path, _product, pairs in BASIC_AUTH_CONSOLES]
    return listed


class CredentialGrant(BaseModel):
    """Who enabled the credential probes a scan ran, and when (the collector's per-system setting); None
    in a one-shot `sentinel scan --credential-probes`, where the person running it is the one who chose."""

    enabled_by: str
    enabled_at: Optional[datetime] = None  # None: a switch set outside the API, whose time nobody recorded

    @property
    def when(self) -> str:
        return self.enabled_at.isoformat() if self.enabled_at else "an unrecorded time"


def coverage_of(options: ScanOptions) -> ScanCoverage:
    tcp, udp = options.effective_tcp_ports(), options.effective_udp_ports()
    tcp_n, udp_n = len(expand_ports(tcp)), len(expand_ports(udp))
    tcp_text = format_ports(tcp) if tcp else ""
    if udp:
        udp_en, udp_zh = f"UDP {udp_n} port(s) {format_ports(udp)}", f"UDP {udp_n} 个端口 {format_ports(udp)}"
    else:
        default = ",".join(map(str, DEFAULT_UDP_PORTS))
        udp_en = (f"UDP not scanned (give --udp for ports {default}): nothing here speaks for UDP services such "
                  f"as SNMP, NTP or memcached over UDP")
        udp_zh = f"未扫描 UDP（使用 --udp 扫描端口 {default}）：本结果不涉及 SNMP、NTP、memcached UDP 等 UDP 服务"
    vd = "" if options.version_detection else "; version detection off"
    vd_zh = "" if options.version_detection else "；未做版本识别"
    creds = credential_list() if options.credential_probes else {}
    if creds:
        listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in creds.items())
        vd += f"; credential probes ON (one attempt each: {listed})"
        vd_zh += f"；已启用弱口令/默认口令探测（每项一次：{listed}）"
    else:
        vd += "; credential probes off (no login attempted)"
        vd_zh += "；未启用口令探测（未尝试登录）"
    return ScanCoverage(tcp_ports=tcp_text, tcp_count=tcp_n, udp_ports=format_ports(udp) if udp else None,
                        udp_count=udp_n, version_detection=options.version_detection, credential_probes=creds,
                        note=f"scanned TCP {tcp_n} port(s); {udp_en}{vd}",
                        note_zh=f"扫描了 TCP {tcp_n} 个端口；{udp_zh}{vd_zh}")


class ScanReport(BaseModel):
    schema_version: int = 1
    scan_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    targets: list[str]
    scope: Scope
    zone_baseline: Optional[str] = None  # "id@version"
    level: Optional[int] = None  # the level scored at (clauses are the catalogue's for it); None: older reports
    zone: Optional[str] = None
    scanner_zone: Optional[str] = None
    options: ScanOptions
    coverage: Optional[ScanCoverage] = None  # None only in reports written before it existed
    credential_grant: Optional[CredentialGrant] = None  # collector scans with credential probes on
    nmap: list[NmapRunInfo]
    hosts_up: list[str]
    findings: list[ServiceFinding]
    results: list[CheckResult]
    items: list[ItemResult]  # per item over all hosts: the roll-up of `objects`
    objects: dict[str, list[ItemResult]] = Field(default_factory=dict)  # per 测评对象 (host): its own verdicts
    summary: Summary
    # results of checks whose item the level does not have (level 2: 数据保密性 ...): evidence, not scored
    not_scored: list[NotScored] = Field(default_factory=list)
    hosts: dict[str, dict] = Field(default_factory=dict)  # --icmp: {address: {reachable, ttl, os_hint}}
    events: list[ScanEvent] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


def _in_targets(host: str, networks) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in networks)


def run_scan(targets: list[str], scope: Scope, options: Optional[ScanOptions] = None,
             zone_baseline: Optional[ZoneBaseline] = None, zone: Optional[str] = None,
             scanner_zone: Optional[str] = None, previous: Optional[list[ServiceFinding]] = None,
             progress: Optional[Progress] = None, audit: Optional[Callable[[list[str]], None]] = None,
             credential_grant: Optional[CredentialGrant] = None, level: Optional[int] = None) -> ScanReport:
    """Scan `targets` inside `scope`. Raises ScopeError (before any packet), NmapMissing or NmapError.
    `credential_grant` (who enabled the credential probes, when) is only recorded, with them on.
    `level`: the level to score at (the system's); None: the zone baseline's. ValueError for a level the
    catalogue does not have, before any packet."""
    options = options or ScanOptions()
    started = utcnow()
    level = level_of(zone_baseline, level)
    if level not in (2, 3, 4):
        raise ValueError(f"level {level}: sentinel scores levels 2, 3 and 4 (the catalogue's)")
    if zone_baseline is not None:
        for name in (zone, scanner_zone):
            if name is not None:
                zone_baseline.zone(name)  # KeyError with the known zones
    tcp = options.effective_tcp_ports()
    udp = options.effective_udp_ports()
    resolved = ensure_in_scope(targets, scope, ports=merge_ranges(tcp + udp), audit=audit)
    networks = [t.network for t in resolved]

    runs: list[NmapRun] = discover(resolved, options, progress)
    errors: list[str] = []
    hits: list[PortHit] = []
    for run in runs:
        for hit in run.ports:
            if not _in_targets(hit.host, networks):  # nmap never should; if it did, refuse to report it
                errors.append(f"nmap reported {hit.host}, which is not among the targets; ignored")
                continue
            hits.append(hit)
    hosts_up = sorted({h for run in runs for h in run.hosts_up if _in_targets(h, networks)},
                      key=lambda h: (ipaddress.ip_address(h).version, int(ipaddress.ip_address(h))))
    open_hits = [h for h in hits if h.state == "open" or (h.proto == "udp" and h.state in OPEN_STATES)]
    nmap_state = {(h.host, h.proto, h.port): h.state for h in open_hits}
    if options.credential_probes:  # opt-in: say so in the audit log before the first attempt
        audit_log.warning("credential probes enabled for %s%s: %s", ", ".join(targets),
                          f" by {credential_grant.enabled_by} at {credential_grant.when}" if credential_grant else "",
                          "; ".join(f"{k}: {', '.join(u for u, _ in v)}" for k, v in CREDENTIALS.items()))
    probes = {(h.host, h.proto, h.port): PortProbe(h.host, h.port, h.proto, options.probe_timeout,
                                                   credentials=options.credential_probes) for h in open_hits}
    tcp_probes = [p for p in probes.values() if p.proto == "tcp"]
    udp_probes = [p for p in probes.values() if p.proto == "udp"]

    done = [0]
    total = max(1, len(probes))

    def probe_one(p: PortProbe) -> None:
        p.run_all()
        done[0] += 1
        if progress:
            progress("service probes", 100.0 * done[0] / total)

    version_runs: list[NmapRun] = []
    with ThreadPoolExecutor(max_workers=options.probe_workers + 1) as pool:
        for fut in [pool.submit(probe_one, p) for p in tcp_probes]:
            fut.result()
        # Version detection only where it adds something: the open TCP ports our probes could not identify
        # (or all of them with version_all), each bounded on its own (discovery.detect_versions).
        if options.version_detection:
            tcp_open = [h for h in open_hits if h.proto == "tcp" and h.state == "open"]
            wanted = tcp_open if options.version_all else [
                h for h in tcp_open if probes[(h.host, h.proto, h.port)].needs_version()]
            version_runs = detect_versions(wanted, options, progress, per_port=not options.version_all)
            named = {(h.host, h.proto, h.port) for run in version_runs for h in run.ports}
            for h in wanted:
                if (h.host, h.proto, h.port) not in named:
                    errors.append(f"version detection on {h.host}:{h.port}/tcp gave no answer within "
                                  f"{options.version_port_timeout}s")
        # UDP probes never overlap an nmap pass: they start only now (see the module docstring).
        for fut in [pool.submit(probe_one, p) for p in udp_probes]:
            fut.result()
        by_key = {(h.host, h.proto, h.port): h for run in version_runs for h in run.ports}
        pass1 = {(h.host, h.proto, h.port): h for h in open_hits}
        follow = []
        for key, p in probes.items():
            v = by_key.get(key)
            if v is not None:
                follow.append(pool.submit(p.follow_up, v.nmap_service, v.tunnel, v.product, v.version, v.extrainfo))
            else:  # nmap's pass-1 name (from its port table) may still make a probe applicable
                follow.append(pool.submit(p.follow_up, pass1[key].nmap_service, None, None, None, None))
        for fut in follow:
            fut.result()

    now = utcnow()
    findings: list[ServiceFinding] = []
    for key, p in probes.items():
        f = p.finding()
        # Open means an answer was seen: nmap's, or our probe's (an Exposure is only ever built from an answer).
        answered = nmap_state[key] == "open" or f.exposure is not None or f.ssh is not None or f.banner
        state = OPEN if answered else nmap_state[key]
        update = {"first_seen": now, "last_seen": now, "state": state}
        if f.credentials and credential_grant is not None:  # the finding itself says who allowed the logins
            update["evidence"] = [*f.evidence, Evidence(
                source=f"{f.label} credential probes", at=now,
                excerpt=f"enabled for this system by {credential_grant.enabled_by} at {credential_grant.when}")]
        findings.append(f.model_copy(update=update))
    if previous:
        findings = carry_first_seen(previous, findings)

    single = [str(t.network.network_address) for t in resolved if t.network.num_addresses == 1]
    reach = Reachability(scanner_zone=scanner_zone, hosts=sorted(set(hosts_up) | set(single)),
                         tcp_ports=expand_ports(tcp), udp_ports=expand_ports(udp))
    host_info: dict[str, dict] = {}
    if options.icmp:
        if not options.is_privileged():
            errors.append("--icmp needs raw sockets (root); ICMP reachability not checked")
        elif reach.hosts:
            for host, info in icmp_echo(reach.hosts, timeout=min(2.0, options.probe_timeout)).items():
                host_info[host] = {**info, "os_hint": os_hint(info["ttl"])}
    coverage = coverage_of(options)
    score = score_network(findings, zone_baseline, zone=zone, reach=reach, coverage=coverage.note, level=level)
    events: list[ScanEvent] = []
    if previous is not None:
        scanned = [h for h in {f.host for f in previous} if _in_targets(h, networks)]
        events = diff_findings(previous, score.findings, at=now, scanned_hosts=scanned)
    finished = utcnow()
    return ScanReport(
        scan_id=str(uuid.uuid4()), started_at=started, finished_at=finished,
        duration_ms=(finished - started).total_seconds() * 1000, targets=list(targets), scope=scope,
        zone_baseline=f"{zone_baseline.id}@{zone_baseline.version}" if zone_baseline else None,
        level=score.level, zone=zone, scanner_zone=scanner_zone, options=options, coverage=coverage,
        credential_grant=credential_grant if options.credential_probes else None,
        nmap=[NmapRunInfo(command=r.command, elapsed=r.elapsed, warnings=r.warnings) for r in runs + version_runs],
        hosts_up=hosts_up, findings=score.findings, results=score.results, items=score.items,
        objects=score.objects, summary=score.summary, not_scored=score.not_scored, hosts=host_info, events=events,
        errors=errors)
