"""PAM verdicts checked against the real libpam: `pamtester` runs each stack inside a private mount namespace
where a copy of /etc (with the stack under test in /etc/pam.d and a test user with a known password) is
bound over /etc, so the host's own /etc is never written (the test password is set there by chpasswd, the
tallies go to /etc/faillock-lab of the copy). sentinel's pam.lockout / pam.complexity / pam.nullok /
pam.wheel read the same files from an offline root and must agree with what libpam did.

Needs root, `unshare` and `pamtester` (apt: pamtester libpam-pwquality libpwquality-tools); skipped with the
reason otherwise. Written against libpam 1.5 (Debian 12), the line syntax sentinel models.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sentinel.checks.pam_stack import MODULE_DIRS
from sentinel.hostview import RootHost
from sentinel.probe import ProbeContext, registry

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: unshare --mount and pam_unix reading /etc/shadow"),
    pytest.mark.skipif(not shutil.which("pamtester"), reason="pamtester not installed (apt-get install pamtester)"),
    pytest.mark.skipif(not shutil.which("unshare"), reason="unshare (util-linux) not installed"),
]

USER, PASSWORD = "h7pamtest", "Right-Pass-42"


class Lab:
    """A copy of /etc to bind over /etc in a private mount namespace, and the same files as an offline root."""

    def __init__(self, tmp: Path, pamd: dict[str, str], password: str | None, security: dict[str, str]):
        self.root = tmp / "root"
        self.etc = self.root / "etc"
        shutil.copytree("/etc", self.etc, symlinks=True)
        shutil.rmtree(self.etc / "pam.d")
        (self.etc / "pam.d").mkdir()
        shutil.rmtree(self.etc / "ssh", ignore_errors=True)  # sentinel's sshd row would read the host's UsePAM
        for name, text in pamd.items():
            (self.etc / "pam.d" / name).write_text(text)
        for name, text in security.items():
            (self.etc / "security" / name).write_text(text)
        (self.etc / "faillock-lab").mkdir(exist_ok=True)
        # the installed modules, so sentinel can tell a missing module as libpam does
        for moddir in MODULE_DIRS:
            if os.path.isdir(moddir) and not os.path.islink(moddir):
                mirror = self.root / moddir.lstrip("/")
                mirror.mkdir(parents=True, exist_ok=True)
                for name in os.listdir(moddir):
                    (mirror / name).touch()
        with open(self.etc / "passwd", "a") as f:
            f.write(f"{USER}:x:64123:64123::/nonexistent:/bin/sh\n")
        with open(self.etc / "group", "a") as f:
            f.write(f"{USER}:x:64123:\nh7wheel:x:64124:\n")  # h7wheel: no members, root included
        with open(self.etc / "shadow", "a") as f:
            f.write(f"{USER}::19000:0:99999:7:::\n")  # empty until set below
        if password is not None:  # hashed by the real chpasswd inside the namespace (-c: without PAM)
            self._in_namespace(["chpasswd", "-c", "SHA512"], f"{USER}:{password}\n")
            assert self.shadow_hash().startswith("$6$"), "chpasswd did not set the test password"

    def shadow_hash(self) -> str:
        for line in (self.etc / "shadow").read_text().splitlines():
            if line.startswith(USER + ":"):
                return line.split(":")[1]
        raise AssertionError("test user vanished from shadow")

    def _in_namespace(self, argv: list[str], feed: str) -> subprocess.CompletedProcess:
        """Run argv with the copy bound over /etc, in a mount namespace that ends with the command."""
        script = f"mount --bind {shlex.quote(str(self.etc))} /etc && exec " + " ".join(map(shlex.quote, argv))
        run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                             input=feed, capture_output=True, text=True, timeout=60)
        assert "mount:" not in run.stderr, run.stderr
        return run

    def pamtester(self, service: str, op: str, inputs: list[str], user: str = USER) -> bool:
        """One real pamtester call; True when libpam said yes."""
        run = self._in_namespace(["pamtester", service, user, op], "".join(i + "\n" for i in inputs))
        return run.returncode == 0

    def sentinel(self, kind: str, services: list[str]) -> dict[str, dict]:
        pdef = registry()[kind]
        host = RootHost(str(self.root))
        ctx = ProbeContext(host=host, family=None, os_release={})
        obs = pdef.func(ctx, pdef.params.model_validate({"services": services}))
        return {row["service"]: row for row in obs.observed}


FAILLOCK_CONF = "deny = 3\nunlock_time = 600\ndir = /etc/faillock-lab\nnodelay\n"

GOOD_AUTH = """\
auth required pam_faillock.so preauth
auth [success=1 default=ignore] pam_unix.so nodelay
auth [default=die] pam_faillock.so authfail
auth sufficient pam_faillock.so authsucc
auth requisite pam_deny.so
"""
UNIX_ONLY = """\
auth [success=1 default=ignore] pam_unix.so nodelay
auth requisite pam_deny.so
auth required pam_permit.so
"""


def _lockout_holds(lab: Lab, service: str, deny: int = 3, user: str = USER) -> bool:
    """Real answer: after `deny` wrong passwords, is the right one refused?"""
    assert lab.pamtester(service, "authenticate", [PASSWORD], user), "the right password must work at first"
    for _ in range(deny):
        assert not lab.pamtester(service, "authenticate", ["wrong-password"], user)
    return not lab.pamtester(service, "authenticate", [PASSWORD], user)


LOCKOUT_CASES = {
    # the stock fix: preauth before pam_unix, authfail after it
    "good": {"common-auth": GOOD_AUTH, "sshd": "@include common-auth\n"},
    # issue 14: a sufficient pam_unix before the preauth line lets a locked account in
    "sufficient-before-preauth": {"sshd": "auth sufficient pam_unix.so nodelay\n" + GOOD_AUTH},
    # issue 14: sshd that no longer includes common-auth has no lockout, though common-auth has one
    "sshd-without-common-auth": {"common-auth": GOOD_AUTH, "sshd": UNIX_ONLY},
    # issue 14: the stack kept in a renamed include file that the services include still works
    "renamed-include": {"site-auth": GOOD_AUTH, "common-auth": UNIX_ONLY, "sshd": "auth include site-auth\n"},
    # a substack: `die` inside ends only the substack, but its failure still fails sshd
    "substack": {"site-auth": GOOD_AUTH, "sshd": "auth substack site-auth\nauth required pam_permit.so\n"},
}


@pytest.mark.parametrize("case", sorted(LOCKOUT_CASES))
def test_lockout_verdict_matches_libpam(tmp_path: Path, case: str):
    lab = Lab(tmp_path, LOCKOUT_CASES[case], PASSWORD, {"faillock.conf": FAILLOCK_CONF})
    row = lab.sentinel("pam.lockout", ["sshd"])["sshd"]
    real = _lockout_holds(lab, "sshd")
    assert row["enforced"] is real, (case, real, row["why"])


def test_lockout_expected_answers_of_the_issue_cases(tmp_path: Path):
    """The cases above are not vacuous: libpam's answers are the ones the issue reports."""
    answers = {}
    for case, pamd in LOCKOUT_CASES.items():
        lab = Lab(tmp_path / case, pamd, PASSWORD, {"faillock.conf": FAILLOCK_CONF})
        answers[case] = _lockout_holds(lab, "sshd")
    assert answers == {"good": True, "sufficient-before-preauth": False, "sshd-without-common-auth": False,
                       "renamed-include": True, "substack": True}


