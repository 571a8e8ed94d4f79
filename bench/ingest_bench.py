#!/usr/bin/env python3
"""Ingest throughput of the collector: signed 60-result host reports from N concurrent agents over HTTP.

For each store (a SQLite file; a fresh PostgreSQL database on 127.0.0.1:5432, dropped afterwards) and each
uvicorn worker count, this script:

1. migrates the store and seeds departments, graded systems and one enrollment token per agent;
2. starts `sentinel collector` as its own process on 127.0.0.1 (plain HTTP, loopback only, log level
   warning so there is no access log; uvicorn picks uvloop and httptools when installed);
3. enrolls N agents over HTTP (each with its own Ed25519 key), spread over S systems: the hash chain is
   per system, so S bounds how many reports can be stored at the same moment;
4. builds realistic bodies: the shipped dengbao-l2-linux baseline cut to 60 checks, run by the real engine
   over the fixture roots of tests/fixtures (so evidence, observed values and titles are what an agent
   sends, about 80 KB of JSON per report); each agent reports on one root, and 5 % of its reports flip
   one check (a finding is fixed, or opens again), so drift and events are exercised;
5. per run: envelopes with fresh report ids and `sent_at` are serialised and signed the way the agent does
   it (not timed), then N agent tasks each deliver their share one after another, each report on a new
   connection as agents do (`--connections keep-alive`: one connection per agent), an agent never
   sending two reports at once; every answer must be 202;
6. reports/s = reports / wall time of the run; p50/p99 of per-request latency; CPU seconds per report
   of this client, the collector (all its processes) and the PostgreSQL backends serving it, read from
   /proc before and after the run.

Then, with the same client and reports, it measures floors (`--floors`): a bare ASGI app under uvicorn
(bench/ingest_floor.py) that only receives, or also verifies (JSON, digest, signature), or also validates
the schema, storing nothing; the collector's rates and the targets are read against them.

After the runs it checks the store: one run and 60 results per accepted report, and every system's
hash chain unbroken in run-id order ending at the system's chain head.

Client, collector and PostgreSQL share the same 2 cores (and whatever else runs on the machine), so the
figures are a lower bound of what the collector does on dedicated hardware; the CPU columns say where the
time went.

    python bench/ingest_bench.py [--stores sqlite,postgresql] [--workers 1,2] [--agents 48] [--systems 8]
                                 [--reports 960] [--runs 5] [--client raw|httpx] [--floors receive,verify,validate]
                                 [--py-spy DIR] [--no-write]

--py-spy DIR adds one untimed run per configuration recorded with py-spy (all collector processes) and
writes the collapsed stacks and a summary of the hot functions to DIR.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section  # noqa: E402

from sentinel import signing  # noqa: E402
from sentinel.baseline import load_baseline  # noqa: E402
from sentinel.engine import run_baseline  # noqa: E402
from sentinel.hostview import RootHost  # noqa: E402
from tests.fixtures.build import build_root  # noqa: E402

SECTION = "ingest-bench"
FLOOR_MODES = ("receive", "verify", "validate")
CHECKS = 60
BASELINE = "dengbao-l2-linux"  # cut to CHECKS checks, the largest items losing one each in turn
FIXTURE_ROOTS = ("debian12-default", "debian12-hardened", "rocky9-default", "rocky9-hardened",
                 "kylinv10-default", "openeuler2203-default", "uos20-default", "openeuler2203-hardened")
CHURN = 0.05
TARGETS = {"sqlite": 300, "postgresql": 1000}
CLIENTS = {"raw": "asyncio streams on uvloop",
           "httpx": "httpx.AsyncClient on uvloop, one per agent, keep-alive"}
CONNECTIONS = {
    "per-report": "a new connection per report, as agents deliver (a report every few minutes outlives the "
                  "server's keep-alive), which also spreads the agents over the worker processes",
    "keep-alive": "one keep-alive connection per agent, opened before the timed part (the kernel hands these "
                  "to the worker processes once, often unevenly)"}
PG_ADMIN_URL = os.environ.get("SENTINEL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
API = "/api/v1"


def utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---- report bodies -------------------------------------------------------------------------------


def sixty_check_baseline():
    baseline = load_baseline(BASELINE)
    items = [item for control in baseline.controls for item in control.items]
    total = sum(len(item.checks) for item in items)
    if total - CHECKS > total - len(items):
        raise SystemExit(f"{BASELINE}: cannot cut {total} checks to {CHECKS}")
    # one check at a time from the item that has the most (every item keeps at least one), so the cut
    # baseline keeps every item the shipped one has, whatever it has grown to
    cut = []
    for _ in range(total - CHECKS):
        largest = max(items, key=lambda item: len(item.checks))
        cut.append(largest.checks[-1].id)
        largest.checks = largest.checks[:-1]
    # A baseline of its own: the collector judges reports by its copy of the baseline they name
    # (sentinel/collector/judge.py), so the cut one is given to it as a site baseline (report_templates):
    # the shipped one extended, without the cut checks.
    baseline.id, baseline.version = "bench-l2-sixty", "1"
    SITE_BASELINES[f"{baseline.id}.yaml"] = site_baseline_yaml(baseline, cut)  # collector_server installs it
    return baseline


SITE_BASELINES: dict[str, str] = {}  # file name -> YAML, for the collector's <state_dir>/baselines/


def site_baseline_yaml(baseline, removed: list[str]) -> str:
    import yaml

    data = {"id": baseline.id, "version": baseline.version, "extends": BASELINE,
            "title": baseline.title.model_dump(mode="json"), "remove": removed}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def report_templates(workdir: Path) -> list[dict]:
    """One host report (as JSON values) per fixture root, from the real engine."""
    baseline = sixty_check_baseline()
    roots = workdir / "roots"
    roots.mkdir()
    out = []
    for name in FIXTURE_ROOTS:
        report = run_baseline(baseline, RootHost(str(build_root(name, roots))))
        if len(report.results) != CHECKS:
            raise SystemExit(f"{name}: {len(report.results)} results, expected {CHECKS}")
        out.append(report.model_dump(mode="json"))
    return out


def report_body(template: dict, hostname: str, report_id: str, rng: random.Random) -> dict:
    body = dict(template, report_id=report_id, generated_at=utc_now_text(),
                host=dict(template["host"], hostname=hostname))
    if rng.random() < CHURN:
        results = list(template["results"])
        i = rng.randrange(len(results))
        flipped = {"pass": "fail", "fail": "pass"}.get(results[i]["status"])
        if flipped:
            results[i] = dict(results[i], status=flipped,
                              reason=None if flipped == "pass" else "changed since the last run")
            body["results"] = results
    return body


# ---- stores --------------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_store(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'bench.db'}"


@contextlib.contextmanager
def postgres_store() -> Iterator[str]:
    """A database of its own, dropped (with its connections) at the end, also on failure."""
    from sqlalchemy import create_engine, text

    name = f"sentinel_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, systems: int, agents: int) -> list[tuple[str, str]]:
    """Migrate, then departments and systems; returns (system name, enrollment token) per agent."""
    from sentinel.collector import operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.schemas import EnrollmentTokenIn, SystemIn
    from sentinel.store.db import Database, upgrade

    upgrade(url)
    db = Database(url)
    try:
        with db.session(write=True) as session:
            ctx = operations.Ctx(session, cli_principal("bench"))
            departments = [operations.create_department(ctx, f"bench-dept-{d}", f"bench department {d}").id
                           for d in range(max(1, systems // 2))]
            system_ids = [operations.create_system(ctx, SystemIn(
                name=f"bench-sys-{k}", department_id=departments[k % len(departments)], level=2, s_grade=2,
                a_grade=2, zones=["dmz"])).id for k in range(systems)]  # level 2, as the baseline; no scan scope
            out = []
            for i in range(agents):
                k = i % systems
                _, secret = operations.create_enrollment_token(
                    ctx, EnrollmentTokenIn(system_id=system_ids[k], ttl_seconds=3600))
                out.append((f"bench-sys-{k}", secret))
        return out
    finally:
        db.dispose()


def check_store(url: str, accepted: int) -> str:
    """Every accepted report stored once with its 60 results; every system's chain unbroken."""
    from sqlalchemy import select

    from sentinel.collector.ingest import chain
    from sentinel.store.db import Database
    from sentinel.store.models import CheckResultRow, Run, System

    zero = "0" * 64
    db = Database(url)
    try:
        with db.read() as conn:
            runs = conn.execute(select(Run.id, Run.system_id, Run.digest, Run.prev_chain_hash, Run.chain_hash)
                                .order_by(Run.id)).all()
            results = conn.exec_driver_sql("SELECT COUNT(*) FROM check_results").scalar_one()
            heads = dict(conn.execute(select(System.id, System.chain_head)).all())
            per_run = conn.execute(select(CheckResultRow.run_id).group_by(CheckResultRow.run_id)).all()
    finally:
        db.dispose()
    if len(runs) != accepted:
        raise SystemExit(f"store check: {len(runs)} runs for {accepted} accepted reports")
    if results != CHECKS * accepted or len(per_run) != accepted:
        raise SystemExit(f"store check: {results} results in {len(per_run)} runs, expected {CHECKS} in each "
                         f"of {accepted}")
    prev: dict[int, str] = {}
    for run in runs:
        expected = prev.get(run.system_id, zero)
        if run.prev_chain_hash != expected or run.chain_hash != chain(expected, run.digest):
            raise SystemExit(f"store check: system {run.system_id}'s chain broken at run {run.id}")
        prev[run.system_id] = run.chain_hash
    for system_id, head in prev.items():
        if heads[system_id] != head:
            raise SystemExit(f"store check: system {system_id}'s chain head is not its last run")
    return f"{len(runs)} runs, {results} results, {len(prev)} chains intact"


