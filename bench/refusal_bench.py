#!/usr/bin/env python3
"""Signed-report latency of an idle collector, and of one under anonymous load (issue 20, item 6).

Issue 20 measured four anonymous senders of 3 MiB bodies raising the latency of genuine signed reports
from 7 to 776 ms (SQLite) and from 15 to 1,375 ms (PostgreSQL): every body was read, parsed and validated
before its agent was looked up, and every refusal was an audit write. The target is within 2x of idle.

For each store (a SQLite file; a fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards) this
script:

1. migrates and seeds one graded system, starts `sentinel collector` as its own process on 127.0.0.1
   (plain HTTP, default settings: rate limits and refusal aggregation as shipped) and enrolls one agent;
2. makes one genuine host report with the real engine (the shipped dengbao-l3-linux baseline over the
   debian12-default fixture root); every delivery gets a fresh report id and `sent_at` and is signed
   as the agent signs (not timed);
3. idle: the agent delivers reports one after another, each on a new connection as the agent does
   (sentinel/agent/client.py: http.client, `Connection: close`), with `--pause` seconds between them;
   the latency is connect to last byte of the answer; every answer must be 202;
4. under load: the same while four sender processes, each from its own loopback address (127.0.0.2-5;
   attackers do not share the agent's address), send 3 MiB bodies as fast as they can on new
   connections: two without any agent header (anonymous), two with a fresh made-up X-Sentinel-Agent and
   signature each time (so the collector has to look the agent up). A sender writes its body until the
   answer comes (or the connection is closed) and counts the answers by status;
   Idle and loaded phases alternate (`--rounds`, `--reports` per phase in all), so that both see the
   machine's other work alike;
5. reports the medians (and p90) of both phases, their ratio, the senders' answers, and the audit rows
   written during the load against the refusals answered (repeated refusals share a row).

Each store runs twice: with the shipped `limited_delay` (a limited source waits 1 s for its 429, its
body unread) and with 0 (429s answered at once), to show what the delay is for.

Client, senders, collector and PostgreSQL share the machine's cores (2 here, with other work), so the
figures include that contention.

    python bench/refusal_bench.py [--stores sqlite,postgresql] [--reports 60] [--rounds 3] [--pause 0.2]
                                  [--senders 4] [--delays 1,0]
                                  [--no-write]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import platform
import select
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench import (
    API,
    SimAgent,
    collector_server,
    postgres_store,
    sqlite_store,
    utc_now_text,
)
from results import write_section

from sentinel import signing
from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from tests.fixtures.build import build_root

SECTION = "refusal-bench"
BODY_BYTES = 3 << 20
TARGET_RATIO = 2.0
SHIPPED_DELAY = "1"  # CollectorSettings.limited_delay
ISSUE = {"sqlite": (7, 776), "postgresql": (15, 1375)}  # ms, idle and under load, before the gate


def seed(url: str) -> str:
    """Migrate; one department and graded system (no scan scope: no scans here); its enrollment token."""
    from sentinel.collector import operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.schemas import EnrollmentTokenIn, SystemIn
    from sentinel.store.db import Database, upgrade

    upgrade(url)
    db = Database(url)
    try:
        with db.session(write=True) as session:
            ctx = operations.Ctx(session, cli_principal("bench"))
            department = operations.create_department(ctx, "bench-dept", "bench department").id
            system = operations.create_system(ctx, SystemIn(name="bench-sys", department_id=department, level=3,
                                                       s_grade=3, a_grade=2, zones=["dmz"], scan_scope=[])).id
            _, secret = operations.create_enrollment_token(ctx, EnrollmentTokenIn(system_id=system, ttl_seconds=3600))
        return secret
    finally:
        db.dispose()


def genuine_report(workdir: Path) -> dict:
    root = build_root("debian12-default", workdir / "roots")
    return run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(root))).model_dump(mode="json")


def enroll(base: str, token: str, template: dict) -> SimAgent:
    key = signing.generate_key()
    hostname = "bench-refusal-host"
    public_key = signing.public_key_b64(key)
    request = {"token": token, "public_key": public_key, "hostname": hostname,
               "os": dict(template["host"], hostname=hostname)}
    # with the proof of possession, as sentinel/agent/enroll.py makes it (docs/wire.md)
    collector_key = httpx.get(f"{base}{API}/agent/enroll", timeout=60).json()["collector_public_key"]
    request["proof"] = signing.sign(key, signing.enrollment_challenge(token, collector_key, hostname, public_key))
    answer = httpx.post(f"{base}{API}/agent/enroll", timeout=60, json=request)
    if answer.status_code != 201:
        raise SystemExit(f"enrollment: HTTP {answer.status_code} {answer.text[:500]}")
    return SimAgent(answer.json()["agent_id"], key, hostname, template)


def signed(agent: SimAgent) -> tuple[bytes, dict[str, str]]:
    report_id = str(uuid.uuid4())
    body = dict(agent.template, report_id=report_id, generated_at=utc_now_text(),
                host=dict(agent.template["host"], hostname=agent.hostname))
    envelope = {"report_id": report_id, "agent_id": agent.agent_id, "sent_at": utc_now_text(),
                "kind": "host_report", "body": body}
    raw = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return raw, {"Content-Type": "application/json", "X-Sentinel-Agent": agent.agent_id,
                 "X-Sentinel-Signature": signing.sign(agent.key, raw), "Connection": "close"}


def deliver(port: int, raw: bytes, headers: dict[str, str]) -> tuple[float, int]:
    """One report as the agent sends it; (seconds, status)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", f"{API}/agent/reports", body=raw, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return time.perf_counter() - start, answer.status
    finally:
        conn.close()