def test_jump_onto_pam_deny_lets_nobody_in(tmp_path: Path):
    """[success=1] over the authfail line lands on `requisite pam_deny`: libpam refuses the right password,
    and sentinel says nobody authenticates (so the lockout question has nothing to lock)."""
    stack = ("auth required pam_faillock.so preauth\nauth [success=1 default=ignore] pam_unix.so nodelay\n"
             "auth [default=die] pam_faillock.so authfail\nauth requisite pam_deny.so\nauth required pam_permit.so\n")
    lab = Lab(tmp_path, {"sshd": stack}, PASSWORD, {"faillock.conf": FAILLOCK_CONF})
    assert not lab.pamtester("sshd", "authenticate", [PASSWORD])
    row = lab.sentinel("pam.lockout", ["sshd"])["sshd"]
    assert row["enforced"] is True and "nobody can authenticate" in row["why"]


@pytest.mark.parametrize("nullok", [True, False])
def test_nullok_matches_libpam(tmp_path: Path, nullok: bool):
    stack = (f"auth [success=1 default=ignore] pam_unix.so nodelay{' nullok' if nullok else ''}\n"
             "auth requisite pam_deny.so\nauth required pam_permit.so\n")
    lab = Lab(tmp_path, {"common-auth": stack, "login": "@include common-auth\n"}, None, {})
    real = lab.pamtester("login", "authenticate", [""])
    assert real is nullok
    assert lab.sentinel("pam.nullok", ["login"])["login"]["nullok"] is real


