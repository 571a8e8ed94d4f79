"""checks/pam_stack.py and the pam.lockout/complexity/nullok probes without root: the same stacks as
tests/test_pam_real.py, with the answers libpam gave there (pamtester, Linux-PAM 1.5.2, Debian 12), so the
dispatch model is held to them on machines where the real runs skip."""
from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.hostview import RootHost
from sentinel.probe import ProbeContext, registry
from tests.test_pam_real import (
    ACCESS_CASES,
    COMPLEXITY_CASES,
    FAILLOCK_CONF,
    HASH_CASES,
    LOCKOUT_CASES,
    SUBSTACKS,
    WHEEL,
    WHEEL_CASES,
)

MODULES = ("pam_wheel.so", "pam_unix.so", "pam_deny.so", "pam_permit.so", "pam_faillock.so", "pam_pwquality.so",
           "pam_pwhistory.so", "pam_rootok.so", "pam_env.so")

# What libpam did with each stack (tests/test_pam_real.py asserts the same answers against pamtester)
LIBPAM_GETS_IN = {"missing-include": False, "dash-required-missing-module": False,
                  "dash-sufficient-missing-module": True, "required-missing-module": False,
                  "bad-jump-past-end": False, "jump-over-substack": True, "die-in-substack": False,
                  "die-in-substack-then-reset": True, "die-in-include-then-reset": False,
                  "done-in-substack": False, "reset": True, "unknown-type": False, "other-fallback": True,
                  "comment-ends-continuation": False, "backslash-trailing-blank": True,
                  "comment-line-inside-continuation": True, "control-blanks": True, "control-typo": False,
                  "control-two-defaults": True, "at-include-missing": False, "at-include-other-types": True}
LIBPAM_LOCKOUT_HOLDS = {"good": True, "sufficient-before-preauth": False, "sshd-without-common-auth": False,
                        "renamed-include": True, "substack": True}
LIBPAM_WEAK_STORED = {"requisite-use-authtok": False, "optional-unix-prompts": True, "optional-use-authtok": False,
                      "required-unix-prompts": True, "requisite-unix-prompts": False,
                      "history-prompts-first": False}


def _root(tmp_path: Path, pamd: dict[str, str], security: dict[str, str] | None = None) -> Path:
    for name, text in pamd.items():
        path = tmp_path / "etc/pam.d" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for name, text in (security or {}).items():
        path = tmp_path / "etc/security" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    moddir = tmp_path / "usr/lib/x86_64-linux-gnu/security"
    moddir.mkdir(parents=True, exist_ok=True)
    for module in MODULES:
        (moddir / module).touch()
    return tmp_path


def _probe(kind: str, root: Path, services: list[str]):
    pdef = registry()[kind]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    return pdef.func(ctx, pdef.params.model_validate({"services": services}))


LIBPAM_NON_MEMBER_GETS_IN = {"required-first": False, "after-sufficient-unix": True, "optional": True,
                             "commented-out": True, "in-substack": False}


def test_recorded_answers_cover_every_case():
    assert set(LIBPAM_HASH) == set(HASH_CASES)
    assert set(LIBPAM_NON_MEMBER_GETS_IN) == set(WHEEL_CASES)
    assert set(LIBPAM_GETS_IN) == set(ACCESS_CASES)
    assert set(LIBPAM_LOCKOUT_HOLDS) == set(LOCKOUT_CASES)
    assert set(LIBPAM_WEAK_STORED) == set(COMPLEXITY_CASES)


@pytest.mark.parametrize("case", sorted(ACCESS_CASES))
def test_who_gets_in(tmp_path: Path, case: str):
    pamd = dict(SUBSTACKS)
    if ACCESS_CASES[case] is not None:
        pamd["sshd"] = ACCESS_CASES[case]
    row = _probe("pam.lockout", _root(tmp_path, pamd), ["sshd"]).observed[0]
    assert ("nobody can authenticate" not in row["why"]) is LIBPAM_GETS_IN[case], row["why"]


