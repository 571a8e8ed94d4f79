"""sudoers as sudo reads it: for each account, the entries the real `sudo -ll -U USER` lists must be the
entries sentinel's model (checks/_sudoers.py) gives, and the sudo.full_root / sudo.separation probes are
judged on that model.

sudo runs in a private mount namespace with a copy of /etc bound over /etc (`unshare --mount`), so the
host's own sudoers is never read or written. Needs root, unshare and sudo (apt-get install sudo): the
real-program tests are skipped with the reason otherwise; the probe tests below need nothing.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from sentinel.checks import sudo as sudo_probe
from sentinel.hostview import NotApplicable, RootHost
from sentinel.probe import ProbeContext, registry

real = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("sudo") or not shutil.which("visudo"),
    reason="needs root, unshare (util-linux) and sudo (apt-get install sudo)")

ACCOUNTS = {  # name: (uid, primary group, supplementary groups)
    "alice": (2001, "alice", ["ops"]),
    "bob": (2002, "bob", ["ops"]),
    "carol": (2003, "carol", ["auditors"]),
    "dave": (2004, "dave", ["wheel"]),
    "erin": (2005, "erin", []),
    "frank": (2006, "frank", ["secadm"]),
}
GROUPS = {"ops": 2100, "auditors": 2101, "wheel": 2102, "secadm": 2103}

# One sudoers that exercises what the parser models; every line is accepted by visudo -c.
SUDOERS = r"""# test sudoers
Defaults env_reset
Defaults:%ops !lecture
Host_Alias  HERE = {host}, otherbox
Host_Alias  ELSEWHERE = otherbox
User_Alias  OPS = %ops, !bob
Runas_Alias WEB = www-data, nobody
Cmnd_Alias  AUDIT = /usr/sbin/ausearch, /usr/sbin/aureport, \
                    /usr/bin/journalctl
Cmnd_Alias  ACCOUNTS = /usr/sbin/useradd, /usr/sbin/usermod, /usr/bin/passwd
Cmnd_Alias  SHELLS = /bin/sh, /bin/bash
Cmnd_Alias  BACKUP = sha224:0GomF8mNN3wlDt1HD9XldjJ3SNgpFdbjO1+NsQ== \
                     /usr/local/bin/backup --all, /usr/bin/rsync

root    ALL=(ALL:ALL) ALL
OPS     HERE = (ALL : ALL) ALL, !SHELLS   # everything but the shells (which sudoers(5) says is no limit)
%ops    ALL = (root) NOPASSWD: /usr/bin/systemctl restart nginx, /usr/bin/apt update, \
              PASSWD: /usr/bin/systemctl stop nginx
