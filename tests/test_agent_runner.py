"""A baseline run in a child process: a report, a clear error, or a kill when the time budget runs out."""
from __future__ import annotations

import os
import time
import uuid

import psutil
import pytest

from sentinel.agent.runner import RunError, run_isolated

BASELINE = """\
id: agent-runner-test
version: "1"
title: {zh: 代理运行测试, en: agent runner test}
level: 3
os_families: [debian, rhel]
covers: [ces.auth.identify]
items:
  - ref: ces.auth.identify
    checks:
          - id: t-passwd-exists
            title: {zh: 口令文件存在, en: passwd exists}
            probe: file.exists
            params: {paths: [/etc/passwd]}
            expect: {empty: false}
            severity: low
            rationale: {zh: 理由, en: why}
            remediation: {zh: 整改, en: fix}
%s
"""

HANGING_CHECK = """\
          - id: t-read-fifo
            title: {zh: 读管道, en: read a fifo}
            probe: file.regex
            params: {paths: [%s], pattern: "x"}
            expect: {empty: true}
            severity: low
            rationale: {zh: 理由, en: why}
            remediation: {zh: 整改, en: fix}
"""


NICE_CHECK = """\
          - id: t-own-nice
            title: {zh: 进程优先级, en: own niceness}
            probe: file.regex
            params: {paths: [/proc/self/stat], pattern: '^\\d+ \\(.*\\) \\S+ (?:\\S+ ){15}(-?\\d+)', group: 1,
                     pick: first}
            expect: {absent: false}
            severity: low
            rationale: {zh: 理由, en: why}
            remediation: {zh: 整改, en: fix}
"""


def _children_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info.get("cmdline") or []):
            found.append(p)
    return found


def test_report_from_the_child_at_low_priority(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(BASELINE % NICE_CHECK, encoding="utf-8")
    rid = str(uuid.uuid4())
    report = run_isolated(str(path), rid, budget=120, nice=10)
    assert report["report_id"] == rid and report["baseline"]["id"] == "agent-runner-test"
    assert [r["status"] for r in report["results"]] == ["pass", "pass"]
    # the probe read the child's own /proc/self/stat: the checks ran at the agent's niceness + 10
    assert int(report["results"][1]["observed"]) == min(os.nice(0) + 10, 19)
    assert report["host"]["hostname"] == os.uname().nodename


def test_the_child_runs_the_installed_sentinel_whatever_the_working_directory(tmp_path, monkeypatch):
    """An agent started in a directory holding a `sentinel/` (a source checkout, whose sentinel.baselines is
    mapped only in the installed layout, or anything a writable directory holds) runs the installed package:
    `python -m` would put the working directory first on the child's sys.path."""
    planted = tmp_path / "cwd" / "sentinel"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('the planted sentinel ran')\n", encoding="utf-8")
    path = tmp_path / "b.yaml"
    path.write_text(BASELINE % NICE_CHECK, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "cwd")
    report = run_isolated(str(path), str(uuid.uuid4()), budget=120, nice=10)
    assert [r["status"] for r in report["results"]] == ["pass", "pass"]


def test_unusable_baseline_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="no-such-baseline: unknown baseline id"):
        run_isolated("no-such-baseline", str(uuid.uuid4()), budget=120)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: 1\n", encoding="utf-8")
    with pytest.raises(RunError, match=r"bad\.yaml:\d+"):
        run_isolated(str(bad), str(uuid.uuid4()), budget=120)


def test_hung_probe_is_killed_at_the_time_budget(tmp_path):
    fifo = tmp_path / "stuck.fifo"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: a probe that hangs
    path = tmp_path / "hang.yaml"
    path.write_text(BASELINE % (HANGING_CHECK % fifo), encoding="utf-8")
    rid = str(uuid.uuid4())
    start = time.monotonic()
    with pytest.raises(RunError, match="no report within the time budget of 2 s; the run was killed"):
        run_isolated(str(path), rid, budget=2)
    assert time.monotonic() - start < 15
    assert _children_with(rid) == []