# ---- the collector process -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An HTTP server as a child process on 127.0.0.1, plain HTTP, ready when GET `ready_path` answers 200."""

    def __init__(self, log: Path, port: int, cmd: list[str], env: dict[str, str], ready_path: str) -> None:
        self.port, self.log, self.ready_path = port, log, ready_path
        self.base = f"http://127.0.0.1:{port}"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=str(ROOT))
        self.process = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.log.stem} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}{self.ready_path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.log.stem} not ready within {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def processes(self) -> list[psutil.Process]:
        return [self.process] + self.process.children(recursive=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                for p in reversed(self.processes()):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                self.proc.wait(10)


def collector_server(workdir: Path, url: str, workers: int, *, shipped_limits: bool = False) -> Server:
    """`sentinel collector` (log level warning: no access log). Unless `shipped_limits`, the per-source rate
    limit is off: the simulated agents all come from 127.0.0.1, and it is meant for one host's agent or a
    flood (bench/refusal_bench.py measures it); the per-agent limit stays as shipped."""
    port = free_port()
    site = workdir / "state" / "baselines"
    site.mkdir(parents=True, exist_ok=True)
    for name, text in SITE_BASELINES.items():
        (site / name).write_text(text, encoding="utf-8")
    cmd = [sys.executable, "-m", "sentinel.cli", "collector", "--state-dir", str(workdir / "state"),
           "--database-url", url, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {"SENTINEL_COLLECTOR_LOG_LEVEL": "warning"}
    if not shipped_limits:
        env["SENTINEL_COLLECTOR_SOURCE_RATE"] = "0"
    return Server(workdir / f"collector-{workers}.log", port, cmd, env, f"{API}/health")


def floor_server(workdir: Path, mode: str, workers: int, keys: Path) -> Server:
    """bench/ingest_floor.py under uvicorn with the collector's server settings (see there)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "ingest_floor:app", "--app-dir", str(Path(__file__).resolve().parent),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning",
           "--no-access-log", "--no-server-header"]
    return Server(workdir / f"floor-{mode}-{workers}.log", port, cmd,
                  {"SENTINEL_FLOOR_MODE": mode, "SENTINEL_FLOOR_KEYS": str(keys), "PYTHONPATH": str(ROOT)}, "/")


def cpu_seconds(pids, system_only: bool = False) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.system if system_only else t.user + t.system
    return out


class PgBackends:
    """The PostgreSQL server processes serving the bench database (read from /proc, never signalled)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.name = url.rsplit("/", 1)[1]
        self.engine = create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1))

    def pids(self) -> list[int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return list(conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> "
                                          "pg_backend_pid()"), {"d": self.name}).scalars())

    def close(self) -> None:
        self.engine.dispose()