bob     ELSEWHERE = ALL : HERE = (WEB) /usr/bin/id, (root) NOEXEC: /usr/bin/less /var/log/syslog
%auditors ALL = (root) AUDIT
carol   ALL = (root) BACKUP
#2004   ALL = (:wheel) /usr/bin/id
%#2102  ALL = /usr/bin/uptime
erin    ALL = (root) ALL
erin    ALL = (root) !ALL
@include sudoers.local
#includedir /etc/sudoers.d
"""
LOCAL = "frank ALL = (root) ACCOUNTS\n"
DROPINS = {
    "10-dave": "dave ALL = (root) NOPASSWD: ALL\n",
    "README.txt": "carol ALL = (root) ALL\n",   # has a '.': sudo skips it
    "20-carol~": "carol ALL = (root) ALL\n",    # ends in '~': skipped too
}


def _lab(tmp: Path) -> Path:
    root = tmp / "root"
    shutil.copytree("/etc", root / "etc", symlinks=True,
                    ignore=shutil.ignore_patterns("ssl", "ssh", "alternatives", "X11", "fonts", "sudoers.d"))
    etc = root / "etc"
    with (etc / "passwd").open("a") as fh:
        for name, (uid, _, _) in ACCOUNTS.items():
            fh.write(f"{name}:x:{uid}:{uid}::/home/{name}:/bin/bash\n")
    with (etc / "group").open("a") as fh:
        for name, (uid, _, _) in ACCOUNTS.items():
            fh.write(f"{name}:x:{uid}:\n")
        for group, gid in GROUPS.items():
            members = [n for n, (_, _, extra) in ACCOUNTS.items() if group in extra]
            fh.write(f"{group}:x:{gid}:{','.join(members)}\n")
    (etc / "hostname").write_text(socket.gethostname() + "\n")  # sudo matches host lists on gethostname()
    (etc / "sudoers").write_text(SUDOERS.format(host=socket.gethostname()))
    (etc / "sudoers.local").write_text(LOCAL)
    (etc / "sudoers.d").mkdir()
    for name, text in DROPINS.items():
        (etc / "sudoers.d" / name).write_text(text)
    for path in [etc / "sudoers", etc / "sudoers.local", *(etc / "sudoers.d").iterdir()]:
        os.chown(path, 0, 0)
        path.chmod(0o440)
    return root


def _in_namespace(root: Path, command: str) -> subprocess.CompletedProcess:
    script = f"mount --bind {shlex.quote(str(root / 'etc'))} /etc && {command}"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


def _real_entries(root: Path, user: str) -> list[dict]:
    """`sudo -ll -U user` parsed: one dict per 'Sudoers entry:' block."""
    run = _in_namespace(root, f"sudo -ll -U {user}")
    assert run.returncode == 0, run.stderr
    out = []
    for block in run.stdout.split("Sudoers entry:")[1:]:
        entry: dict = {"users": None, "groups": None, "options": [], "commands": []}
        in_commands = False
        for line in block.splitlines():
            if line.startswith("\t") and in_commands:
                entry["commands"].append(line.strip())
            elif line.strip().startswith("RunAsUsers:"):
                entry["users"] = [x.strip() for x in line.split(":", 1)[1].split(",")]
            elif line.strip().startswith("RunAsGroups:"):
                entry["groups"] = [x.strip() for x in line.split(":", 1)[1].split(",")]
            elif line.strip().startswith("Options:"):
                entry["options"] = sorted(x.strip() for x in line.split(":", 1)[1].split(","))
            elif line.strip() == "Commands:":
                in_commands = True
        out.append(entry)
    return out


_OPTION = {("PASSWD", False): "!authenticate", ("PASSWD", True): "authenticate",
           ("EXEC", False): "noexec", ("EXEC", True): "!noexec"}


def _ours(root: Path, user: str) -> list[dict]:
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    out = []
    for e in sudo_probe.entries(ctx, user):
        users = e.runas_users
        if users is None:  # sudo -ll prints root (runas_default), or the invoking user for (:group) alone
            users = ["root"] if e.runas_groups is None else [user]
        out.append({"users": users, "groups": e.runas_groups,
                    "options": sorted(_OPTION[t] for t in e.tags.items()), "commands": e.commands})
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("sudo"):
        pytest.skip("needs root and sudo")
    root = _lab(tmp_path_factory.mktemp("sudo"))
    check = _in_namespace(root, "visudo -c")
    assert check.returncode == 0, check.stdout + check.stderr  # the test sudoers is one sudo accepts
    return root


@pytest.mark.root
@real
@pytest.mark.parametrize("user", ["root", *ACCOUNTS])
def test_entries_are_what_sudo_lists(lab, user):
    assert _ours(lab, user) == _real_entries(lab, user)


def _probe(root: Path, kind: str, **params):
    pdef = registry()[kind]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    return pdef.func(ctx, pdef.params.model_validate(params))


@pytest.mark.root
@real
def test_full_root_and_separation_on_the_lab(lab):
    # alice: OPS (bob excluded) gets ALL minus the shells; dave: NOPASSWD: ALL from sudoers.d; erin's
    # ALL is taken back by her later !ALL (last match wins); bob only has ALL on another host.
    assert _probe(lab, "sudo.full_root").observed == ["alice", "dave"]
    assert _probe(lab, "sudo.nopasswd_all").observed == ["dave"]  # sudo -ll: Options: !authenticate, ALL
    sep = _probe(lab, "sudo.separation").observed
    assert sep["separated"] is False
    assert sep["audit"] == ["alice", "carol", "dave"] and sep["security"] == ["alice", "dave", "frank"]
    assert "bob" in sep["system"]  # systemctl / apt through %ops
    assert sep["shared"] == ["alice", "dave"]


# ---- without the real programs -------------------------------------------------------------------


def _root(tmp_path: Path, sudoers: str, group_lines: str = "") -> Path:
    etc = tmp_path / "etc"
    (etc / "sudoers.d").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/bash\nops1:x:1001:1001::/h:/bin/bash\n"
                                "sec1:x:1002:1002::/h:/bin/bash\naud1:x:1003:1003::/h:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nops1:x:1001:\nsec1:x:1002:\naud1:x:1003:\n" + group_lines)
    (etc / "hostname").write_text("web1\n")
    (etc / "sudoers").write_text(sudoers)
    return tmp_path


def test_separated_duties_pass_and_a_shared_one_fails(tmp_path):
    roles = ("Cmnd_Alias AUD = /usr/sbin/ausearch, /usr/sbin/aureport\n"
             "%secadmins ALL=(root) /usr/sbin/useradd, /usr/bin/passwd\n"
             "%auditadmins ALL=(root) AUD\n"
             "%sudo ALL=(ALL:ALL) ALL\n")
    root = _root(tmp_path / "a", roles, "secadmins:x:1100:sec1\nauditadmins:x:1101:aud1\nsudo:x:27:\n")
    sep = _probe(root, "sudo.separation").observed
    assert sep["separated"] is True, sep["problems"]
    assert (sep["security"], sep["audit"], sep["full_root"]) == (["sec1"], ["aud1"], [])
    # the same, with the auditor also in the sudo group: everything, so every duty, so not separated
    root = _root(tmp_path / "b", roles, "secadmins:x:1100:sec1\nauditadmins:x:1101:aud1\nsudo:x:27:aud1\n")
    sep = _probe(root, "sudo.separation").observed
    assert sep["separated"] is False and sep["full_root"] == ["aud1"]
    assert _probe(root, "sudo.full_root").observed == ["aud1"]


def test_no_admin_roles_at_all_is_not_separation(tmp_path):
    root = _root(tmp_path, "root ALL=(ALL:ALL) ALL\n")
    sep = _probe(root, "sudo.separation").observed
    assert sep["separated"] is False
    assert "no account is granted security administration" in sep["problems"]
    with pytest.raises(NotApplicable, match="sudo grants no account but root anything"):
        _probe(root, "sudo.full_root")


def test_a_group_member_by_primary_gid_counts(tmp_path):
    root = _root(tmp_path, "%wheel ALL=(ALL) ALL\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nwheel:x:1001:\n")  # ops1's primary group, no members
    assert _probe(root, "sudo.full_root").observed == ["ops1"]


def test_no_sudoers_grants_nothing(tmp_path):
    """Absence: without /etc/sudoers sudo lets nobody do anything: "nobody but root has everything" would only
    restate that (not applicable, so it cannot lift 8.1.4.2 d), and no duty is delegated either (separation
    fails: every duty stays with root)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\nops1:x:1001:1001::/h:/bin/bash\n")
    for kind in ("sudo.full_root", "sudo.nopasswd_all"):
        with pytest.raises(NotApplicable, match="no /etc/sudoers: sudo grants nobody anything"):
            _probe(tmp_path, kind)
    assert _probe(tmp_path, "sudo.separation").observed["separated"] is False


