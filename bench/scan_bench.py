"""Benchmark: `sentinel scan` of 3 lab hosts, all TCP ports, against raw `nmap -sT -p- --min-rate 5000`.

Runs inside the namespace lab of tests/netlab.py (root and iproute2 needed; nothing leaves the lab), alternating
the commands so machine noise hits both alike, medians of N runs (default 5). Asserts that every run found the
same open TCP ports as raw nmap, and that the default mode's check results equal discovery mode's (version
detection gains no finding here), then writes its section of bench/RESULTS.md between the scan-bench markers.

Three sentinel modes are timed:
  * `discovery`: `--ports 1-65535 --min-rate 5000 --no-version`: the same port discovery as raw nmap, plus our
    own service probes (banner, TLS, SSH, HTTP, unauthenticated access) on the open ports. Target ratio <= 1.1.
  * `connect`: the same with `--connect-scan` (`-sT`, as the raw command) for a like-for-like port pass.
  * `default`: the same with version detection as it runs by default (issue 19): nmap `-sV` only on the open
    ports our probes could not identify (one here: an rsync banner), each bounded on its own. Target <= 1.2.

Usage: python bench/scan_bench.py [--runs 5] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from results import write_section  # noqa: E402

from tests.netlab import Lab, lab_available, make_cert  # noqa: E402

SECTION, TITLE = "scan-bench", "Network scan (`bench/scan_bench.py`)"
TARGET_RATIO = 1.1
TARGET_DEFAULT = 1.2


def raw_nmap(lab: Lab, hosts: list[str]) -> tuple[float, set]:
    t = time.perf_counter()
    proc = lab.exec("scan", ["nmap", "-sT", "-p-", "--min-rate", "5000", "-n", "-oG", "-", *hosts])
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"raw nmap failed: {proc.stderr}")
    found = set()
    for line in proc.stdout.splitlines():
        m = re.match(r"Host: (\S+) .*Ports: (.*)", line)
        if m:
            for entry in m.group(2).split(","):
                port, state, proto = entry.strip().split("/")[:3]
                if state == "open" and proto == "tcp":
                    found.add((m.group(1), int(port)))
    return elapsed, found


def sentinel(lab: Lab, hosts: list[str], version: bool, connect: bool = False) -> tuple[float, set, dict]:
    args = ["scan", *hosts, "--scope", lab.net, "--ports", "1-65535", "--min-rate", "5000", "--format", "json"]
    if not version:
        args.append("--no-version")
    if connect:
        args.append("--connect-scan")
    t = time.perf_counter()
    proc = lab.sentinel(args, timeout=600)
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sentinel scan failed ({proc.returncode}): {proc.stderr}")
    report = json.loads(proc.stdout)
    found = {(f["host"], f["port"]) for f in report["findings"] if f["proto"] == "tcp"}
    return elapsed, found, report


def verdicts(report: dict) -> set:
    """What an assessor reads: every check result's (target, check, status)."""
    return {(f["host"], f["proto"], f["port"], r["check_id"], r["status"]) for f in report["findings"]
            for r in f["results"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the section, do not update RESULTS.md")
    opts = parser.parse_args()
    why = lab_available()
    if why:
        raise SystemExit(f"cannot run the scan bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="scan-bench-"))
    lab = Lab(work)
    try:
        lab.build()
        cert = make_cert(work / "expired", "expired.lab", expired=True)
        for host, kind, port, extra in [("h1", "ssh", 22, ()), ("h1", "ftp", 21, ()), ("h1", "http-login", 80, ()),
                                        ("h2", "mysql", 3306, ()), ("h2", "redis", 6379, ()),
                                        ("h3", "tls", 443, tuple(map(str, cert))), ("h3", "rsync", 7000, ())]:
            lab.serve(host, kind, port, *extra)
        hosts = list(lab.hosts.values())
        times: dict[str, list[float]] = {"raw": [], "discovery": [], "connect": [], "default": []}
        expected = None
        for i in range(opts.runs):
            t_raw, raw_ports = raw_nmap(lab, hosts)
            t_disc, disc_ports, disc_report = sentinel(lab, hosts, version=False)
            t_conn, conn_ports, _ = sentinel(lab, hosts, version=False, connect=True)
            t_def, def_ports, report = sentinel(lab, hosts, version=True)
            expected = expected or raw_ports
            for name, ports in (("raw nmap", raw_ports), ("sentinel discovery", disc_ports),
                                ("sentinel connect scan", conn_ports), ("sentinel default", def_ports)):
                if ports != expected:
                    raise SystemExit(f"run {i + 1}: {name} found {sorted(ports)}, expected {sorted(expected)}")
            if verdicts(report) != verdicts(disc_report):
                raise SystemExit(f"run {i + 1}: default and discovery modes differ: "
                                 f"{sorted(verdicts(report) ^ verdicts(disc_report))}")
            times["raw"].append(t_raw)
            times["discovery"].append(t_disc)
            times["connect"].append(t_conn)
            times["default"].append(t_def)
            print(f"run {i + 1}: raw {t_raw:.2f}s  sentinel --no-version {t_disc:.2f}s  "
                  f"--connect-scan {t_conn:.2f}s  default {t_def:.2f}s", flush=True)
        nmap_version = subprocess.run(["nmap", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        body = render(times, expected, report, nmap_version, opts.runs)
    finally:
        lab.close()
    print(body)
    if not opts.no_write:
        write_section(SECTION, TITLE, body)
    ratio = statistics.median(times["discovery"]) / statistics.median(times["raw"])
    default = statistics.median(times["default"]) / statistics.median(times["raw"])
    return 0 if ratio <= TARGET_RATIO and default <= TARGET_DEFAULT else 1


def render(times, ports, report, nmap_version: str, runs: int) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [("raw `nmap -sT -p- --min-rate 5000 -n`", "raw"),
            ("`sentinel scan --ports 1-65535 --min-rate 5000 --no-version`", "discovery"),
            ("same + `--connect-scan` (`-sT`, like the raw command)", "connect"),
            ("`sentinel scan --ports 1-65535 --min-rate 5000` (default: `-sV` where our probes need it)",
             "default")]
    lines = [f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {nmap_version}, Python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs (shared), namespace lab of 3 hosts on a veth bridge, "
             f"{len(ports)} open TCP ports in all; medians of {runs} runs, commands alternated.", "",
             "| command | median s | min s | max s | ratio to raw nmap |", "| --- | --- | --- | --- | --- |"]
    for label, key in rows:
        v = times[key]
        lines.append(f"| {label} | {med[key]:.2f} | {min(v):.2f} | {max(v):.2f} | {med[key] / med['raw']:.2f} |")
    ratio = med["discovery"] / med["raw"]
    default = med["default"] / med["raw"]
    lines += ["", f"Open-port sets identical in every run: {', '.join(f'{h}:{p}' for h, p in sorted(ports))}; "
              "check results of default and discovery mode identical in every run.",
              f"Target (discovery mode) ratio <= {TARGET_RATIO}: **{'met' if ratio <= TARGET_RATIO else 'NOT met'}** "
              f"({ratio:.2f}). Target (default mode) ratio <= {TARGET_DEFAULT}: "
              f"**{'met' if default <= TARGET_DEFAULT else 'NOT met'}** ({default:.2f}).", "",
              "sentinel runs as root in the lab, so its port pass is `-sS -T4` (SYN scan) where the raw command is "
              "`-sT`; the `--connect-scan` row uses `-sT -T4` like for like. The discovery-mode time includes "
              "Python start-up, the service probes on every open port (banner, SSH KEXINIT, TLS "
              "versions/certificate/weak suites, HTTP, Redis), scoring and JSON output. "
              "The default mode runs nmap `-sV` only on the open ports our probes could not identify (here the "
              "rsync banner on h3:7000), one nmap per port bounded by `--host-timeout 12s`; before issue 19 it ran "
              "`-sV` on every open port, waiting up to 6 s on each service that does not speak first (2.73x).",
              "Last default-mode nmap passes: " + "; ".join(
                  f"{' '.join(n['command'][3:5])}… {n['elapsed']:.2f}s" for n in report["nmap"]) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
