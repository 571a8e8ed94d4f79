"""docs/alerting.md prints the graded-response table that code and rules use (exporters/grading.py)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_grading_table_is_the_codes():
    from sentinel.events import grading

    doc = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- grading-table:[^>]*-->\n(.*?)<!-- /grading-table -->", doc, re.S)
    assert m, "docs/alerting.md has no grading table between its markers"
    assert m.group(1) == grading.markdown_table(), "docs/alerting.md's grading table differs from exporters/grading.py"


def test_every_documented_rule_has_its_class():
    from sentinel.events import grading

    doc = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(Sentinel\w+)` \| .* \| (\w+) \|$", doc, re.M)
    assert rows and all(grading.CLASS_OF[name] == cls for name, cls in rows), rows


def test_grade_rules_check_passes_and_catches_a_wrong_label(tmp_path):
    script = ROOT / "deploy" / "prometheus" / "grade_rules.py"
    ok = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    sys.path.insert(0, str(script.parent))
    try:
        import grade_rules
    finally:
        sys.path.pop(0)
    shipped = grade_rules.RULES.read_text(encoding="utf-8")
    wrong = shipped.replace("          grade: '较大'\n", "          grade: '重大'\n", 1)
    assert wrong != shipped
    assert grade_rules.render(wrong) == shipped


def test_titled_and_documented_event_kinds_are_the_ones_the_collector_emits():
    """No documented event that nothing emits: the titled kinds are exactly those the API lists for
    GET /api/v1/events (what ingest and scan_ingest write), and each is graded by the table."""
    import typing

    from sentinel.collector.events_publisher import STATEFUL_KINDS
    from sentinel.collector.routers import results
    from sentinel.events import grading
    from sentinel.events.model import KIND_TITLES

    kind_param = typing.get_type_hints(results.list_events, include_extras=True)["kind"]
    literal = next(a for a in typing.get_args(kind_param) if typing.get_origin(a) is typing.Literal)
    emitted = set(typing.get_args(literal))
    assert set(KIND_TITLES) - {"prometheus_alert"} == emitted
    assert STATEFUL_KINDS <= emitted
    assert emitted <= set(grading.CLASS_OF)
    doc = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
    for gone in ("agent_silent", "certificate_expiring", "score_below_threshold", "`forbidden_port`"):
        assert gone not in doc, f"docs/alerting.md names {gone}, which nothing emits"
    for kind in emitted:
        assert f"`{kind}`" in doc, kind
