"""问题描述 and 结果记录 read as an assessor writes them (issue 18 item 2): the gap opens with what is wrong and
quotes the requirement as not met, never restating the requirement as if it were the finding; the record says
what was seen where, without raw JSON, regular expressions or English probe phrases. Checked on real baseline
runs over the fixture roots and on a sample of the rows the exports carry."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sentinel import signing
from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.evidence.assemble import HostRun, build
from sentinel.evidence.model import SystemRef, TimeRange
from sentinel.exporters.evidence.common import item_rows, problem_rows
from sentinel.exporters.evidence.risk import high_risk_entries, paste_text
from sentinel.exporters.evidence.wording import clean, gap, seen
from sentinel.exporters.evidence.xlsx import export_xlsx
from sentinel.hostview import RootHost
from sentinel.model import CheckResult, Evidence, Status, Text
from tests import evidence_seed as seed

ROOTS = Path(__file__).parent / "fixtures" / "roots"
REGEX = re.compile(r"/\^|\\[sdwSb]|\(\?:|\[\^|\$/")  # pieces only a regular expression has
JSON = re.compile(r"[{\[]\s*\"")


def result(check_id="l3-x", title=("未安装 FTP 服务端", "No FTP server is installed"), status=Status.FAIL,
           reason=None, reason_zh=None, evidence=(), observed=None) -> CheckResult:
    return CheckResult(check_id=check_id, clause="8.1.4.8", item="a", title=Text(zh=title[0], en=title[1]),
                       status=status, severity="high", observed=observed, expected="empty=True", reason=reason,
                       reason_zh=reason_zh, evidence=list(evidence), remediation=Text(zh="卸载", en="remove"))


def test_the_issues_two_examples():
    ftp = result(reason="packages installed that should not be: vsftpd", reason_zh="安装了不应安装的软件包: vsftpd",
                 observed=["vsftpd"], evidence=[Evidence(source="/var/lib/dpkg/status", line=812,
                                                         excerpt="Package: vsftpd")])
    problem = gap(ftp, "zh")
    # it used to read "未安装 FTP 服务端: ... found vsftpd": the requirement's words as if they were the finding
    assert not problem.startswith("未安装 FTP 服务端")
    assert problem.startswith("安装了不应安装的软件包: vsftpd")
    assert problem.endswith("未满足「未安装 FTP 服务端」的要求")
    assert gap(ftp, "en").startswith("packages installed that should not be: vsftpd")
    assert "does not meet “No FTP server is installed”" in gap(ftp, "en")
    days = result(title=("口令最长使用期限不超过 90 天", "Password maximum age is at most 90 days"), observed="99999",
                  reason="PASS_MAX_DAYS is 99999, expected at most 90", reason_zh="PASS_MAX_DAYS 为 99999，要求 ≤ 90",
                  evidence=[Evidence(source="/etc/login.defs", line=25, excerpt="PASS_MAX_DAYS\t99999")])
    record = seen(days, "zh")
    assert record.startswith("/etc/login.defs 第 25 行 PASS_MAX_DAYS 99999；PASS_MAX_DAYS 为 99999，要求 ≤ 90")
    assert record.endswith("未满足「口令最长使用期限不超过 90 天」的要求")
    assert gap(days, "zh") == ("PASS_MAX_DAYS 为 99999，要求 ≤ 90（/etc/login.defs 第 25 行），"
                               "未满足「口令最长使用期限不超过 90 天」的要求")
    assert seen(days, "en").startswith("/etc/login.defs line 25 PASS_MAX_DAYS 99999; PASS_MAX_DAYS is 99999")
    evidence = [Evidence(source="/etc/login.defs", line=25, excerpt="PASS_MAX_DAYS 90")]
    passed = days.model_copy(update={"status": Status.PASS, "reason": None, "reason_zh": None, "evidence": evidence})
    assert seen(passed, "zh") == "/etc/login.defs 第 25 行 PASS_MAX_DAYS 90；符合「口令最长使用期限不超过 90 天」的要求"


def test_regular_expressions_leave_the_sentences_but_paths_stay():
    assert clean("UMASK 为 022，不符合要求的格式 /^0*[0-7]?[2367]7$/") == "UMASK 为 022，不符合要求"
    assert clean("no line matches /^(?:export\\s+)?TMOUT=[\"']?(\\d+)/ in /etc/profile") == \
        "no line matches in /etc/profile"
    assert clean("发现不应存在的文件: /etc/hosts.equiv, /root/.rhosts") == \
        "发现不应存在的文件: /etc/hosts.equiv, /root/.rhosts"


@pytest.fixture(scope="module", params=["debian12-default", "rocky9-default", "openeuler2203-default"])
def fixture_run(request):
    return run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(ROOTS / request.param)))


def test_every_failure_of_a_real_run_reads_as_a_gap(fixture_run):
    failures = [r for r in fixture_run.results if r.status == Status.FAIL]
    assert len(failures) >= 10
    for r in failures:
        zh, en = gap(r, "zh"), gap(r, "en")
        assert not zh.startswith(r.title.zh), zh  # the requirement is never the opening of its own gap
        assert zh.endswith(f"未满足「{r.title.zh}」的要求"), zh
        assert en.endswith(f"does not meet “{r.title.en}”"), en
        for text in (zh, en, seen(r, "zh"), seen(r, "en")):
            assert not REGEX.search(text), text
            assert not JSON.search(text), text
        # the PAM alternatives' exemption field is not what the assessor reports
        assert ".nobody " not in zh, zh


def test_records_say_what_was_seen_in_chinese(fixture_run):
    """结果记录 in zh: the probes' common English phrases are translated; what is left in Latin letters is
    configuration itself (file contents, key names, paths), which an assessor quotes as it is."""
    english = re.compile(r"\b(no such file|no path matches|no line matches|not set globally|no unit file|"
                         r"auth stack read from|password stack read from|no watch for perms|entries, every)\b")
    for r in fixture_run.results:
        zh = seen(r, "zh")
        assert not english.search(zh), zh
        if r.status == Status.FAIL:
            assert "未满足「" in zh
        elif r.status == Status.PASS:
            assert f"符合「{r.title.zh}」的要求" in zh and "未满足" not in zh


def _ev_from(tmp_path, root: str):
    rep = run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(ROOTS / root)))
    runs = [HostRun(object="host-1", report=rep, received_at=seed.T0, run_id=1)]
    chain, raw = seed.direct_chain(runs)
    return build(system=SystemRef(name="s", department="d", level=3, label="S3A3"),
                 time_range=TimeRange(end=seed.T0 + timedelta(days=1)),
                 collector=seed.collector_identity(signing.generate_key()), runs=runs, assessments=[], findings=[],
                 chain=chain, raw_reports=raw, generated_at=seed.T0 + timedelta(days=1))


def test_a_sample_of_exported_rows_is_not_inverted(tmp_path):
    ev = _ev_from(tmp_path, "debian12-default")
    titles = {r.title.zh for r in ev.objects[0].reports[0].results}
    wb = load_workbook(io.BytesIO(export_xlsx(ev, "zh")), read_only=True)
    problems = list(wb["问题汇总"].iter_rows(values_only=True))
    head = problems[0]
    col = head.index("问题描述")
    sample = [row[col] for row in problems[1:] if row[col]]
    assert len(sample) >= 10
    for text in sample:
        assert not any(text.startswith(t) for t in titles), text
        assert "未满足「" in text and not REGEX.search(text) and not JSON.search(text), text
    sheet = next(n for n in wb.sheetnames if n.startswith("主机"))
    rows = list(wb[sheet].iter_rows(values_only=True))
    h = next(i for i, r in enumerate(rows) if r and r[0] == "序号")
    rec = rows[h].index("结果记录")
    records = [r[rec] for r in rows[h + 1:] if r and r[0] is not None and r[rec]]
    assert records
    for text in records:
        assert not JSON.search(text) and not REGEX.search(text), text
        assert "observed:" not in text and "expected:" not in text and "观测:" not in text, text
    # the high-risk list and the text to paste carry the gap too
    for e in high_risk_entries(ev):
        assert not e.problem.startswith(e.title) and "未满足「" in e.problem
    assert all(not line.split("] ", 1)[-1].split(" ", 2)[-1].startswith(tuple(titles))
               for line in paste_text(ev).splitlines() if line[:1].isdigit() and "] " in line)
    # the record rows themselves, as every format shows them
    for row in item_rows(ev.objects[0].reports[0], "zh"):
        assert not JSON.search(row.record), row.record
    for p in problem_rows(ev, "en"):
        assert "does not meet “" in p.problem


def test_the_rectification_report_describes_gaps_not_requirements(tmp_path):
    """整改报告's 问题描述 (host findings and network services) is the gap as the failing result showed it, not the
    check's title, which is the requirement as it reads when met."""
    from sentinel.evidence.collect import collect
    from sentinel.exporters.evidence.html import render_rectification_html
    from sentinel.exporters.evidence.rectification import rectification_rows, service_rectification_rows

    s = seed.seed_world(tmp_path)
    try:
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    finally:
        s.db.dispose()
    resolved, still = rectification_rows(ev, "zh")
    _, services = service_rectification_rows(ev, "zh")
    host_rows = resolved + still
    assert host_rows and any(r.problem for r in services)
    for r in host_rows:
        assert not r.problem.startswith(r.title) and r.problem.endswith(f"未满足「{r.title}」的要求"), r.problem
        assert not JSON.search(r.problem) and not REGEX.search(r.problem), r.problem
    titles = {p.title.zh for f in ev.service_findings for p in f.problems}
    for r in services:
        for part in filter(None, r.problem.split("; ")):
            assert "未满足「" in part and not any(part.split(" ", 1)[1].startswith(t) for t in titles), part
    page = render_rectification_html(ev, "zh")
    assert all(r.problem in page for r in host_rows)
    en_resolved, en_still = rectification_rows(ev, "en")
    assert all("does not meet “" in r.problem for r in en_resolved + en_still)
