"""Host and port discovery through nmap, driven via python-nmap's XML parser.

One nmap run per scope and address family (nmap cannot mix IPv4 and IPv6 in one run), never one per host
(python-nmap's PortScannerAsync runs hosts one by one). Arguments are always explicit: python-nmap's
`scan()` silently adds `-sV` when given none, so we build the argv ourselves, stream nmap's XML to follow
its `--stats-every` progress, and hand the finished XML to `PortScanner.analyse_nmap_xml_scan`.

Pass 1 finds open ports (`-sS` with raw-socket privileges, else `-sT`; `-sU` when UDP is asked for).
Pass 2 runs `-sV` on the open TCP ports our probes could not identify, one bounded nmap per port (or, with
`version_all`, on every open TCP port, one run per address family).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field

from sentinel.model import Strict

from .scope import PortRange, ResolvedTarget, format_ports, merge_ranges, parse_ports
from .services import DEFAULT_TOP_PORTS, DEFAULT_UDP_PORTS, EXTRA_TCP_PORTS

Progress = Callable[[str, float], None]  # (phase, percent 0-100)
INSTALL_HINT = ("install it with `apt-get install -y nmap` (Debian/Ubuntu/UOS/Kylin) "
                "or `dnf install -y nmap` (RHEL/openEuler)")
_TASK_RE = re.compile(r'<taskprogress task="([^"]+)"[^>]*percent="([\d.]+)"')


class NmapMissing(RuntimeError):
    """The nmap binary is not installed (or not on PATH)."""


class NmapError(RuntimeError):
    """nmap ran but failed; str() carries its error output."""


class RateLimit(Strict):
    packets_per_second: Optional[int] = Field(default=None, ge=1)  # -> nmap --max-rate
    max_hosts: Optional[int] = Field(default=None, ge=1)  # hosts scanned in parallel -> --max-hostgroup

    def nmap_args(self) -> list[str]:
        args = []
        if self.packets_per_second:
            args += ["--max-rate", str(self.packets_per_second)]
        if self.max_hosts:
            args += ["--max-hostgroup", str(self.max_hosts)]
        return args


class ScanOptions(Strict):
    tcp_ports: Optional[list[PortRange]] = None  # None: nmap's top ports + EXTRA_TCP_PORTS
    udp: bool = False
    udp_ports: Optional[list[PortRange]] = None  # None: DEFAULT_UDP_PORTS
    version_detection: bool = True  # False: never run nmap -sV
    # False (default): -sV only on the open TCP ports our own probes could not identify, one nmap per port with
    # `version_port_timeout`; True: -sV on every open TCP port (slower: -sV waits out up to 6 s per probe on
    # services that do not speak first, for product strings our probes mostly read themselves).
    version_all: bool = False
    version_port_timeout: int = Field(default=12, ge=1, le=600)  # seconds per port of -sV (nmap --host-timeout)
    # Opt-in (never on by default): try the short documented list of empty/default credentials
    # (checks/network/credentials.py), once each, audited. Only for a person authorised to enable it.
    credential_probes: bool = False
    host_discovery: bool = True  # False: treat every target as up (-Pn)
    rate: RateLimit = Field(default_factory=RateLimit)
    timing: int = Field(default=4, ge=0, le=5)  # nmap -T<n>; T4 is the usual choice on a LAN
    min_rate: Optional[int] = Field(default=None, ge=1)  # nmap --min-rate: a floor, for fast full-range scans
    host_timeout: Optional[int] = Field(default=None, ge=1)  # seconds, nmap --host-timeout
    privileged: Optional[bool] = None  # None: raw sockets if running as root
    connect_scan: bool = False  # force a TCP connect scan (-sT) even with raw-socket privileges
    version_intensity: int = Field(default=7, ge=0, le=9)
    probe_timeout: float = Field(default=3.0, gt=0)
    probe_workers: int = Field(default=16, ge=1, le=256)
    timeout: Optional[float] = Field(default=None, gt=0)  # whole nmap run, seconds
    icmp: bool = False  # also ICMP echo each host with scapy (reachability, TTL); needs raw sockets

    def effective_tcp_ports(self) -> list[PortRange]:
        return self.tcp_ports if self.tcp_ports is not None else default_tcp_ports()

    def effective_udp_ports(self) -> list[PortRange]:
        if not self.udp:
            return []
        return self.udp_ports if self.udp_ports is not None else parse_ports(DEFAULT_UDP_PORTS)

    def is_privileged(self) -> bool:
        return self.privileged if self.privileged is not None else os.geteuid() == 0


class PortHit(BaseModel):
    host: str
    proto: Literal["tcp", "udp"]  # the only two _collect reads
    port: int
    state: str
    reason: Optional[str] = None
    nmap_service: Optional[str] = None
    product: Optional[str] = None
    version: Optional[str] = None
    extrainfo: Optional[str] = None
    tunnel: Optional[str] = None
    conf: Optional[int] = None


class NmapRun(BaseModel):
    command: list[str]
    elapsed: float
    hosts_up: list[str] = Field(default_factory=list)
    hosts_down: int = 0
    ports: list[PortHit] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def nmap_path() -> str:
    path = shutil.which("nmap")
    if path is None:
        raise NmapMissing(f"the nmap binary was not found on PATH; {INSTALL_HINT}")
    return path


def _services_file() -> Path:
    exe = Path(os.path.realpath(nmap_path()))
    for candidate in (exe.parent.parent / "share" / "nmap" / "nmap-services", Path("/usr/share/nmap/nmap-services"),
                      Path("/usr/local/share/nmap/nmap-services")):
        if candidate.is_file():
            return candidate
    raise NmapError("nmap-services not found next to nmap; cannot build the default port list (give --ports)")


@lru_cache(maxsize=4)
def top_ports(count: int = DEFAULT_TOP_PORTS, proto: str = "tcp") -> tuple[int, ...]:
    """nmap's `--top-ports count` list, read from its nmap-services frequencies."""
    freq: list[tuple[float, int]] = []
    for line in _services_file().read_text(encoding="latin-1").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 3:
            continue
        port, _, p = fields[1].partition("/")
        if p != proto:
            continue
        try:
            freq.append((float(fields[2]), int(port)))
        except ValueError:
            continue
    freq.sort(key=lambda fp: (-fp[0], fp[1]))
    return tuple(sorted(p for _, p in freq[:count]))