def _installed(module: str) -> bool:
    return any(os.path.exists(f"{d}/{module}") for d in MODULE_DIRS)


# Stacks where what matters is only whether the right password gets in at all, each a libpam rule
ACCESS_CASES = {
    "missing-include": "auth include no-such-file\nauth sufficient pam_permit.so\n",
    "dash-required-missing-module": "-auth required pam_h7_not_installed.so\nauth required pam_unix.so nodelay\n",
    "dash-sufficient-missing-module": "-auth sufficient pam_h7_not_installed.so\nauth required pam_unix.so nodelay\n",
    "required-missing-module": "auth required pam_h7_not_installed.so\nauth required pam_unix.so nodelay\n",
    "bad-jump-past-end": "auth [success=3 default=ignore] pam_unix.so nodelay\nauth required pam_permit.so\n",
    "jump-over-substack": "auth [success=1 default=ignore] pam_unix.so nodelay\nauth substack deny-all\n"
                          "auth required pam_permit.so\n",
    "die-in-substack": "auth substack deny-all\nauth sufficient pam_unix.so nodelay\n",
    # `die` ends only the substack, so a later `reset` can still clear its failure; through `include` it
    # ends the whole stack
    "die-in-substack-then-reset": "auth substack deny-all\nauth [success=reset default=bad] pam_permit.so\n"
                                  "auth required pam_unix.so nodelay\n",
    "die-in-include-then-reset": "auth include deny-all\nauth [success=reset default=bad] pam_permit.so\n"
                                 "auth required pam_unix.so nodelay\n",
    "done-in-substack": "auth substack permit-done\nauth required pam_deny.so\n",
    "reset": "auth required pam_deny.so\nauth [success=reset default=bad] pam_permit.so\n"
             "auth required pam_unix.so nodelay\n",
    "unknown-type": "auth required pam_unix.so nodelay\nauthentication required pam_permit.so\n",
    "other-fallback": None,  # sshd has no file: libpam uses other
    # line syntax: a `#` ends the line even before a `\\`; a `\\` with blanks after it still continues;
    # a comment-only line inside a continuation is skipped (libpam 1.5)
    "comment-ends-continuation": "auth required pam_unix.so nodelay # note \\\nauth required pam_deny.so\n",
    "backslash-trailing-blank": "auth sufficient \\  \n    pam_unix.so nodelay\nauth required pam_deny.so\n",
    # controls libpam parses its own way: blanks around `=`; a typo makes every result bad; the first
    # `default=` wins
    "control-blanks": "auth [success = ok default = bad] pam_unix.so nodelay\n",
    "control-typo": "auth [succes=ok default=ignore] pam_permit.so\nauth sufficient pam_unix.so nodelay\n",
    "control-two-defaults": "auth [success=ok default=ignore default=die] pam_deny.so\n"
                            "auth required pam_unix.so nodelay\n",
    # Debian's @include: the whole file; a missing one fails the stack like a missing `include`
    "at-include-missing": "@include no-such-file\nauth sufficient pam_unix.so nodelay\n",
    "at-include-other-types": "@include pw-only\nauth required pam_unix.so nodelay\n",
    "comment-line-inside-continuation": "auth sufficient \\\n# note\n  pam_unix.so nodelay\n"
                                        "auth required pam_deny.so\n",
}
SUBSTACKS = {"deny-all": "auth requisite pam_deny.so\nauth required pam_permit.so\n",
             "permit-done": "auth sufficient pam_permit.so\nauth required pam_deny.so\n",
             "other": "auth required pam_unix.so nodelay\n", "pw-only": "password required pam_deny.so\n"}


