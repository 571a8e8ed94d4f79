#!/usr/bin/env python3
"""What the disaster-recovery figures add to the collector's background /metrics read at 10,000 hosts (issue 16).

Seeds a store (SQLite file, or `--url` for PostgreSQL) straight through the tables: 10 departments, 100 systems,
`--hosts` hosts with an enrolled agent each and one OS run per host holding `--other` other results and the four
backup checks' results (l3-br-backup-rpo, l3-br-offsite-rpo, l3-br-offsite-realtime, l3-br-db-replica), whose
`observed` and evidence have the shape checks/backup.py gives them for one declaration at site dc-a: three copies
(a local restic repository, a borg repository at dc-b, local dump files) and a PostgreSQL primary whose standby is
at dc-b and its failover target, so the off-site check also holds the standby as an off-site copy and the
replicas carry site/offsite/realtime/failover; one host in ten has that standby catching up (not real-time, the
replication checks fail). Then times `sentinel.store.dr.evaluate(..., evidence=False)`, the call
sentinel/store/snapshot.py makes per read, `--runs` times, and one `evaluate` with the evidence (GET /api/v1/dr
over every system), wall and CPU time (the first read parses every host's latest run; later ones only runs stored
since). Written to the `dr-bench` section of bench/RESULTS.md unless --no-write.

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
from typing import Optional

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section

from sentinel.store.db import Database, upgrade
from sentinel.store.dr import evaluate
from sentinel.store.models import Agent, CheckResultRow, Department, Host, Run, System

SITE, RPO_HOURS, REALTIME_LAG = "dc-a", 24.0, 1800.0  # the declaration; the real-time limit is min(1800 s, RPO)
PRIMARY = "sentinel_ro@/var/run/postgresql:5432"  # backup.replication's `where`: user@host:port


def _copy(now: datetime, name: str, tool: str, where: str, site: str, hours: float) -> dict:
    newest = now - timedelta(hours=hours)
    return {"name": name, "tool": tool, "where": where, "site": site, "offsite": site != SITE, "backups": 30,
            "newest": newest.isoformat(timespec="seconds"), "age_hours": round(hours, 2),
            "within_rpo": hours <= RPO_HOURS}


def _within(rows: list[dict]) -> Optional[bool]:
    # checks/backup.py's within(): any copy within the RPO; unknown only if a copy could not be read
    return True if any(r["within_rpo"] for r in rows) else None if any("error" in r for r in rows) else False


def _copies_observed(rows: list[dict], judge: str) -> dict:
    """backup.copies' observed for these rows, its totals computed as the probe computes them."""
    offsite = [r for r in rows if r["offsite"]]
    ages = [r["age_hours"] for r in rows if r["age_hours"] is not None]
    return {"copies": rows, "rpo_hours": RPO_HOURS, "judge": judge,
            "copy_count": sum(1 for r in rows if r["backups"]),
            "offsite_count": sum(1 for r in offsite if r["backups"]), "newest_age_hours": min(ages) if ages else None,
            "local_within_rpo": _within([r for r in rows if not r["offsite"]]),
            "offsite_within_rpo": _within(offsite),
            "within_rpo": _within(rows)}


def _standby(h: int) -> dict:
    """pg_stat_replication's row for the dr-standby, placed as checks/backup.py's _place does: the site file
    declares sites {dr-standby: dc-b} and failover [dr-standby]; one host in ten has it catching up."""
    up = h % 10 != 9
    lag = round(0.2 + (h % 5) * 0.1, 3) if up else 5400.0
    return {"name": "dr-standby", "client": "10.0.2.5", "state": "streaming" if up else "catchup",
            "sync_state": "async", "replay_lag_seconds": lag, "lag_bytes": 0 if up else 48_000_000,
            "site": "dc-b", "offsite": True, "realtime": up and lag <= min(REALTIME_LAG, RPO_HOURS * 3600),
            "failover": True}