def default_tcp_ports() -> list[PortRange]:
    """nmap's top 1000 TCP ports plus the database, cache and management ports in EXTRA_TCP_PORTS."""
    return parse_ports(sorted(set(top_ports()) | set(EXTRA_TCP_PORTS)))


def port_spec(tcp: list[PortRange], udp: list[PortRange]) -> str:
    parts = []
    if tcp:
        parts.append("T:" + format_ports(tcp))
    if udp:
        parts.append("U:" + format_ports(udp))
    return ",".join(parts)


def _tcp_scan(options: ScanOptions) -> str:
    return "-sS" if options.is_privileged() and not options.connect_scan else "-sT"


def discovery_args(options: ScanOptions) -> list[str]:
    """Pass-1 nmap arguments (without -oX/-p/targets)."""
    args = [_tcp_scan(options)]
    if options.udp:
        args.append("-sU")
    args += ["-n", f"-T{options.timing}", "--reason"]
    if not options.host_discovery:
        args.append("-Pn")
    elif not options.is_privileged():
        args += ["-PS22,80,443,3389", "-PA80"]  # unprivileged discovery is TCP connect only; widen it
    if options.min_rate:
        args += ["--min-rate", str(options.min_rate)]
    args += options.rate.nmap_args()
    if options.host_timeout:
        args += ["--host-timeout", f"{options.host_timeout}s"]
    return args


def version_args(options: ScanOptions) -> list[str]:
    """Pass-2 arguments: version detection on ports already known open, hosts already known up."""
    args = [_tcp_scan(options)]
    if options.udp:
        args.append("-sU")
    args += ["-sV", "--version-intensity", str(options.version_intensity), "-Pn", "-n", f"-T{options.timing}"]
    args += options.rate.nmap_args()
    if options.host_timeout:
        args += ["--host-timeout", f"{options.host_timeout}s"]
    return args


def run_nmap(targets: list[str], ports: str, args: list[str], phase: str, progress: Optional[Progress] = None,
             timeout: Optional[float] = None) -> NmapRun:
    """Run nmap once over all `targets`, following its progress; parse with python-nmap."""
    import nmap  # python-nmap

    exe = nmap_path()
    for bad in ("-oX", "-oA", "-oN", "-oG", "-iL", "--script", "-sC", "-A"):
        if bad in args:
            raise ValueError(f"nmap argument {bad} is not allowed here")
    argv = [exe, "-oX", "-", *args, "--stats-every", "1s", "-p", ports, *targets]
    started = time.monotonic()
    try:
        # argv list, no shell; targets are resolved IP addresses or networks, args come from ScanOptions
        # and the forbidden output/input/script options are refused above
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603  see above
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise NmapMissing(f"cannot run nmap ({exe}): {exc}; {INSTALL_HINT}") from None
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None  # both are PIPEs
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(stderr.read()), daemon=True)
    reader.start()
    out_lines: list[bytes] = []
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    try:
        for line in stdout:
            out_lines.append(line)
            if progress and b"<taskprogress" in line:
                m = _TASK_RE.search(line.decode("utf-8", "replace"))
                if m:
                    progress(f"{phase}: {m.group(1)}", float(m.group(2)))
        proc.wait()
    finally:
        if timer:
            timer.cancel()
    reader.join(5)
    err = b"".join(err_chunks).decode("utf-8", "replace")
    xml = b"".join(out_lines).decode("utf-8", "replace")
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        if timeout and elapsed >= timeout:
            raise NmapError(f"nmap did not finish within {timeout:g}s and was stopped")
        raise NmapError(f"nmap exited with {proc.returncode}: {err.strip()[:500] or 'no error output'}")
    warnings = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in warnings if not ln.lower().startswith("warning")]
    try:
        scanner = nmap.PortScanner(nmap_search_path=(exe,))
        parsed = scanner.analyse_nmap_xml_scan(nmap_xml_output=xml, nmap_err=err,
                                               nmap_err_keep_trace=errors, nmap_warn_keep_trace=warnings)
    except nmap.PortScannerError as exc:
        raise NmapError(f"nmap output could not be parsed: {str(exc).strip()[:500]}") from None
    if progress:
        progress(f"{phase}: done", 100.0)
    return _collect(parsed, xml, argv, elapsed, warnings)


