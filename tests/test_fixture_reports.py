"""Exact outcomes of the shipped baselines on every fixture root (tests/fixtures/roots).

Expected files (tests/fixtures/expected/<root>.<baseline>.yaml) hold the status of every check, every item
verdict and the summary figures. They were written by running `python tests/fixtures/expected_tool.py show ROOT`,
reading every line against the fixture's files and the fixture README's list of deliberate defects, and only then
freezing them with `... freeze`. A change of any status is a behaviour change to review, not to re-freeze blindly.
"""
from pathlib import Path

import pytest
import yaml

from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost

EXPECTED = Path(__file__).parent / "fixtures" / "expected"
CASES = sorted(p.name[: -len(".yaml")] for p in EXPECTED.glob("*.yaml"))


def test_every_fixture_root_has_expectations():
    roots = {p.name for p in (Path(__file__).parent / "fixtures" / "roots").iterdir() if p.is_dir()}
    covered = {case.split(".")[0] for case in CASES}
    assert roots and roots <= covered, f"fixture roots without expectations: {sorted(roots - covered)}"


@pytest.mark.parametrize("case", CASES)
def test_fixture_outcome(case, fixture_root):
    root_name, baseline_id = case.split(".", 1)
    expected = yaml.safe_load((EXPECTED / f"{case}.yaml").read_text(encoding="utf-8"))
    report = run_baseline(load_baseline(baseline_id), RootHost(str(fixture_root(root_name))))
    assert report.host.family == expected["family"]
    statuses = {r.check_id: r.status.value for r in report.results}
    assert statuses == expected["results"]
    verdicts = {f"{i.clause}.{i.item}": i.verdict.value for i in report.items}
    assert verdicts == expected["verdicts"]
    s = report.summary
    assert {"score": s.score, "pass_rate": s.pass_rate, "conclusion": s.conclusion, "high_risk": s.high_risk} == \
        expected["summary"]
    # Every failure and error says why, with evidence for failures.
    for r in report.results:
        if r.status.value in ("fail", "error"):
            assert r.reason, r.check_id
        if r.status.value == "fail":
            assert r.evidence, f"{r.check_id} failed without evidence"


def test_site_file_override_and_waiver_show_in_reports(fixture_root):
    from sentinel import render
    from sentinel.baseline import BASELINE_DIR

    site = load_baseline(BASELINE_DIR / "examples" / "site-override.yaml")
    report = run_baseline(site, RootHost(str(fixture_root("rocky9-hardened"))))
    by_id = {r.check_id: r for r in report.results}
    # The hardened root sets TMOUT=600: fine for the shipped baseline, too long for this site's 300 s.
    assert by_id["l3-ia-shell-timeout"].status.value == "fail"
    assert "TMOUT is 600, expected at most 300" in by_id["l3-ia-shell-timeout"].reason
    waived = by_id["l3-ia-ssh-two-factor"]
    assert waived.waiver.startswith("双因素认证") and report.summary.waived == 1
    assert report.baseline.lineage == ["dengbao-l3-linux"]
    assert waived.waiver in render.to_csv(report) and "已豁免" in render.to_junit(report)
    assert "waived" in render.to_junit(report, "en")
