"""The engine never passes what it could not determine, and never crashes on a bad probe or host."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.hostview import LiveHost, RootHost
from sentinel.model import Status

BASE = """\
id: engine-test
version: "1"
title: {zh: 引擎测试, en: engine test}
level: 3
os_families: [debian, rhel]
covers: [ces.auth]
items:
  - ref: ces.auth.identify
    checks:
%s
"""

CHECK = """\
      - id: %(id)s
        title: {zh: 检查, en: check}
        probe: %(probe)s
        params: %(params)s
        expect: %(expect)s
        severity: medium
        rationale: {zh: 理由, en: why}
        remediation: {zh: 整改, en: fix}
"""


def baseline(tmp_path, *checks):
    body = "".join(CHECK % c for c in checks)
    path = tmp_path / "engine.yaml"
    path.write_text(BASE % body, encoding="utf-8")
    return load_baseline(path)


def make_root(base, files: dict):
    for rel, text in files.items():
        path = os.path.join(base, rel.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(text))
    return base


def test_timed_out_command_is_an_error_not_a_pass(tmp_path):
    spec = baseline(tmp_path, dict(id="slow", probe="command.output",
                                   params="{argv: [sleep, '5'], timeout: 0.3}", expect="{absent: true}"))
    report = run_baseline(spec, LiveHost())
    r = report.results[0]
    assert r.status is Status.ERROR
    assert "timed out" in r.reason
    assert report.items[0].verdict.value == "待核查"
    assert report.summary.pass_rate == 0.0


def test_unreadable_file_is_an_error_with_the_reason(tmp_path):
    """The real CLI, as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (as a confined agent may run), against a
    root whose login.defs belongs to another user with mode 0600: `error` naming the file, exit 1, never a pass."""
    if not shutil.which("setpriv"):
        pytest.fail("setpriv (util-linux) is required for this test")
    root = make_root(str(tmp_path / "root"), {"/etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
                                               "/etc/login.defs": "PASS_MAX_DAYS 90\n"})
    os.chown(os.path.join(root, "etc/login.defs"), 65534, 65534)
    os.chmod(os.path.join(root, "etc/login.defs"), 0o600)
    spec_path = tmp_path / "b.yaml"
    spec_path.write_text(BASE % (CHECK % dict(id="max-days", probe="config.value",
                                              params="{paths: [/etc/login.defs], key: PASS_MAX_DAYS}",
                                              expect="{le: 90}")), encoding="utf-8")
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                           "sentinel.cli", "check", "--baseline", str(spec_path), "--root", root, "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)["results"][0]
    assert result["status"] == "error"
    assert "permission denied" in result["reason"] and "/etc/login.defs" in result["reason"]


def test_probe_bug_becomes_an_error_result(tmp_path, monkeypatch):
    from sentinel import probe as probe_mod

    spec = baseline(tmp_path, dict(id="boom", probe="file.exists", params="{paths: [/x]}", expect="{empty: true}"))
    real = probe_mod.registry()["file.exists"]

    def broken(ctx, params):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(probe_mod._REGISTRY, "file.exists", real.__class__(real.kind, real.params, broken,
                                                                           real.live_only, real.doc))
    root = make_root(str(tmp_path / "root"), {"/etc/os-release": "ID=debian\n"})
    r = run_baseline(spec, RootHost(root)).results[0]
    assert r.status is Status.ERROR and "internal error in probe file.exists: ZeroDivisionError" in r.reason


def test_live_only_check_is_not_applicable_offline_and_its_item_waits_for_a_person(tmp_path):
    """A fact only the running host shows (here its processes) exists all the same: offline its result is not
    applicable, marked `offline`, and an item judged by nothing else is 待核查, never 不适用 (the requirement
    applies; nobody has seen whether it is met)."""
    spec = baseline(tmp_path, dict(id="procs", probe="process.running", params="{names: [sshd]}",
                                   expect="{empty: false}"))
    root = make_root(str(tmp_path / "root"), {"/etc/os-release": "ID=rocky\nVERSION_ID=9.4\n"})
    report = run_baseline(spec, RootHost(root))
    assert report.results[0].status is Status.NOT_APPLICABLE and report.results[0].offline
    assert report.items[0].verdict.value == "待核查"
    assert report.host.family == "rhel"
    # the same through the collector's reading of a stored body (scoring.rejudged_items over reduced results)
    from sentinel.scoring import rejudged_items
    from sentinel.store.assessment import ScoredResult
    reduced = [ScoredResult.model_validate(r.model_dump(mode="json")) for r in report.results]
    assert rejudged_items(report.items, reduced)[0].verdict.value == "待核查"


def test_a_fact_that_may_not_exist_offline_stays_not_applicable(tmp_path):
    """Not every offline not-applicable is unseen: a probe whose fact is absent on the host (not a live-host fact)
    keeps its item 不适用."""
    spec = baseline(tmp_path, dict(id="procs", probe="process.running", params="{names: [sshd]}",
                                   expect="{empty: false}"))
    root = make_root(str(tmp_path / "root"), {"/etc/os-release": "ID=rocky\nVERSION_ID=9.4\n"})
    report = run_baseline(spec.model_copy(update={"os_families": ["debian"]}), RootHost(root))
    assert report.results[0].status is Status.NOT_APPLICABLE and not report.results[0].offline
    assert report.items[0].verdict.value == "不适用"


def test_family_filter(tmp_path):
    spec_text = (BASE % (CHECK % dict(id="rh", probe="file.exists", params="{paths: [/etc/x]}",
                                      expect="{empty: true}"))).replace(
        "        severity: medium", "        severity: medium\n        os_families: [rhel]")
    path = tmp_path / "fam.yaml"
    path.write_text(spec_text, encoding="utf-8")
    spec = load_baseline(path)
    root = make_root(str(tmp_path / "root"), {"/etc/os-release": 'ID=uos\nVERSION_ID="20"\n',
                                               "/var/lib/dpkg/status": ""})
    r = run_baseline(spec, RootHost(root)).results[0]
    assert r.status is Status.NOT_APPLICABLE and "this host is debian" in r.reason


@pytest.mark.timeout(120)
def test_live_run_of_level3_baseline_on_this_machine_completes():
    proc = subprocess.run([sys.executable, "-m", "sentinel.cli", "check", "--format", "json"],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["baseline"]["id"] == "dengbao-l3-linux"
    assert len(report["results"]) >= 45
    assert not [r for r in report["results"] if r["reason"] and "internal error" in r["reason"]]
    for r in report["results"]:
        if r["status"] == "error":
            assert r["reason"], r
