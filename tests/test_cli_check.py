"""`sentinel check` output formats and exit codes on fixture roots."""
import csv
import io
import json
from xml.etree import ElementTree as ET

from sentinel.cli import main

JSON_KEYS = {"schema_version", "report_id", "generated_at", "duration_ms", "baseline", "host", "summary", "items",
             "results", "object"}
RESULT_KEYS = {"check_id", "clause", "item", "key", "title", "status", "severity", "high_risk", "observed", "expected",
               "expected_zh", "reason", "reason_zh", "evidence", "remediation", "waiver", "advisory", "duration_ms",
               "offline"}


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_report_has_the_documented_stable_keys(capsys, fixture_root):
    code, out, _ = run(capsys, "check", "--root", str(fixture_root("kylinv10-default")), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert set(report) == JSON_KEYS
    assert {"id", "version", "level"} <= set(report["baseline"])
    assert {"hostname", "os_id", "os_version", "family", "arch", "kernel"} <= set(report["host"])
    assert report["host"]["os_id"] == "kylin" and report["host"]["os_version"] == "V10"
    assert {"counts", "pass_rate", "score", "high_risk", "conclusion"} <= set(report["summary"])
    assert {"clause", "item", "verdict", "weight"} <= set(report["items"][0])
    assert set(report["results"][0]) == RESULT_KEYS
    shadow = next(r for r in report["results"] if r["check_id"] == "l3-ac-shadow-mode")
    assert shadow["status"] == "fail" and shadow["evidence"][0]["source"] == "/etc/shadow"
    assert "chmod" in shadow["remediation"]["zh"] or "chmod" in shadow["remediation"]["en"]


def test_exit_zero_when_nothing_fails(capsys, fixture_root, tmp_path):
    out_file = tmp_path / "r.json"
    code, _, _ = run(capsys, "check", "--root", str(fixture_root("rocky9-hardened")), "--format", "json",
                     "-o", str(out_file))
    assert code == 0
    assert json.loads(out_file.read_text())["summary"]["conclusion"] == "优"


def test_csv_junit_and_table(capsys, fixture_root):
    root = str(fixture_root("debian12-default"))
    code, out, _ = run(capsys, "check", "--root", root, "--format", "csv", "--lang", "en")
    rows = list(csv.DictReader(io.StringIO(out)))
    from sentinel.baseline import load_baseline

    assert code == 1 and len(rows) == sum(1 for _ in load_baseline("dengbao-l3-linux").iter_checks())
    toor = next(r for r in rows if r["check_id"] == "l3-ia-uid0-only-root")
    assert toor["status"] == "fail" and "toor" in toor["observed"]
    code, out, _ = run(capsys, "check", "--root", root, "--format", "junit")
    suites = ET.fromstring(out)
    assert suites.tag == "testsuites" and len(suites.findall("testsuite")) == 11
    failure = suites.find(".//testcase[@name='l3-ia-uid0-only-root']/failure")
    assert failure is not None and "toor" in failure.get("message")
    code, out, _ = run(capsys, "check", "--root", root, "--lang", "en")
    assert code == 1
    assert "Only root has UID 0" in out and "conclusion" in out and "poor" in out
    code, out, _ = run(capsys, "check", "--root", root)
    assert "结论" in out and "差" in out and "高风险" in out


def test_usage_errors_exit_2(capsys, tmp_path):
    assert run(capsys, "check", "--root", str(tmp_path / "missing"))[0] == 2
    assert run(capsys, "check", "--lang", "fr")[0] == 2
    assert run(capsys, "check", "--no-such-option")[0] == 2
    assert run(capsys, "baselines", "show", "nope")[0] == 2