@pytest.mark.parametrize("case", sorted(LOCKOUT_CASES))
def test_lockout(tmp_path: Path, case: str):
    obs = _probe("pam.lockout", _root(tmp_path, LOCKOUT_CASES[case], {"faillock.conf": FAILLOCK_CONF}), ["sshd"])
    row = obs.observed[0]
    assert row["enforced"] is LIBPAM_LOCKOUT_HOLDS[case], row["why"]
    if row["enforced"]:
        assert row["module"] == "pam_faillock" and row["deny"] == 3  # from faillock.conf
    elif case == "sufficient-before-preauth":
        # the evidence names the line that lets the locked account in, with what it returned
        assert any(e.source == "/etc/pam.d/sshd" and e.line == 1 and "-> success" in (e.excerpt or "")
                   for e in obs.evidence)


@pytest.mark.parametrize("case", sorted(COMPLEXITY_CASES))
def test_complexity(tmp_path: Path, case: str):
    root = _root(tmp_path, {"common-password": COMPLEXITY_CASES[case], "passwd": "@include common-password\n"})
    row = _probe("pam.complexity", root, ["passwd"]).observed[0]
    assert row["enforced"] is (not LIBPAM_WEAK_STORED[case]), row["why"]
    assert row["module"] == "pam_pwquality" and row["classes_required"] == 3


@pytest.mark.parametrize("nullok", [True, False])
def test_nullok(tmp_path: Path, nullok: bool):
    stack = (f"auth [success=1 default=ignore] pam_unix.so{' nullok' if nullok else ''}\n"
             "auth requisite pam_deny.so\nauth required pam_permit.so\n")
    root = _root(tmp_path, {"common-auth": stack, "login": "@include common-auth\n"})
    assert _probe("pam.nullok", root, ["login"]).observed[0]["nullok"] is nullok


def test_nullok_not_reached_is_not_counted(tmp_path: Path):
    # a nullok pam_unix that no way through the stack reaches lets nobody in with an empty password
    stack = ("auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
             "auth sufficient pam_unix.so nullok\nauth required pam_permit.so\n")
    root = _root(tmp_path, {"login": stack})
    assert _probe("pam.nullok", root, ["login"]).observed[0]["nullok"] is False


def test_lockout_without_root_module_dirs_assumes_modules_present(tmp_path: Path):
    # an offline root with no module directory: sentinel cannot tell what is installed, so it does not
    # turn every module into a failing one
    (tmp_path / "etc/pam.d").mkdir(parents=True)
    (tmp_path / "etc/pam.d/sshd").write_text(LOCKOUT_CASES["good"]["common-auth"])
    row = _probe("pam.lockout", tmp_path, ["sshd"]).observed[0]
    assert row["enforced"] is True and "every way" in row["why"]


def test_missing_service_and_other(tmp_path: Path):
    (tmp_path / "etc/pam.d").mkdir(parents=True)
    row = _probe("pam.lockout", tmp_path, ["sshd"]).observed[0]
    assert row["enforced"] is True and "no PAM configuration for sshd and no other" in row["why"]


@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_su_wheel(tmp_path: Path, case: str):
    root = _root(tmp_path, {"su": WHEEL_CASES[case], "su-wheel": f"auth requisite {WHEEL}\n"})
    row = _probe("pam.wheel", root, ["su"]).observed[0]
    assert row["restricted"] is (not LIBPAM_NON_MEMBER_GETS_IN[case]), row["why"]


def test_many_unknown_modules_stay_cheap(tmp_path: Path):
    # 25 modules of unknown outcome (5 codes each, one a jump): 5**25 ways, but few distinct dispatch states
    unknown = "".join(f"auth [success=ok user_unknown=ignore authinfo_unavail=1 default=bad] pam_x{i}.so\n"
                      for i in range(25))
    stack = "auth required pam_faillock.so preauth\n" + unknown + \
        "auth sufficient pam_unix.so\nauth [default=die] pam_faillock.so authfail\n"
    (tmp_path / "etc/pam.d").mkdir(parents=True)
    (tmp_path / "etc/pam.d/sshd").write_text(stack)
    row = _probe("pam.lockout", tmp_path, ["sshd"]).observed[0]
    assert row["enforced"] is True
    (tmp_path / "etc/pam.d/sshd").write_text(unknown + "auth sufficient pam_unix.so\n" + stack)
    row = _probe("pam.lockout", tmp_path, ["sshd"]).observed[0]
    assert row["enforced"] is False and "locked account still logs in" in row["why"]


