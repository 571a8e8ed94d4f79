#!/usr/bin/env python3
"""The collector's whole GET /metrics at 10,000 hosts: store read + exposition, over HTTP (issue 13, point 5).

bench/metrics_render_bench.py times the exposition of a snapshot built in memory; this one times what a
Prometheus scrape waits for. For each store (a SQLite file; a PostgreSQL database of its own on
127.0.0.1:5432, made from the `test` database's server and dropped afterwards, also on failure):

1. seeding (timed, not a result): migrate; 10 departments, 100 level-3 systems; every host enrolled through
   the collector's enrollment code with its own Ed25519 key, then one signed host report per host stored by
   the collector's Ingestor in-process (8 threads, so its group commit batches them as under load). The
   report is the shipped dengbao-l3-linux baseline run once by the real engine over the fixture root
   debian12-default (tests/fixtures/build.py); each host's copy has a few statuses flipped (pass <-> fail,
   chosen per host), so hosts differ in score, failing checks and the findings the ingest opens;
2. `sentinel collector` is started as its own process (uvicorn, plain HTTP on 127.0.0.1, a free port, one
   worker, shipped settings: metrics_cache_seconds 30, so the stored state is read and rendered in the
   background every 30 s: sentinel/collector/metrics_stored.py) and GET /metrics is timed with the Accept header
   Prometheus sends (OpenMetrics) and the bearer token:
   - first start: the collector's first start on the store (no kept rendering): how long after it answered
     /api/v1/health the first figures come (scrapes before that are answered 503 after up to 8 s);
   - warm: `--runs` scrapes of the running process, each started more than metrics_cache_seconds after the
     previous one, so each shows a newer background read (checked: sentinel_snapshot_timestamp_seconds
     differs each time); the stores' processes run side by side and their scrapes alternate. Each scrape's age
     of the state shown (scrape time - sentinel_snapshot_timestamp_seconds) and the background read's own
     time (sentinel_snapshot_duration_seconds), and the collector process's CPU use over the warm phase;
   - cold: `--cold` restarts on the unchanged store, each timed from health answered to the first scrape's
     last byte (the kept rendering of <state_dir>/metrics-stored/ is served);
3. body size and series count are taken from each answer.

`--profile` adds one cProfile run per store in a fresh process: the background read (build_snapshot, then the
stored families rendered in both formats, as metrics_stored.StoredMetrics does) called once cold and once warm,
and the top functions by own time and cumulative time. Written to the `metrics-store-bench` section
of bench/RESULTS.md unless --no-write.

    python bench/metrics_store_bench.py [--hosts 10000] [--systems 100] [--runs 7] [--cold 1]
                                        [--stores sqlite,postgresql] [--profile] [--no-write]
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section  # noqa: E402

from sentinel import signing  # noqa: E402

SECTION = "metrics-store-bench"
TARGET_S = 1.0
BASELINE = "dengbao-l3-linux"
FIXTURE_ROOT = "debian12-default"
DEPARTMENTS = 10
FLIPS = 4  # statuses flipped per host (pass <-> fail)
CACHE_SECONDS = 30.0  # the shipped metrics_cache_seconds; the collector runs with it
TOKEN = "bench-metrics-token-" + "x" * 24
PG_URL = os.environ.get("SENTINEL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
API = "/api/v1"


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# ---- stores --------------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_store(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'metrics-bench.db'}"


@contextlib.contextmanager
def postgres_store() -> Iterator[str]:
    """A database of its own on the server of PG_URL, dropped (with its connections) at the end."""
    from sqlalchemy import create_engine, text

    name = f"sentinel_metrics_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.replace("postgresql://", "postgresql+psycopg://", 1).rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---- seeding -------------------------------------------------------------------------------------


def report_template(workdir: Path) -> dict:
    """The shipped level-3 baseline run once by the real engine over a fixture root, as JSON values."""
    from sentinel.baseline import load_baseline
    from sentinel.engine import run_baseline
    from sentinel.hostview import RootHost
    from tests.fixtures.build import build_root

    roots = workdir / "roots"
    roots.mkdir(exist_ok=True)
    report = run_baseline(load_baseline(BASELINE), RootHost(str(build_root(FIXTURE_ROOT, roots))))
    return report.model_dump(mode="json")


def host_body(template: dict, hostname: str, index: int, at: datetime) -> dict:
    """The template as `hostname`'s report: a new report id, and FLIPS statuses flipped (chosen per host)."""
    rng = random.Random(index)
    results = list(template["results"])
    flippable = [i for i, r in enumerate(results) if r["status"] in ("pass", "fail")]
    for i in rng.sample(flippable, min(FLIPS, len(flippable))):
        flipped = "fail" if results[i]["status"] == "pass" else "pass"
        results[i] = dict(results[i], status=flipped, reason=None if flipped == "pass" else "changed on this host")
    return dict(template, report_id=str(uuid.uuid4()), generated_at=(at - timedelta(seconds=5)).isoformat(),
                host=dict(template["host"], hostname=hostname), results=results)