STOCK_DEBIAN_SUDOERS = """\
Defaults\tenv_reset
Defaults\tmail_badpass
root\tALL=(ALL:ALL) ALL
%sudo\tALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""


@pytest.mark.root
@real
@pytest.mark.parametrize("members", ["", "alice"])
def test_stock_sudoers_without_administrators_lifts_nothing(tmp_path, members):
    """bench/agreement.py found a stock Debian server (sudo installed, nobody in the sudo group, su open to
    all) scored 部分符合 on 8.1.4.2 d because "no full root" and "no NOPASSWD: ALL" passed on grants that do
    not exist. The real sudo decides who is granted anything: with no member, `sudo -l -U` refuses every
    account and both checks are not applicable; with alice in %sudo she may run (ALL : ALL) ALL and
    sudo.full_root names her."""
    root = _lab(tmp_path)
    etc = root / "etc"
    (etc / "sudoers").write_text(STOCK_DEBIAN_SUDOERS)
    for path in (etc / "sudoers.d").iterdir():
        path.unlink()
    kept = [ln for ln in (etc / "group").read_text().splitlines() if not ln.startswith("sudo:")]
    (etc / "group").write_text("\n".join(kept + [f"sudo:x:27:{members}"]) + "\n")
    granted = [u for u in ACCOUNTS
               if "may run the following" in _in_namespace(root, f"sudo -l -U {u}").stdout]
    assert granted == ([members] if members else [])
    if members:
        assert _probe(root, "sudo.full_root").observed == granted
        assert _probe(root, "sudo.nopasswd_all").observed == []
    else:
        for kind in ("sudo.full_root", "sudo.nopasswd_all"):
            with pytest.raises(NotApplicable):
                _probe(root, kind)
    assert _probe(root, "sudo.separation").observed["separated"] is False
