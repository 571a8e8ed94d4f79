"""The MySQL/MariaDB baselines keep their promises: every 安全计算环境 item of the level, object `mysql`, ids of their
own, both languages everywhere, live checks paired with an option-file check where the fact lives in a file, and
every probe kind and parameter in docs/probes.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentinel.baseline import BaselineError, load_baseline, shipped
from sentinel.catalogue import load as load_catalogue
from sentinel.probe import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"
CJK = re.compile(r"[\u4e00-\u9fff]")
# live check -> its option-file partner (accounts, databases and processes exist only in the running server)
LIVE_PAIRS = {
    "l3-mysql-ia-password-complexity": "l3-mysql-ia-password-complexity-config",
    "l3-mysql-ia-password-lifetime": "l3-mysql-ia-password-lifetime-config",
    "l3-mysql-ia-login-lockout": "l3-mysql-ia-login-lockout-config",
    "l3-mysql-ia-idle-timeout": "l3-mysql-ia-idle-timeout-config",
    "l3-mysql-ac-local-infile-off": "l3-mysql-ac-local-infile-off-config",
    "l3-mysql-ac-secure-file-priv": "l3-mysql-ac-secure-file-priv-config",
    "l3-mysql-au-audit-on": "l3-mysql-au-audit-on-config",
    "l3-mysql-di-tls-required": "l3-mysql-di-tls-required-config",
    "l3-mysql-dc-tls-required": "l3-mysql-dc-tls-required-config",
    "l3-mysql-dc-tls-version": "l3-mysql-dc-tls-version-config",
    "l3-mysql-br-binlog": "l3-mysql-br-binlog-config",
}


@pytest.fixture(scope="module")
def baselines():
    return {level: load_baseline(f"dengbao-l{level}-mysql") for level in (2, 3, 4)}


def test_every_item_of_the_level_is_there(baselines):
    cat = load_catalogue()
    for level, b in baselines.items():
        assert b.object == "mysql" and b.level == level
        assert {i.key for c in b.controls for i in c.items} == {i.key for i in cat.items(level, "general", "ces")}
        for control in b.controls:
            for item in control.items:
                assert item.checks or item.notes, (level, item.key)  # manual items say what the assessor checks


def test_ids_are_the_objects_own_and_unique_across_shipped_baselines(baselines):
    ours = [k.id for _, _, k in baselines[3].iter_checks()]
    assert len(ours) == len(set(ours)) and all(re.fullmatch(r"l3-mysql-[a-z]{2}-[a-z0-9-]+", i) for i in ours)
    for name in shipped():
        if name.endswith("-mysql"):
            continue
        try:
            others = {k.id for _, _, k in load_baseline(name).iter_checks()}
        except BaselineError:  # another object's file being written in this tree: its own tests judge it
            continue
        assert not others & set(ours), name


def test_texts_in_both_languages(baselines):
    for _, _, check in baselines[3].iter_checks():
        for text in (check.title, check.rationale):
            assert CJK.search(text.zh), check.id
        for text in (check.title, check.rationale, check.remediation):
            assert text.zh.strip() and text.en.strip() and not CJK.search(text.en), check.id


def test_live_checks_have_option_file_partners(baselines):
    checks = {k.id: k for _, _, k in baselines[3].iter_checks()}
    probes = registry()
    for live, config in LIVE_PAIRS.items():
        assert probes[checks[live].probe].live_only and not probes[checks[config].probe].live_only
    live_only = {i for i, k in checks.items() if probes[k.probe].live_only}
    assert live_only - set(LIVE_PAIRS) == {
        "l3-mysql-ia-empty-password", "l3-mysql-ia-duplicate-names", "l3-mysql-ia-no-cleartext-auth",
        "l3-mysql-ac-no-anonymous", "l3-mysql-ac-root-local-only", "l3-mysql-ac-no-test-database",
        "l3-mysql-ac-admin-privileges", "l3-mysql-ac-server-not-root", "l3-mysql-au-super-restricted",
        "l3-mysql-au-audit-plugin-permanent", "l3-mysql-ip-no-any-host-accounts", "l3-mysql-ip-skip-name-resolve",
        "l3-mysql-au-log-files-protected", "l3-mysql-ia-no-password-never-expires",
        "l3-mysql-dc-tls-ciphers"}


def test_level_2_keeps_the_checks_under_its_own_items(baselines):
    l2 = {k.id: i.key for _, i, k in baselines[2].iter_checks()}
    assert set(l2) == {k.id for _, _, k in baselines[3].iter_checks()}
    assert l2["l3-mysql-dc-tls-required"] == "ces.auth.remote-eavesdrop"
    assert l2["l3-mysql-ac-local-infile-off"] == "ces.access.assign-accounts"
    assert l2["l3-mysql-au-super-restricted"] == "ces.access.least-privilege"


def test_high_risk_cases_are_the_guides(baselines):
    marked = {k.id: k.high_risk for _, _, k in baselines[3].iter_checks() if k.high_risk}
    assert marked == {"l3-mysql-ia-empty-password": "6.4.1.1", "l3-mysql-ia-no-cleartext-auth": "6.4.1.2",
                      "l3-mysql-ac-no-anonymous": "6.4.2.1"}


def test_every_probe_kind_and_param_is_documented(baselines):
    documented: dict[str, set[str]] = {}
    for line in (DOCS / "probes.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) >= 4 and re.fullmatch(r"`mysql\.[a-z_]+`", cells[1]):
            documented[cells[1].strip("`")] = set(re.findall(r"`([a-z_]+)(?::[^`]*)?`", cells[2]))
    for _, _, check in baselines[3].iter_checks():
        assert check.probe in documented, check.id
        assert set(check.params) <= documented[check.probe], (check.id, set(check.params))
    text = (DOCS / "objects" / "mysql.md").read_text(encoding="utf-8")
    for _, _, check in baselines[3].iter_checks():  # each check is explained in the object's page
        base = check.id.removesuffix("-config")
        assert f"`{check.id}`" in text or f"`{base}`, `-config`" in text, check.id