def test_pwquality_defaults_and_enforcing_off(tmp_path: Path):
    stack = ("password requisite pam_pwquality.so\n"
             "password [success=1 default=ignore] pam_unix.so use_authtok\n"
             "password requisite pam_deny.so\npassword required pam_permit.so\n")
    root = _root(tmp_path, {"passwd": stack})
    obs = _probe("pam.complexity", root, ["passwd"])
    row = obs.observed[0]
    # nothing set anywhere: libpwquality's own defaults, and the evidence says they are defaults
    assert row["enforced"] is True and row["minlen"] == 8 and row["classes_required"] == 0
    assert row["enforce_for_root"] is False
    assert any("defaults for what neither the line nor its config file sets" in (e.excerpt or "")
               for e in obs.evidence)
    # libpwquality refuses nothing with enforcing = 0 (tests/test_pam_real.py shows the weak one stored)
    (tmp_path / "etc/security").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/security/pwquality.conf").write_text("enforcing = 0\nminlen = 10\n")
    row = _probe("pam.complexity", root, ["passwd"]).observed[0]
    assert row["enforced"] is False and row["minlen"] == 10 and "weak password is stored" in row["why"]


@pytest.mark.parametrize("sshd_config,enforced,nobody", [
    ("UsePAM yes\n", True, False),
    ("UsePAM no\n", False, False),  # OpenSSH checks the password itself: pam_faillock never sees it
    ("# UsePAM yes\nPasswordAuthentication yes\n", False, False),  # unset: OpenSSH's default is no
    ("UsePAM no\nPasswordAuthentication no\n", True, True),  # keys only: no password to guess
    ("UsePAM no\nPasswordAuthentication no\nMatch User backup\n  PasswordAuthentication yes\n", False, False),
])
def test_lockout_sshd_without_pam(tmp_path: Path, sshd_config: str, enforced: bool, nobody: bool):
    pamd = dict(LOCKOUT_CASES["good"], login="@include common-auth\n")
    root = _root(tmp_path, pamd, {"faillock.conf": FAILLOCK_CONF})
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/sshd_config").write_text(sshd_config)
    row = _probe("pam.lockout", root, ["sshd", "login"]).observed
    assert (row[0]["enforced"], row[0]["nobody"]) == (enforced, nobody), row[0]["why"]
    assert row[1]["enforced"] is True and row[1]["nobody"] is False  # login does not depend on sshd_config


def test_pwquality_enforcing_from_the_file_read_last(tmp_path: Path):
    # pwquality.conf.d/*.conf first, pwquality.conf last: its enforcing = 1 wins over the drop-in's 0
    stack = "password requisite pam_pwquality.so\npassword required pam_unix.so use_authtok\n"
    root = _root(tmp_path, {"passwd": stack}, {"pwquality.conf": "enforcing = 1\n",
                                               "pwquality.conf.d/10-lax.conf": "enforcing = 0\n"})
    assert _probe("pam.complexity", root, ["passwd"]).observed[0]["enforced"] is True
    (root / "etc/security/pwquality.conf").write_text("# nothing\n")
    assert _probe("pam.complexity", root, ["passwd"]).observed[0]["enforced"] is False


LIBPAM_HASH = {"sha512-arg": "sha512", "login-defs": "yescrypt", "login-defs-comment": "sha512",
               "last-option-wins": "md5", "first-key-wins": "md5", "jumped-over": "yescrypt"}


@pytest.mark.parametrize("case", sorted(HASH_CASES))
def test_new_password_hash(tmp_path: Path, case: str):
    stack, login_defs = HASH_CASES[case]
    root = _root(tmp_path, {"passwd": stack})
    (root / "etc/login.defs").write_text(login_defs)
    assert _probe("pam.hash", root, ["passwd"]).observed[0]["method"] == LIBPAM_HASH[case]


def test_hash_without_any_setting_is_des(tmp_path: Path):
    root = _root(tmp_path, {"passwd": "password required pam_unix.so\n"})
    obs = _probe("pam.hash", root, ["passwd"])
    assert obs.observed[0]["method"] == "des" and "built-in DES" in obs.evidence[-1].excerpt
