"""docs/security.md cannot drift from the tests: every test it names exists, and every claim names one.

The document names tests as `tests/<file>.py::<test>` (or `tests/<file>.py::<Class>::<test>`); each is
looked up in the file's syntax tree as pytest would collect it (a `test*` function at module level, or a
`test*` method of a `Test*` class), so a renamed or deleted test fails here, without importing (or running)
the test modules. Every row of the threat-model tables must name at least one test, and other paths it cites
(bench/, deploy/ files) must exist.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
TEST_REF = re.compile(r"`(tests/[\w/.-]+\.py)((?:::\w+)+)`")
PATH_REF = re.compile(r"`((?:tests|bench|deploy)/[\w/.-]+\.\w+)`")
ACTORS = ("An outsider", "A compromised or misbehaving agent", "A department operator", "An assessor")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


@functools.cache
def collected(path: str) -> frozenset[str]:
    """The test ids pytest would collect from `path`, as `name` or `Class::name` (no parametrization)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            out.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            out.update(f"{node.name}::{m.name}" for m in node.body
                       if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name.startswith("test"))
    return frozenset(out)


def references(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)[2:]) for m in TEST_REF.finditer(text)]


def missing(text: str) -> list[str]:
    """The test references in `text` that name no existing test, as `path::name (why)`."""
    out = []
    for path, name in references(text):
        if not (ROOT / path).is_file():
            out.append(f"{path}::{name} (no such file)")
        elif name not in collected(path):
            out.append(f"{path}::{name} (no such test in the file)")
    return out


def threat_model_rows(text: str) -> list[tuple[str, str]]:
    """(section heading, row) of every claim row in the threat model's per-actor tables."""
    rows, section = [], None
    model = text.split("## Threat model", 1)[1].split("\n## ", 1)[0]
    for line in model.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
        elif section and line.startswith("| ") and not line.startswith("| claim") and not line.startswith("| ---"):
            rows.append((section, line))
    return rows


def test_every_named_test_exists():
    text = _text()
    refs = references(text)
    assert len(refs) >= 60, f"only {len(refs)} test references found: has the naming format changed?"
    assert missing(text) == []


def test_every_claim_names_a_test():
    rows = threat_model_rows(_text())
    sections = {s for s, _ in rows}
    for actor in ACTORS:
        assert any(s.startswith(actor) for s in sections), f"no claims for: {actor}"
    unbacked = [f"{s}: {row[:100]}" for s, row in rows if not TEST_REF.search(row)]
    assert unbacked == []


def test_no_shorthand_references():
    """`::name` without its file would escape the check above: every reference carries its path."""
    assert re.findall(r"`::\w+", _text()) == []


def test_other_cited_files_exist():
    cited = {m.group(1) for m in PATH_REF.finditer(_text())}
    assert [p for p in sorted(cited) if not (ROOT / p).is_file()] == []


def test_the_checker_catches_drift(tmp_path):
    """The checks above would fail on a renamed test, a missing file, a class method and an unbacked claim."""
    real = "`tests/test_security_doc.py::test_every_named_test_exists`"
    assert missing(real) == []
    assert missing("`tests/test_security_doc.py::test_renamed_away`") == [
        "tests/test_security_doc.py::test_renamed_away (no such test in the file)"]
    assert missing("`tests/test_no_such_file.py::test_x`") == ["tests/test_no_such_file.py::test_x (no such file)"]
    assert references("`tests/a.py::TestThing::test_it`") == [("tests/a.py", "TestThing::test_it")]
    doc = ("## Threat model\n### An outsider\n| claim | how | test |\n| --- | --- | --- |\n"
           f"| backed | x | {real} |\n| not backed | x | none |\n## Files\n| claim | outside | - |\n")
    rows = threat_model_rows(doc)
    assert [r.split("|")[1].strip() for _, r in rows] == ["backed", "not backed"]
    assert [r for _, r in rows if not TEST_REF.search(r)] == ["| not backed | x | none |"]


@pytest.mark.parametrize("path", ["tests/test_collector_site_scope.py", "tests/test_agent_retry_after.py",
                                  "tests/test_collector_assessor.py"])
def test_issue_20_leftovers_are_in_the_document(path):
    assert path in _text()
