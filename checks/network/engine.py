"""One network scan end to end: scope check, discovery, probes, version detection, scoring, diff.

`run_scan` is what `sentinel scan` and the collector's scheduled scans call. Order of work:
scope check (raises before any packet) -> nmap pass 1 (open ports) -> in parallel: nmap pass 2 (`-sV` on the
open ports) and our own probes on each open port -> follow-up probes that nmap's service names make
applicable -> findings scored against the zone baseline -> events against the previous scan's findings.
"""
from __future__ import annotations

import ipaddress
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Callable, Optional

from pydantic import BaseModel, Field

from sentinel.model import CheckResult, ItemResult, Summary, utcnow

from .discovery import NmapRun, OPEN_STATES, PortHit, Progress, ScanOptions, detect_versions, discover
from .findings import (Reachability, ScanEvent, ServiceFinding, carry_first_seen, diff_findings, score_network)
from .probes import PortProbe
from .scope import Scope, ensure_in_scope, expand_ports, merge_ranges
from .zones import ZoneBaseline


class NmapRunInfo(BaseModel):
    command: list[str]
    elapsed: float
    warnings: list[str] = Field(default_factory=list)


class ScanReport(BaseModel):
    schema_version: int = 1
    scan_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    targets: list[str]
    scope: Scope
    zone_baseline: Optional[str] = None  # "id@version"
    zone: Optional[str] = None
    scanner_zone: Optional[str] = None
    options: ScanOptions
    nmap: list[NmapRunInfo]
    hosts_up: list[str]
    findings: list[ServiceFinding]
    results: list[CheckResult]
    items: list[ItemResult]
    summary: Summary
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
             progress: Optional[Progress] = None, audit: Optional[Callable[[list[str]], None]] = None) -> ScanReport:
    """Scan `targets` inside `scope`. Raises ScopeError (before any packet), NmapMissing or NmapError."""
    options = options or ScanOptions()
    started = utcnow()
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
    probes = {(h.host, h.proto, h.port): PortProbe(h.host, h.port, h.proto, options.probe_timeout) for h in open_hits}

    done = [0]
    total = max(1, len(probes))

    def probe_one(p: PortProbe) -> None:
        p.run_all()
        done[0] += 1
        if progress:
            progress("service probes", 100.0 * done[0] / total)

    version_runs: list[NmapRun] = []
    with ThreadPoolExecutor(max_workers=options.probe_workers + 1) as pool:
        versions = pool.submit(detect_versions, open_hits, options, progress) if options.version_detection else None
        for fut in [pool.submit(probe_one, p) for p in probes.values()]:
            fut.result()
        if versions is not None:
            version_runs = versions.result()
        by_key = {(h.host, h.proto, h.port): h for run in version_runs for h in run.ports}
        follow = []
        for key, p in probes.items():
            v = by_key.get(key)
            if v is not None:
                follow.append(pool.submit(p.follow_up, v.nmap_service, v.tunnel, v.product, v.version, v.extrainfo))
            elif not options.version_detection:
                nm = next(h for h in open_hits if (h.host, h.proto, h.port) == key)
                follow.append(pool.submit(p.follow_up, nm.nmap_service, None, None, None, None))
        for fut in follow:
            fut.result()

    now = utcnow()
    findings: list[ServiceFinding] = []
    for key, p in probes.items():
        f = p.finding()
        if f.proto == "udp" and (p.f.exposure is None) and next(
                (h.state for h in open_hits if (h.host, h.proto, h.port) == key), "") != "open":
            continue  # open|filtered and nothing answered our probe: not evidence of a service
        findings.append(f.model_copy(update={"first_seen": now, "last_seen": now}))
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
            from .probes import icmp_echo, os_hint

            for host, info in icmp_echo(reach.hosts, timeout=min(2.0, options.probe_timeout)).items():
                host_info[host] = {**info, "os_hint": os_hint(info["ttl"])}
    score = score_network(findings, zone_baseline, zone=zone, reach=reach)
    events: list[ScanEvent] = []
    if previous is not None:
        scanned = [h for h in {f.host for f in previous} if _in_targets(h, networks)]
        events = diff_findings(previous, score.findings, at=now, scanned_hosts=scanned)
    finished = utcnow()
    return ScanReport(
        scan_id=str(uuid.uuid4()), started_at=started, finished_at=finished,
        duration_ms=(finished - started).total_seconds() * 1000, targets=list(targets), scope=scope,
        zone_baseline=f"{zone_baseline.id}@{zone_baseline.version}" if zone_baseline else None,
        zone=zone, scanner_zone=scanner_zone, options=options,
        nmap=[NmapRunInfo(command=r.command, elapsed=r.elapsed, warnings=r.warnings) for r in runs + version_runs],
        hosts_up=hosts_up, findings=score.findings, results=score.results, items=score.items,
        summary=score.summary, hosts=host_info, events=events, errors=errors)
