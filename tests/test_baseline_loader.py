"""Baseline loading: precise `file:line: message` errors (exit 2), extends, overrides and waivers."""
import textwrap

import pytest

from sentinel.baseline import BaselineError, load_baseline
from sentinel.cli import main

GOOD = """\
id: tiny
version: "1"
title: {zh: 小基线, en: tiny baseline}
level: 3
os_families: [debian, rhel]
controls:
  - clause: "8.1.4.1"
    name: {zh: 身份鉴别, en: Identification and authentication}
    items:
      - item: a
        text: {zh: 身份标识, en: identification}
        weight: 0.7
        checks:
          - id: t-no-rhosts
            title: {zh: 无 rhosts, en: no rhosts}
            probe: file.exists
            params: {paths: [/etc/hosts.equiv]}
            expect: {empty: true}
            severity: high
            rationale: {zh: 理由, en: why}
            remediation: {zh: 删除, en: delete it}
          - id: t-max-days
            title: {zh: 口令有效期, en: password max days}
            probe: config.value
            params: {paths: [/etc/login.defs], key: PASS_MAX_DAYS, separator: space}
            expect: {le: 90}
            severity: medium
            rationale: {zh: 理由, en: why}
            remediation: {zh: 设置, en: set it}
      - item: b
        text: {zh: 人工项, en: manual item}
        weight: 0.4
"""