def _collect(parsed: dict, xml: str, argv: list[str], elapsed: float, warnings: list[str]) -> NmapRun:
    tunnels: dict[tuple[str, str, int], str] = {}
    try:
        # nmap's own -oX output from our subprocess (python-nmap parses the same text with ElementTree);
        # ElementTree expands no external entities
        root = ET.fromstring(xml)  # noqa: S314  see above
        for host in root.iter("host"):
            addr = next((a.get("addr") for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None)
            for port in host.iter("port"):
                svc = port.find("service")
                tunnel = svc.get("tunnel") if svc is not None else None
                proto, portid = port.get("protocol"), port.get("portid")
                if addr and tunnel and proto and portid:
                    tunnels[(addr, proto, int(portid))] = tunnel
    except ET.ParseError:
        pass  # python-nmap parsed it already; tunnels are a refinement
    run = NmapRun(command=argv, elapsed=elapsed, warnings=warnings,
                  hosts_down=int(parsed["nmap"]["scanstats"].get("downhosts") or 0))
    for host, data in parsed.get("scan", {}).items():
        if data.get("status", {}).get("state") == "up":
            run.hosts_up.append(host)
        protos: tuple[Literal["tcp", "udp"], ...] = ("tcp", "udp")
        for proto in protos:
            for port, info in (data.get(proto) or {}).items():
                run.ports.append(PortHit(
                    host=host, proto=proto, port=int(port), state=info.get("state", "unknown"),
                    reason=info.get("reason") or None, nmap_service=info.get("name") or None,
                    product=info.get("product") or None, version=info.get("version") or None,
                    extrainfo=info.get("extrainfo") or None, tunnel=tunnels.get((host, proto, int(port))),
                    conf=int(info["conf"]) if str(info.get("conf", "")).isdigit() else None))
    return run


def _by_family(targets: Iterable[ResolvedTarget]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for t in targets:
        groups.setdefault(t.network.version, []).append(t.nmap_spec)
    return groups


def discover(targets: list[ResolvedTarget], options: ScanOptions, progress: Optional[Progress] = None) -> list[NmapRun]:
    """Pass 1: one nmap run per address family over every target."""
    ports = port_spec(options.effective_tcp_ports(), options.effective_udp_ports())
    runs = []
    for family, specs in sorted(_by_family(targets).items()):
        args = discovery_args(options) + (["-6"] if family == 6 else [])
        runs.append(run_nmap(specs, ports, args, "port scan", progress, options.timeout))
    return runs


OPEN_STATES = ("open", "open|filtered")


def detect_versions(hits: list[PortHit], options: ScanOptions, progress: Optional[Progress] = None,
                    per_port: bool = False) -> list[NmapRun]:
    """Pass 2: `-sV` on the given open TCP ports.

    per_port=False: one run per family over the union of ports, on the hosts that have any (`version_all`).
    per_port=True: one nmap per (host, port), each bounded by `version_port_timeout` through nmap's
    `--host-timeout` (a port nmap cannot name then costs that long at most, and only itself); at most 4 at once.

    UDP ports are left to our own protocol probes: nmap's UDP version probes wait out every probe's timeout
    (measured: 107 s for one SNMP port in the lab), which would dominate every scan.
    """
    wanted = [h for h in hits if h.proto == "tcp" and h.state == "open"]
    if not wanted:
        return []
    base = options.model_copy(update={"udp": False, "host_timeout": None})
    if per_port:
        from concurrent.futures import ThreadPoolExecutor

        def one(h: PortHit) -> NmapRun:
            args = version_args(base) + ["--host-timeout", f"{options.version_port_timeout}s"]
            args += ["-6"] if ":" in h.host else []
            return run_nmap([h.host], port_spec([PortRange(start=h.port, end=h.port)], []), args,
                            "version detection", progress, options.timeout)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(one, sorted(wanted, key=lambda h: (h.host, h.port))))
    runs = []
    for family in (4, 6):
        mine = [h for h in wanted if (":" in h.host) == (family == 6)]
        if not mine:
            continue
        tcp = merge_ranges(PortRange(start=h.port, end=h.port) for h in mine)
        hosts = sorted({h.host for h in mine})
        args = version_args(base) + (["-6"] if family == 6 else [])
        if options.host_timeout:
            args += ["--host-timeout", f"{options.host_timeout}s"]
        runs.append(run_nmap(hosts, port_spec(tcp, []), args, "version detection", progress, options.timeout))
    return runs
