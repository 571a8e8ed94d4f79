"""Baseline loading: precise `file:line: message` errors (exit 2), extends, overrides and waivers."""
import textwrap

import pytest

from sentinel.baseline import BaselineError, load_baseline
from sentinel.catalogue import load as load_catalogue
from sentinel.cli import main

GOOD = """\
id: tiny
version: "1"
title: {zh: 小基线, en: tiny baseline}
level: 3
os_families: [debian, rhel]
covers: [ces.auth]
items:
  - ref: ces.auth.identify
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
  - ref: ces.auth.login-failure
    notes: {zh: 人工项, en: manual item}
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
    # every item of the covered control point, numbered, worded and weighed by the catalogue at level 3
    auth = load_catalogue().control("ces.auth", 3)
    assert [c.key for c in spec.controls] == ["ces.auth"] and spec.controls[0].clause == auth.clause
    assert [(i.key, i.item, i.text, i.weight, i.unit) for i in spec.controls[0].items] == \
        [(i.key, i.letter, i.text, i.weight, i.unit) for i in auth.items]
    assert spec.controls[0].name == auth.name
    assert spec.controls[0].items[1].checks == [] and spec.controls[0].items[1].notes.en == "manual item"
    assert [i.checks for i in spec.controls[0].items[2:]] == [[], []]  # not in the file: manual all the same


@pytest.mark.parametrize("mutate, line, message", [
    (lambda t: t.replace("severity: high", "severity: hgih"), 15, "items[0].checks[0].severity: Input should be"),
    (lambda t: t.replace("probe: file.exists", "probe: file.existz"), 12, "unknown probe kind 'file.existz'"),
    (lambda t: t.replace("level: 3", "level: 5"), 4, "level: Input should be 2, 3 or 4"),
    (lambda t: t.replace("id: t-max-days", "id: t-no-rhosts"), 18, "duplicate check id 't-no-rhosts'"),
    (lambda t: t.replace("  - ref: ces.auth.identify\n", "  - \n"), 9, "items[0].ref: Field required"),
    (lambda t: t.replace("params: {paths: [/etc/hosts.equiv]}", "params: {path: /etc/hosts.equiv}"), 13,
     "params.path: unknown key"),
    (lambda t: t.replace("expect: {le: 90}", "expect: {less: 90}"), 22, "expect.less: unknown key"),
    (lambda t: t.replace("level: 3", "level: 3\nlevel: 4"), 5, "level: duplicate key"),
    (lambda t: t.replace("title: {zh: 小基线, en: tiny baseline}", "title: {zh: 小基线, en: [oops"), 4,
     "invalid YAML"),
    # the catalogue side: unknown keys, a level without the item, scope, duplicates, the old format
    (lambda t: t.replace("ref: ces.auth.identify", "ref: ces.auth.identfy"), 8,
     "items[0].ref: ces.auth.identfy: no such item in the catalogue of GB/T 22239-2019"),
    (lambda t: t.replace("ref: ces.auth.login-failure", "ref: ces.integrity.non-repudiation").replace(
        "covers: [ces.auth]", "covers: [ces]"), 26,
     "items[1].ref: ces.integrity.non-repudiation: level 3 has no such item (it is in level 4)"),
    (lambda t: t.replace("ref: ces.auth.login-failure", "ref: ces.access.default-accounts"), 26,
     "items[1].ref: ces.access.default-accounts: outside what the baseline covers"),
    (lambda t: t.replace("ref: ces.auth.login-failure", "ref: ces.auth.identify"), 26,
     "items[1].ref: ces.auth.identify: listed twice (also items[0])"),
    (lambda t: t.replace("covers: [ces.auth]", "covers: [ces.auht]"), 6,
     "covers[0]: ces.auht: no such control point in the catalogue"),
    (lambda t: t.replace("covers: [ces.auth]", "covers: [xyz]"), 6, "covers[0]: xyz: the catalogue has no class"),
    (lambda t: t.replace("ref: ces.auth.identify", "ref: 8.1.4.1.a"), 8, "items[0].ref: String should match"),
    (lambda t: t.replace("covers: [ces.auth]\n", ""), 1, "covers: Field required"),
    (lambda t: t.replace("  - ref: ces.auth.login-failure\n", "  - ref: ces.auth.login-failure\n    weight: 1.0\n"),
     27, "items[1].weight: unknown key"),
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
    assert "bad.yaml:15: items[0].checks[0].severity" in capsys.readouterr().err
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
        covers: [ces.access]
        override:
          t-max-days: {expect: {le: 60}, params: {key: PASS_MAX_DAYS}}
        waive:
          t-no-rhosts: "hosts.equiv is managed by the platform (ticket 42)"
        items:
          - ref: ces.access.assign-accounts
            notes: {zh: 账户清单由堡垒机维护, en: the account list is kept by the bastion host}
        add_checks:
          "8.1.4.1.b":
            - id: t-lockout
              title: {zh: 登录失败锁定, en: lockout}
              probe: file.exists
              params: {paths: [/etc/security/faillock.conf]}
              expect: {empty: false}
              severity: medium
              rationale: {zh: 理由, en: why}
              remediation: {zh: 配置, en: configure it}
        """, "child.yaml")
    spec = load_baseline(child)
    assert spec.id == "site" and spec.level == 3 and spec.lineage == ["tiny"]
    checks = {c.id: (it.key, c) for _, it, c in spec.iter_checks()}
    assert checks["t-max-days"][0] == "ces.auth.identify"
    assert checks["t-max-days"][1].expect.le == 60
    assert checks["t-max-days"][1].params == {"paths": ["/etc/login.defs"], "key": "PASS_MAX_DAYS",
                                              "separator": "space"}
    assert checks["t-no-rhosts"][1].waiver.startswith("hosts.equiv is managed")
    assert checks["t-lockout"][0] == "ces.auth.login-failure"  # the clause form, read at the file's level
    assert spec.covers == ["ces.auth", "ces.access"]
    cat = load_catalogue()
    assert [c.clause for c in spec.controls] == [cat.control("ces.auth", 3).clause, cat.control("ces.access", 3).clause]
    assert [i.key for i in spec.controls[1].items] == [i.key for i in cat.control("ces.access", 3).items]
    assert spec.controls[1].items[0].notes.zh == "账户清单由堡垒机维护"