def write(tmp_path, text, name="b.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path):
    with pytest.raises(BaselineError) as exc:
        load_baseline(path)
    return str(exc.value)


def test_good_baseline_loads(tmp_path):
    spec = load_baseline(write(tmp_path, GOOD))
    assert [c.id for _, _, c in spec.iter_checks()] == ["t-no-rhosts", "t-max-days"]
    assert spec.controls[0].items[1].checks == []


@pytest.mark.parametrize("mutate, line, message", [
    (lambda t: t.replace("severity: high", "severity: hgih"), 19, "severity: Input should be"),
    (lambda t: t.replace("probe: file.exists", "probe: file.existz"), 16, "unknown probe kind 'file.existz'"),
    (lambda t: t.replace("weight: 0.7", "weight: heavy"), 12, "weight: Input should be a valid number"),
    (lambda t: t.replace("id: t-max-days", "id: t-no-rhosts"), 22, "duplicate check id 't-no-rhosts'"),
    (lambda t: t.replace('  - clause: "8.1.4.1"\n', "  - \n"), 8, "clause: Field required"),
    (lambda t: t.replace("params: {paths: [/etc/hosts.equiv]}", "params: {path: /etc/hosts.equiv}"), 17,
     "params.path: unknown key"),
    (lambda t: t.replace("expect: {le: 90}", "expect: {less: 90}"), 26, "expect.less: unknown key"),
    (lambda t: t.replace("level: 3", "level: 3\nlevel: 4"), 5, "level: duplicate key"),
    (lambda t: t.replace("title: {zh: 小基线, en: tiny baseline}", "title: {zh: 小基线, en: [oops"), 4,
     "invalid YAML"),
])
def test_bad_input_names_file_and_line(tmp_path, mutate, line, message):
    path = write(tmp_path, mutate(GOOD))
    text = errors_of(path)
    assert f"b.yaml:{line}: " in text, text
    assert message in text, text


def test_cli_validate_exit_codes(tmp_path, capsys):
    assert main(["baselines", "validate", str(write(tmp_path, GOOD))]) == 0
    assert "ok" in capsys.readouterr().out
    bad = write(tmp_path, GOOD.replace("severity: high", "severity: extreme"), "bad.yaml")
    assert main(["baselines", "validate", str(bad)]) == 2
    assert "bad.yaml:19: controls[0].items[0].checks[0].severity" in capsys.readouterr().err
    assert main(["check", "--baseline", str(bad), "--root", str(tmp_path)]) == 2
    assert main(["check", "--baseline", "no-such-baseline"]) == 2
    assert "unknown baseline id" in capsys.readouterr().err
    assert main(["check", "--format", "yaml", "--baseline", str(write(tmp_path, GOOD))]) == 2


def test_extends_override_waive_and_add(tmp_path):
    write(tmp_path, GOOD, "parent.yaml")
    child = write(tmp_path, """\
        id: site
        version: "2026.1"
        extends: parent.yaml
        renumber: {"8.1.4": "9.1.4"}
        override:
          t-max-days: {expect: {le: 60}, params: {key: PASS_MAX_DAYS}}
        waive:
          t-no-rhosts: "hosts.equiv is managed by the platform (ticket 42)"
        items:
          "9.1.4.1.b": {weight: 1.0}
        controls:
          - clause: "9.1.4.2"
            name: {zh: 访问控制, en: Access control}
            items:
              - item: a
                text: {zh: 分配账户, en: accounts}
                weight: 0.7
        """, "child.yaml")
    spec = load_baseline(child)
    assert spec.id == "site" and spec.level == 3 and spec.lineage == ["tiny"]
    checks = {c.id: (ctl.clause, c) for ctl, _, c in spec.iter_checks()}
    assert checks["t-max-days"][0] == "9.1.4.1"
    assert checks["t-max-days"][1].expect.le == 60
    assert checks["t-max-days"][1].params == {"paths": ["/etc/login.defs"], "key": "PASS_MAX_DAYS", "separator": "space"}
    assert checks["t-no-rhosts"][1].waiver.startswith("hosts.equiv is managed")
    assert [c.clause for c in spec.controls] == ["9.1.4.1", "9.1.4.2"]
    assert spec.controls[0].items[1].weight == 1.0


def test_extends_errors_point_into_the_child(tmp_path):
    write(tmp_path, GOOD, "parent.yaml")
    child = write(tmp_path, """\
        id: site
        version: "1"
        extends: parent.yaml
        waive:
          t-nope: "reason"
        """, "child.yaml")
    assert "child.yaml:5: waive.t-nope: no check 't-nope' in tiny" in errors_of(child)
    child = write(tmp_path, """\
        id: site
        version: "1"
        extends: parent.yaml
        override:
          t-max-days: {severity: enormous}
        """, "child2.yaml")
    assert "child2.yaml:5: " in errors_of(child)
    child = write(tmp_path, """\
        id: site
        version: "1"
        extends: parent.yaml
        waive:
          t-max-days: ""
        """, "child3.yaml")
    assert "a waiver needs a reason" in errors_of(child)
    loop = write(tmp_path, "id: a\nversion: '1'\nextends: loop.yaml\n", "loop.yaml")
    assert "extends loop" in errors_of(loop)


ADVISORY_PARENT = GOOD.replace("""            severity: medium
""", """            severity: medium
            advisory: {zh: CIS 取值，指导书未给, en: "CIS value; the guide gives none"}
""")


def test_move_keeps_a_check_whose_item_is_dropped(tmp_path):
    write(tmp_path, GOOD, "parent.yaml")
    child = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        renumber: {"8.1.4": "7.1.4"}
        move:
          t-max-days: "7.1.4.1.b"
        remove: ["7.1.4.1.a"]
        """, "child.yaml")
    spec = load_baseline(child)
    checks = {c.id: (ctl.clause, it.item) for ctl, it, c in spec.iter_checks()}
    assert checks == {"t-max-days": ("7.1.4.1", "b")}   # moved before its item went; the item's other check went
    bad = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        move:
          t-nope: "8.1.4.1.b"
          t-max-days: "8.1.4.9.z"
        """, "bad.yaml")
    assert "bad.yaml:5: move.t-nope: no check 't-nope' in tiny" in errors_of(bad)
    bad = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        move:
          t-max-days: "8.1.4.9.z"
        """, "bad2.yaml")
    assert "bad2.yaml:5: move.t-max-days: no item '8.1.4.9.z' in tiny" in errors_of(bad)


def test_advisory_checks_and_a_site_that_requires_them(tmp_path):
    parent = write(tmp_path, ADVISORY_PARENT, "parent.yaml")
    checks = {c.id: c for c in load_baseline(parent).controls[0].items[0].checks}
    assert checks["t-max-days"].advisory.en == "CIS value; the guide gives none" and checks["t-no-rhosts"].advisory is None
    site = write(tmp_path, """\
        id: site
        version: "1"
        extends: parent.yaml
        required: [t-max-days]
        """, "site.yaml")
    assert all(c.advisory is None for _, _, c in load_baseline(site).iter_checks())
    bad = write(tmp_path, """\
        id: site
        version: "1"
        extends: parent.yaml
        required:
          - t-no-rhosts
        """, "bad.yaml")
    assert "bad.yaml:5: required[0]: check 't-no-rhosts' is not advisory in tiny" in errors_of(bad)
    empty = write(tmp_path, ADVISORY_PARENT.replace('"CIS value; the guide gives none"', '""'), "empty.yaml")
    assert "empty.yaml:28: controls[0].items[0].checks[1].advisory.en: String should have at least 1" in errors_of(empty)


def test_an_advisory_failure_does_not_decide_the_exit_code(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "login.defs").write_text("PASS_MAX_DAYS 99999\n")
    (tmp_path / "etc" / "os-release").write_text("ID=debian\nVERSION_ID=12\n")
    parent = write(tmp_path, ADVISORY_PARENT, "parent.yaml")
    assert main(["check", "--baseline", str(parent), "--root", str(tmp_path), "--format", "json",
                 "-o", str(tmp_path / "out.json")]) == 0
    site = write(tmp_path, "id: site\nversion: '1'\nextends: parent.yaml\nrequired: [t-max-days]\n", "site.yaml")
    assert main(["check", "--baseline", str(site), "--root", str(tmp_path), "--format", "json",
                 "-o", str(tmp_path / "out2.json")]) == 1
