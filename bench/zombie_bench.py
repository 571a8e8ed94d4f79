#!/usr/bin/env python3
"""What zombie-system detection adds to the collector's background /metrics read at 10,000 hosts (issue 16).

Seeds a store (SQLite file, or `--url` for PostgreSQL) straight through the tables: 10 departments, 100 systems,
`--hosts` hosts with an enrolled agent each, a latest inventory with upkeep facts per host, and `--days` rows of
the daily utilisation roll-up per host (what ingest keeps: sentinel/store/zombie.py). Then times
`sentinel.store.zombie.evaluate(..., evidence=False)`, the call sentinel/store/snapshot.py makes per read, `--runs`
times (the first parses every host's upkeep facts; later ones only those of hosts with a newer inventory), and one
`evaluate` with the evidence (the API's `GET /zombie` over every system), wall and CPU time. Written to the
`zombie-bench` section of bench/RESULTS.md unless --no-write.

    python bench/zombie_bench.py [--hosts 10000] [--days 14] [--runs 5] [--url URL] [--no-write]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section

from sentinel.store.db import Database, upgrade
from sentinel.store.models import Agent, Department, Host, InventorySnapshot, System, UtilisationDay
from sentinel.store.zombie import evaluate
from sentinel.zombie import ZombieSettings


def seed(db: Database, hosts: int, days: int, now: datetime) -> None:
    def iso(dt: datetime) -> str:
        return dt.isoformat().replace("+00:00", "Z")

    with db.write() as conn:
        conn.execute(insert(Department.__table__), [{"id": d + 1, "name": f"d{d}", "title": "", "created_at": now}
                                                    for d in range(10)])
        conn.execute(insert(System.__table__), [
            {"id": s + 1, "name": f"s{s}", "department_id": s % 10 + 1, "title": "", "level": 3, "s_grade": 3,
             "a_grade": 2, "label": "S3A2", "owner": "", "zones": [], "scan_scope": [], "chain_head": "0" * 64,
             "created_at": now, "updated_at": now} for s in range(100)])
        upkeep = {"packages": {"last_change": iso(now - timedelta(days=200)), "source": "x", "manager": "dpkg"},
                  "config": {"last_change": iso(now - timedelta(days=30)), "path": "/etc/x", "entries": 900},
                  "kernel": {"release": "6.1.0", "installed": iso(now - timedelta(days=90))},
                  "logins": {"source": ["/var/log/wtmp"], "since": iso(now - timedelta(days=90)),
                             "weeks": [{"start": (now.date() - timedelta(days=7 * i + now.weekday())).isoformat(),
                                        "logins": i % 3, "users": 1} for i in range(8)], "last_login": None}}
        rows, agents, invs, dayrows = [], [], [], []
        for h in range(hosts):
            s = h % 100
            rows.append({"id": h + 1, "system_id": s + 1, "department_id": s % 10 + 1, "hostname": f"h{h:05d}",
                         "addresses": [], "os_id": "debian", "os_version": "12", "os_name": "Debian", "arch": "x86_64",
                         "inventory": {"upkeep": upkeep}, "first_seen": now, "last_seen": now})
            agents.append({"id": f"a{h}", "host_id": h + 1, "system_id": s + 1, "department_id": s % 10 + 1,
                           "public_key": f"k{h}", "state": "enrolled", "enrolled_at": now})
            invs.append({"host_id": h + 1, "department_id": s % 10 + 1, "report_id": f"r{h}",
                         "at": now - timedelta(hours=3), "arch": "x86_64", "data": {}})
            for d in range(1, days + 1):
                dayrows.append({"host_id": h + 1, "day": now.date() - timedelta(days=d), "department_id": s % 10 + 1,
                                "samples": 1440, "hours_mask": (1 << 24) - 1, "cpu_sum": 1440.0 * (h % 20),
                                "memory_sum": 1440.0 * 30, "net_bytes": (h % 7) * 1_000_000, "logins_max": h % 2,
                                "inbound_max": h % 4})
        for table, data in ((Host, rows), (Agent, agents), (InventorySnapshot, invs), (UtilisationDay, dayrows)):
            for i in range(0, len(data), 5000):
                conn.execute(insert(table.__table__), data[i:i + 5000])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--url", help="a migrated-or-empty store (default: a new SQLite file)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'zombie.db'}"
        upgrade(url)
        db = Database(url)
        t0 = time.perf_counter()
        seed(db, args.hosts, args.days, now)
        print(f"seeded {args.hosts} hosts x {args.days} days in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})")
        settings = ZombieSettings()
        times, cpu = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            with db.read() as conn:
                verdicts = evaluate(conn, settings, now=now, evidence=False)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        with db.read() as conn:
            evaluate(conn, settings, now=now)
        full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
        judged = sum(len(v.hosts) for v in verdicts)
        # CPU time as well as wall time: on a shared machine the wall time says as much about the neighbours
        kind = url.split(":")[0]
        lines = [f"{judged} hosts in {len(verdicts)} systems, {args.days} days each, {kind}, Python "
                 f"{platform.python_version()}:", "",
                 "| call | wall s | CPU s |", "| --- | --- | --- |",
                 f"| first read (every host's upkeep facts parsed) | {times[0]:.2f} | {cpu[0]:.2f} |",
                 f"| later reads, median of {len(times) - 1} (metrics: verdicts only) | "
                 f"{statistics.median(times[1:] or times):.2f} | {statistics.median(cpu[1:] or cpu):.2f} |",
                 f"| with the evidence (GET /zombie over every system) | {full:.2f} | {full_cpu:.2f} |"]
        print("\n".join(lines))
        if not args.no_write:
            write_section("zombie-bench", "Zombie-system verdicts at 10,000 hosts (bench/zombie_bench.py)",
                          "\n".join(lines))
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