def measure(port: int, agent: SimAgent, reports: int, pause: float) -> list[float]:
    latencies = []
    for _ in range(reports):
        raw, headers = signed(agent)  # not timed
        seconds, status = deliver(port, raw, headers)
        if status != 202:
            raise SystemExit(f"a genuine report was answered {status}")
        latencies.append(seconds)
        time.sleep(pause)
    return latencies


def sender(source: str, port: int, forged: bool, stop, out) -> None:
    """One anonymous sender (its own process): 3 MiB bodies on new connections until `stop` is set."""
    body = b"{" + b" " * (BODY_BYTES - 2) + b"}"
    chunk = 256 * 1024
    seen: Counter = Counter()
    while not stop.is_set():
        head = (f"POST {API}/agent/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n")
        if forged:
            head += (f"X-Sentinel-Agent: {uuid.uuid4()}\r\n"
                     f"X-Sentinel-Signature: {base64.b64encode(os.urandom(64)).decode()}\r\n")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((source, 0))
                s.settimeout(30)
                s.connect(("127.0.0.1", port))
                s.sendall((head + "\r\n").encode("latin-1"))
                answer, sent = b"", 0
                while b"\r\n" not in answer:
                    readable, writable, _ = select.select([s], [s] if sent < len(body) else [], [], 30)
                    if readable:
                        data = s.recv(65536)
                        if not data:
                            break
                        answer += data
                    elif writable:
                        sent += s.send(body[sent:sent + chunk])
                    else:
                        break
                status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
                seen[f"{status} after {'all' if sent >= len(body) else 'part'} of the body"] += 1
        except OSError as exc:
            seen[f"connection error ({type(exc).__name__})"] += 1
    out.put(dict(seen))


def audit_rows(url: str) -> int:
    from sentinel.store.db import Database

    db = Database(url)
    try:
        with db.read() as conn:
            return conn.exec_driver_sql("SELECT COUNT(*) FROM audit_log").scalar_one()
    finally:
        db.dispose()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else values[0]