# ---- agents and the load ---------------------------------------------------------------------------


@dataclass
class SimAgent:
    agent_id: str
    key: Any
    hostname: str
    template: dict


async def enroll(base: str, tokens: list[tuple[str, str]], templates: list[dict]) -> list[SimAgent]:
    agents = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        collector_key = (await client.get(f"{API}/agent/enroll")).json()["collector_public_key"]
        for i, (_, token) in enumerate(tokens):
            key = signing.generate_key()
            template = templates[i % len(templates)]
            hostname = f"bench-host-{i:04d}"
            public_key = signing.public_key_b64(key)  # with the proof of possession (docs/wire.md)
            proof = signing.sign(key, signing.enrollment_challenge(token, collector_key, hostname, public_key))
            answer = await client.post(f"{API}/agent/enroll", json={
                "token": token, "public_key": public_key, "hostname": hostname,
                "os": dict(template["host"], hostname=hostname), "proof": proof})
            if answer.status_code != 201:
                raise SystemExit(f"enrollment of {hostname}: HTTP {answer.status_code} {answer.text[:500]}")
            agents.append(SimAgent(answer.json()["agent_id"], key, hostname, template))
    return agents


Signed = tuple[bytes, dict[str, str]]


def signed_batches(agents: list[SimAgent], per_agent: int, rng: random.Random) -> list[list[Signed]]:
    """Each agent's next reports, serialised and signed as sentinel/agent/daemon.py does."""
    batches = []
    for agent in agents:
        batch = []
        for _ in range(per_agent):
            report_id = str(uuid.uuid4())
            envelope = {"report_id": report_id, "agent_id": agent.agent_id, "sent_at": utc_now_text(),
                        "kind": "host_report", "body": report_body(agent.template, agent.hostname, report_id, rng)}
            raw = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            batch.append((raw, {"Content-Type": "application/json", "X-Sentinel-Agent": agent.agent_id,
                                "X-Sentinel-Signature": signing.sign(agent.key, raw)}))
        batches.append(batch)
    return batches


