"""The objects job's one check child (sentinel/agent/runner.py ObjectChild): discovery and each object's baseline
answered by a fork of one `--serve` child. Each answer is the report the one-child-per-run path makes; a bad
request is a clear error and the child goes on; a run past its budget is killed with its process group and the
next request gets a new child; each object is judged in a process of its own, which is gone after its answer."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import psutil
import pytest

from sentinel.agent.runner import ObjectChild, RunError, discover_isolated, run_isolated

from .test_agent_runner import _children_with

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
REDIS_BASELINE = OBJECTS / "sentinel-test-redis.yaml"
# the process that ran a check: its pid and parent pid, as the probe read them from /proc/self/stat
PID_CHECK = """
      - id: t-own-pids
        title: {zh: 进程号, en: own pids}
        probe: file.regex
        params: {paths: [/proc/self/stat], pattern: '^(\\d+ \\(.*\\) \\S+ \\d+)', group: 1, pick: first}
        expect: {absent: false}
        severity: low
        rationale: {zh: 理由, en: why}
        remediation: {zh: 整改, en: fix}
"""
HANGING_CHECK = """
      - id: t-read-fifo
        title: {zh: 读管道, en: read a fifo}
        probe: file.regex
        params: {paths: [%s], pattern: "x"}
        expect: {empty: true}
        severity: low
        rationale: {zh: 理由, en: why}
        remediation: {zh: 整改, en: fix}
"""


@pytest.fixture
def root(tmp_path):
    dest = tmp_path / "root"
    shutil.copytree(OBJECTS / "debian12-objects", dest, symlinks=True)
    return dest


def _statuses(report: dict) -> list[tuple[str, str, object]]:
    return [(r["check_id"], r["status"], r["observed"]) for r in report["results"]]


def test_answers_are_the_one_child_per_run_reports(root):
    with ObjectChild(nice=0, ionice_idle=False, root=str(root)) as child:
        found = child.discover(120, level=3)
        redis = [d["object"] for d in found["objects"] if d["object"]["kind"] == "redis"]
        assert [o["instance"] for o in redis] == ["6379", "6380"]
        reports = [child.run(str(REDIS_BASELINE), rid, 120, target) for rid, target in
                   (("r-6379", redis[0]), ("r-6380", redis[1]))]
    alone = discover_isolated(120, nice=0, ionice_idle=False, root=str(root), level=3)
    assert found == alone
    for report, target in zip(reports, redis, strict=True):
        single = run_isolated(str(REDIS_BASELINE), "r-single", 120, nice=0, ionice_idle=False, root=str(root),
                              target=target)
        assert report["object"] == single["object"] == target
        assert _statuses(report) == _statuses(single) and report["summary"] == single["summary"]
    assert [r["report_id"] for r in reports] == ["r-6379", "r-6380"]


def test_each_object_runs_in_a_fork_of_its_own(tmp_path):
    path = tmp_path / "pids.yaml"
    path.write_text(REDIS_BASELINE.read_text(encoding="utf-8") + PID_CHECK, encoding="utf-8")
    target = {"kind": "redis", "instance": "6379", "name": "db01 Redis (6379)", "port": 6379}
    # the live host, for its /proc (the baseline reads files only: it connects to no server)
    with ObjectChild(nice=0, ionice_idle=False) as child:
        seen = []
        for _ in range(2):
            report = child.run(str(path), str(uuid.uuid4()), 120, target)
            pid, _, _, ppid = report["results"][-1]["observed"].split()[-4:]
            seen.append((int(pid), int(ppid)))
            assert not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
        server = child._proc
        assert server is not None
    assert seen[0][0] != seen[1][0] and seen[0][1] == seen[1][1] == server.pid  # two forks of the one child
    assert server.poll() is not None  # the child ended with the job


def test_a_bad_request_is_a_clear_error_and_the_child_goes_on(root):
    target = {"kind": "redis", "instance": "6379", "port": 6379}
    with ObjectChild(nice=0, ionice_idle=False, root=str(root)) as child:
        with pytest.raises(RunError, match="no-such-baseline: unknown baseline id"):
            child.run("no-such-baseline", "r-1", 120, target)
        with pytest.raises(RunError, match="judges redis objects, not mysql"):
            child.run(str(REDIS_BASELINE), "r-2", 120, {"kind": "mysql", "instance": "3306"})
        first = child._proc
        report = child.run(str(REDIS_BASELINE), "r-3", 120, target)
        assert report["report_id"] == "r-3" and child._proc is first  # the same child answered


def test_a_run_past_its_budget_is_killed_and_the_next_gets_a_new_child(root, tmp_path):
    marker = str(uuid.uuid4())  # in the child's argv (its --root), to find leftovers
    marked_root = tmp_path / marker
    root.rename(marked_root)
    os.mkfifo(marked_root / "stuck.fifo")  # opening it for reading blocks until a writer comes: a probe that hangs
    hang = tmp_path / "hang.yaml"
    hang.write_text(REDIS_BASELINE.read_text(encoding="utf-8") + HANGING_CHECK % "/stuck.fifo", encoding="utf-8")
    target = {"kind": "redis", "instance": "6379", "port": 6379}
    with ObjectChild(nice=0, ionice_idle=False, root=str(marked_root)) as child:
        start = time.monotonic()
        with pytest.raises(RunError, match="no report within the time budget of 2 s; the run was killed"):
            child.run(str(hang), "r-hang", 2, target)
        assert time.monotonic() - start < 15
        assert _children_with(marker) == []  # the child and the hung fork are gone
        report = child.run(str(REDIS_BASELINE), "r-next", 120, target)
        assert report["report_id"] == "r-next"
    assert _children_with(marker) == []


def test_a_child_that_ended_between_requests_is_replaced(root):
    target = {"kind": "redis", "instance": "6379", "port": 6379}
    with ObjectChild(nice=0, ionice_idle=False, root=str(root)) as child:
        child.run(str(REDIS_BASELINE), "r-1", 120, target)
        first = child._proc
        assert first is not None
        os.killpg(first.pid, 9)  # as stop_all() kills the agent's children
        first.wait(10)
        report = child.run(str(REDIS_BASELINE), "r-2", 120, target)
        assert report["report_id"] == "r-2" and child._proc is not None and child._proc.pid != first.pid
        assert first.stdout is not None and first.stdout.closed  # the ended child was closed, not leaked
