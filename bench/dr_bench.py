#!/usr/bin/env python3
"""What the disaster-recovery figures add to the collector's background /metrics read at 10,000 hosts (issue 16).

Seeds a store (SQLite file, or `--url` for PostgreSQL) straight through the tables: 10 departments, 100 systems,
`--hosts` hosts with an enrolled agent each and one OS run per host holding `--other` other results and the three
backup checks' results, whose `observed` and evidence have the shape checks/backup.py gives them (three declared
copies, a replica). Then times `sentinel.store.dr.evaluate(..., evidence=False)`, the call sentinel/store/snapshot.py
makes per read, `--runs` times, and one `evaluate` with the evidence (GET /api/v1/dr over every system), wall and CPU
time (the first read parses every host's latest run; later ones only runs stored since). Written to the
`dr-bench` section of bench/RESULTS.md unless --no-write.

    python bench/dr_bench.py [--hosts 10000] [--other 90] [--runs 5] [--url URL] [--no-write]
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
from sentinel.store.dr import evaluate
from sentinel.store.models import Agent, CheckResultRow, Department, Host, Run, System


def _copies(now: datetime, h: int) -> dict:
    def row(name: str, tool: str, where: str, site: str, hours: float) -> dict:
        newest = now - timedelta(hours=hours)
        return {"name": name, "tool": tool, "where": where, "site": site, "offsite": site != "dc-a", "backups": 30,
                "newest": newest.isoformat(timespec="seconds"), "age_hours": hours, "within_rpo": hours <= 24}

    rows = [row("nightly", "restic", "/srv/backup/restic", "dc-a", 3 + h % 30),
            row("dr", "borg", "ssh://backup@dr.example/./borg", "dc-b", 10 + h % 40),
            row("dump", "files", "/srv/backup/mysql/*.sql.gz", "dc-a", 20.0)]
    return {"copies": rows, "rpo_hours": 24, "judge": "local", "copy_count": 3, "offsite_count": 1,
            "newest_age_hours": min(r["age_hours"] for r in rows), "local_within_rpo": True,
            "offsite_within_rpo": rows[1]["within_rpo"], "within_rpo": True}


def seed(db: Database, hosts: int, other: int, now: datetime) -> None:
    with db.write() as conn:
        conn.execute(insert(Department.__table__), [{"id": d + 1, "name": f"d{d}", "title": "", "created_at": now}
                                                    for d in range(10)])
        conn.execute(insert(System.__table__), [
            {"id": s + 1, "name": f"s{s}", "department_id": s % 10 + 1, "title": "", "level": 3, "s_grade": 3,
             "a_grade": 2, "label": "S3A2", "owner": "", "zones": [], "scan_scope": [], "chain_head": "0" * 64,
             "created_at": now, "updated_at": now} for s in range(100)])
        host_rows, agents, runs, results = [], [], [], []
        evidence = [{"source": "cmd: restic -r /srv/backup/restic snapshots --json --no-lock --no-cache",
                     "excerpt": "30 snapshot(s); newest 2026-12-03T10:00:00+00:00"},
                    {"source": "files: /srv/backup/mysql/*.sql.gz", "excerpt": "30 file(s); newest: ..."}]
        replica = {"databases": [{"database": "sentinel_ro@127.0.0.1:5432", "streaming": 1, "max_lag_seconds": 0.2,
                                  "replicas": [{"name": "dr-standby", "client": "10.0.2.5", "state": "streaming",
                                                "sync_state": "async", "replay_lag_seconds": 0.2, "lag_bytes": 0}]}],
                   "streaming": 1, "max_lag_seconds": 0.2}
        for h in range(hosts):
            s = h % 100
            dept = s % 10 + 1
            host_rows.append({"id": h + 1, "system_id": s + 1, "department_id": dept, "hostname": f"h{h:05d}",
                              "addresses": [], "os_id": "debian", "os_version": "12", "os_name": "Debian",
                              "arch": "x86_64", "first_seen": now, "last_seen": now})
            agents.append({"id": f"a{h}", "host_id": h + 1, "system_id": s + 1, "department_id": dept,
                           "public_key": f"k{h}", "state": "enrolled", "enrolled_at": now})
            runs.append({"id": h + 1, "report_id": f"r{h}", "agent_id": f"a{h}", "host_id": h + 1,
                         "system_id": s + 1, "department_id": dept, "baseline_id": "dengbao-l3-linux",
                         "baseline_version": "1.0.0", "baseline_level": 3, "object_kind": "os",
                         "object_instance": "", "object_name": f"h{h:05d}", "started_at": now - timedelta(minutes=2),
                         "finished_at": now - timedelta(minutes=1), "received_at": now, "summary": {}, "score": 80.0,
                         "pass_rate": 0.8, "conclusion": "良", "checks_total": other + 3, "failed": 5, "high_risk": 0,
                         "digest": "0" * 64, "prev_chain_hash": "0" * 64, "chain_hash": "0" * 64})
            observed = _copies(now, h)
            for cid, obs, status in (("l3-br-backup-rpo", observed, "pass"),
                                     ("l3-br-offsite-rpo", {**observed, "judge": "offsite"},
                                      "pass" if observed["offsite_within_rpo"] else "fail"),
                                     ("l3-br-db-replica", replica, "pass")):
                results.append({"run_id": h + 1, "check_id": cid, "clause": "8.1.4.9", "item": "a", "title": {},
                                "status": status, "severity": "high", "observed": obs, "expected": "eq true",
                                "evidence": evidence, "duration_ms": 40.0})
            results.extend({"run_id": h + 1, "check_id": f"l3-x-{i:03d}", "clause": "8.1.4.1", "item": "a",
                            "title": {}, "status": "pass", "severity": "medium", "observed": {"value": i},
                            "expected": "eq 1", "evidence": [], "duration_ms": 1.0} for i in range(other))
        for table, data in ((Host, host_rows), (Agent, agents), (Run, runs), (CheckResultRow, results)):
            for i in range(0, len(data), 5000):
                conn.execute(insert(table.__table__), data[i:i + 5000])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--other", type=int, default=90, help="other results per run (the baseline's other checks)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--url", help="a migrated-or-empty store (default: a new SQLite file)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'dr.db'}"
        upgrade(url)
        db = Database(url)
        t0 = time.perf_counter()
        seed(db, args.hosts, args.other, now)
        print(f"seeded {args.hosts} hosts x {args.other + 3} results in {time.perf_counter() - t0:.1f} s "
              f"({url.split(':')[0]})")
        times, cpu = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            with db.read() as conn:
                verdicts = evaluate(conn, now=now, evidence=False)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        with db.read() as conn:
            evaluate(conn, now=now)
        full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
        judged = sum(len(v.hosts) for v in verdicts)
        kind = url.split(":")[0]
        # CPU time as well as wall time: on a shared machine the wall time says as much about the neighbours
        lines = [f"{judged} hosts in {len(verdicts)} systems, one OS run each with {args.other + 3} results (the "
                 f"three backup checks' as checks/backup.py shapes them), {kind}, Python {platform.python_version()}, "
                 f"run {now.strftime('%Y-%m-%d %H:%M')} UTC on 2 CPUs shared with other work:", "",
                 "| call | wall s | CPU s |", "| --- | --- | --- |",
                 f"| first metrics read (every host's latest run parsed) | {times[0]:.2f} | {cpu[0]:.2f} |",
                 f"| later metrics reads, median of {len(times) - 1} (no new run: parsed runs kept) | "
                 f"{statistics.median(times[1:] or times):.2f} | {statistics.median(cpu[1:] or cpu):.2f} |",
                 f"| with the evidence (GET /api/v1/dr over every system) | {full:.2f} | {full_cpu:.2f} |"]
        print("\n".join(lines))
        if not args.no_write:
            write_section("dr-bench", "Disaster-recovery verdicts at 10,000 hosts (bench/dr_bench.py)",
                          "\n".join(lines))
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