@pytest.mark.parametrize("case", sorted(ACCESS_CASES))
def test_who_gets_in_matches_libpam(tmp_path: Path, case: str):
    pamd = dict(SUBSTACKS)
    if ACCESS_CASES[case] is not None:
        pamd["sshd"] = ACCESS_CASES[case]
    lab = Lab(tmp_path, pamd, PASSWORD, {})
    real = lab.pamtester("sshd", "authenticate", [PASSWORD])
    row = lab.sentinel("pam.lockout", ["sshd"])["sshd"]
    assert ("nobody can authenticate" not in row["why"]) is real, (case, real, row["why"])


def test_who_gets_in_cases_cover_both_answers(tmp_path: Path):
    real = {}
    for case in ("missing-include", "dash-sufficient-missing-module", "die-in-substack", "done-in-substack",
                 "die-in-substack-then-reset", "die-in-include-then-reset", "dash-required-missing-module"):
        pamd = dict(SUBSTACKS, sshd=ACCESS_CASES[case])
        real[case] = Lab(tmp_path / case, pamd, PASSWORD, {}).pamtester("sshd", "authenticate", [PASSWORD])
    assert real == {"missing-include": False, "dash-sufficient-missing-module": True, "die-in-substack": False,
                    "done-in-substack": False, "die-in-substack-then-reset": True,
                    "die-in-include-then-reset": False, "dash-required-missing-module": False}


WEAK = "abcdefgh"  # one character class: pwquality minclass=3 refuses it
PWQ = "pam_pwquality.so retry=1 minclass=3 enforce_for_root"  # enforce_for_root: pamtester runs as root
COMPLEXITY_CASES = {
    "requisite-use-authtok": f"password requisite {PWQ}\n"
                             "password [success=1 default=ignore] pam_unix.so use_authtok yescrypt\n"
                             "password requisite pam_deny.so\npassword required pam_permit.so\n",
    # issue 14: optional pwquality, and pam_unix prompts on its own
    "optional-unix-prompts": f"password optional {PWQ}\n"
                             "password [success=1 default=ignore] pam_unix.so yescrypt\n"
                             "password requisite pam_deny.so\npassword required pam_permit.so\n",
    "optional-use-authtok": f"password optional {PWQ}\n"
                            "password [success=1 default=ignore] pam_unix.so use_authtok yescrypt\n"
                            "password requisite pam_deny.so\npassword required pam_permit.so\n",
    "required-unix-prompts": f"password required {PWQ}\npassword required pam_unix.so yescrypt\n",
    "requisite-unix-prompts": f"password requisite {PWQ}\npassword required pam_unix.so yescrypt\n",
    "history-prompts-first": "password required pam_pwhistory.so\n"
                             f"password optional {PWQ} use_authtok\npassword required pam_unix.so use_authtok\n",
}


needs_pwquality = pytest.mark.skipif(not _installed("pam_pwquality.so"),
                                     reason="pam_pwquality not installed (apt-get install libpam-pwquality)")