def test_a_level_takes_its_own_items_numbers_and_texts(tmp_path):
    """A child at another level: inherited items that level lacks drop out, the rest are renumbered and reworded
    by the catalogue; no clause is written anywhere."""
    write(tmp_path, GOOD.replace("covers: [ces.auth]", "covers: [ces.auth, ces.malware]").replace(
        "  - ref: ces.auth.login-failure\n", "  - ref: ces.auth.multi-factor\n"), "parent.yaml")
    child = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        level: 2
        """, "child.yaml")
    spec = load_baseline(child)
    cat = load_catalogue()
    assert spec.level == 2
    for control in spec.controls:
        assert control.clause == cat.control(control.key, 2).clause
        for item in control.items:
            want = cat.item(item.key, 2)
            assert (control.clause, item.item, item.text, item.weight, item.unit) == \
                (want.clause, want.letter, want.text, want.weight, want.unit)
    assert "ces.auth.multi-factor" not in {i.key for c in spec.controls for i in c.items}  # level 3+ only
    assert cat.item("ces.malware.protection", 2).text != cat.item("ces.malware.protection", 3).text
    assert spec.controls[1].items[0].text == cat.item("ces.malware.protection", 2).text


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


ADVISORY_PARENT = GOOD.replace("""        severity: medium
""", """        severity: medium
        advisory: {zh: CIS 取值，指导书未给, en: "CIS value; the guide gives none"}
""")


def test_move_keeps_a_check_whose_item_is_dropped(tmp_path):
    write(tmp_path, GOOD.replace("ref: ces.auth.identify", "ref: ces.auth.multi-factor"), "parent.yaml")
    child = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        level: 2
        move:
          t-max-days: ces.auth.login-failure
        """, "child.yaml")
    spec = load_baseline(child)
    checks = {c.id: it.key for _, it, c in spec.iter_checks()}
    # moved before its item (level 3+ only) went; the item's other check went with it
    assert checks == {"t-max-days": "ces.auth.login-failure"}
    bad = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        move:
          t-nope: ces.auth.login-failure
          t-max-days: ces.auth.nope
        """, "bad.yaml")
    assert "bad.yaml:5: move.t-nope: no check 't-nope' in tiny" in errors_of(bad)
    bad = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        move:
          t-max-days: ces.auth.nope
        """, "bad2.yaml")
    assert "bad2.yaml:5: move.t-max-days: ces.auth.nope: no such item in the catalogue" in errors_of(bad)
    bad = write(tmp_path, """\
        id: l2
        version: "1"
        extends: parent.yaml
        level: 2
        move:
          t-max-days: "8.1.4.1.b"
        """, "bad3.yaml")  # a clause form is read at the file's level: level 2 numbers it 7.1.4.1.b
    assert "bad3.yaml:6: move.t-max-days: 8.1.4.1.b: no such item at level 2" in errors_of(bad)


def test_extending_errors_of_the_catalogue_format(tmp_path):
    write(tmp_path, GOOD, "parent.yaml")
    cases = {
        "renumber: {'8.1.4': '9.1.4'}\n": "child.yaml:4: renumber: clause numbers come from the catalogue",
        "controls: []\n": "child.yaml:4: controls: control points and items come from the catalogue",
        "remove: [t-max-days, ces.auth.identify]\n": "child.yaml:4: remove[1]: ces.auth.identify: an item cannot "
                                                     "be removed",
        "remove: ['8.1.4.1.a']\n": "child.yaml:4: remove[0]: 8.1.4.1.a: an item cannot be removed",
        "items:\n  - {ref: ces.auth.identify, weight: 1.0}\n": "child.yaml:5: items[0]: an item gives ref, and "
                                                                "checks and/or notes",
        "items:\n  - {ref: ces.access.default-accounts, notes: {zh: 说明, en: note}}\n":
            "child.yaml:5: items[0].ref: ces.access.default-accounts: outside what the baseline covers",
        "add_checks:\n  ces.auth.nope: []\n": "child.yaml:5: add_checks.ces.auth.nope: ces.auth.nope: no such item",
        "level: 5\n": "child.yaml:4: level: 5: the catalogue has levels 2, 3 and 4",
        "covers: [ces.nope]\n": "child.yaml:4: covers[1]: ces.nope: no such control point",
    }
    for extra, message in cases.items():
        child = write(tmp_path, "id: site\nversion: '1'\nextends: parent.yaml\n" + extra, "child.yaml")
        assert message in errors_of(child), (extra, errors_of(child))


def test_advisory_checks_and_a_site_that_requires_them(tmp_path):
    parent = write(tmp_path, ADVISORY_PARENT, "parent.yaml")
    checks = {c.id: c for c in load_baseline(parent).controls[0].items[0].checks}
    assert checks["t-max-days"].advisory.en == "CIS value; the guide gives none"
    assert checks["t-no-rhosts"].advisory is None
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
    assert "empty.yaml:24: items[0].checks[1].advisory.en: String should have at least 1" in errors_of(empty)


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