def ensure_id(value: Optional[int]) -> int:
    assert value is not None  # a stored row has its id
    return value


@dataclass
class Seeded:
    seconds: float
    hosts: int
    runs: int
    results: int
    findings_open: int
    detail: dict = field(default_factory=dict)


def seed(url: str, workdir: Path, template: dict, hosts: int, systems: int) -> Seeded:
    """Departments, systems, enrolled agents and one stored host report per host, through the collector's code."""
    from sqlalchemy import text

    from sentinel.collector import enrollment, operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.baselines import BaselineRegistry
    from sentinel.collector.ingest import Ingestor
    from sentinel.collector.schemas import EnrollmentTokenIn, SystemIn
    from sentinel.collector.wire import EnrollRequest
    from sentinel.model import HostInfo
    from sentinel.store.db import Database, upgrade

    t0 = time.perf_counter()
    upgrade(url)
    db = Database(url)
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    collector_key = signing.generate_key()  # the collector started later signs with this one
    signing.save_private_key(collector_key, state / "collector.key")
    collector_pub = signing.public_key_b64(collector_key)
    names: list[tuple[str, int]] = []  # (hostname, system index)
    try:
        with db.session(write=True) as session:
            ctx = operations.Ctx(session, cli_principal("bench"))
            depts = [ensure_id(operations.create_department(ctx, f"dept-{d:02d}", f"部门 {d}").id)
                     for d in range(DEPARTMENTS)]
            system_ids = [ensure_id(operations.create_system(ctx, SystemIn(
                name=f"system-{k:03d}", department_id=depts[k % DEPARTMENTS], level=3, s_grade=3, a_grade=3,
                title=f"业务系统 {k}", owner="信息中心")).id) for k in range(systems)]
            secrets: list[str] = []
            for i in range(hosts):
                k = i % systems
                names.append((f"h{k:03d}-{i // systems:04d}", k))
                _, secret = operations.create_enrollment_token(
                    ctx, EnrollmentTokenIn(system_id=system_ids[k], ttl_seconds=86400))
                secrets.append(secret)
        agents: list[tuple[str, Any]] = []
        for (hostname, _), secret in zip(names, secrets, strict=True):
            key = signing.generate_key()
            info = HostInfo(hostname=hostname, os_id="debian", os_version="12", os_name="Debian GNU/Linux 12",
                            family="debian", arch="x86_64")
            public_key = signing.public_key_b64(key)
            proof = signing.sign(key, signing.enrollment_challenge(secret, collector_pub, hostname, public_key))
            resp = enrollment.enroll(db, EnrollRequest(token=secret, public_key=public_key, hostname=hostname,
                                                       os=info, proof=proof), "127.0.0.1", collector_pub)
            agents.append((resp.agent_id, key))
        enrolled = time.perf_counter() - t0

        ingestor = Ingestor(db, max_body_bytes=8 << 20, skew_seconds=300, baselines=BaselineRegistry())
        failures: list[Any] = []

        def deliver(i: int) -> None:
            at = datetime.now(timezone.utc)
            agent_id, key = agents[i]
            body = host_body(template, names[i][0], i, at)
            env = {"report_id": body["report_id"], "agent_id": agent_id, "sent_at": at.isoformat(),
                   "kind": "host_report", "body": body}
            raw = json.dumps(env, ensure_ascii=False).encode("utf-8")
            status, answer = ingestor.handle(raw, agent_id, signing.sign(key, raw), "127.0.0.1")
            if status != 202:
                failures.append((names[i][0], status, answer))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(deliver, range(hosts)))
        if failures:
            raise SystemExit(f"{len(failures)} reports refused, e.g. {failures[:3]}")
        with db.read() as conn:
            runs = conn.execute(text("SELECT COUNT(*) FROM runs")).scalar_one()
            results = conn.execute(text("SELECT COUNT(*) FROM check_results")).scalar_one()
            findings_open = conn.execute(text("SELECT COUNT(*) FROM findings WHERE resolved_at IS NULL")).scalar_one()
        if runs != hosts:
            raise SystemExit(f"seeding: {runs} runs stored for {hosts} hosts")
        return Seeded(seconds=time.perf_counter() - t0, hosts=hosts, runs=runs, results=results,
                      findings_open=findings_open, detail={"enroll_s": enrolled})
    finally:
        db.dispose()