@needs_pwquality
@pytest.mark.parametrize("case", sorted(COMPLEXITY_CASES))
def test_complexity_verdict_matches_libpam(tmp_path: Path, case: str):
    lab = Lab(tmp_path, {"common-password": COMPLEXITY_CASES[case], "passwd": "@include common-password\n"},
              PASSWORD, {})
    before = lab.shadow_hash()
    lab.pamtester("passwd", "chauthtok", [WEAK] * 6)
    stored = lab.shadow_hash() != before  # the weak password was written, whatever passwd said
    row = lab.sentinel("pam.complexity", ["passwd"])["passwd"]
    assert row["enforced"] is (not stored), (case, stored, row["why"])


@needs_pwquality
@pytest.mark.parametrize("enforcing", ["0", "1"])
def test_pwquality_enforcing_off_only_warns(tmp_path: Path, enforcing: str):
    """`enforcing = 0` in pwquality.conf: the module is in the stack as requisite, and the weak password is
    stored anyway (pam_pwquality only prints BAD PASSWORD)."""
    stack = ("password requisite pam_pwquality.so retry=1 minclass=3 enforce_for_root\n"
             "password [success=1 default=ignore] pam_unix.so use_authtok yescrypt\n"
             "password requisite pam_deny.so\npassword required pam_permit.so\n")
    lab = Lab(tmp_path, {"passwd": stack}, PASSWORD, {"pwquality.conf": f"enforcing = {enforcing}\n"})
    before = lab.shadow_hash()
    lab.pamtester("passwd", "chauthtok", [WEAK] * 6)
    stored = lab.shadow_hash() != before
    assert stored is (enforcing == "0")
    assert lab.sentinel("pam.complexity", ["passwd"])["passwd"]["enforced"] is (not stored)


@pytest.mark.skipif(not shutil.which("pwscore"), reason="pwscore not installed (apt-get install libpwquality-tools)")
def test_pwquality_settings_as_libpwquality_reads_them(tmp_path: Path):
    """minlen/minclass as sentinel reads them (pwquality.conf.d first, pwquality.conf last; defaults for
    what is unset) agree with what libpwquality itself accepts (pwscore, same files)."""
    lab = Lab(tmp_path, {"passwd": "password requisite pam_pwquality.so\npassword required pam_unix.so\n"},
              PASSWORD, {"pwquality.conf": "minclass = 3\n"})
    confd = lab.etc / "security/pwquality.conf.d"
    confd.mkdir(exist_ok=True)
    (confd / "50-site.conf").write_text("minlen = 12\nminclass = 1\n")
    row = lab.sentinel("pam.complexity", ["passwd"])["passwd"]
    assert row["minlen"] == 12 and row["classes_required"] == 3

    def accepted(candidate: str) -> bool:
        return lab._in_namespace(["pwscore"], candidate + "\n").returncode == 0

    # 11 characters, three classes: too short for minlen 12; 12 with two classes: too few classes
    assert not accepted("Xq7#vbnmzlk")
    assert not accepted("xqvbnmzlkwtr7")
    assert accepted("Xq7vbnmzlkwtr")  # 13 characters, three classes


@needs_pwquality
def test_complexity_cases_cover_both_answers(tmp_path: Path):
    stored = {}
    for case in ("requisite-use-authtok", "optional-unix-prompts"):
        lab = Lab(tmp_path / case, {"passwd": COMPLEXITY_CASES[case]}, PASSWORD, {})
        before = lab.shadow_hash()
        lab.pamtester("passwd", "chauthtok", [WEAK] * 6)
        stored[case] = lab.shadow_hash() != before
    assert stored == {"requisite-use-authtok": False, "optional-unix-prompts": True}


