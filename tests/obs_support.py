"""Shared helpers of the metrics/alerting/webhook tests: a realistic snapshot, loopback servers, and real
Prometheus / Alertmanager processes (Debian packages `prometheus`, `prometheus-alertmanager`) bound to
127.0.0.1 on free ports with temporary storage, stopped by the caller's finalizer."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import httpx
import pytest

from sentinel.metrics_model import (
    ZOMBIE_VERDICTS,
    CertificateMetrics,
    CheckSeries,
    DomesticMetrics,
    DRMetrics,
    ExposedService,
    HostMetrics,
    IngestMetrics,
    MetricsSnapshot,
    ObjectMetrics,
    ProbeDurations,
    ScanMetrics,
    SystemMetrics,
    WebsiteMetrics,
    ZombieMetrics,
)

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, ports: list[int], what: str, timeout: float = 20.0,
                   interval: float = 0.1, detail: Callable[[], str] = lambda: "") -> None:
    """Until the server `proc` (started with stderr=PIPE, text) accepts on each loopback port; an AssertionError
    naming `what` with its stderr (and `detail()`) if it exits first, or naming the port after `timeout` s."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                said = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"{what} exited: {said}{detail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what} did not listen on {port}") from None
                time.sleep(interval)


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed (apt-get install prometheus prometheus-alertmanager; .ci/run does)")
    return path


# ---- a realistic snapshot ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)

SYSTEMS = [
    # department, system, level, label, score, conclusion, high risk, hosts
    ("财政局", "非税收入管理系统", 3, "S3A3", 82.5, "良", 0, 4),
    ("财政局", "预算一体化平台", 3, "S3A2", 64.0, "差", 2, 3),
    ("卫健委", "全民健康信息平台", 3, "S2A3", 91.0, "优", 0, 5),
    ("卫健委", "互联网医院", 2, "S2A2", 75.5, "中", 0, 2),
    ("公安局", "视频监控联网平台", 4, "S4A4", 88.0, "良", 0, 6),
    ("公安局", "政务外网门户", 2, "S2A1", None, "待定", 0, 1),
]


