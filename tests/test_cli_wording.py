"""Issue 11, the small CLI defects of `sentinel check`: each language speaks only itself, the table names check
id and severity, no two checks share a title, and reasons read as an assessor writes them."""
from __future__ import annotations

import csv
import io
import re
from xml.etree import ElementTree as ET

import pytest

from sentinel.baseline import load_baseline, shipped
from sentinel.cli import main
from sentinel.expect import explain
from sentinel.model import Expect

CJK = re.compile(r"[\u4e00-\u9fff]")
# English words a zh reason must not contain (old wording, probe messages); "not-found" is a systemd state, data
ENGLISH = re.compile(r"(?<!-)\b(expected|found|not set|applies|live-host|none of|is not|does not|permission)\b")


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    from tests.fixtures.build import build_root

    return str(build_root("debian12-default", tmp_path_factory.mktemp("wording")))


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("│").split("│")] for line in table.splitlines() if line.startswith("│")]


def test_zh_table_has_chinese_reasons_and_en_table_no_chinese(capsys, debian):
    code, zh, _ = run(capsys, "check", "--root", debian)
    assert code == 1
    rows = [r for r in _rows(zh) if r[0]]  # first line of each row (folded lines have an empty clause)
    failing = [r for r in rows if r[4] in ("不通过", "不适用", "错误")]
    assert failing and all(not ENGLISH.search(r[5]) for r in failing), [r[5] for r in failing if ENGLISH.search(r[5])]
    assert any(r[5] == "PASS_MAX_DAYS 为 99999，要求 ≤ 90" for r in rows)
    code, en, _ = run(capsys, "check", "--root", debian, "--lang", "en")
    assert code == 1 and not CJK.search(en), [line for line in en.splitlines() if CJK.search(line)][:3]
    assert "high risk" in en and "PASS_MAX_DAYS is 99999, expected at most 90" in en


def test_table_shows_check_id_and_severity(capsys, debian):
    _, zh, _ = run(capsys, "check", "--root", debian)
    header = next(line for line in zh.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["条款", "检查编号", "检查项", "严重程度", "结果",
                                                                  "实际 / 原因"]
    row = next(r for r in _rows(zh) if r[1] == "l3-ia-uid0-only-root")
    assert row[0] == "8.1.4.1.a" and row[3] == "高" and row[4] == "不通过"
    _, en, _ = run(capsys, "check", "--root", debian, "--lang", "en")
    row = next(r for r in _rows(en) if r[1] == "l3-ia-empty-password")
    assert row[3] == "critical" and row[4] == "pass"


def test_csv_and_junit_speak_the_chosen_language(capsys, debian):
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "csv")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["l3-ia-no-rhosts"]["reason"] == "发现不应存在的文件: /etc/hosts.equiv"
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "csv", "--lang", "en")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["l3-ia-no-rhosts"]["reason"] == "found files that should not exist: /etc/hosts.equiv"
    assert not CJK.search(out.split("\n", 1)[1].replace(rows["l3-ia-no-rhosts"]["title"], ""))
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "junit")
    suites = ET.fromstring(out)
    failure = suites.find(".//testcase[@name='l3-ia-pass-max-days']/failure")
    assert failure.get("message") == "PASS_MAX_DAYS 为 99999，要求 ≤ 90" and "整改建议" in failure.text
    # an advisory check that fails is evidence, not a CI failure: skipped, with its source and its outcome
    advisory = suites.find(".//testcase[@name='l3-ac-inactive-lock']/skipped")
    assert advisory.get("message").startswith("参考项，不计入判定: CIS 基准取值")
    assert "INACTIVE 为 -1，要求 ≥ 0" in advisory.text
    assert suites.find(".//testcase[@name='l3-ac-inactive-lock']/failure") is None
    manual = suites.find(".//testcase[@name='manual-d']/skipped")
    assert manual.get("message").startswith("人工测评项，待核查")
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "junit", "--lang", "en")
    assert not CJK.search(out)
    suites = ET.fromstring(out)
    assert suites.find(".//testcase[@name='l3-ia-pass-max-days']/failure").get("message") == \
        "PASS_MAX_DAYS is 99999, expected at most 90"
    assert suites.find(".//testcase[@name='l3-ac-inactive-lock']/skipped").get("message").startswith(
        "advisory, not counted in verdicts: CIS benchmark value")
    assert suites.find(".//testcase[@name='manual-d']/skipped").get("message").startswith("manual item, pending review")


@pytest.mark.parametrize("ref", shipped())
def test_no_two_checks_of_a_baseline_share_a_title(ref):
    spec = load_baseline(ref)
    for lang in ("zh", "en"):
        titles = [c.title.get(lang) for _, _, c in spec.iter_checks()]
        assert len(titles) == len(set(titles)), sorted({t for t in titles if titles.count(t) > 1})


