#!/usr/bin/env python3
"""Evidence export benchmark: `sentinel export --format zip` (no PDF) of a seeded level-3 system with 100 hosts.

The store is a fresh SQLite database filled through the collector's real enrollment and ingest code:
100 hosts, each with two runs of the shipped dengbao-l3-linux baseline (a default then a hardened fixture
root, so findings open and close), plus manual assessments. The timed part is what `sentinel export`
does after start-up: read the store (collect) and write the signed bundle. Median of N runs, written to
the `export-bench` section of bench/RESULTS.md.

    python bench/export_bench.py [--runs 5] [--hosts 100]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section  # noqa: E402

from sentinel.baseline import load_baseline  # noqa: E402
from sentinel.engine import run_baseline  # noqa: E402
from sentinel.evidence.collect import collect  # noqa: E402
from sentinel.evidence.verify import verify_bundle  # noqa: E402
from sentinel.exporters.evidence.bundle import write_bundle  # noqa: E402
from sentinel.hostview import RootHost  # noqa: E402
from tests import evidence_seed as seed  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "roots"
PAIRS = [("debian12-default", "debian12-hardened"), ("rocky9-default", "rocky9-hardened"),
         ("kylinv10-default", "kylinv10-hardened"), ("openeuler2203-default", "openeuler2203-hardened")]


def populate(tmp: Path, hosts: int) -> seed.Seeded:
    baseline = load_baseline("dengbao-l3-linux")
    reports = {name: run_baseline(baseline, RootHost(str(FIXTURES / name))) for pair in PAIRS for name in pair}
    s = seed.new_store(tmp)
    seed.create_system(s, name="bench-system")
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    names = [f"host-{i:03d}" for i in range(hosts)]
    for name in names:
        seed.enroll(s, name, system="bench-system")
    for day, pick in ((0, 0), (7, 1)):
        for i, name in enumerate(names):
            rep = reports[PAIRS[i % len(PAIRS)][pick]]
            rep = rep.model_copy(update={"host": rep.host.model_copy(update={"hostname": name})})
            seed.ingest(s, name, rep, t0 + timedelta(days=day, seconds=30 * i))
    note = tmp / "interview.txt"
    note.write_text("访谈记录\n" * 50, encoding="utf-8")
    seed.assess(s, "8.1.4.11.a", "符合", "访谈系统管理员", "张三", [note], system="bench-system")
    seed.assess(s, "8.1.4.9.b", "不符合", "无异地备份", "李四", system="bench-system")
    return s


def cpu() -> float:
    """CPU seconds of this process and its finished children (the workbook worker)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def export_once(s: seed.Seeded, out: Path) -> tuple[float, float, float, float]:
    """(total, collect, render) wall seconds and CPU seconds of one export."""
    c0, start = cpu(), time.perf_counter()
    with s.db.session() as session:
        ev = collect(session, "bench-system", collector=seed.collector_identity(s.key))
    mid = time.perf_counter()
    write_bundle(ev, out, s.key, lang="zh", include_pdf=False)
    end = time.perf_counter()
    return end - start, mid - start, end - mid, cpu() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sentinel-export-bench-") as d:
        tmp = Path(d)
        t = time.perf_counter()
        s = populate(tmp, args.hosts)
        seeding = time.perf_counter() - t
        out = tmp / "bundle.zip"
        runs = [export_once(s, out) for _ in range(args.runs)]
        load = os.getloadavg()[0]
        total = statistics.median(r[0] for r in runs)
        cpu_s = statistics.median(r[3] for r in runs)
        best = min(r[0] for r in runs)
        collect_s = statistics.median(r[1] for r in runs)
        render_s = statistics.median(r[2] for r in runs)
        with zipfile.ZipFile(out) as zf:
            members = len(zf.namelist())
            raw_bytes = sum(i.file_size for i in zf.infolist())
        size = out.stat().st_size
        t = time.perf_counter()
        check = verify_bundle(out, s.key.public_key())
        verify_s = time.perf_counter() - t
        if not check.ok:
            print("bundle did not verify:", [str(p) for p in check.problems][:5], file=sys.stderr)
            return 1
        cli = [sys.executable, "-m", "sentinel.cli", "export", "--system", "bench-system", "-o", str(tmp / "cli.zip"),
               "--state-dir", str(tmp / "state"), "--database-url", s.url]
        t = time.perf_counter()
        proc = subprocess.run(cli, capture_output=True, cwd=ROOT)
        cli_s = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stderr.decode()[-2000:], file=sys.stderr)
            return 1
        s.db.dispose()
    verdict = "meets" if total <= 5.0 else "MISSES"
    try:
        import lxml  # noqa: F401  (openpyxl writes faster with it)
        lxml_note = "lxml present"
    except ImportError:
        lxml_note = "no lxml"
    body = f"""Export of a seeded level-3 system with {args.hosts} hosts (2 runs each of `dengbao-l3-linux`, 87 checks /
34 items per report, so {2 * args.hosts} chained runs; manual assessments with an attachment), zip bundle without PDF.
Store: SQLite via the collector's real ingest. Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other
work (1-minute load average {load:.1f} when measured), Python {platform.python_version()}, {lxml_note}.
Median of {args.runs} runs; the workbook and rectification report are built in a forked worker alongside
the rest.

| step | seconds (median) |
| --- | --- |
| collect from the store (bodies re-hashed against the chain) | {collect_s:.2f} |
| render + sign + zip (XLSX, HTML, JSON, risk, rectification, raw evidence, raw bodies) | {render_s:.2f} |
| **export total, wall** (target ≤ 5 s: {verdict}) | **{total:.2f}** |
| export total, wall, best of {args.runs} (least disturbed by other work) | {best:.2f} |
| export total, CPU (process + worker) | {cpu_s:.2f} |
| `sentinel export` as a process, incl. start-up (1 run) | {cli_s:.2f} |
| `verify_bundle` with pinned key (1 run) | {verify_s:.2f} |

Bundle: {members} files, {raw_bytes / 1e6:.1f} MB uncompressed, {size / 1e6:.1f} MB zipped. All runs:
{", ".join(f"{r[0]:.2f}" for r in runs)} s. Seeding took {seeding:.1f} s (not timed).
Reproduce: `python bench/export_bench.py --runs {args.runs} --hosts {args.hosts}`.
"""
    write_section("export-bench", "Evidence export (sentinel export, 100 hosts)", body)
    print(body)
    return 0 if total <= 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