# The fixture roots' own stacks (Debian common-*, RPM-family system-auth/password-auth behind authselect's
# symlinks), run by libpam. pam_tally2 is not in Debian 12's libpam, so the tally2 roots (UOS) are left out.
FIXTURE_ROOTS = ["debian12-default", "debian12-hardened", "rocky9-default", "rocky9-hardened",
                 "openeuler2203-hardened", "kylinv10-hardened"]


def _fixture_lab(tmp_path: Path, name: str, password: str | None = PASSWORD) -> Lab:
    from tests.fixtures.build import build_root

    fixture = build_root(name, tmp_path / "fixture")
    lab = Lab(tmp_path / "lab", {}, password, {})
    shutil.rmtree(lab.etc / "pam.d")
    shutil.copytree(fixture / "etc/pam.d", lab.etc / "pam.d", symlinks=True)
    if (fixture / "etc/authselect").is_dir():
        shutil.copytree(fixture / "etc/authselect", lab.etc / "authselect", symlinks=True, dirs_exist_ok=True)
    _no_fail_delay(lab.etc)
    for conf in ("faillock.conf", "pwquality.conf"):
        src = fixture / "etc/security" / conf
        text = src.read_text() if src.exists() else ""
        if conf == "faillock.conf":
            # tallies inside the copy, not in the host's /run; no delay after a failure (when, not what)
            text += "\ndir = /etc/faillock-lab\nnodelay\n"
        else:
            text += "\nenforce_for_root\n"  # pamtester runs as root; the checks judge a person who is not
        (lab.etc / "security" / conf).write_text(text)
    return lab


def _no_fail_delay(etc: Path) -> None:
    """`nodelay` on the copies' pam_unix auth lines and pam_faildelay at 0: both ask libpam for a 2 s delay
    after every wrong password, which changes when an answer comes, never what it is (the lockout runs try
    many wrong passwords)."""
    for top in (etc / "pam.d", etc / "authselect"):
        for path in top.rglob("*") if top.is_dir() else ():
            if path.is_symlink() or not path.is_file():
                continue  # authselect's links point at absolute paths: their targets are copied as files here
            text = path.read_text(encoding="utf-8")
            fast = re.sub(r"(?m)^(\s*-?auth\s.*\bpam_unix\.so\b(?!.*\bnodelay\b).*)$", r"\1 nodelay", text)
            fast = re.sub(r"(\bpam_faildelay\.so\s.*\bdelay=)\d+", r"\g<1>0", fast)
            if fast != text:
                path.write_text(fast, encoding="utf-8")


@pytest.mark.parametrize("name", FIXTURE_ROOTS)
def test_fixture_root_lockout_matches_libpam(tmp_path: Path, name: str):
    lab = _fixture_lab(tmp_path, name)
    row = lab.sentinel("pam.lockout", ["sshd"])["sshd"]
    real = _lockout_holds(lab, "sshd", deny=int(row.get("deny") or 3))
    assert row["enforced"] is real, (name, real, row["why"])


@needs_pwquality
@pytest.mark.parametrize("name", FIXTURE_ROOTS)
def test_fixture_root_complexity_matches_libpam(tmp_path: Path, name: str):
    lab = _fixture_lab(tmp_path, name)
    before = lab.shadow_hash()
    lab.pamtester("passwd", "chauthtok", [WEAK] * 10)
    stored = lab.shadow_hash() != before
    row = lab.sentinel("pam.complexity", ["passwd"])["passwd"]
    assert row["enforced"] is (not stored), (name, stored, row["why"])


WHEEL = "pam_wheel.so use_uid group=h7wheel"  # use_uid: the caller, root here, who is not in h7wheel
WHEEL_CASES = {
    "required-first": f"auth required {WHEEL}\nauth required pam_unix.so nodelay\n",
    "after-sufficient-unix": f"auth sufficient pam_unix.so nodelay\nauth required {WHEEL}\n",
    "optional": f"auth optional {WHEEL}\nauth required pam_unix.so nodelay\n",
    "commented-out": f"# auth required {WHEEL}\nauth required pam_unix.so nodelay\n",
    "in-substack": "auth substack su-wheel\nauth required pam_unix.so nodelay\n",
}


