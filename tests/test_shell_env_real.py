"""TMOUT and umask of a login shell, checked against the real programs: `su - USER` (PAM: pam_env reading
/etc/environment, pam_umask when the lab's common-session has it) starting the real bash as a login shell,
inside `script` so that bash is interactive as an SSH login is, all in a private mount namespace where a
copy of /etc (with the profile files under test and a test user) is bound over /etc. The host's /etc is never
written. sentinel's shell.variable / shell.umask read the same copy as an offline root and must agree.

Needs root, `unshare`, `su`, `script` (util-linux) and bash; skipped with the reason otherwise.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from sentinel.probe import ProbeContext, registry

real = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "su", "script", "bash")),
    reason="needs root, unshare, su, script (util-linux) and bash")

USER = "h10shtest"
DEBIAN_PROFILE = Path("/etc/profile").read_text() if Path("/etc/profile").exists() else ""
RHEL_PROFILE = """\
pathmunge () { case ":${PATH}:" in *:"$1":*) ;; *) PATH=$PATH:$1 ;; esac }
if [ $UID -gt 199 ] && [ "`/usr/bin/id -gn`" = "`/usr/bin/id -un`" ]; then
    umask 002
else
    umask 022
fi
for i in /etc/profile.d/*.sh /etc/profile.d/sh.local ; do
    if [ -r "$i" ]; then
        if [ "${-#*i}" != "$-" ]; then
            . "$i"
        else
            . "$i" >/dev/null
        fi
    fi
done
unset i
unset -f pathmunge
if [ -n "${BASH_VERSION-}" ] ; then
        if [ -f /etc/bashrc ] ; then
                . /etc/bashrc
        fi
fi
"""
RHEL_BASHRC = """\
if ! shopt -q login_shell ; then
    umask 077
fi
"""


class Lab:
    def __init__(self, tmp: Path, files: dict[str, str], session_umask: str | None = None):
        self.root = tmp / "root"
        etc = self.root / "etc"
        shutil.copytree("/etc", etc, symlinks=True,
                        ignore=shutil.ignore_patterns("ssl", "ssh", "alternatives", "X11", "fonts"))
        for name in ("profile.d",):
            shutil.rmtree(etc / name, ignore_errors=True)
            (etc / name).mkdir()
        for name in ("bash.bashrc", "bashrc", "environment"):
            (etc / name).unlink(missing_ok=True)
        (etc / "profile").write_text(DEBIAN_PROFILE)
        for rel, text in files.items():
            (etc / rel).parent.mkdir(parents=True, exist_ok=True)
            (etc / rel).write_text(text)
        if session_umask is not None:  # the pam_umask line (with these arguments) at the end of common-session
            with open(etc / "pam.d" / "common-session", "a") as f:
                f.write(f"session optional pam_umask.so {session_umask}\n")
        with open(etc / "passwd", "a") as f:
            f.write(f"{USER}:x:1000:1000::/nonexistent:/bin/bash\n" if not _uid_taken(etc, 1000) else
                    f"{USER}:x:64321:64321::/nonexistent:/bin/bash\n")
        gid = 1000 if not _uid_taken(etc, 1000, "group") else 64321
        with open(etc / "group", "a") as f:
            f.write(f"{USER}:x:{gid}:\n")
        with open(etc / "shadow", "a") as f:
            f.write(f"{USER}:*:19000:0:99999:7:::\n")

    def login(self) -> tuple[str, str]:
        """(TMOUT or 'unset', umask) of the real interactive login shell `su - USER` starts."""
        etc = self.root / "etc"
        probe = 'echo "@@T=${TMOUT-unset}@@U=$(umask)@@"; exit\n'
        inner = f"script -qec {shlex.quote('su - ' + USER)} /dev/null"
        script = f"mount --bind {shlex.quote(str(etc))} /etc && exec {inner}"
        run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                             input=probe, capture_output=True, text=True, timeout=60)
        m = re.search(r"@@T=(\S*?)@@U=(\d+)@@", run.stdout)
        assert m, (run.stdout, run.stderr)
        return m.group(1), m.group(2)

    def sentinel(self) -> tuple[str, str]:
        ctx = ProbeContext(host=RootHost(str(self.root)), family=None, os_release={})
        var, um = registry()["shell.variable"], registry()["shell.umask"]
        tmout = var.func(ctx, var.params.model_validate({"key": "TMOUT", "service": "su"})).observed
        umask = um.func(ctx, um.params.model_validate({"service": "su"})).observed
        return ("unset" if tmout is None else tmout), umask


def _uid_taken(etc: Path, uid: int, db: str = "passwd") -> bool:
    return any(line.split(":")[2] == str(uid) for line in (etc / db).read_text().splitlines() if line.count(":") >= 2)


CASES = {
    # the stock remediation
    "tmout-readonly": {"profile.d/tmout.sh": "TMOUT=600\nreadonly TMOUT\nexport TMOUT\numask 027\n"},
    # issue 14: a later unset wins (the old regex check passed this)
    "tmout-unset-later": {"profile.d/a.sh": "TMOUT=600\nexport TMOUT\n", "profile.d/b.sh": "unset TMOUT\n"},
    # issue 14: readonly first, a later TMOUT=0 fails (the old check failed this)
    "readonly-then-zero": {"profile.d/a.sh": "readonly TMOUT=300\nexport TMOUT\n",
                           "profile.d/z.sh": "TMOUT=0\nunset TMOUT\numask 022\n"},
    "declare-r": {"profile.d/a.sh": "declare -rx TMOUT=450\n", "profile.d/b.sh": "TMOUT=9000\n"},
    # issue 14: TMOUT only in /etc/environment (pam_env) - the old check failed this
    "environment": {"environment": 'TMOUT="600"\n'},
    "environment-overridden": {"environment": "TMOUT=600\n", "profile.d/x.sh": "TMOUT=0\n"},
    # su's second pam_env line reads /etc/default/locale (envfile=) instead of /etc/environment
    "envfile-locale": {"default/locale": "LANG=C.UTF-8\nTMOUT=250\n"},
    "profile-order": {"profile.d/10-a.sh": "TMOUT=100\numask 077\n", "profile.d/20-b.sh": "TMOUT=700\numask 0027\n"},
    "conditional-same": {"profile.d/c.sh": 'if [ "$EUID" -eq 0 ]; then\n  umask 077\nelse\n  umask 027\nfi\n'
                                           'TMOUT=300; readonly TMOUT; export TMOUT\n'},
    "interactive-only": {"profile.d/i.sh": 'if [ -n "$PS1" ]; then TMOUT=600; fi\n'},
    "return-early": {"profile.d/r.sh": "TMOUT=500\nreturn\nTMOUT=0\n"},
    "symbolic-umask": {"profile.d/s.sh": "umask u=rwx,g=rx,o=\n"},
    "nothing": {},
    "rhel-layout": {"profile": RHEL_PROFILE, "bashrc": RHEL_BASHRC, "profile.d/t.sh": "export TMOUT=600\n"},
    "function-body": {"profile.d/f.sh": "f() {\n  TMOUT=0\n}\nTMOUT=200\n"},
    "here-document": {"profile.d/h.sh": "TMOUT=400\ncat >/dev/null <<EOT\nTMOUT=0\numask 000\nEOT\n"},
    "group-after-and": {"profile.d/g.sh": '[ -n "$BASH_VERSION" ] && { TMOUT=300; readonly TMOUT; }\nTMOUT=0\n'},
    "group-after-false": {"profile.d/g.sh": "TMOUT=500\n[ -d /nonexistent-dir ] && { TMOUT=0; umask 000; }\n"},
    "fi-done-on-one-line": {"profile": 'for i in /etc/profile.d/*.sh; do if [ -r "$i" ]; then . "$i"; fi; done\n'
                                       "umask 027\n",
                            "profile.d/a.sh": "TMOUT=120\n", "profile.d/b.sh": "readonly TMOUT\n"},
    "multi-line-fi-done": {"profile": 'for i in /etc/profile.d/*.sh; do\n  if [ "$i" != /etc/profile.d/b.sh ]; then\n'
                                      '    . "$i"\n  fi; done\n',
                           "profile.d/a.sh": "TMOUT=120\n", "profile.d/b.sh": "TMOUT=0\n"},
    "case-all-branches": {"profile.d/c.sh": 'case "$(tty)" in\n  /dev/pts/*) TMOUT=600 ;;\n  *) TMOUT=600 ;;\nesac\n'
                                            "umask 077\n"},
}


@pytest.mark.root
@real
@pytest.mark.parametrize("name", list(CASES))
def test_login_shell_agrees_with_bash(tmp_path, name):
    lab = Lab(tmp_path, CASES[name])
    assert lab.sentinel() == lab.login(), name


@pytest.mark.root
@real
@pytest.mark.parametrize("login_defs,args,expected", [
    ("UMASK 027\nUSERGROUPS_ENAB no\n", "", "0027"),
    ("UMASK 027\nUSERGROUPS_ENAB yes\n", "", "0027"),  # USERGROUPS_ENAB is useradd's, not pam_umask's
    ("UMASK 077\n", "usergroups", "0007"),
    ("UMASK 077 # strict\nUSERGROUPS_ENAB no\n", "", "0077"),  # pam_umask strips the comment, shadow would not
    ("UMASK 027\n", "umask=0022", "0022"),
    ("UMASK 027\n", "", "0022-after-profile"),
])
def test_pam_umask_agrees_with_libpam(tmp_path, login_defs, args, expected):
    files = {"login.defs": login_defs}
    if expected.endswith("-after-profile"):  # the profile runs after PAM and wins
        files["profile.d/u.sh"] = "umask 022\n"
        expected = expected.split("-")[0]
    lab = Lab(tmp_path, files, session_umask=args)
    real_answer = lab.login()
    assert real_answer[1] == expected
    assert lab.sentinel() == real_answer


@pytest.mark.root
@real
def test_baseline_umask_absent_fails_and_unset_tmout_fails(tmp_path):
    """No umask anywhere: the login gets 022 and l3-ac-umask-profile fails (it passed on an empty list)."""
    lab = Lab(tmp_path, {"profile.d/a.sh": "TMOUT=600\n", "profile.d/b.sh": "unset TMOUT\n"})
    assert lab.login() == ("unset", "0022")
    results = {r.check_id: r for r in run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(lab.root))).results}
    assert results["l3-ac-umask-profile"].status.value == "fail"
    assert results["l3-ia-shell-timeout"].status.value == "fail"


def test_readonly_refusal_is_evidence(tmp_path):
    (tmp_path / "etc" / "profile.d").mkdir(parents=True)
    (tmp_path / "etc" / "profile").write_text('for i in /etc/profile.d/*.sh; do . "$i"; done\n')
    (tmp_path / "etc" / "profile.d" / "a.sh").write_text("TMOUT=300\nreadonly TMOUT\nTMOUT=0\n")
    ctx = ProbeContext(host=RootHost(str(tmp_path)), family=None, os_release={})
    pdef = registry()["shell.variable"]
    obs = pdef.func(ctx, pdef.params.model_validate({"key": "TMOUT"}))
    assert obs.observed == "300"
    assert any("bash refuses: TMOUT is readonly" in (e.excerpt or "") for e in obs.evidence)


def test_undecidable_case_branch_observes_the_weakest(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "profile").write_text('case "$(tty)" in\n  /dev/pts/*) TMOUT=300 ;;\n'
                                              '  /dev/tty*) TMOUT=0 ;;\nesac\n')
    ctx = ProbeContext(host=RootHost(str(tmp_path)), family=None, os_release={})
    var = registry()["shell.variable"]
    obs = var.func(ctx, var.params.model_validate({"key": "TMOUT"}))
    assert obs.observed in (None, "0") and "3 values" in obs.note  # unset (no branch matched) or 0: no timeout


def test_undecidable_branch_observes_the_weakest(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "profile").write_text('if [ "$(hostname)" = a ]; then umask 002; TMOUT=0; fi\n'
                                              "umask 027\nTMOUT=600\n"
                                              'if [ -x /usr/bin/nothing-here ] || [ "$(hostname)" = b ]; '
                                              'then umask 022; fi\n')
    ctx = ProbeContext(host=RootHost(str(tmp_path)), family=None, os_release={})
    um = registry()["shell.umask"]
    obs = um.func(ctx, um.params.model_validate({}))
    assert obs.observed == "0022" and "possible" in obs.note
