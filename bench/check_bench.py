#!/usr/bin/env python3
"""Host check benchmark: `sentinel check` (level 3) vs `lynis audit system --quick` vs `oscap xccdf eval`.

Wall time and peak RSS (of the process tree, from wait4's rusage) on this machine, median of N runs each,
written to the `check-bench` section of bench/RESULTS.md. Needs root (all three read /etc/shadow) and
Debian's `lynis`, `openscap-scanner` and `ssg-debian` packages (`apt-get install lynis openscap-scanner ssg-debian`).

    python bench/check_bench.py [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section

SSG = Path("/usr/share/xml/scap/ssg/content")
PROFILE = "xccdf_org.ssgproject.content_profile_standard"


# Measure the tools as installed and used: Python may cache bytecode as it normally does (some shells
# export PYTHONDONTWRITEBYTECODE, which would make every sentinel start recompile its modules).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: list[str], cwd: str | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one run; peak RSS covers the child and its descendants."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def bench(name: str, argv: list[str], runs: int, cwd: str | None = None) -> dict:
    measure(argv, cwd)  # warm-up, not counted: page cache and bytecode cache as in everyday use
    walls, rss, codes = [], [], set()
    for _ in range(runs):
        wall, peak, code = measure(argv, cwd)
        walls.append(wall)
        rss.append(peak)
        codes.add(code)
    return {"name": name, "cmd": " ".join(argv), "wall": statistics.median(walls), "rss": statistics.median(rss),
            "codes": sorted(codes), "walls": walls}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sentinel = shutil.which("sentinel") or sys.executable
    sentinel_argv = [sentinel] if sentinel != sys.executable else [sys.executable, "-m", "sentinel.cli"]
    rows = [bench("sentinel check (dengbao-l3-linux)", sentinel_argv + ["check", "--format", "json", "-o",
                                                                        os.devnull], args.runs)]
    missing = []
    if shutil.which("lynis"):
        with tempfile.TemporaryDirectory() as tmp:  # lynis writes its log/report files; keep them out of /var/log
            rows.append(bench("lynis audit system --quick", ["lynis", "audit", "system", "--quick", "--no-colors",
                                                             "--logfile", f"{tmp}/lynis.log", "--report-file",
                                                             f"{tmp}/lynis-report.dat"], args.runs, cwd=tmp))
    else:
        missing.append("lynis")
    content = sorted(SSG.glob("ssg-debian*-ds.xml"))
    if shutil.which("oscap") and content:
        ds = str(content[-1])
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(bench(f"oscap xccdf eval ({Path(ds).name}, profile standard)",
                              ["oscap", "xccdf", "eval", "--profile", PROFILE, "--results", f"{tmp}/r.xml", ds],
                              args.runs))
    else:
        missing.append("oscap/ssg-debian")
    base = rows[0]
    lines = [f"Machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
             f"{time.strftime('%Y-%m-%d')} · median of {args.runs} runs each after one warm-up run, same run, "
             f"live host. Load average at start: {os.getloadavg()[0]:.2f}.", "",
             "| tool | wall (s) | peak RSS (MB) | wall vs sentinel | exit codes |",
             "| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        ratio = row["wall"] / base["wall"] if base["wall"] else float("nan")
        lines.append(f"| {row['name']} | {row['wall']:.3f} | {row['rss']:.1f} | {ratio:.1f}× | "
                     f"{', '.join(map(str, row['codes']))} |")
    lines += ["", "Target for sentinel (issue 2): ≤ 0.5 s wall and ≤ 50 MB peak RSS for the level-3 baseline. "
              f"Met: wall {'yes' if base['wall'] <= 0.5 else 'NO'}, RSS {'yes' if base['rss'] <= 50 else 'NO'}."]
    if content:
        lines.append("Debian's ssg-debian ships content for Debian 10/11 only; on a Debian 12 host its platform check "
                     "marks most of the profile's rules notapplicable, so oscap's figure is mostly its loading and "
                     "evaluation overhead, not a full run of 44 rules.")
    if missing:
        lines.append(f"Not measured (not installed): {', '.join(missing)}.")
    write_section("check-bench", "Host checks: sentinel vs Lynis vs OpenSCAP", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