@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_su_wheel_matches_libpam(tmp_path: Path, case: str):
    lab = Lab(tmp_path, {"su": WHEEL_CASES[case], "su-wheel": f"auth requisite {WHEEL}\n"}, PASSWORD, {})
    real_in = lab.pamtester("su", "authenticate", [PASSWORD])
    row = lab.sentinel("pam.wheel", ["su"])["su"]
    assert row["restricted"] is (not real_in), (case, real_in, row["why"])


# The hash pam_unix gives a new password: its last hash option, else login.defs ENCRYPT_METHOD as
# pam_modutil_search_key reads it ('#' cut anywhere), else DES
HASH_CASES = {
    "sha512-arg": ("password required pam_unix.so sha512\n", "ENCRYPT_METHOD YESCRYPT\n"),
    "login-defs": ("password required pam_unix.so\n", "ENCRYPT_METHOD YESCRYPT\n"),
    "login-defs-comment": ("password required pam_unix.so\n", "ENCRYPT_METHOD SHA512 # 等保\n"),
    "last-option-wins": ("password required pam_unix.so sha512 md5\n", "ENCRYPT_METHOD YESCRYPT\n"),
    "first-key-wins": ("password required pam_unix.so\n", "ENCRYPT_METHOD MD5\nENCRYPT_METHOD SHA512\n"),
    "jumped-over": ("password [success=1 default=ignore] pam_permit.so\npassword required pam_unix.so md5\n"
                    "password required pam_unix.so yescrypt\n", ""),
}
_PREFIX = {"$6$": "sha512", "$y$": "yescrypt", "$1$": "md5", "$5$": "sha256", "$2b$": "blowfish"}


@pytest.mark.parametrize("case", sorted(HASH_CASES))
def test_new_password_hash_matches_libpam(tmp_path: Path, case: str):
    stack, login_defs = HASH_CASES[case]
    lab = Lab(tmp_path, {"passwd": stack}, PASSWORD, {})
    (lab.etc / "login.defs").write_text(login_defs)
    assert lab.pamtester("passwd", "chauthtok", ["N3w-Strong-Pass!x"] * 4)
    stored = lab.shadow_hash()
    real = next((name for prefix, name in _PREFIX.items() if stored.startswith(prefix)), "other")
    obs = lab.sentinel("pam.hash", ["passwd"])["passwd"]
    assert obs["method"] == real, (case, stored[:4], obs)


@pytest.mark.parametrize("name", FIXTURE_ROOTS)
def test_fixture_root_nullok_matches_libpam(tmp_path: Path, name: str):
    lab = _fixture_lab(tmp_path, name, password=None)  # the test user has an empty password
    real = lab.pamtester("sshd", "authenticate", [""])
    assert lab.sentinel("pam.nullok", ["sshd"])["sshd"]["nullok"] is real, name


@pytest.mark.parametrize("even_deny_root", [True, False])
def test_root_lockout_matches_libpam(tmp_path: Path, even_deny_root: bool):
    """l3-ia-lockout-root reads even_deny_root; libpam locks root only with it (root's password is set in
    the copy of /etc only)."""
    conf = FAILLOCK_CONF + ("even_deny_root\nroot_unlock_time = 600\n" if even_deny_root else "")
    lab = Lab(tmp_path, LOCKOUT_CASES["good"], PASSWORD, {"faillock.conf": conf})
    lab._in_namespace(["chpasswd", "-c", "SHA512"], f"root:{PASSWORD}\n")
    real = _lockout_holds(lab, "sshd", user="root")
    row = lab.sentinel("pam.lockout", ["sshd"])["sshd"]
    assert real is even_deny_root
    assert row["enforced"] is True and (row.get("even_deny_root") is True) is real