# ---- the collector process -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_env(url: str, workdir: Path) -> dict[str, str]:
    return {"SENTINEL_COLLECTOR_LOG_LEVEL": "warning", "SENTINEL_COLLECTOR_METRICS_TOKEN": TOKEN,
            "SENTINEL_COLLECTOR_METRICS_CACHE_SECONDS": str(CACHE_SECONDS),
            "SENTINEL_COLLECTOR_DATABASE_URL": url, "SENTINEL_COLLECTOR_STATE_DIR": str(workdir / "state")}


class Collector:
    """`sentinel collector` as a child process on 127.0.0.1 (plain HTTP, one worker)."""

    def __init__(self, url: str, workdir: Path, label: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"collector-{label}.log"
        cmd = [sys.executable, "-m", "sentinel.cli", "collector", "--state-dir", str(workdir / "state"),
               "--database-url", url, "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, env={**os.environ, **collector_env(url, workdir)}, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.client = httpx.Client(base_url=self.base, timeout=1800)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"collector exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get(f"{API}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"collector not ready within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def scrape(self, allow_503: bool = False) -> Optional[Scrape]:
        t = time.perf_counter()
        resp = self.client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Authorization": f"Bearer {TOKEN}"})
        wall = time.perf_counter() - t
        if resp.status_code == 503 and allow_503:
            return None
        if resp.status_code != 200:
            raise SystemExit(f"GET /metrics: {resp.status_code} {resp.text[:300]}")
        return Scrape.of(resp.content, wall, time.monotonic())

    def first_figures(self) -> tuple[float, int, Scrape]:
        """Seconds from now (health answered) to the first 200 answer, the 503s before it, and that answer."""
        t, refused = time.monotonic(), 0
        while (got := self.scrape(allow_503=True)) is None:
            refused += 1
        return time.monotonic() - t, refused, got

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


_SAMPLE = re.compile(rb"^(sentinel_snapshot_duration_seconds|sentinel_snapshot_timestamp_seconds|sentinel_up) (\S+)",
                     re.M)


@dataclass
class Scrape:
    wall: float
    started: float
    body_bytes: int
    series: int
    store_read: float  # sentinel_snapshot_duration_seconds of the answer: the background read and rendering
    snapshot_at: float
    up: float
    age: float  # seconds between the read of the state shown and the end of this scrape

    @classmethod
    def of(cls, body: bytes, wall: float, at: float) -> Scrape:
        values = {m.group(1).decode(): float(m.group(2)) for m in _SAMPLE.finditer(body)}
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        snapshot_at = values.get("sentinel_snapshot_timestamp_seconds", float("nan"))
        return cls(wall=wall, started=at - wall, body_bytes=len(body), series=series,
                   store_read=values.get("sentinel_snapshot_duration_seconds", float("nan")),
                   snapshot_at=snapshot_at, up=values.get("sentinel_up", float("nan")), age=time.time() - snapshot_at)


# ---- profiling (a child process: python bench/metrics_store_bench.py --profile-child URL STATE) ----------


def profile_child(url: str, state_dir: str) -> int:
    """The background read as the collector runs it (build_snapshot, then both formats), cold and warm, profiled."""
    os.environ.update(collector_env(url, Path(state_dir).parent))
    from sentinel.collector.app import tune_gc
    from sentinel.collector.metrics_stored import FORMATS
    from sentinel.store.db import Database
    from sentinel.store.snapshot import build_snapshot
    from sentinel.wiring import exporters

    db = Database(url)
    tune_gc()
    render = exporters().metrics.render_stored
    out = {}
    for label in ("cold", "warm"):
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        snap = build_snapshot(db)
        size = sum(len(body) for body in render(snap, FORMATS).values())
        prof.disable()
        wall = time.perf_counter() - t
        out[label] = {"wall": wall, "bytes": size, "top": top_functions(prof, wall)}
    print(json.dumps(out))
    return 0


def top_functions(prof: cProfile.Profile, wall: float, n: int = 12) -> dict[str, list]:
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = [(f"{Path(file).name}:{line} {func}", tt, ct, nc)
            for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items()]  # type: ignore[attr-defined]
    own = sorted(rows, key=lambda r: -r[1])[:n]
    cum = sorted(rows, key=lambda r: -r[2])[:n + 8]
    return {"profiled_s": [total], "own": [(name, tt, tt / total, nc) for name, tt, _ct, nc in own],
            "cumulative": [(name, ct, ct / total, nc) for name, _tt, ct, nc in cum]}


def start_profile(url: str, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--profile-child", url,
                             str(workdir / "state")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT))


def profile_result(proc: subprocess.Popen) -> dict[str, Any]:
    out, err = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"profile child failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    store: str
    seeded: Seeded
    cold: list[Scrape] = field(default_factory=list)  # first scrapes after a restart on the unchanged store
    cold_ready: list[float] = field(default_factory=list)  # health answered -> that scrape's last byte
    warm: list[Scrape] = field(default_factory=list)
    first_figures: float = float("nan")  # first start: health answered -> first 200
    first_refused: int = 0  # 503 answers before it
    warm_cpu: float = float("nan")  # collector CPU seconds per wall second over the warm scrapes
    profile: Optional[dict[str, Any]] = None


def measure(stores: dict[str, str], workdirs: dict[str, Path], results: dict[str, StoreResult], args) -> None:
    # first start and warm: both processes up, scrapes alternating between them, each past the refresh interval
    running = {name: Collector(url, workdirs[name], name) for name, url in stores.items()}
    try:
        for c in running.values():
            c.wait_ready()
        last: dict[str, float] = {}
        for name, c in running.items():
            r = results[name]
            r.first_figures, r.first_refused, first = c.first_figures()
            last[name] = first.started
        cpu = {name: (c.cpu_seconds(), time.monotonic()) for name, c in running.items()}
        for _ in range(args.runs):
            for name, c in running.items():
                wait = last[name] + CACHE_SECONDS + 0.5 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                s = c.scrape()
                assert s is not None
                last[name] = s.started
                prev = results[name].warm[-1].snapshot_at if results[name].warm else None
                if prev is not None and s.snapshot_at == prev:
                    raise SystemExit(f"{name}: no newer background read within {CACHE_SECONDS + 0.5:g} s")
                results[name].warm.append(s)
        for name, c in running.items():
            results[name].warm_cpu = (c.cpu_seconds() - cpu[name][0]) / (time.monotonic() - cpu[name][1])
    finally:
        for c in running.values():
            c.stop()
    # cold: restarts on the unchanged store, alternating stores; each serves its kept rendering
    for _ in range(args.cold):
        for name, url in stores.items():
            c = Collector(url, workdirs[name], name)
            try:
                c.wait_ready()
                t = time.monotonic()
                s = c.scrape()
                assert s is not None
                results[name].cold_ready.append(time.monotonic() - t)
                results[name].cold.append(s)
            finally:
                c.stop()


def fmt_s(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def render(results: dict[str, StoreResult], args, loads: dict[str, str], started: str, seconds: float) -> str:
    labels = {"sqlite": "SQLite (file, WAL)", "postgresql": "PostgreSQL 15 (127.0.0.1, own database)"}
    lines = [
        f"`python bench/metrics_store_bench.py --hosts {args.hosts} --systems {args.systems} --runs {args.runs} "
        f"--cold {args.cold} --stores {args.stores}{' --profile' if args.profile else ''}`, run {started} "
        f"({seconds / 60:.0f} min in all).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other helpers' work (client, collector "
        f"and PostgreSQL on the same cores), {platform.python_implementation()} {platform.python_version()}; "
        f"load average (1/5/15 min) before seeding {loads['start']}, before the scrapes {loads['measure']}, "
        f"after {loads['end']}.",
        "",
        f"Store: {args.hosts:,} hosts on {args.systems} level-3 systems in {DEPARTMENTS} departments, each host "
        f"enrolled with its own key and with one stored report of `{BASELINE}` (the real engine over fixture root "
        f"`{FIXTURE_ROOT}`, {FLIPS} statuses flipped per host) ingested by the collector's Ingestor; the failing "
        f"checks opened findings. The collector is `sentinel collector` in its own process (uvicorn, one worker, "
        f"plain HTTP on 127.0.0.1, metrics_cache_seconds {CACHE_SECONDS:g}); GET /metrics with Prometheus's "
        "Accept header (OpenMetrics) and the bearer token, timed by the client (httpx) from request to the last "
        "byte. The collector reads and renders the stored state in the background every "
        f"{CACHE_SECONDS:g} s (sentinel/collector/metrics_stored.py); a scrape serves the last rendering. "
        "First start = the collector's first start on the store (nothing kept): health answered -> first figures. "
        f"Warm = scrapes of the running process more than {CACHE_SECONDS:g} s apart, each showing a newer read; "
        "age = how old the state shown was at the scrape. Cold = the first scrape after a restart on the "
        "unchanged store (each a new process; its kept rendering is served); the two stores' processes ran side "
        "by side, their scrapes alternating.",
        "",
        f"| store | seeded rows (not timed as a result) | series | body | cold scrape (median of {args.cold}) | "
        f"warm scrape (median of {args.runs}) | target {TARGET_S:g} s cold / warm | age of the state shown "
        "(median, max) | background read + render (median) | collector CPU while warm | first start: first "
        "figures after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        cold = statistics.median(s.wall for s in r.cold)
        warm = statistics.median(s.wall for s in r.warm)
        read = statistics.median(s.store_read for s in r.warm)
        ages = [s.age for s in r.warm]
        last = r.warm[-1]
        verdict = f"{'met' if cold <= TARGET_S else 'MISSED'} / {'met' if warm <= TARGET_S else 'MISSED'}"
        lines.append(f"| {labels.get(name, name)} | {r.seeded.runs:,} runs, {r.seeded.results:,} results, "
                     f"{r.seeded.findings_open:,} open findings | {last.series:,} | {last.body_bytes / 1e6:.1f} MB | "
                     f"{cold:.2f} s | {warm:.2f} s | {verdict} | {statistics.median(ages):.1f} s, {max(ages):.1f} s | "
                     f"{read:.2f} s | {r.warm_cpu:.0%} of a core | {r.first_figures:.1f} s "
                     f"({r.first_refused} scrapes answered 503 before) |")
    lines.append("")
    lines.append("All scrapes (wall seconds; read = sentinel_snapshot_duration_seconds in the same answer):")
    lines.append("")
    for name, r in results.items():
        lines.append(f"- {name}: cold {fmt_s([s.wall for s in r.cold])} (health -> last byte "
                     f"{fmt_s(r.cold_ready)}); warm {fmt_s([s.wall for s in r.warm])} (read "
                     f"{fmt_s([s.store_read for s in r.warm])}; age {fmt_s([s.age for s in r.warm])}). Seeding took "
                     f"{r.seeded.seconds:.0f} s (enrollment {r.seeded.detail['enroll_s']:.0f} s of it).")
    for name, r in results.items():
        if not r.profile:
            continue
        lines += ["", f"cProfile of the background read ({name}; build_snapshot and both formats rendered, in a fresh "
                  "process, once cold and once warm; run while the next store was seeded, and the profiler itself "
                  "slows the calls, so only the shares count):", ""]
        for label in ("cold", "warm"):
            p = r.profile[label]
            lines.append(f"- {label}: {p['wall']:.2f} s wall under the profiler. Own time: "
                         + "; ".join(f"`{n}` {share:.0%}" for n, _t, share, _c in p["top"]["own"][:8]) + ".")
            lines.append("  Cumulative: " + "; ".join(f"`{n}` {share:.0%}" for n, _t, share, _c in
                                                      p["top"]["cumulative"] if share < 0.999)[:1500] + ".")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--systems", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7, help="warm scrapes per store")
    ap.add_argument("--cold", type=int, default=3, help="cold scrapes per store (a collector restart each)")
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--profile", action="store_true", help="add one cProfile'd cold and warm call per store")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave bench/RESULTS.md alone")
    ap.add_argument("--profile-child", nargs=2, metavar=("URL", "STATE_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile_child:
        return profile_child(*args.profile_child)
    names = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(names) - {"sqlite", "postgresql"}
    if unknown:
        ap.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t_all = time.perf_counter()
    loads = {"start": load_text()}
    with tempfile.TemporaryDirectory(prefix="metrics-store-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        template = report_template(workdir)
        stores, workdirs, results = {}, {}, {}
        profiling: dict[str, subprocess.Popen] = {}
        for name in names:
            workdirs[name] = workdir / name
            workdirs[name].mkdir()
            url = stack.enter_context(sqlite_store(workdirs[name]) if name == "sqlite" else postgres_store())
            stores[name] = url
            print(f"seeding {name} ...", file=sys.stderr, flush=True)
            seeded = seed(url, workdirs[name], template, args.hosts, args.systems)
            print(f"  {seeded}", file=sys.stderr, flush=True)
            results[name] = StoreResult(name, seeded)
            if args.profile and not profiling:
                # profiled while the next store is seeded (its wall time is no result; the shares are)
                profiling[name] = start_profile(url, workdirs[name])
        for name, proc in profiling.items():
            profile = results[name].profile = profile_result(proc)
            print(f"  profiled {name}: cold {profile['cold']['wall']:.1f} s, warm "
                  f"{profile['warm']['wall']:.1f} s under cProfile", file=sys.stderr, flush=True)
        loads["measure"] = load_text()
        measure(stores, workdirs, results, args)
        loads["end"] = load_text()
    body = render(results, args, loads, started, time.perf_counter() - t_all)
    if not args.no_write:
        write_section(SECTION, f"/metrics with the store read at {args.hosts:,} hosts (`bench/metrics_store_bench.py`)",
                      body)
    print(body)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
