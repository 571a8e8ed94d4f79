"""login.defs as shadow-utils reads it: the real `useradd` answers which PASS_MAX_DAYS / PASS_WARN_AGE /
UID_MIN a new account gets, and sentinel's logindefs.value (and accounts' UID_MIN) must say the same.

useradd runs in a private mount namespace with a copy of /etc bound over /etc, so the host's /etc is never
written. Needs root, `unshare` and `useradd` (shadow-utils); those tests are skipped with the reason
otherwise. The tokenizer tests below them need nothing.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks.accounts import uid_min_from_login_defs
from sentinel.checks.logindefs import c_integer, parse_login_defs
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from sentinel.probe import ProbeContext, registry

real = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("useradd"),
    reason="needs root, unshare (util-linux) and useradd (shadow-utils: apt-get install passwd)")

USER = "h10ldtest"


def _lab(tmp: Path, login_defs: str) -> Path:
    """A root whose etc is a copy of /etc with `login_defs` as /etc/login.defs."""
    root = tmp / "root"
    shutil.copytree("/etc", root / "etc", symlinks=True,
                    ignore=shutil.ignore_patterns("ssl", "ssh", "pam.d", "alternatives", "X11", "fonts"))
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)  # useradd opens its PAM service
    (root / "etc" / "login.defs").write_text(login_defs)
    return root


def _useradd(root: Path) -> tuple[dict[str, str], str]:
    """The real useradd in the copy: (new account's shadow fields, useradd's stderr)."""
    etc = root / "etc"
    script = (f"mount --bind {shlex.quote(str(etc))} /etc && useradd -M -s /bin/sh {USER} && "
              f"getent passwd {USER}")
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    uid = run.stdout.split(":")[2]
    line = next(x for x in (etc / "shadow").read_text().splitlines() if x.startswith(USER + ":"))
    f = line.split(":")
    return {"uid": uid, "max": f[4], "warn": f[5]}, run.stderr


def _sentinel(root: Path, key: str, default: int = -1):
    pdef = registry()["logindefs.value"]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    return pdef.func(ctx, pdef.params.model_validate({"key": key, "default": default}))


def _as_field(value: int) -> str:
    return "" if value == -1 else str(value)  # useradd writes -1 as an empty shadow field


CASES = {
    "plain": ("PASS_MAX_DAYS 90\nPASS_WARN_AGE 7\nUID_MIN 2000\n", True),
    # issue 14: the comment is part of the value, shadow-utils refuses it, new accounts never expire
    "inline-comment": ("PASS_MAX_DAYS 90 # 等保\nPASS_WARN_AGE 7\t# warn\nUID_MIN 2000 #x\n", False),
    "quoted": ('PASS_MAX_DAYS "60"\nPASS_WARN_AGE "7" \nUID_MIN "3000"\n', True),
    "octal-and-hex": ("PASS_MAX_DAYS 010\nPASS_WARN_AGE 0x7\nUID_MIN 0x7d0\n", True),
    "last-wins": ("PASS_MAX_DAYS 30\nPASS_MAX_DAYS 99999\nPASS_WARN_AGE 7\nUID_MIN 1000\n", False),
    "no-value": ("PASS_MAX_DAYS\nPASS_WARN_AGE 09\nUID_MIN 1e3\n", False),
    "unset": ("# nothing here\n", False),
}


@pytest.mark.root
@real
@pytest.mark.parametrize("name", list(CASES))
def test_new_account_aging_agrees_with_useradd(tmp_path, name):
    text, compliant = CASES[name]
    root = _lab(tmp_path, text)
    got, stderr = _useradd(root)
    max_days = _sentinel(root, "PASS_MAX_DAYS").observed
    warn = _sentinel(root, "PASS_WARN_AGE").observed
    assert _as_field(max_days) == got["max"], (name, max_days, got, stderr)
    assert _as_field(warn) == got["warn"], (name, warn, got, stderr)
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    uid_min, _ = uid_min_from_login_defs(ctx)
    assert int(got["uid"]) >= uid_min and int(got["uid"]) < uid_min + 1000, (name, uid_min, got)
    # and the baseline's verdict follows: PASS_MAX_DAYS passes only when useradd really set <= 90
    baseline = load_baseline("dengbao-l3-linux")
    result = {r.check_id: r for r in run_baseline(baseline, RootHost(str(root))).results}["l3-ia-pass-max-days"]
    really = got["max"] != "" and int(got["max"]) <= 90
    assert (result.status.value == "pass") == really == compliant, (name, result)


def test_inline_comment_is_part_of_the_value():
    items = parse_login_defs('  PASS_MAX_DAYS\t90 # 等保\nUMASK "027"x\nENCRYPT_METHOD\n#UID_MIN 5\n')
    assert items["PASS_MAX_DAYS"].value == "90 # 等保"
    assert items["UMASK"].value == "027"  # the value ends at the next double quote
    assert "ENCRYPT_METHOD" not in items and "UID_MIN" not in items


@pytest.mark.parametrize("text,value", [("90", 90), ("010", 8), ("0x10", 16), ("-1", -1), (" 7", 7),
                                        ("+5", 5), ("0", 0), ("08", None), ("90 # x", None), ("0x", None),
                                        ("", None), ("9d", None)])
def test_numbers_as_strtol_base_0(text, value):
    assert c_integer(text) == value


def test_refused_value_says_why(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "login.defs").write_text("PASS_MAX_DAYS 90 # 等保\n")
    obs = _sentinel(tmp_path, "PASS_MAX_DAYS")
    assert obs.observed == -1
    assert "cannot parse" in obs.note and "PASS_MAX_DAYS 90 # 等保" == obs.evidence[0].excerpt
    pdef = registry()["logindefs.value"]
    ctx = ProbeContext(host=RootHost(str(tmp_path)), family=None, os_release={})
    (tmp_path / "etc" / "login.defs").write_text("UMASK 027\n")
    umask = pdef.func(ctx, pdef.params.model_validate({"key": "UMASK", "kind": "octal", "default": "0022"}))
    assert umask.observed == "0027"
