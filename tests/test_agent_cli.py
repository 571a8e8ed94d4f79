"""`sentinel up`, `sentinel enroll` and `sentinel agent` as a user runs them (real processes, loopback only)."""
from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from sentinel.agent.config import BaselineSchedule, load_settings
from sentinel.agent.scheduler import build_scheduler
from sentinel.allinone import LocalCollector, UpError, install_site_baseline
from sentinel.wiring import exporters

from .test_agent_runner import BASELINE

SENTINEL = [sys.executable, "-m", "sentinel.cli"]


def _run(args, env=None, timeout=240, **kw):
    return subprocess.run(SENTINEL + args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_once_on_a_fresh_state_dir_then_again(tmp_path):
    state = tmp_path / "up"
    first = _run(["up", "--once", "--state-dir", str(state), "--lang", "en"])
    assert first.returncode in (0, 1), first.stderr
    assert "dengbao-l3-linux" in first.stdout and "stored as run 1:" in first.stdout
    assert re.search(r"score [\d.]+", first.stdout)
    assert (state / "admin-token").stat().st_mode & 0o777 == 0o600
    token = (state / "admin-token").read_text().strip()
    assert token not in first.stdout + first.stderr
    (state / "admin-token").unlink()  # lost: the next run makes a new one (and revokes the old)
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    second = _run(["up", "--once", "--state-dir", str(state), "--lang", "en", "--baseline", str(quick)])
    assert second.returncode in (0, 1), second.stderr
    assert "stored as run 2:" in second.stdout
    with sqlite3.connect(state / "sentinel.db") as db:  # one agent, enrolled once
        assert db.execute("SELECT COUNT(*), MIN(state) FROM agents").fetchone() == (1, "enrolled")
    assert (state / "admin-token").read_text().strip() not in ("", token)


def test_up_refuses_a_bad_baseline_and_a_public_address(tmp_path):
    bad = _run(["up", "--once", "--state-dir", str(tmp_path / "a"), "--baseline", "no-such-baseline"])
    assert bad.returncode == 2 and "no-such-baseline: unknown baseline id" in bad.stderr
    with pytest.raises(UpError, match="only on a loopback address"):
        LocalCollector(tmp_path / "b", exporters(), host="0.0.0.0")


def test_up_serves_the_api_and_stops_on_sigterm(tmp_path):
    state, port = tmp_path / "up", _free_port()
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    proc = subprocess.Popen(SENTINEL + ["up", "--state-dir", str(state), "--port", str(port), "--baseline", str(quick)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        runs = []
        while time.monotonic() < deadline and not runs:
            time.sleep(0.5)
            if proc.poll() is not None:
                pytest.fail(f"sentinel up exited early: {proc.stderr.read()}")
            token_file = state / "admin-token"
            if not token_file.exists():
                continue
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs",
                              headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
            except httpx.TransportError:
                continue
            assert r.status_code == 200, r.text
            runs = r.json()
        assert runs and runs[0]["baseline_id"] == "agent-runner-test"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"collector API http://127.0.0.1:{port}/api/v1" in err and "stopped" in err


def test_enroll_and_agent_once_from_the_command_line(tmp_path):
    collector = LocalCollector(tmp_path / "collector", exporters())
    collector.prepare()
    token, _ = collector.bootstrap(want_token=True)
    collector.start()
    try:
        baseline = tmp_path / "quick.yaml"
        baseline.write_text(BASELINE % "", encoding="utf-8")
        install_site_baseline(tmp_path / "collector", str(baseline))  # the collector judges by its own copy
        config = tmp_path / "agent.yaml"
        config.write_text(f"baselines:\n  - {{baseline: {baseline}, interval: 3600}}\n")
        state = tmp_path / "agent"
        bad = tmp_path / "bad.yaml"
        bad.write_text("jitter: -1\n")
        refused = _run(["agent", "--once", "--config", str(bad), "--state-dir", str(state)])
        assert refused.returncode == 2 and "jitter: Input should be greater than or equal to 0" in refused.stderr
        missing = _run(["agent", "--once", "--config", str(config), "--state-dir", str(state)])
        assert missing.returncode == 2 and "not enrolled" in missing.stderr
        enrolled = _run(["enroll", "--collector", collector.url, "--state-dir", str(state)],
                        env={"SENTINEL_ENROLL_TOKEN": token})
        assert enrolled.returncode == 0, enrolled.stderr
        assert "enrolled as agent" in enrolled.stdout and token not in enrolled.stdout + enrolled.stderr
        once = _run(["agent", "--once", "--config", str(config), "--state-dir", str(state)])
        assert once.returncode == 0, once.stderr
        assert token not in once.stderr
        # one line per baseline run, whatever the log level: what ran, its result, where it was stored
        cycle = [line for line in once.stderr.splitlines() if "stored as run" in line]
        assert len(cycle) == 1 and f"baseline {baseline}: score" in cycle[0] and collector.url in cycle[0], once.stderr
        with collector.db.read() as conn:
            rows = conn.exec_driver_sql("SELECT kind FROM reports ORDER BY id").fetchall()
        assert sorted(k for (k,) in rows) == ["host_report", "inventory", "utilisation"]
    finally:
        collector.close()


def test_schedule_wiring(tmp_path):
    settings = load_settings(None, default_file=False, state_dir=tmp_path, jitter=300, baselines=[
        BaselineSchedule(baseline="a", interval=3600), BaselineSchedule(baseline="b", interval=120, jitter=500)],
        objects={"discover": True})

    class Wiring:  # the scheduler only needs the settings and the job callables (scheduler.Jobs)
        def __init__(self):
            self.run_baseline = self.take_sample = self.send_utilisation = self.send_inventory = lambda *a: None
            self.run_objects = lambda: None

    scheduler = build_scheduler(settings, Wiring())
    scheduler.start(paused=True)
    try:
        jobs = {j.id: j for j in scheduler.get_jobs()}
        assert set(jobs) == {"baseline-0", "baseline-1", "sample", "utilisation", "inventory", "objects"}
        assert jobs["objects"].executor == "checks"  # never at the same time as a baseline run
        b0, b1 = jobs["baseline-0"], jobs["baseline-1"]
        assert (b0.executor, b1.executor) == ("checks", "checks")
        assert b0.trigger.interval.total_seconds() == 3600 and b0.trigger.jitter == 300
        assert b1.trigger.jitter == 60  # capped at half the interval
        assert b0.args[0].baseline == "a" and b0.max_instances == 1 and b0.coalesce
        assert abs(time.time() - b0.next_run_time.timestamp()) < 60  # once at start
        assert jobs["utilisation"].next_run_time.timestamp() - time.time() > 800  # not before samples exist
    finally:
        scheduler.shutdown(wait=False)