def realistic_snapshot(now: datetime = NOW, with_checks: bool = True) -> MetricsSnapshot:
    systems = []
    for i, (dept, name, level, label, score, concl, high_risk, nhosts) in enumerate(SYSTEMS):
        hosts = []
        for h in range(nhosts):
            checks = [CheckSeries(check_id=f"l3.{clause}.{n}", clause=clause, severity=sev,
                                  status="fail" if (h + n) % 5 == 0 else "pass", duration_seconds=0.002 * (n + 1))
                      for n, (clause, sev) in enumerate([("8.1.4.1", "high"), ("8.1.4.2", "medium"),
                                                         ("8.1.4.3", "low"), ("8.1.4.4", "critical")])]
            # an advisory check (issue 14) that fails everywhere: shown, but no failure anywhere
            checks.append(CheckSeries(check_id="l3.8.1.4.1.advisory", clause="8.1.4.1", severity="medium",
                                      status="fail", duration_seconds=0.001, advisory=True))
            hosts.append(HostMetrics(
                name=f"{['app', 'db', 'web', 'gw', 'cam', 'mq'][h % 6]}-{h:02d}.sys{i}", score=score,
                pass_ratio=None if score is None else round(score / 100, 3), conclusion=concl,
                failing_checks={"high": h % 3, "low": 1}, high_risk_findings=1 if high_risk and h == 0 else 0,
                last_report=now - timedelta(minutes=5 + h), up=not (i == 1 and h == 2), run_duration_seconds=3.5 + h,
                os="Kylin Linux Advanced Server V10" if h % 2 else "openEuler 22.03 LTS",
                baseline=f"dengbao-l{level}-linux", agent_version="0.1.0", checks=checks if with_checks else [],
                # zombie-system detection (issue 16): every verdict somewhere, idle days where covered
                zombie_verdict=ZOMBIE_VERDICTS[(i + h) % 4], idle_days=None if h == 3 else (i * 3 + h) % 15,
                # a database host's MariaDB and Redis, a web host's Nginx: 测评对象 of their own (issue 15)
                objects=[ObjectMetrics(kind=kind, instance=where, name=f"host-{h:02d} {label} ({where})",
                                       baseline=f"dengbao-l{level}-{kind}", score=70.0 + h, pass_ratio=0.7,
                                       conclusion="中", failing_checks={"high": 1}, high_risk_findings=h % 2,
                                       run_duration_seconds=0.4)
                         for kind, where, label in {1: (("mysql", "3306", "MariaDB 10.11"),
                                                        ("redis", "6379", "Redis 7.0")),
                                                    2: (("nginx", "/etc/nginx/nginx.conf", "Nginx 1.22"),)
                                                    }.get(h % 6, ())]))
        systems.append(SystemMetrics(
            department=dept, name=name, level=level, label=label, score=score,
            pass_ratio=None if score is None else round(score / 100, 3), conclusion=concl,
            failing_checks={"critical": i % 2, "high": 2 + i, "medium": 3, "low": 5},
            failing_checks_by_clause={"8.1.4.1": 2, "8.1.4.2": i, "8.1.3.1": 1, "8.1.2.1": 0},
            high_risk_findings=high_risk, findings_open=3 + i, findings_fixed=10 * i,
            services_open=12 + i, services_forbidden=1 if i == 1 else 0,
            forbidden_services=[ExposedService(host="10.10.1.21", port=23, protocol="tcp", service="telnet")]
            if i == 1 else [],
            certificates=[CertificateMetrics(host=f"10.10.{i}.10", port=443,
                                             not_after=now + timedelta(days=20 + 30 * i))],
            scan=ScanMetrics(last_duration_seconds=12.5 + i, last_run=now - timedelta(hours=1),
                             last_success=now - timedelta(hours=1 if i != 3 else 30),
                             last_run_success=i != 3, failures_total=i),
            zombie=ZombieMetrics(verdict=ZOMBIE_VERDICTS[i % 4],
                                 review={1: "confirmed", 2: "dismissed"}.get(i)),
            # 国产化 (docs/domestic.md): counts per category, components by origin, hosts per 国密 state
            domestic=DomesticMetrics(
                hosts={c: 3 for c in ("os", "cpu", "database", "middleware", "crypto")},
                domestic_hosts={"os": i % 4, "cpu": 1, "database": 0, "middleware": 2, "crypto": 1},
                components={c: {"domestic": 1, "foreign": 2, "unrecognised": 0}
                            for c in ("os", "cpu", "database", "middleware", "crypto")},
                gm_tls={"configured": 1, "capable": 1, "none": 0, "unknown": 1}),
            # disaster recovery (issue 16): one system past its RPO, one unknown, one with a broken replica
            dr=DRMetrics(verdict="misses" if i == 1 else ("unknown" if i == 5 else "meets"),
                         rpo_seconds=None if i == 5 else 24 * 3600.0,
                         newest_local=None if i == 5 else now - timedelta(hours=30 if i == 1 else 3 + i),
                         newest_offsite=None if i == 5 else now - timedelta(hours=40 if i == 1 else 6 + i),
                         copies=None if i == 5 else 2, offsite_copies=None if i == 5 else 1,
                         replication_hosts={"streaming": 1 if i != 4 else 0, "broken": 1 if i == 4 else 0,
                                            "unknown": 0},
                         replication_lag_seconds=None if i in (4, 5) else 0.5 + i),
            # declared websites (issue 17): one vetoed, one passing, one not yet monitored
            websites=[WebsiteMetrics(name=f"portal-{i}", url=f"https://www{i}.example.gov.cn/",
                                     vetoed=i % 2 == 1 if i != 5 else None,
                                     last_round=now - timedelta(hours=2 + i) if i != 5 else None,
                                     last_round_duration_seconds=8.5 + i if i != 5 else None,
                                     availability_ratio=0.93 if i == 1 else (None if i == 5 else 0.998),
                                     open_findings={"veto": i % 2, "deduct": 3 + i, "security": i % 3},
                                     certificates=[(f"https://www{i}.example.gov.cn", now + timedelta(days=9 + 40 * i))]
                                     if i != 5 else [])],
            # the 通报 loop (issue 17): problems notified, some fixed, one system with overdue ones
            notice_problems={"open": i, "fixed": 2 * i, "overdue": 1 if i == 2 else 0},
            hosts=hosts))
    return MetricsSnapshot(
        generated_at=now, systems=systems,
        check_durations=[ProbeDurations.from_samples("file", [0.0004, 0.002, 0.003, 0.2]),
                         ProbeDurations.from_samples("command", [0.05, 0.4, 1.2, 7.5]),
                         ProbeDurations.from_samples("sockets", [])],
        ingest=IngestMetrics(reports_total={"host_report": 1520, "inventory": 40, "utilisation": 800},
                             errors_total={"schema": 3, "signature": 0, "stale": 2, "replay": 0}))