@pytest.mark.parametrize("expect, observed, where, kind, en, zh", [
    ({"ge": 0}, "-1", "PASS_MAX_DAYS", "config.value", "PASS_MAX_DAYS is -1, expected at least 0",
     "PASS_MAX_DAYS 为 -1，要求 ≥ 0"),
    ({"empty": True}, ["/etc/hosts.equiv"], "", "file.exists", "found files that should not exist: /etc/hosts.equiv",
     "发现不应存在的文件: /etc/hosts.equiv"),
    ({"empty": True}, ["/etc/passwd"], "", "audit.watch", "not watched by any audit rule: /etc/passwd",
     "未被审计规则监视: /etc/passwd"),
    ({"empty": False}, [], "", None, "nothing found, at least one is required", "未发现任何项，要求至少一项"),
    ({"in": ["no"]}, "prohibit-password", "PermitRootLogin", "sshd.option",
     "PermitRootLogin is prohibit-password, expected no", "PermitRootLogin 为 prohibit-password，要求为 no"),
    ({"each": {"mode_max": "0600"}}, [{"path": "/etc/ssh/sshd_config", "mode": "0644"}], "", "file.mode", None, None),
    ({"le": 90}, None, "PASS_MAX_DAYS", "config.value", "PASS_MAX_DAYS is not set, expected at most 90",
     "PASS_MAX_DAYS 未设置，要求 ≤ 90"),
])
def test_reasons_read_as_an_assessor_writes_them(expect, observed, where, kind, en, zh):
    if expect.get("each"):  # file.mode: the mode lives in a field of each file's entry
        expect = {"each": {"fields": {"mode": expect["each"]}}}
        en = "/etc/ssh/sshd_config has mode 0644, more permissive than 0600 (extra bits 0044)"
        zh = "/etc/ssh/sshd_config 权限为 0644，宽于 0600（多出 0044）"
    reason = explain(Expect.model_validate(expect), observed, where, kind)
    assert (reason.en, reason.zh) == (en, zh)


def test_evidence_lines_use_the_reason_of_their_language(debian):
    from sentinel.engine import run_baseline
    from sentinel.exporters.evidence.common import result_line
    from sentinel.hostview import RootHost

    report = run_baseline(load_baseline("dengbao-l3-linux"), RootHost(debian))
    r = next(r for r in report.results if r.check_id == "l3-ia-no-rhosts")
    assert "发现不应存在的文件: /etc/hosts.equiv" in result_line(r, "zh")
    assert "found files that should not exist: /etc/hosts.equiv" in result_line(r, "en")
    old = r.model_copy(update={"reason_zh": None})  # a report stored before reason_zh: the English is kept
    assert "found files that should not exist" in result_line(old, "zh")


def test_probe_errors_are_worded_in_both_languages(tmp_path):
    from sentinel.engine import run_baseline
    from sentinel.hostview import RootHost

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nbroken-line\n")
    report = run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(tmp_path)))
    by = {r.check_id: r for r in report.results}
    uid0 = by["l3-ia-uid0-only-root"]
    assert uid0.status.value == "error" and uid0.reason.startswith("/etc/passwd:2: malformed entry")
    assert uid0.reason_zh.startswith("/etc/passwd 第 2 行格式错误")
    pkg = next(r for r in report.results if r.reason and r.reason.startswith("no package database found"))
    assert pkg.status.value == "error" and pkg.reason_zh.startswith("未找到软件包数据库")


def test_csv_and_junit_say_what_is_expected_in_words_in_zh(capsys, debian):
    """zh csv/junit gave the operator form (`le 90`, `ge 0`); now the same words the reasons use."""
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "csv")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["l3-ia-pass-max-days"]["expected"] == "≥ 0，且≤ 90"
    operator = re.compile(r"^(eq|ne|lt|le|gt|ge|in|not_in|match|contains|empty|absent|mode_max|each|any of)\b|=True")
    assert not [r["expected"] for r in rows.values() if operator.search(r["expected"])]
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "junit")
    failure = ET.fromstring(out).find(".//testcase[@name='l3-ia-pass-max-days']/failure")
    assert "要求: ≥ 0，且≤ 90" in failure.text and "le 90" not in failure.text
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "csv", "--lang", "en")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["l3-ia-pass-max-days"]["expected"] == "le 90; ge 0"  # en and JSON keep the operator form


@pytest.mark.parametrize("expect, words", [
    ({"le": 90}, "≤ 90"), ({"eq": "no"}, "为 no"), ({"in": ["a", "b"]}, "为以下之一：a、b"),
    ({"absent": True}, "不存在"), ({"mode_max": "0644"}, "权限不宽于 0644"), ({"empty": True}, "为空"),
    ({"fields": {"uid": {"eq": 0}}}, "uid 为 0"), ({"each": {"ge": 1}, "when_empty": "pass"},
                                                  "每一项均≥ 1，且无任何项时视为符合"),
    ({"any_of": [{"eq": 1}, {"eq": 2}]}, "满足以下任一：（为 1） 或 （为 2）"), ({"ge": 1, "le": 5}, "≥ 1，且≤ 5"),
    ({}, "任意值"),
])
def test_expected_in_chinese_words(expect, words):
    from sentinel.expected_words import expected_zh

    assert expected_zh(Expect.model_validate(expect)) == words


def test_table_and_csv_mark_advisory_checks(capsys, debian):
    def title_of(table: str, check_id: str) -> tuple[str, str]:
        rows = _rows(table)
        i = next(n for n, r in enumerate(rows) if r[1] == check_id)
        title = [rows[i][2]] + [r[2] for r in rows[i + 1:] if not r[0] and not r[1]][:3]
        return rows[i][4], " ".join(title)

    _, zh, _ = run(capsys, "check", "--root", debian)
    status, title = title_of(zh, "l3-ac-inactive-lock")
    assert status == "不通过" and "参考项" in title.replace(" ", "")
    assert "参考项" not in title_of(zh, "l3-ia-pass-max-days")[1]
    _, en, _ = run(capsys, "check", "--root", debian, "--lang", "en")
    status, title = title_of(en, "l3-ac-inactive-lock")
    assert status == "fail" and "(advisory, not counted)" in title
    _, out, _ = run(capsys, "check", "--root", debian, "--format", "csv", "--lang", "en")
    rows = {r["check_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["l3-ac-inactive-lock"]["advisory"].startswith("CIS benchmark value")
    assert rows["l3-ia-pass-max-days"]["advisory"] == ""
