"""A newcomer's first hour (issue 11): one state directory for every command, `sentinel up --once` saying
what it found and what its exit code means, `--version`, and what the long-running `up` prints.

Real processes, loopback only, temp state directories.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest

from sentinel import __version__
from sentinel.agent.config import load_settings
from sentinel.collector.settings import CollectorSettings
from sentinel.up_summary import print_once

from .process_helpers import terminate
from .test_agent_runner import BASELINE

SENTINEL = [sys.executable, "-m", "sentinel.cli"]
STATE_VARS = ("SENTINEL_STATE_DIR", "SENTINEL_COLLECTOR_STATE_DIR", "SENTINEL_AGENT_STATE_DIR",
              "SENTINEL_COLLECTOR_DATABASE_URL")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STATE_VARS}
    return {**env, **extra}


def _run(args, env: dict, timeout: float = 240):
    return subprocess.run(SENTINEL + args, capture_output=True, text=True, timeout=timeout, env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- --version ----------------------------------------------------------------------------------


def test_version_alone_prints_the_version():
    proc = _run(["--version"], _env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"sentinel {__version__}"
    assert "Missing command" not in proc.stderr


# ---- one state directory -----------------------------------------------------------------------


def test_defaults_follow_sentinel_state_dir(tmp_path, monkeypatch):
    for name in STATE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENTINEL_STATE_DIR", str(tmp_path / "state"))
    assert CollectorSettings().state_dir == tmp_path / "state"
    assert CollectorSettings().db_url == f"sqlite:///{tmp_path / 'state' / 'sentinel.db'}"
    assert load_settings(None, default_file=False).state_dir == tmp_path / "state" / "agent"
    # the part-specific variables and the flags still win
    monkeypatch.setenv("SENTINEL_COLLECTOR_STATE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("SENTINEL_AGENT_STATE_DIR", str(tmp_path / "a"))
    assert CollectorSettings().state_dir == tmp_path / "c"
    assert load_settings(None, default_file=False).state_dir == tmp_path / "a"
    assert CollectorSettings(state_dir=tmp_path / "flag").state_dir == tmp_path / "flag"


def test_a_command_without_a_database_says_where_it_looked(tmp_path):
    state = tmp_path / "nothing-here"
    proc = _run(["department", "list"], _env(SENTINEL_STATE_DIR=str(state)), timeout=60)
    assert proc.returncode == 2
    assert f"no sentinel database at {state / 'sentinel.db'}" in proc.stderr
    assert "from SENTINEL_STATE_DIR" in proc.stderr and "sentinel up" in proc.stderr
    assert not (state / "sentinel.db").exists()  # looking does not leave an empty database behind
    flag = _run(["system", "list", "--state-dir", str(tmp_path / "other")], _env(), timeout=60)
    assert flag.returncode == 2 and f"at {tmp_path / 'other' / 'sentinel.db'}" in flag.stderr
    assert "from --state-dir" in flag.stderr


def test_after_up_every_command_finds_the_same_state(tmp_path):
    """`up --once` with no flags but SENTINEL_STATE_DIR, then the admin commands and export with none either."""
    env = _env(SENTINEL_STATE_DIR=str(tmp_path / "state"))
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    up = _run(["up", "--once", "--baseline", str(quick), "--lang", "en"], env)
    assert up.returncode in (0, 1), up.stderr
    assert "stored as run 1:" in up.stdout
    assert (tmp_path / "state" / "sentinel.db").is_file() and (tmp_path / "state" / "agent" / "agent.json").is_file()
    listed = _run(["department", "list"], env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "\tlocal\t" in listed.stdout
    added = _run(["system", "add", "web", "--department", "local", "--level", "3", "--s-grade", "3",
                  "--a-grade", "2"], env, timeout=60)
    assert added.returncode == 0, added.stderr
    systems = _run(["system", "list"], env, timeout=60)
    assert "this-host" in systems.stdout and "web" in systems.stdout
    bundle = tmp_path / "this-host.zip"
    exported = _run(["export", "--system", "this-host", "--format", "zip", "-o", str(bundle)], env)
    assert exported.returncode == 0, exported.stderr
    shown = _run(["key", "show", "-o", str(tmp_path / "collector.pem")], env, timeout=60)  # the same key
    assert shown.returncode == 0, shown.stderr
    verified = _run(["verify", str(bundle), "--pubkey", str(tmp_path / "collector.pem")], env, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # no second database anywhere in the state directory
    assert sorted(p.name for p in (tmp_path / "state").rglob("*.db")) == ["sentinel.db"]


def test_up_refuses_the_old_layout_instead_of_starting_a_second_database(tmp_path):
    state = tmp_path / "old"
    (state / "collector").mkdir(parents=True)
    (state / "collector" / "sentinel.db").write_bytes(b"")
    proc = _run(["up", "--once", "--state-dir", str(state)], _env(), timeout=60)
    assert proc.returncode == 2
    assert "layout of an older `sentinel up`" in proc.stderr and str(state / "collector") in proc.stderr
    assert not (state / "sentinel.db").exists()


# ---- the summary of `up --once` --------------------------------------------------------------------


def _result(n: int, clause: str, status: str, severity: str, high_risk=None, reason=None) -> dict:
    return {"check_id": f"c{n:02d}", "clause": clause, "item": "a", "title": {"en": f"check {n}", "zh": f"检查 {n}"},
            "status": status, "severity": severity, "high_risk": high_risk, "reason": reason, "waiver": None}


def _report() -> dict:
    # 16 low/medium failures in early clauses, then the high-risk ones in the last clause: the old summary
    # (first 15 in clause order) never showed them
    results = [_result(i, f"8.1.4.{1 + i // 8}", "fail", "low" if i % 2 else "medium") for i in range(16)]
    results += [_result(20, "8.1.4.9", "fail", "high", high_risk="6.4.4.1", reason="found vsftpd 3.0.3"),
                _result(21, "8.1.4.9", "fail", "critical"),
                _result(22, "8.1.4.9", "error", "high", reason="cannot read /etc/shadow: permission denied"),
                _result(23, "8.1.4.9", "pass", "high")]
    items = [{"clause": "8.1.4.10", "item": "a", "verdict": "待核查", "checks": []},
             {"clause": "8.1.4.10", "item": "b", "verdict": "待核查", "checks": []},
             {"clause": "8.1.4.9", "item": "a", "verdict": "不符合", "checks": ["c20"]}]
    return {"summary": {"counts": {"pass": 1, "fail": 18, "error": 1}, "score": 40.0, "conclusion": "差",
                        "conclusion_en": "poor", "high_risk": 1},
            "baseline": {"id": "b", "version": "1", "title": {"en": "B"}}, "host": {"hostname": "h"},
            "results": results, "items": items}


def test_once_summary_shows_high_risk_first_then_by_severity_then_pending_and_errors(capsys):
    flushed = SimpleNamespace(answers=[{"run_id": 7, "new_failures": [], "fixed": []}], complete=True)
    code = print_once([_report()], flushed, 1, "en")
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    high = next(i for i, line in enumerate(lines) if "c20" in line)
    assert "high-risk findings (1" in lines[high - 1] and "6.4.4.1" in lines[high]
    # each failure says what was seen after the requirement's title, which alone reads as if it were met
    assert lines[high].endswith(" — found vsftpd 3.0.3")
    others = [line for line in lines if re.match(r"\s+(critical|high|medium|low)\s", line) and "c20" not in line]
    assert others[0].split()[0] == "critical" and "c21" in others[0]  # worst first, not clause order
    severities = [line.split()[0] for line in others]
    assert severities == sorted(severities, key=("critical", "high", "medium", "low").index)
    assert "... and 2 more" in out  # 17 other failures, 15 shown
    assert "待核查: 2 item(s)" in out
    assert "could not run (1 error" in out and "cannot read /etc/shadow: permission denied" in out
    assert high < out[:out.index("待核查")].count("\n")  # high-risk before the rest
    assert "exit 1: 18 check(s) failed and 1 could not be determined" in err


def test_once_summary_in_chinese(capsys):
    flushed = SimpleNamespace(answers=[], complete=True)
    assert print_once([_report()], flushed, 1, "zh") == 1
    out, err = capsys.readouterr()
    assert "高风险问题（1 项" in out and "检查 20" in out and "待核查：2 个要求项" in out and "无法判定（1 项" in out
    assert not re.search(r"high-risk findings|other failures|could not run", out)
    assert err.startswith("退出码 1：18 项检查不通过，1 项无法判定")


def test_once_summary_in_chinese_gives_the_chinese_reason(capsys):
    report = _report()
    error = next(r for r in report["results"] if r["status"] == "error")
    error["reason_zh"] = "无法读取 /etc/shadow：权限不足"
    print_once([report], SimpleNamespace(answers=[], complete=True), 1, "zh")
    out = capsys.readouterr().out
    assert "c22: 检查 22: 无法读取 /etc/shadow：权限不足" in out and "permission denied" not in out
    print_once([report], SimpleNamespace(answers=[], complete=True), 1, "en")
    assert "cannot read /etc/shadow: permission denied" in capsys.readouterr().out


def test_once_exit_code_is_explained_for_a_clean_host(capsys):
    report = _report()
    report["results"] = [r for r in report["results"] if r["status"] == "pass"]
    flushed = SimpleNamespace(answers=[], complete=True)
    assert print_once([report], flushed, 1, "en") == 0
    assert "exit 0: every counted check passed" in capsys.readouterr().err


def test_once_advisory_failures_are_not_failures(capsys):
    report = _report()
    report["results"] = [r for r in report["results"] if r["status"] == "pass"]
    advisory = _result(30, "8.1.4.2", "fail", "low")
    advisory["advisory"] = {"zh": "CIS 取值", "en": "CIS value"}
    report["results"].append(advisory)
    assert print_once([report], SimpleNamespace(answers=[], complete=True), 1, "en") == 0
    out = capsys.readouterr()
    assert "c30" not in out.out and "exit 0: every counted check passed" in out.err


def test_advisory_failures_are_not_in_the_failed_figures(capsys):
    """Advisory and waived results are evidence, not failures: they come off the failed and error figures of
    the `up --once` headline and of the line per run, while `summary.counts` keeps every result."""
    report = _report()
    for r in report["results"][:5]:  # five failing checks marked advisory by the baseline
        r["advisory"] = {"zh": "参考项", "en": "advisory"}
    report["results"][5]["waiver"] = "accepted by the site"
    report["results"][18]["advisory"] = {"zh": "参考项", "en": "advisory"}  # the error
    report["summary"]["advisory"] = {"pass": 0, "fail": 5, "error": 1, "not_applicable": 0}
    print_once([report], SimpleNamespace(answers=[], complete=True), 1, "en")
    out = capsys.readouterr().out
    assert "fail 12, error 0," in out and "could not run" not in out
    say, said = _lines("en")
    say.stored(say.made("b", report), 3, "http://c:1", waited=False)
    assert "12 failed" in said[0] and "18 failed" not in said[0]


# ---- the long-running `up` ---------------------------------------------------------------------------


def test_up_prints_a_reachable_api_url_loopback_only_and_one_line_per_cycle(tmp_path):
    state, port = tmp_path / "up", _free_port()
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    log = tmp_path / "up.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(SENTINEL + ["up", "--state-dir", str(state), "--port", str(port), "--baseline",
                                            str(quick), "--interval", "3600", "--lang", "en"],
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 120
        while "stored as run" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no per-cycle line from sentinel up (rc {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.3)
        text = log.read_text()
        assert "loopback (127.0.0.1) only" in text
        cycle = [line for line in text.splitlines() if "stored as run" in line]
        assert len(cycle) == 1 and "baseline " in cycle[0] and "score " in cycle[0]
        assert f"http://127.0.0.1:{port}" in cycle[0]
        # the pages it points to answer a real GET (the docs URL it used to print, /api/v1/docs, was a 404)
        pages = set(re.findall(r"http://127\.0\.0\.1:\d+/\S*(?:docs|openapi\.json|metrics)\b", text))
        assert {p.rsplit("/", 1)[1] for p in pages} == {"openapi.json", "metrics"}, text
        named = re.search(r"token in (\S+?)\)", text)  # /metrics asks for the token `up` names
        headers = {"Authorization": f"Bearer {open(named.group(1)).read().strip()}"} if named else {}
        with httpx.Client(timeout=10, trust_env=False, headers=headers) as http:
            for url in pages:
                r = http.get(url)
                assert r.status_code == 200, (url, r.status_code)
                if url.endswith("/openapi.json"):
                    assert r.json()["openapi"].startswith("3.")
    finally:
        terminate(proc, 30)


def test_a_report_that_waits_in_the_spool_is_announced_again_when_stored(tmp_path, capsys):
    """The per-run line says where the report is: in the spool while the collector is down, then its run."""
    from sentinel.agent.config import BaselineSchedule
    from sentinel.agent.enroll import enroll
    from sentinel.allinone import LocalCollector, install_site_baseline
    from sentinel.cli_agent import _announcing
    from sentinel.wiring import exporters

    collector = LocalCollector(tmp_path / "collector", exporters())
    collector.prepare()
    token, _ = collector.bootstrap(want_token=True)
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    install_site_baseline(tmp_path / "collector", str(quick))
    collector.start()
    try:
        settings = load_settings(None, default_file=False, state_dir=tmp_path / "agent", request_timeout=5,
                                 baselines=[BaselineSchedule(baseline=str(quick))])
        enroll(settings, token, collector.url)
        agent = _announcing()(settings)
        collector.stop()  # the collector goes away before the run
        assert agent.run_baseline(settings.baselines[0]) is not None
        assert agent.flush().blocked
        assert agent.flush().blocked  # said once, not at every retry
        collector.start()  # back, on the same port
        assert agent.flush().complete
        agent.close()
    finally:
        collector.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if f"baseline {quick}:" in line]
    assert len(lines) == 2, lines
    assert f"kept in the spool {settings.spool_dir} until the collector takes it" in lines[0]
    assert "stored as run 1 on http://127.0.0.1:" in lines[1] and "(it waited in the spool)" in lines[1]


# ---- the line per run of `agent` / `up`: its language, and the hint to run as root ----------------------


def _lines(lang: str, command: str = "agent"):
    from sentinel.cycle_lines import Announcer

    said: list[str] = []
    return Announcer(lang, command, say=said.append), said


def test_the_line_per_run_speaks_the_chosen_language():
    report = _report()
    for lang, words, foreign in (("zh", ("基线 b：得分 40.0 差", "不通过 18 项", "已存为 http://c:1 上的第 3 次运行",
                                         "曾在缓存目录中等待"), ("score", "failed", "stored", "poor")),
                                 ("en", ("baseline b: score 40.0 poor", "18 failed", "stored as run 3 on http://c:1",
                                         "(it waited in the spool)"), ("差", "得分"))):
        say, said = _lines(lang)
        say.stored(say.made("b", report), 3, "http://c:1", waited=True)
        assert len(said) == 1 and all(w in said[0] for w in words), said
        assert not any(w in said[0] for w in foreign), said


def test_up_once_in_chinese_says_its_line_per_run_in_chinese(tmp_path):
    quick = tmp_path / "quick.yaml"
    quick.write_text(BASELINE % "", encoding="utf-8")
    up = _run(["up", "--once", "--state-dir", str(tmp_path / "s"), "--baseline", str(quick)], _env())
    assert up.returncode in (0, 1), up.stderr
    cycle = [line for line in up.stderr.splitlines() if f"基线 {quick}：得分" in line]
    assert len(cycle) == 1 and "上的第 1 次运行" in cycle[0], up.stderr
    assert "stored as run" not in up.stderr


@pytest.mark.parametrize("lang, hint", [("en", "hint:"), ("zh", "提示")])
@pytest.mark.parametrize("command", ["agent", "up"])
def test_unprivileged_agent_and_up_hint_once_to_run_as_root(monkeypatch, lang, hint, command):
    monkeypatch.setattr("sentinel.cycle_lines.os.geteuid", lambda: 1000)
    say, said = _lines(lang, command)
    say.made("b", _report())
    say.made("b", _report())  # the next run does not repeat it
    hints = [line for line in said if line.startswith(hint)]
    assert len(hints) == 1 and "c22" in hints[0] and f"sudo sentinel {command}" in hints[0], said


def test_no_root_hint_as_root_or_without_permission_errors(monkeypatch):
    monkeypatch.setattr("sentinel.cycle_lines.os.geteuid", lambda: 0)
    say, said = _lines("en")
    say.made("b", _report())
    assert said == []
    monkeypatch.setattr("sentinel.cycle_lines.os.geteuid", lambda: 1000)
    report = _report()
    report["results"] = [r for r in report["results"] if r["status"] != "error"]
    say, said = _lines("en")
    say.made("b", report)
    assert said == []