# ---- loopback HTTP servers -----------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records requests and answers from a scripted list (last one repeats)."""

    responses: list[tuple[int, object]] = field(default_factory=lambda: [(200, {"errcode": 0, "errmsg": "ok"})])
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._got = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._got:
                    n = len(receiver.requests)
                    receiver.requests.append(Recorded("POST", self.path, dict(self.headers), body))
                    receiver.times.append(time.monotonic())
                    status, answer = receiver.responses[min(n, len(receiver.responses) - 1)]
                    receiver._got.notify_all()
                data = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._got:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} request(s) within {timeout}s, got {len(self.requests)}")
                self._got.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsServer:
    """Serves a body/content type from `render()` at /metrics on 127.0.0.1, like the collector will."""

    def __init__(self, render: Callable[[Optional[str]], tuple[bytes, str]]) -> None:
        self.scrapes: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                outer.scrapes.append(self.headers.get("Accept", ""))
                body, ctype = render(self.headers.get("Accept"))
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- real Prometheus and Alertmanager ------------------------------------------------------------------


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def running(argv: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def prometheus(tmp: Path, config: str) -> Iterator[str]:
    """A Prometheus on 127.0.0.1:<free port> with `config` (YAML text); yields its base URL."""
    binary = need("prometheus")
    port = free_port()
    (tmp / "prometheus.yml").write_text(config)
    argv = [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"]
    base = f"http://{LOOPBACK}:{port}"
    with running(argv, base + "/-/ready", tmp / "prometheus.log"):
        yield base


@contextmanager
def alertmanager(tmp: Path, config: str = "route:\n  receiver: none\nreceivers:\n  - name: none\n") -> Iterator[str]:
    """An Alertmanager on 127.0.0.1:<free port>, clustering off (no gossip port); yields its base URL."""
    binary = need("prometheus-alertmanager")
    port = free_port()
    (tmp / "alertmanager.yml").write_text(config)
    argv = [binary, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--cluster.listen-address=", "--log.level=warn"]
    base = f"http://{LOOPBACK}:{port}"
    with running(argv, base + "/-/ready", tmp / "alertmanager.log"):
        yield base


def eventually(fn: Callable[[], object], timeout: float = 15.0, interval: float = 0.2, what: str = "condition"):
    """Calls fn until it returns a truthy value; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")


SHIPPED_AM_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"
SHIPPED_RELAY_URL = "https://collector:8443/api/v1/alertmanager/webhook"
SHIPPED_RELAY_DIR = "/etc/alertmanager/sentinel"


def shipped_am_config(tmp: Path, relay_url: Optional[str] = None, *, tls_dir: Optional[Path] = None,
                      token: str = "relay-token-for-the-tests") -> str:
    """deploy/alertmanager/alertmanager.yml as shipped, with what lives elsewhere in a deployment put in
    `tmp`: the relay token and the collector's CA (`tls_dir`'s ca.crt, or one made here), and, if given,
    the relay URL (a local receiver's, or a collector on loopback). Nothing else changes."""
    from sentinel.collector.tls import init_pki

    files = tmp / "am-sentinel"
    files.mkdir(parents=True, exist_ok=True)
    (files / "relay-token").write_text(token + "\n")
    if tls_dir is None:
        tls_dir = tmp / "am-ca"
        init_pki(tls_dir, names=[LOOPBACK])
    (files / "ca.crt").write_bytes((tls_dir / "ca.crt").read_bytes())
    text = SHIPPED_AM_CONFIG.read_text(encoding="utf-8")
    assert SHIPPED_RELAY_URL in text and SHIPPED_RELAY_DIR in text
    text = text.replace(SHIPPED_RELAY_DIR, str(files))
    if relay_url is not None:
        text = text.replace(SHIPPED_RELAY_URL, relay_url)
    return text