def _host_results(now: datetime, h: int) -> list[tuple[str, str, str, Optional[str], dict, list]]:
    """The four backup checks' (id, item, status, reason, observed, evidence) for host h, as the probes give them
    on one declaration (`params: *dr` on each check)."""
    restic = _copy(now, "nightly", "restic", "/srv/backup/restic", SITE, 3 + h % 30)
    borg = _copy(now, "dr", "borg", "ssh://backup@dr.example/./borg", "dc-b", 10 + h % 40)
    dump = _copy(now, "dump", "files", "/srv/backup/mysql/*.sql.gz", SITE, 20.0)
    copy_evs = [{"source": "cmd: restic -r /srv/backup/restic snapshots --json --no-lock --no-cache",
                 "excerpt": f"30 snapshot(s); newest {restic['newest']}"},
                {"source": "cmd: borg list --json --bypass-lock ssh://backup@dr.example/./borg",
                 "excerpt": f"30 archive(s); newest {borg['newest']}"},
                {"source": "files: /srv/backup/mysql/*.sql.gz",
                 "excerpt": f"30 file(s); newest:\n{dump['newest']} /srv/backup/mysql/app-{h % 7}.sql.gz"}]
    standby = _standby(h)
    up = standby["state"] == "streaming"
    lag = standby["replay_lag_seconds"] or 0.0
    # backup.copies with judge offsite also reads the declared databases: the off-site standby is a copy there
    replica_row = {"name": standby["name"], "tool": "postgresql replica", "where": f"{PRIMARY} <-> 10.0.2.5",
                   "site": "dc-b", "replica": True, "offsite": True, "backups": 1 if up else 0,
                   "newest": (now - timedelta(seconds=lag)).isoformat(timespec="seconds") if up else None,
                   "age_hours": round(lag / 3600, 2) if up else None,
                   "within_rpo": up and lag <= RPO_HOURS * 3600, "realtime": standby["realtime"]}
    replica_ev = {"source": f"postgresql {PRIMARY}: replicas at other sites",
                  "excerpt": f"dr-standby 10.0.2.5 {standby['state']} lag={lag}s site=dc-b"}
    local = _copies_observed([restic, borg, dump], "local")
    offsite = _copies_observed([restic, borg, dump, replica_row], "offsite")
    db = {"database": PRIMARY, "kind": "postgresql", "replicas": [standby], "streaming": 1 if up else 0,
          "max_lag_seconds": lag if up else None}
    replication = {"databases": [db], "site": SITE, "streaming": db["streaming"], "max_lag_seconds":
                   db["max_lag_seconds"], "offsite_realtime": int(standby["realtime"]),
                   "failover_ready": int(standby["realtime"] and standby["failover"]),
                   "realtime_lag_seconds": min(REALTIME_LAG, RPO_HOURS * 3600), "rpo_hours": RPO_HOURS}
    repl_ev = [{"source": f"postgresql {PRIMARY}: pg_stat_replication",
                "excerpt": f"dr-standby 10.0.2.5 {standby['state']} async lag={lag}s {standby['lag_bytes']}B "
                           "site=dc-b failover"}]

    def verdict(ok: bool, field: str, value: object) -> tuple[str, Optional[str]]:
        return ("pass", None) if ok else ("fail", f"{field}: {value!r} does not meet the expectation")

    return [("l3-br-backup-rpo", "a", *verdict(local["local_within_rpo"] is True, "local_within_rpo",
                                               local["local_within_rpo"]), local, copy_evs),
            ("l3-br-offsite-rpo", "b", *verdict(offsite["offsite_within_rpo"] is True, "offsite_within_rpo",
                                                offsite["offsite_within_rpo"]), offsite, copy_evs + [replica_ev]),
            ("l3-br-offsite-realtime", "b", *verdict(replication["offsite_realtime"] >= 1, "offsite_realtime",
                                                     replication["offsite_realtime"]), replication, repl_ev),
            ("l3-br-db-replica", "c", *verdict(replication["streaming"] >= 1, "streaming", replication["streaming"]),
             replication, repl_ev)]


def seed(db: Database, hosts: int, other: int, now: datetime) -> None:
    with db.write() as conn:
        conn.execute(insert(Department.__table__), [{"id": d + 1, "name": f"d{d}", "title": "", "created_at": now}
                                                    for d in range(10)])
        conn.execute(insert(System.__table__), [
            {"id": s + 1, "name": f"s{s}", "department_id": s % 10 + 1, "title": "", "level": 3, "s_grade": 3,
             "a_grade": 2, "label": "S3A2", "owner": "", "zones": [], "scan_scope": [], "chain_head": "0" * 64,
             "created_at": now, "updated_at": now} for s in range(100)])
        host_rows, agents, runs, results = [], [], [], []
        for h in range(hosts):
            s = h % 100
            dept = s % 10 + 1
            host_rows.append({"id": h + 1, "system_id": s + 1, "department_id": dept, "hostname": f"h{h:05d}",
                              "addresses": [], "os_id": "debian", "os_version": "12", "os_name": "Debian",
                              "arch": "x86_64", "first_seen": now, "last_seen": now})
            agents.append({"id": f"a{h}", "host_id": h + 1, "system_id": s + 1, "department_id": dept,
                           "public_key": f"k{h}", "state": "enrolled", "enrolled_at": now})
            backup = _host_results(now, h)
            runs.append({"id": h + 1, "report_id": f"r{h}", "agent_id": f"a{h}", "host_id": h + 1,
                         "system_id": s + 1, "department_id": dept, "baseline_id": "dengbao-l3-linux",
                         "baseline_version": "1.0.0", "baseline_level": 3, "object_kind": "os",
                         "object_instance": "", "object_name": f"h{h:05d}", "started_at": now - timedelta(minutes=2),
                         "finished_at": now - timedelta(minutes=1), "received_at": now, "summary": {}, "score": 80.0,
                         "pass_rate": 0.8, "conclusion": "良", "checks_total": other + len(backup),
                         "failed": 5 + sum(1 for b in backup if b[2] == "fail"), "high_risk": 0,
                         "digest": "0" * 64, "prev_chain_hash": "0" * 64, "chain_hash": "0" * 64})
            for cid, item, status, reason, obs, evs in backup:
                results.append({"run_id": h + 1, "check_id": cid, "clause": "8.1.4.9", "item": item, "title": {},
                                "status": status, "reason": reason,
                                "severity": "high" if cid in ("l3-br-backup-rpo", "l3-br-offsite-rpo") else "medium",
                                "observed": obs, "expected": "fields", "evidence": evs, "duration_ms": 40.0})
            results.extend({"run_id": h + 1, "check_id": f"l3-x-{i:03d}", "clause": "8.1.4.1", "item": "a",
                            "title": {}, "status": "pass", "reason": None, "severity": "medium",
                            "observed": {"value": i}, "expected": "eq 1", "evidence": [], "duration_ms": 1.0}
                           for i in range(other))
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
        print(f"seeded {args.hosts} hosts x {args.other + 4} results in {time.perf_counter() - t0:.1f} s "
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
        lines = [f"{judged} hosts in {len(verdicts)} systems, one OS run each with {args.other + 4} results (the "
                 f"four backup checks' as checks/backup.py shapes them), {kind}, Python {platform.python_version()}, "
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