@dataclass
class RunStats:
    reports: int
    wall: float
    latencies: list[float]
    statuses: Counter
    failures: list[str] = field(default_factory=list)
    cpu_client: float = 0.0
    cpu_collector: float = 0.0
    cpu_collector_sys: float = 0.0  # of which in the kernel
    cpu_shares: list[float] = field(default_factory=list)  # of the collector's CPU per process, largest first
    cpu_pg: float = 0.0
    machine_busy: float = 0.0  # fraction of all CPUs busy during the run (everything on the machine)

    @property
    def rate(self) -> float:
        return self.reports / self.wall

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class KeepAlive:
    """One HTTP/1.1 keep-alive connection on asyncio streams: an agent's connection to the collector.

    httpx's connection pool costs this client 3-9 ms of CPU per request here (it scans every pooled
    connection per request), which on a shared 2-core machine is taken from the collector; this costs a
    few tens of microseconds. Requests are written as httpx would write them; an answer must carry
    Content-Length (uvicorn always sends it for these JSON answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}"
                          f"\r\n{head}\r\n".encode("latin-1"))
        self.writer.write(body)
        await self.writer.drain()
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line[:15].lower() == b"content-length:"), None)
        if length is None:
            raise RuntimeError(f"answer without Content-Length: {lines[:3]!r}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def deliver(base: str, batches: list[list[Signed]], client_kind: str = "raw",
                  per_report: bool = True) -> RunStats:
    latencies: list[float] = []
    statuses: Counter = Counter()
    failures: list[str] = []

    def record(start: float, status: int, text: str) -> None:
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
        if status != 202 and len(failures) < 5:
            failures.append(f"HTTP {status}: {text[:300]}")

    if client_kind == "httpx":
        # one client (one connection) per agent: a shared pool's per-request scan grows with the agents
        clients = [httpx.AsyncClient(base_url=base, timeout=120) for _ in batches]

        async def agent(client: httpx.AsyncClient, batch: list[Signed]) -> None:
            for raw, headers in batch:
                start = time.perf_counter()
                answer = await client.post(f"{API}/agent/reports", content=raw, headers=headers)
                record(start, answer.status_code, answer.text)

        await asyncio.gather(*(c.get(f"{API}/health") for c in clients))
    else:
        host, port = base.rsplit("//", 1)[1].rsplit(":", 1)
        clients = [KeepAlive(host, int(port)) for _ in batches]

        async def agent(client: KeepAlive, batch: list[Signed]) -> None:
            for raw, headers in batch:
                start = time.perf_counter()
                if per_report:
                    await client.open()
                status, text = await client.post(f"{API}/agent/reports", raw, headers)
                if per_report:
                    await client.close()
                record(start, status, text.decode("utf-8", "replace"))

        if not per_report:
            await asyncio.gather(*(c.open() for c in clients))
    try:
        start = time.perf_counter()  # keep-alive: connections are open, the timed part has only requests
        await asyncio.gather(*(agent(c, batch) for c, batch in zip(clients, batches, strict=True)))
        wall = time.perf_counter() - start
    finally:
        for c in clients:
            await (c.aclose() if isinstance(c, httpx.AsyncClient) else c.close())
    return RunStats(reports=sum(map(len, batches)), wall=wall, latencies=latencies, statuses=statuses,
                    failures=failures)


def run_async(coro):
    """uvloop when installed (uvicorn[standard] brings it), like the collector."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def measured_run(collector: Server, pg: Optional[PgBackends], batches: list[list[Signed]],
                 client_kind: str, per_report: bool) -> RunStats:
    pg_before = cpu_seconds(pg.pids()) if pg else {}
    coll_before = cpu_seconds(collector.pids())
    coll_sys_before = cpu_seconds(collector.pids(), system_only=True)
    machine_before, client_before = psutil.cpu_times(), time.process_time()
    stats = run_async(deliver(collector.base, batches, client_kind, per_report))
    stats.cpu_client = time.process_time() - client_before
    machine_after = psutil.cpu_times()
    coll_after = cpu_seconds(collector.pids())
    per_process = sorted((v - coll_before.get(pid, 0.0) for pid, v in coll_after.items()), reverse=True)
    stats.cpu_collector = sum(per_process)
    stats.cpu_shares = [v / stats.cpu_collector for v in per_process if v > 0.01 * stats.cpu_collector] \
        if stats.cpu_collector > 0 else []
    stats.cpu_collector_sys = sum(v - coll_sys_before.get(pid, 0.0)
                                  for pid, v in cpu_seconds(collector.pids(), system_only=True).items())
    if pg:
        pg_after = cpu_seconds(pg.pids())
        stats.cpu_pg = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
    busy = lambda t: sum(t) - t.idle - getattr(t, "iowait", 0.0)  # noqa: E731
    total = sum(machine_after) - sum(machine_before)
    stats.machine_busy = (busy(machine_after) - busy(machine_before)) / total if total > 0 else 0.0
    return stats


