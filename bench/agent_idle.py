"""Agent idle footprint: RSS and CPU of `sentinel agent` at rest, against a local collector.

Starts the collector in this process (SQLite in a temporary directory, HTTP on 127.0.0.1), enrolls an
agent with `sentinel enroll`, starts `sentinel agent` as its own process with the level-3 baseline every
hour, waits until its first report is stored (so the start-up run and its child process are over),
lets it settle, then samples the agent process (not its children: there are none at rest) for a while.

    python bench/agent_idle.py [--settle 20] [--window 60] [--baseline dengbao-l3-linux] [--entry cli|module]

--entry cli runs `sentinel agent` (python -m sentinel.cli agent); --entry module runs `python -m
sentinel.agent`, which skips loading the other commands' modules.

Prints one JSON line: rss_mib, uss_mib (memory only this process holds), cpu_percent over the window
(one core = 100), threads, and the target (RSS < 60 MiB); writes the figures to bench/RESULTS.md unless
--no-write.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_section

from sentinel.allinone import LocalCollector
from sentinel.wiring import exporters

TARGET_RSS_MIB = 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settle", type=float, default=20, help="seconds after the first stored report")
    ap.add_argument("--window", type=float, default=60, help="seconds of sampling")
    ap.add_argument("--baseline", default="dengbao-l3-linux")
    ap.add_argument("--entry", choices=("cli", "module"), default="cli")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sentinel-bench-") as tmp:
        tmp_path = Path(tmp)
        collector = LocalCollector(tmp_path / "collector", exporters())
        collector.prepare()
        token, _ = collector.bootstrap(want_token=True)
        collector.start()
        state = tmp_path / "agent"
        config = tmp_path / "agent.yaml"
        config.write_text(f"baselines:\n  - {{baseline: {args.baseline}, interval: 3600, jitter: 0}}\n"
                          "sample_interval: 60\nutilisation_interval: 900\n")
        cli = [sys.executable, "-m", "sentinel.cli"]
        env = {**os.environ, "SENTINEL_ENROLL_TOKEN": token}
        subprocess.run(cli + ["enroll", "--collector", collector.url, "--state-dir", str(state)], env=env,
                       check=True, capture_output=True, timeout=120)
        entry = cli + ["agent"] if args.entry == "cli" else [sys.executable, "-m", "sentinel.agent"]
        agent = subprocess.Popen(entry + ["--config", str(config), "--state-dir", str(state)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while not _stored_host_reports(collector):
                if agent.poll() is not None:
                    raise SystemExit(f"agent exited: {agent.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    raise SystemExit("no report stored within 300 s")
                time.sleep(0.5)
            time.sleep(args.settle)
            proc = psutil.Process(agent.pid)
            cpu_start, wall_start = proc.cpu_times(), time.monotonic()
            rss, uss = [], []
            while time.monotonic() - wall_start < args.window:
                info = proc.memory_full_info()
                rss.append(info.rss)
                uss.append(info.uss)
                time.sleep(1)
            cpu_end, wall = proc.cpu_times(), time.monotonic() - wall_start
            cpu = (cpu_end.user + cpu_end.system - cpu_start.user - cpu_start.system) / wall * 100
            result = {
                "bench": "agent_idle",
                "entry": " ".join(["sentinel agent"] if args.entry == "cli" else ["python -m sentinel.agent"]),
                "rss_mib": round(max(rss) / 2**20, 1),
                "uss_mib": round(max(uss) / 2**20, 1),
                "cpu_percent": round(max(cpu, 0.0), 3),
                "threads": proc.num_threads(),
                "children_at_rest": len(proc.children(recursive=True)),
                "window_s": round(wall, 1),
                "target_rss_mib": TARGET_RSS_MIB,
                "within_target": max(rss) / 2**20 < TARGET_RSS_MIB,
                "python": sys.version.split()[0],
                "cpus": psutil.cpu_count(),
            }
            print(json.dumps(result))
            if not args.no_write:
                write_section("agent-idle", "Agent at rest (`bench/agent_idle.py`)", _render(result, args))
        finally:
            agent.terminate()
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
            collector.close()
    return 0


def _render(r: dict, args) -> str:
    return "\n".join([
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC. `{r['entry']}` with `{args.baseline}` every hour, "
        f"after its first report is stored and {args.settle:.0f} s more, sampled for {r['window_s']} s "
        f"(Python {r['python']}, {r['cpus']} CPUs).",
        "",
        "| RSS MiB (max) | USS MiB (max) | CPU % (one core = 100) | threads | children at rest | target |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| **{r['rss_mib']}** | {r['uss_mib']} | {r['cpu_percent']} | {r['threads']} | {r['children_at_rest']} | "
        f"RSS < {r['target_rss_mib']} MiB: {'met' if r['within_target'] else 'MISSED'} |",
        "",
        f"Reproduce: `python bench/agent_idle.py --settle {args.settle:.0f} --window {args.window:.0f}`."])


def _stored_host_reports(collector: LocalCollector) -> int:
    with collector.db.read() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM reports WHERE kind = 'host_report'").scalar()


if __name__ == "__main__":
    sys.exit(main())