def run_store(store: str, delay: str, args, template: dict, workdir: Path) -> dict:
    with (sqlite_store(workdir) if store == "sqlite" else postgres_store()) as url:
        token = seed(url)
        os.environ["SENTINEL_COLLECTOR_LIMITED_DELAY"] = delay  # the child collector's setting
        server = collector_server(workdir, url, workers=1, shipped_limits=True)
        try:
            server.wait_ready()
            agent = enroll(server.base, token, template)
            measure(server.port, agent, 5, args.pause)  # warm-up, not counted
            rows_before = audit_rows(url)
            idle: list[float] = []
            loaded: list[float] = []
            answers: Counter = Counter()
            load_seconds = 0.0
            per_round = max(1, args.reports // args.rounds)
            ctx = multiprocessing.get_context("fork")
            for _ in range(args.rounds):  # idle and loaded alternate: both see the machine's other work alike
                idle += measure(server.port, agent, per_round, args.pause)
                stop, out = ctx.Event(), ctx.Queue()
                procs = [ctx.Process(target=sender, args=(f"127.0.0.{2 + i}", server.port, i % 2 == 1, stop, out))
                         for i in range(args.senders)]
                started = time.monotonic()
                for p in procs:
                    p.start()
                time.sleep(2)  # the senders are at full speed before the first timed report
                loaded += measure(server.port, agent, per_round, args.pause)
                stop.set()
                load_seconds += time.monotonic() - started  # how long the senders sent
                for _ in procs:
                    answers.update(out.get(timeout=120))
                for p in procs:
                    p.join(60)
                time.sleep(1)
            server.stop()  # the collector's shutdown writes the last counts of repeated refusals
            rows = audit_rows(url) - rows_before
        finally:
            server.stop()
    return {"store": store, "delay": delay, "idle": idle, "loaded": loaded, "answers": dict(answers),
            "audit_rows": rows, "load_seconds": load_seconds}


def render(results: list[dict], args) -> str:
    load1 = os.getloadavg()[0]
    lines = [
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared with other work (1-minute load average {load1:.1f} at the end). "
        f"One agent delivers a genuine signed dengbao-l3-linux host report (real engine, debian12-default "
        f"fixture root) {args.reports} times per phase, each on a new connection, {args.pause:g} s apart, idle "
        f"and loaded phases alternating {args.rounds} times. "
        f"Under load, {args.senders} sender processes from 127.0.0.2-{1 + args.senders} post 3 MiB bodies "
        "as fast as they can, half with no agent header, half with a made-up agent id and signature. "
        "Collector: `sentinel collector`, one worker, shipped settings (rate limits and refusal "
        "aggregation on) but for `limited_delay` as in the table. Other work on the machine moves the "
        "figures by several milliseconds either way (a ratio below 1 is that noise: no measurable effect).",
        "",
        "| store | limited_delay | idle median ms | idle p90 ms | under load median ms | under load p90 ms | "
        "ratio | target (≤ 2x idle) | before the gate (issue 20) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        idle, loaded = statistics.median(r["idle"]) * 1000, statistics.median(r["loaded"]) * 1000
        ratio = loaded / idle
        before = ISSUE[r["store"]]
        shipped = " (shipped)" if r["delay"] == SHIPPED_DELAY else ""
        lines.append(f"| {r['store']} | {r['delay']} s{shipped} | {idle:.1f} | {pct(r['idle'], 90) * 1000:.1f} | "
                     f"{loaded:.1f} | {pct(r['loaded'], 90) * 1000:.1f} | {ratio:.2f} | "
                     f"{'meets' if ratio <= TARGET_RATIO else 'MISSES'} | {before[0]} → {before[1]} ms |")
    lines.append("")
    for r in results:
        total = sum(r["answers"].values())
        shown = ", ".join(f"{n} × {what}" for what, n in sorted(r["answers"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- {r['store']}, limited_delay {r['delay']} s: the senders got {total} answers in "
                     f"{r['load_seconds']:.0f} s ({shown}); {r['audit_rows']} audit rows were written for them "
                     "(repeated refusals of one kind from one address share a row with a count).")
    lines += ["", f"Reproduce: `python bench/refusal_bench.py --reports {args.reports} --rounds {args.rounds} "
                  f"--pause {args.pause:g}`."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--reports", type=int, default=60, help="reports per phase, over all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="idle/loaded alternations")
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--delays", default=f"{SHIPPED_DELAY},0", help="limited_delay values to run (seconds)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="sentinel-refusal-bench-") as tmp:
        workdir = Path(tmp)
        template = genuine_report(workdir)
        runs = [(store, delay) for store in args.stores.split(",") for delay in args.delays.split(",")]
        for store, delay in runs:
            store_dir = workdir / f"{store}-{delay}"
            store_dir.mkdir()
            result = run_store(store, delay, args, template, store_dir)
            idle, loaded = statistics.median(result["idle"]), statistics.median(result["loaded"])
            print(f"{store}, limited_delay {delay}: idle {idle * 1000:.1f} ms, under load {loaded * 1000:.1f} ms "
                  f"({loaded / idle:.2f}x); senders {result['answers']}; audit rows {result['audit_rows']}",
                  flush=True)
            results.append(result)
    text = render(results, args)
    print(text)
    if not args.no_write:
        write_section(SECTION, "Signed reports under anonymous load (`bench/refusal_bench.py`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