# ---- profiling -------------------------------------------------------------------------------------


def profiled_run(collector: Server, batches: list[list[Signed]], out: Path, label: str) -> str:
    """One untimed run under py-spy (all collector processes); returns a summary of the hot frames."""
    raw = out / f"{label}.collapsed.txt"
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(collector.proc.pid), "--subprocesses", "--rate", "250",
                            "--format", "raw", "--output", str(raw), "--nonblocking", "--gil"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # py-spy attaches
    run_async(deliver(collector.base, batches))
    spy.send_signal(signal.SIGINT)
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if not raw.exists():
        return f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"
    summary = summarise_stacks(raw.read_text(errors="replace"))
    (out / f"{label}.summary.txt").write_text(summary)
    return summary


def summarise_stacks(collapsed: str, top: int = 40) -> str:
    """Inclusive and self share of the busy samples per function (idle waits left out)."""
    idle = ("wait (threading.py", "_worker (concurrent", "select (selectors.py", "run_forever",
            "_run_once (asyncio", "poll (selectors.py", "acquire (", "get (queue.py")
    inclusive: Counter = Counter()
    self_: Counter = Counter()
    busy = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if any(leaf.startswith(w) or w in leaf for w in idle):
            continue
        n = int(count)
        busy += n
        self_[leaf] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not busy:
        return "no busy samples"
    lines = [f"busy samples: {busy}", "", "inclusive %  function"]
    lines += [f"{100 * n / busy:10.1f}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / busy:6.1f}  {f}" for f, n in self_.most_common(top)]
    return "\n".join(lines)


# ---- one configuration -----------------------------------------------------------------------------


@dataclass
class ConfigResult:
    store: str
    workers: int
    runs: list[RunStats]
    check: str
    profile: Optional[str] = None

    def median(self, f) -> float:
        return statistics.median(f(r) for r in self.runs)


def run_config(store: str, workers: int, args, templates: list[dict], workdir: Path) -> ConfigResult:
    rng = random.Random(f"{store}-{workers}")
    per_agent = max(1, args.reports // args.agents)
    per_report = args.client == "raw" and args.connections == "per-report"
    stores = {"sqlite": lambda: sqlite_store(workdir), "postgresql": postgres_store}
    with stores[store]() as url:
        tokens = seed(url, args.systems, args.agents)
        collector = collector_server(workdir, url, workers)
        pg = PgBackends(url) if store == "postgresql" else None
        try:
            collector.wait_ready()
            agents = asyncio.run(enroll(collector.base, tokens, templates))
            accepted = 0
            for _ in range(args.warmup):  # first findings exist, pools and caches are warm
                warm = run_async(deliver(collector.base, signed_batches(agents, 1, rng), args.client, per_report))
                if warm.statuses != Counter({202: len(agents)}):
                    raise SystemExit(f"{store}/{workers}: warm-up answers {dict(warm.statuses)}: {warm.failures}")
                accepted += warm.reports
            runs = []
            for n in range(args.runs):
                stats = measured_run(collector, pg, signed_batches(agents, per_agent, rng), args.client, per_report)
                if stats.statuses != Counter({202: stats.reports}):
                    raise SystemExit(f"{store}/{workers} run {n + 1}: answers {dict(stats.statuses)}: "
                                     f"{stats.failures}\n{collector.tail()}")
                accepted += stats.reports
                runs.append(stats)
                print(f"{store:10s} workers={workers} run {n + 1}: {stats.rate:7.1f} reports/s, "
                      f"p50 {stats.pct(0.5):6.1f} ms, p99 {stats.pct(0.99):7.1f} ms, CPU ms/report client "
                      f"{1000 * stats.cpu_client / stats.reports:.2f} collector "
                      f"{1000 * stats.cpu_collector / stats.reports:.2f} "
                      f"(sys {1000 * stats.cpu_collector_sys / stats.reports:.2f}) "
                      f"postgres "
                      f"{1000 * stats.cpu_pg / stats.reports:.2f}, machine busy {100 * stats.machine_busy:.0f} %, "
                      f"collector CPU per process {'/'.join(f'{100 * x:.0f}' for x in stats.cpu_shares)} %",
                      flush=True)
            profile = None
            if args.py_spy:
                out = Path(args.py_spy)
                out.mkdir(parents=True, exist_ok=True)
                profile = profiled_run(collector, signed_batches(agents, per_agent, rng), out, f"{store}-w{workers}")
                accepted += per_agent * len(agents)
        finally:
            collector.stop()
            if pg:
                pg.close()
        check = check_store(url, accepted)
        print(f"{store:10s} workers={workers}: store check: {check}", flush=True)
    return ConfigResult(store, workers, runs, check, profile)


def run_floor(mode: str, workers: int, args, templates: list[dict], workdir: Path) -> ConfigResult:
    """The same client against bench/ingest_floor.py: what this machine does with less than an ingest."""
    rng = random.Random(f"floor-{mode}-{workers}")
    agents = [SimAgent(f"floor-agent-{i}", signing.generate_key(), f"floor-host-{i:04d}", templates[i % len(templates)])
              for i in range(args.agents)]
    keys = workdir / "keys.json"
    keys.write_text(json.dumps({a.agent_id: signing.public_key_b64(a.key) for a in agents}))
    per_agent = max(1, args.reports // args.agents)
    per_report = args.client == "raw" and args.connections == "per-report"
    server = floor_server(workdir, mode, workers, keys)
    runs = []
    try:
        server.wait_ready()
        for n in range(args.warmup + args.runs):
            stats = measured_run(server, None, signed_batches(agents, 1 if n < args.warmup else per_agent, rng),
                                 args.client, per_report)
            if stats.statuses != Counter({202: stats.reports}):
                raise SystemExit(f"floor {mode}/{workers}: answers {dict(stats.statuses)}: {stats.failures}\n"
                                 f"{server.tail()}")
            if n >= args.warmup:
                runs.append(stats)
                print(f"floor {mode:8s} workers={workers} run {n - args.warmup + 1}: {stats.rate:7.1f} reports/s, "
                      f"CPU ms/report client {1000 * stats.cpu_client / stats.reports:.2f} server "
                      f"{1000 * stats.cpu_collector / stats.reports:.2f}", flush=True)
    finally:
        server.stop()
    return ConfigResult(f"floor:{mode}", workers, runs, check="")


# ---- report ----------------------------------------------------------------------------------------


def render(results: list[ConfigResult], floors: list[ConfigResult], args, body_bytes: int, load: tuple) -> str:
    lines = [
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. {args.agents} simulated agents on {args.systems} "
        f"systems deliver signed host reports over HTTP/1.1 ({CLIENTS[args.client]}; "
        f"{CONNECTIONS[args.connections if args.client == 'raw' else 'keep-alive']}; one report in "
        f"flight per agent) to `sentinel collector` on 127.0.0.1 (plain HTTP, access log off, uvloop + httptools). "
        f"Each report: {CHECKS} results of `{BASELINE}` cut to {CHECKS} checks, run by the engine over fixture "
        f"roots; envelope about {body_bytes // 1024} KB; {int(CHURN * 100)} % of reports flip one check. "
        f"{args.reports // args.agents * args.agents} reports per run, median of {args.runs} runs after "
        f"{args.warmup} warm-up round(s).",
        "",
        f"Machine: {platform.machine()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}; load "
        f"average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start. **Client, collector and PostgreSQL "
        f"share these 2 cores** (with whatever else runs on the machine), so every figure is a lower bound.",
        "",
        "| store | workers | reports/s (median) | min..max | p50 ms | p99 ms | CPU ms/report client | collector "
        "| postgres | machine busy | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rate = r.median(lambda s: s.rate)
        target = TARGETS[r.store]
        lines.append(
            f"| {r.store} | {r.workers} | **{rate:.0f}** | {min(s.rate for s in r.runs):.0f}.."
            f"{max(s.rate for s in r.runs):.0f} | {r.median(lambda s: s.pct(0.5)):.1f} | "
            f"{r.median(lambda s: s.pct(0.99)):.1f} | {r.median(lambda s: 1000 * s.cpu_client / s.reports):.2f} | "
            f"{r.median(lambda s: 1000 * s.cpu_collector / s.reports):.2f} | "
            + (f"{r.median(lambda s: 1000 * s.cpu_pg / s.reports):.2f}" if r.store == "postgresql" else "-")
            + f" | {100 * r.median(lambda s: s.machine_busy):.0f} % | ≥{target}: "
            f"{'met' if rate >= target else 'MISSED'} |")
    lines += ["", "All runs (reports/s): " + "; ".join(
        f"{r.store} w{r.workers}: " + ", ".join(f"{s.rate:.0f}" for s in r.runs) for r in results)]
    split = [r for r in results if r.workers > 1]
    if split:
        lines += ["", "Collector CPU per worker process, % of the collector's: " + "; ".join(
                          f"{r.store} w{r.workers}: " + ", ".join("/".join(f"{100 * x:.0f}" for x in s.cpu_shares)
                                                                   for s in r.runs) for r in split)]
    def ms(r: ConfigResult, f) -> float:
        return r.median(lambda s: 1000 * f(s) / s.reports)

    ceilings = "; ".join(
        f"{r.store} w{r.workers}: {2000 / ms(r, lambda s: s.cpu_client + s.cpu_collector + s.cpu_pg):.0f}/s "
        f"(collector alone {2000 / ms(r, lambda s: s.cpu_collector):.0f}/s)" for r in results)
    lines += ["", "Ceiling from CPU alone, if this work had both cores to itself (2 cores / CPU ms per report of "
                  f"client + collector + postgres): {ceilings}."]
    profiled = [r for r in results if r.profile and r.profile.startswith("busy samples")]
    if profiled:
        lines += ["", "Where the collector's Python time goes (py-spy --gil over one extra run, share of samples "
                      "holding the GIL, own time of the function):"]
        for r in profiled:
            own = r.profile.split("self %  function\n", 1)[1].splitlines()[:6]
            lines.append(f"- {r.store} w{r.workers}: " + "; ".join(
                f"{line.split(None, 1)[1].split(' (')[0]} {line.split()[0]} %" for line in own))
    if floors:
        lines += render_floors(results, floors)
    lines += ["", "Store checked after each configuration: " + "; ".join(
        f"{r.store} w{r.workers}: {r.check}" for r in results) + "."]
    lines += ["", f"Reproduce: `python bench/ingest_bench.py --agents {args.agents} --systems {args.systems} "
                  f"--reports {args.reports} --runs {args.runs} --connections {args.connections} "
                  f"--floors {','.join(dict.fromkeys(f.store.split(':')[1] for f in floors)) or 'none'}"
                  + (" --py-spy DIR" if args.py_spy else "") + "`."]
    return "\n".join(lines)


def render_floors(results: list[ConfigResult], floors: list[ConfigResult]) -> list[str]:
    """The floors' table, and each target read against the floor that does only what every report needs."""
    lines = ["", "Floors, measured in the same run with the same client and reports: a bare ASGI app under uvicorn "
                 "with the collector's settings, no framework, no database, no threads (bench/ingest_floor.py). "
                 "*receive*: read the body, answer 202; *verify*: also parse the JSON, the canonical digest and the "
                 "agent's signature, which the issue requires of every report before storing it; *validate*: also "
                 "the schema (pydantic) and the compressed copy the collector keeps.",
             "",
             "| floor | workers | reports/s (median) | min..max | CPU ms/report client | server | machine busy "
             "| collector's rate as % of this floor |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in floors:
        rate = f.median(lambda s: s.rate)
        ours = [r for r in results if r.workers == f.workers]
        lines.append(
            f"| {f.store.split(':')[1]} | {f.workers} | **{rate:.0f}** | {min(s.rate for s in f.runs):.0f}.."
            f"{max(s.rate for s in f.runs):.0f} | {f.median(lambda s: 1000 * s.cpu_client / s.reports):.2f} | "
            f"{f.median(lambda s: 1000 * s.cpu_collector / s.reports):.2f} | "
            f"{100 * f.median(lambda s: s.machine_busy):.0f} % | "
            + (", ".join(f"{r.store} {100 * r.median(lambda s: s.rate) / rate:.0f} %" for r in ours) or "-") + " |")
    verify = [f for f in floors if f.store == "floor:verify"]
    if verify:
        best = max(verify, key=lambda f: f.median(lambda s: s.rate))
        rate = best.median(lambda s: s.rate)
        stores = sorted({r.store for r in results}) or sorted(TARGETS)
        lines += ["", f"Read against the *verify* floor ({rate:.0f}/s with {best.workers} worker(s)), which stores "
                      "nothing and checks no schema: " + "; ".join(
                          f"the {s} target of {TARGETS[s]}/s is {100 * TARGETS[s] / rate:.0f} % of it"
                          for s in stores) + "."]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--agents", type=int, default=48)
    ap.add_argument("--systems", type=int, default=8)
    ap.add_argument("--reports", type=int, default=960, help="reports per run (split evenly over the agents)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds of one report per agent")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="raw: one asyncio keep-alive stream per agent (default); httpx: one AsyncClient per agent")
    ap.add_argument("--connections", choices=tuple(CONNECTIONS), default="per-report",
                    help="raw client: a new connection per report (default, as agents do) or one keep-alive "
                         "connection per agent")
    ap.add_argument("--py-spy", metavar="DIR", help="also profile one untimed run per configuration")
    ap.add_argument("--floors", default="receive,verify,validate",
                    help="floors to measure with the same client (bench/ingest_floor.py), or 'none'")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    workers = [int(w) for w in args.workers.split(",")]
    if any(s not in TARGETS for s in stores) or not stores:
        ap.error(f"--stores: choose from {', '.join(TARGETS)}")
    floor_modes = [] if args.floors == "none" else [m.strip() for m in args.floors.split(",") if m.strip()]
    if any(m not in FLOOR_MODES for m in floor_modes):
        ap.error(f"--floors: choose from {', '.join(FLOOR_MODES)}, or none")
    if args.agents < 1 or args.systems < 1 or args.systems > args.agents or args.reports < args.agents:
        ap.error("need agents >= systems >= 1 and reports >= agents")

    load = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="sentinel-ingest-bench-") as tmp:
        templates = report_templates(Path(tmp))
        sample = json.dumps({"report_id": "x" * 36, "agent_id": "x" * 22, "sent_at": utc_now_text(),
                             "kind": "host_report", "body": templates[0]}, ensure_ascii=False,
                            separators=(",", ":"))
        for store in stores:
            for w in workers:
                workdir = Path(tmp) / f"{store}-{w}"
                workdir.mkdir()
                results.append(run_config(store, w, args, templates, workdir))
        floors = []
        for mode in floor_modes:
            for w in workers:
                workdir = Path(tmp) / f"floor-{mode}-{w}"
                workdir.mkdir()
                floors.append(run_floor(mode, w, args, templates, workdir))
    text = render(results, floors, args, len(sample.encode()), load)
    print(text)
    for r in results:
        if r.profile:
            print(f"\n--- py-spy {r.store} workers={r.workers} ---\n{r.profile}")
    if not args.no_write:
        write_section(SECTION, "Collector ingest throughput (`bench/ingest_bench.py`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
