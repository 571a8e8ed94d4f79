#!/usr/bin/env python3
"""Item verdicts of dengbao-l3-linux against an assessor's, on real Debian 12 roots (issue 14, Done when).

The roots are built with debootstrap from deb.debian.org and cached under /var/cache/sentinel-agreement/roots
(rebuilt only when their recipe changes; `--rebuild` forces it). Every change to a root is made inside
`chroot` in a private mount namespace (its /proc and /dev mounts end with the command); the host's own /etc
is never touched. The bench installs its own needs on the host: `apt-get install debootstrap` (and uses the
host's util-linux, systemd's `systemctl --root` and `pamtester`, copied into each throw-away copy: Debian 12
like the roots, same libpam).

  minimal     debootstrap --variant=minbase + openssh-server
  server      minimal + what a stock Debian 12 server has: systemd-sysv, sudo, cron, logrotate, AppArmor,
              systemd-timesyncd, journald only (bookworm's default install has no rsyslog)
  rectified   server + the 整改 an operator follows for level 3 (rectify() below, step by step)
  v-*         the rectified root with one setting changed, as the issue's defect classes name them

The assessor (oracle): for each item of dengbao-l3-linux that a root can decide, the verdict the 测评作业指导书
procedure gives (符合 only if every step holds, 不符合 if none, else 部分符合; reference/dengbao-2.0.md §2,
source S1), each step decided by the REAL program run inside a throw-away overlay of the root (chroot as
root): `sshd -T`/`sshd -t`, `useradd` then `chage -l`, an interactive `su -` login shell under `script`,
`pamtester` with wrong passwords then the right one, `pamtester ... chauthtok` with a weak and a strong
password, `sudo -l -U`, `logrotate -d`, `systemctl --root`, `stat`, `dpkg-query`. It imports nothing of
sentinel's probes. Items no root can decide (documents, people, live network, running processes) are
"not firm" and left out.

sentinel's side is `sentinel check --root ROOT --format json --baseline dengbao-l3-linux` on the pristine
root. Reported per root: firm items, agreeing, agreement %, every disagreement with both sides' evidence, and
separately the cases where sentinel says a control is in place that the real program shows is not (an item
verdict higher than the assessor's, or a passing check whose step the real program failed).

RPM family: no RPM repository is reachable from this machine, so real RPM roots are blocked; rpm_layout()
measures the RPM-layout fixture roots check by check with Debian's programs instead (docs/agreement.md).

    python bench/agreement.py [--roots minimal,server,...] [--baseline dengbao-l3-linux] [--rebuild]
                              [--rpm rocky9-default,...|''] [--label TEXT] [--sentinel-path DIR] [--json FILE]
                              [--no-write]

`--sentinel-path DIR` judges with another sentinel tree laid out as installed (sentinel/ with checks/,
exporters/ and baselines/ inside: `git archive COMMIT` rearranged), for before/after figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path("/var/cache/sentinel-agreement")
ROOTS = CACHE / "roots"
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
REPO = Path(__file__).resolve().parent.parent

SERVER_PACKAGES = [
    "systemd-sysv",
    "sudo",
    "cron",
    "logrotate",
    "apparmor",
    "systemd-timesyncd",
    "less",
    "nano",
    "procps",
    "iproute2",
    "ca-certificates",
    "bash-completion",
]
RECTIFY_PACKAGES = [
    "libpam-pwquality",
    "rsyslog",
    "auditd",
    "chrony",
    "aide",
    "aide-common",
    "clamav",
    "clamav-freshclam",
    "rsync",
]


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(argv, **kw)


def in_root(
    root: Path, script: str, *, input: str | None = None, check: bool = True, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """Run `sh -c script` chrooted into root, with /proc, /dev and the host's resolv.conf mounted in a private
    mount namespace that ends with the command; services never start (policy-rc.d answers 101)."""
    q = shlex.quote(str(root))
    outer = (
        f"mount -t proc proc {q}/proc && mount --rbind /dev {q}/dev && exec chroot {q} /bin/sh -c {shlex.quote(script)}"
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", outer],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and run.returncode != 0:
        raise RuntimeError(f"in {root}: {script[:200]!r} exited {run.returncode}: {run.stderr[-2000:]}")
    return run


def write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    os.chmod(p, mode)


def edit(root: Path, path: str, pattern: str, repl: str, count: int = 0) -> None:
    """A targeted replacement that must match (a recipe step that silently does nothing is a wrong root)."""
    p = root / path.lstrip("/")
    text = p.read_text(encoding="utf-8")
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    if n == 0:
        raise RuntimeError(f"{p}: {pattern!r} matched nothing")
    p.write_text(new, encoding="utf-8")


def apt_install(root: Path, packages: list[str]) -> None:
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    write(root, "/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)  # build time only: removed below
    try:
        in_root(
            root,
            "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
            "apt-get install -y -qq -o Dpkg::Options::=--force-confdef " + " ".join(packages) + " && apt-get clean",
        )
    finally:
        (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- recipes


def build_minimal(root: Path) -> None:
    sh(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=openssh-server",
            f"--cache-dir={CACHE}/debs",
            SUITE,
            str(root),
            MIRROR,
        ],
        stdout=subprocess.DEVNULL,
    )


def build_server(root: Path) -> None:
    apt_install(root, SERVER_PACKAGES)
    write(root, "/etc/hostname", "gov-srv01\n")


RECTIFIED_AUTH = """\
# 等保 8.1.4.1 b: lock after 5 failures (pam_faillock, values in /etc/security/faillock.conf)
auth\trequired\t\t\tpam_faillock.so preauth
auth\t[success=2 default=ignore]\tpam_unix.so
auth\t[default=die]\t\t\tpam_faillock.so authfail
"""
TMOUT_SH = "TMOUT=600\nreadonly TMOUT\nexport TMOUT\n"
DROPIN = """\
# 等保 level 3 (整改)
PermitRootLogin no
PermitEmptyPasswords no
MaxAuthTries 5
ClientAliveInterval 600
ClientAliveCountMax 1
AuthenticationMethods publickey,password
AllowUsers *@10.10.8.0/24
Ciphers aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512,hmac-sha2-256
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512
"""
AUDIT_RULES = """\
-w /etc/passwd -p wa -k identity
-w /etc/shadow -p wa -k identity
-w /etc/group -p wa -k identity
-w /etc/gshadow -p wa -k identity
-w /etc/sudoers -p wa -k priv
-w /etc/sudoers.d/ -p wa -k priv
-w /etc/ssh/sshd_config -p wa -k config
-w /etc/audit/ -p wa -k config
-w /etc/rsyslog.conf -p wa -k config
-w /usr/sbin/useradd -p x -k account
-w /usr/sbin/userdel -p x -k account
-w /usr/sbin/usermod -p x -k account
-w /usr/sbin/groupadd -p x -k account
-w /usr/bin/passwd -p x -k account
-w /usr/sbin/auditctl -p x -k audit
-w /usr/bin/kill -p x -k audit
-e 2
"""
ROLES = """\
# 三权分立: system, security and audit administrators (等保 8.1.4.2 d)
Cmnd_Alias SYSTEM = /usr/bin/systemctl, /usr/bin/apt-get, /usr/bin/apt, /usr/sbin/reboot
Cmnd_Alias SECURITY = /usr/sbin/useradd, /usr/sbin/usermod, /usr/sbin/userdel, /usr/bin/passwd, /usr/bin/chage
Cmnd_Alias AUDIT = /usr/sbin/ausearch, /usr/sbin/aureport, /usr/bin/less /var/log/*
sysadm ALL=(root) SYSTEM
secadm ALL=(root) SECURITY
audadm ALL=(root) AUDIT
"""
ADMIN_PASSWORD = "Gov-Adm1n-2024!"


def rectify(root: Path) -> None:
    """The steps of an operator's 整改 for level 3 on Debian 12, in the order a runbook has them."""
    apt_install(root, RECTIFY_PACKAGES)
    # 8.1.4.1 a: complexity (pam-auth-update put pam_pwquality into common-password) and ageing
    write(
        root,
        "/etc/security/pwquality.conf",
        "minlen = 8\ndcredit = -1\nucredit = -1\nlcredit = -1\nocredit = -1\nminclass = 3\nenforce_for_root\n",
    )
    edit(root, "/etc/login.defs", r"^PASS_MAX_DAYS\s+\d+", "PASS_MAX_DAYS\t90")
    edit(root, "/etc/login.defs", r"^PASS_MIN_DAYS\s+\d+", "PASS_MIN_DAYS\t2")
    edit(root, "/etc/login.defs", r"^PASS_WARN_AGE\s+\d+", "PASS_WARN_AGE\t7")
    edit(root, "/etc/login.defs", r"^UMASK\s+\d+", "UMASK\t\t027")
    # 8.1.4.1 b: lockout after 5 failures for 600 s, root too; session timeout
    write(root, "/etc/security/faillock.conf", "deny = 5\nunlock_time = 600\neven_deny_root\nroot_unlock_time = 600\n")
    # the stock pam_unix line (success=1 jumped over pam_deny) becomes preauth, pam_unix jumping over authfail
    # and pam_deny, authfail; the stock pam_deny and pam_permit lines stay
    edit(
        root, "/etc/pam.d/common-auth", r"^auth\s+\[success=1 default=ignore\]\s+pam_unix\.so nullok\n", RECTIFIED_AUTH
    )
    edit(
        root,
        "/etc/pam.d/common-account",
        r"^(account\s+\[success=1 new_authtok_reqd=done default=ignore\]\s+pam_unix\.so.*\n)",
        r"account\trequired\t\t\tpam_faillock.so\n\1",
    )
    write(root, "/etc/profile.d/tmout.sh", TMOUT_SH)
    # 8.1.4.2 e: umask 027 for login shells
    write(root, "/etc/profile.d/umask.sh", "umask 027\n")
    # 8.1.4.1 d, 8.1.4.2 b, 8.1.4.4 c, 8.1.4.7/8: sshd drop-in
    write(root, "/etc/ssh/sshd_config.d/50-dengbao.conf", DROPIN)
    # 8.1.4.2 d: administrators with separate roles, su only for the wheel group, %sudo's ALL removed
    for user in ("sysadm", "secadm", "audadm"):
        in_root(root, f"useradd -m -s /bin/bash {user}")
        in_root(root, "chpasswd", input=f"{user}:{ADMIN_PASSWORD}\n")
    in_root(root, "groupadd wheel && usermod -aG wheel sysadm")
    in_root(root, "chpasswd", input=f"root:{ADMIN_PASSWORD}\n")
    in_root(root, "chage -M 90 -W 7 root")  # accounts created before login.defs changed keep their ageing
    write(root, "/etc/sudoers.d/roles", ROLES, 0o440)
    edit(
        root,
        "/etc/sudoers",
        r"^%sudo\s+ALL=\(ALL:ALL\) ALL$",
        "# %sudo\tALL=(ALL:ALL) ALL  (三权分立: roles in sudoers.d/roles)",
    )
    edit(root, "/etc/pam.d/su", r"^# (auth\s+required\s+pam_wheel\.so)$", r"\1 use_uid")
    # 8.1.4.3: audit rules, authpriv logged, logs kept 26 weeks
    write(root, "/etc/audit/rules.d/dengbao.rules", AUDIT_RULES, 0o640)
    in_root(root, "augenrules")  # what auditd.service runs at boot (augenrules --load), minus the loading
    edit(root, "/etc/logrotate.d/rsyslog", r"^\s*rotate\s+\d+", "\trotate 26")
    edit(root, "/etc/logrotate.d/rsyslog", r"^\s*weekly", "\tweekly")
    edit(root, "/etc/audit/auditd.conf", r"^max_log_file_action = .*", "max_log_file_action = keep_logs")
    # 8.1.4.7 b: AIDE baseline database (aide-common enables dailyaidecheck.timer)
    in_root(root, "aideinit -y -f", timeout=3600)
    # 8.1.4.9 a: a nightly backup of /etc and /home
    write(root, "/etc/cron.d/backup", "30 2 * * * root rsync -a /etc /home /var/backups/nightly/\n")


def v_sufficient_unix(root: Path) -> None:
    edit(
        root,
        "/etc/pam.d/common-auth",
        r"^(auth\s+required\s+pam_faillock\.so preauth)",
        "auth\tsufficient\t\t\tpam_unix.so\n\\1",
        count=1,
    )


def v_sshd_no_common_auth(root: Path) -> None:
    edit(
        root,
        "/etc/pam.d/sshd",
        r"^@include common-auth$",
        "auth\t[success=1 default=ignore]\tpam_unix.so\nauth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so",
    )


def v_pwquality_optional(root: Path) -> None:
    edit(
        root,
        "/etc/pam.d/common-password",
        r"^password\s+requisite\s+pam_pwquality\.so",
        "password\toptional\tpam_pwquality.so",
    )
    edit(root, "/etc/pam.d/common-password", r"(pam_unix\.so.*?) use_authtok", r"\1")


def v_max_days_comment(root: Path) -> None:
    edit(root, "/etc/login.defs", r"^PASS_MAX_DAYS\s+90$", "PASS_MAX_DAYS\t90 # 等保")


def v_unset_tmout(root: Path) -> None:
    write(root, "/etc/profile.d/tmout.sh", "TMOUT=600\nexport TMOUT\n")
    write(root, "/etc/profile.d/zz-local.sh", "unset TMOUT\n")


def v_unset_readonly_tmout(root: Path) -> None:
    write(root, "/etc/profile.d/zz-local.sh", "unset TMOUT 2>/dev/null\n")


def v_no_umask(root: Path) -> None:
    (root / "etc/profile.d/umask.sh").unlink()
    edit(root, "/etc/login.defs", r"^UMASK\s+\d+\n", "")


def v_sshd_refused(root: Path) -> None:
    edit(root, "/etc/ssh/sshd_config.d/50-dengbao.conf", r"^MaxAuthTries 5$", "MaxAuthTries five")


@dataclass
class Recipe:
    name: str
    parent: str | None
    step: object
    describe: str


RECIPES = [
    Recipe("minimal", None, build_minimal, "debootstrap --variant=minbase + openssh-server"),
    Recipe("server", "minimal", build_server, "stock server: + " + " ".join(SERVER_PACKAGES)),
    Recipe("rectified", "server", rectify, "server + level-3 整改 (bench/agreement.py rectify())"),
    Recipe(
        "v-sufficient-unix",
        "rectified",
        v_sufficient_unix,
        "`auth sufficient pam_unix.so` before pam_faillock preauth in common-auth",
    ),
    Recipe(
        "v-sshd-no-common-auth",
        "rectified",
        v_sshd_no_common_auth,
        "/etc/pam.d/sshd has its own pam_unix stack instead of `@include common-auth`",
    ),
    Recipe(
        "v-pwquality-optional",
        "rectified",
        v_pwquality_optional,
        "pam_pwquality `optional`, pam_unix prompting itself (no use_authtok)",
    ),
    Recipe("v-max-days-comment", "rectified", v_max_days_comment, "`PASS_MAX_DAYS 90 # 等保`"),
    Recipe(
        "v-unset-tmout", "rectified", v_unset_tmout, "TMOUT=600 exported, then `unset TMOUT` in a later profile.d file"
    ),
    Recipe(
        "v-unset-readonly-tmout",
        "rectified",
        v_unset_readonly_tmout,
        "readonly TMOUT=600, then `unset TMOUT` in a later profile.d file (bash refuses the unset)",
    ),
    Recipe("v-no-umask", "rectified", v_no_umask, "no umask line anywhere (profile.d and login.defs UMASK removed)"),
    Recipe("v-sshd-refused", "rectified", v_sshd_refused, "drop-in `MaxAuthTries five`: `sshd -t` refuses the file"),
]
BY_NAME = {r.name: r for r in RECIPES}


def recipe_key(name: str) -> str:
    """The recipe's own code and its parents': a changed step rebuilds that root and its children (the syntax
    tree, so re-wrapping lines or editing comments rebuilds nothing)."""
    import ast
    import inspect
    import textwrap

    r = BY_NAME[name]
    src = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(r.step))))  # type: ignore[arg-type]
    src += repr(SERVER_PACKAGES if name == "server" else "")
    if name == "rectified":
        src += RECTIFIED_AUTH + TMOUT_SH + DROPIN + AUDIT_RULES + ROLES + repr(RECTIFY_PACKAGES)
    parent = recipe_key(r.parent) if r.parent else SUITE + MIRROR
    return hashlib.sha256((parent + src).encode()).hexdigest()[:16]


_KEYS: dict[str, str] = {}


def ensure_root(name: str, rebuild: bool = False) -> Path:
    r = BY_NAME[name]
    root = ROOTS / name
    stamp = root / ".agreement-recipe"
    if not _KEYS:  # all at once, first: the source read later could be a file edited since this run began
        _KEYS.update((n, recipe_key(n)) for n in BY_NAME)
    key = _KEYS[name]
    if not rebuild and stamp.exists() and stamp.read_text().strip() == key:
        return root
    if r.parent:
        parent = ensure_root(r.parent)
    print(f"building {name}: {r.describe}", file=sys.stderr, flush=True)
    tmp = ROOTS / f".{name}.building"
    if tmp.exists():
        shutil.rmtree(tmp)
    ROOTS.mkdir(parents=True, exist_ok=True)
    if r.parent:
        sh(["cp", "-a", str(parent), str(tmp)])
        (tmp / ".agreement-recipe").unlink()
    r.step(tmp)  # type: ignore[operator]
    stamp_tmp = tmp / ".agreement-recipe"
    stamp_tmp.write_text(key + "\n")
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


# ---------------------------------------------------------------------------------------------- assessor

PAMTESTER = shutil.which("pamtester") or "/usr/bin/pamtester"
ASR, ASR_PW = "asr01", "Start-Pass-91x"  # the assessor's test account, made in the copy only
ROOT_PW = "Root-Asr-Pass-73!"  # set in the copy only when the root has no known one
PROBE_LINE = 'echo "@@T=${TMOUT-unset}@@U=$(umask)@@"; exit\n'


class Sandbox:
    """A throw-away overlay of a root: every command mounts it afresh in a private mount namespace (upper
    layer kept between commands, so the copy's state carries over), chroots into it and ends; the root
    itself is never written."""

    def __init__(self, root: Path):
        self.root = root
        (CACHE / "work").mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{root.name}-", dir=CACHE / "work"))
        for d in ("upper", "work", "merged"):
            (self.dir / d).mkdir()
        # the assessor's own tool, as a technician brings it: the host's pamtester (Debian 12, same libpam)
        up = self.dir / "upper"
        (up / "usr/local/bin").mkdir(parents=True)
        shutil.copy(PAMTESTER, up / "usr/local/bin/pamtester")
        # what a booted system has in its tmpfs /run: sshd's privilege-separation directory, the tally dir
        (up / "run/sshd").mkdir(parents=True)
        (up / "run/faillock").mkdir(parents=True)

    def run(self, script: str, input: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
        m = shlex.quote(str(self.dir / "merged"))
        opts = f"lowerdir={self.root},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        outer = (
            f"mount -t overlay overlay -o {shlex.quote(opts)} {m} && mount -t proc proc {m}/proc && "
            f"mount --rbind /dev {m}/dev && exec chroot {m} /bin/sh -c {shlex.quote(script)}"
        )
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", outer],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TERM": "dumb"},
        )

    def ok(self, script: str, input: str | None = None) -> str:
        run = self.run(script, input)
        if run.returncode != 0:
            raise RuntimeError(f"{self.root.name}: {script!r} exited {run.returncode}: {run.stderr.strip()[-500:]}")
        return run.stdout

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def systemctl_enabled(root: Path, unit: str) -> str:
    """`systemctl --root` as the host's systemd reads the root's unit links (read-only)."""
    run = subprocess.run(["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True)
    return run.stdout.strip() or run.stderr.strip().splitlines()[-1] if (run.stdout or run.stderr) else "?"


@dataclass
class Step:
    """One step of an item's procedure: held or not, what showed it, and the sentinel checks that judge it."""

    name: str
    ok: bool
    evidence: str
    checks: tuple[str, ...] = ()


@dataclass
class Verdict:
    key: str
    clause: str
    verdict: str
    steps: list[Step] = field(default_factory=list)


def combine(steps: list[Step]) -> str:
    """作业指导书: 符合 only if every step holds, 不符合 if none does, else 部分符合 (reference §2, S1)."""
    held = sum(s.ok for s in steps)
    return "符合" if held == len(steps) else "不符合" if held == 0 else "部分符合"


class Assessor:
    """The real programs, in the order the procedure runs them (reads first, then the steps that change the
    copy: accounts, passwords, lockout tallies)."""

    def __init__(self, root: Path):
        self.root = root
        self.box = Sandbox(root)
        self.notes: list[str] = []

    # -- helpers
    def installed(self, *packages: str) -> list[str]:
        run = self.box.run(
            "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' " + " ".join(packages) + " 2>/dev/null"
        )
        return [ln.split()[0] for ln in run.stdout.splitlines() if ln.split()[1:2] == ["ii"]]

    def sshd(self) -> tuple[dict[str, str] | None, str]:
        """`sshd -t` first: a file sshd refuses applies nothing (the service does not start)."""
        t = self.box.run("/usr/sbin/sshd -t")
        if t.returncode != 0:
            return None, "sshd -t: " + (t.stderr.strip() or f"exit {t.returncode}")
        out = self.box.ok("/usr/sbin/sshd -T -C user=asr01,host=10.10.8.5,addr=10.10.8.5")
        opts: dict[str, str] = {}
        for line in out.splitlines():
            k, _, v = line.partition(" ")
            opts[k] = (opts[k] + " " + v) if k in opts and k in ("allowusers", "allowgroups") else v
        return opts, "sshd -T"

    def pamtester(self, service: str, user: str, op: str, inputs: list[str]) -> subprocess.CompletedProcess:
        return self.box.run(f"pamtester {service} {user} {op}", input="".join(i + "\n" for i in inputs))

    def login_shell(self, user: str) -> tuple[str, str]:
        """TMOUT and umask of an interactive login shell (`su -` under script, as an SSH login has a tty)."""
        run = self.box.run(f"script -qec {shlex.quote('su - ' + user)} /dev/null", input=PROBE_LINE)
        m = re.search(r"@@T=(\S*?)@@U=(\d+)@@", run.stdout)
        if not m:
            raise RuntimeError(f"{self.root.name}: login shell of {user} printed {run.stdout!r} {run.stderr!r}")
        return m.group(1), m.group(2)

    def chage(self, user: str) -> dict[str, str]:
        out = self.box.ok(f"chage -l {user}")
        return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()) if v}

    def lockout(self, service: str, user: str, password: str, deny: int = 5) -> Step:
        """S1 #9/#10: after `deny` wrong passwords the right one is refused (deny <= 5: the guide's tables)."""
        first = self.pamtester(service, user, "authenticate", [password])
        if first.returncode != 0:
            return Step(
                f"lockout {service}/{user}",
                False,
                f"pamtester {service} {user}: the right password is refused from the start: {first.stderr.strip()}",
            )
        for _ in range(deny):
            self.pamtester(service, user, "authenticate", ["Wrong-Guess-0"])
        after = self.pamtester(service, user, "authenticate", [password])
        self.box.run(f"faillock --user {user} --reset 2>/dev/null; rm -f /run/faillock/{user}")
        locked = after.returncode != 0
        return Step(
            f"lockout {service}/{user}",
            locked,
            f"pamtester {service} {user} authenticate: {deny} wrong passwords, then the right one "
            + ("refused (locked)" if locked else "accepted (no lockout)"),
        )

    # -- the procedure
    def assess(self) -> dict[str, Verdict]:
        try:
            return self._assess()
        finally:
            self.box.close()

    def _assess(self) -> dict[str, Verdict]:
        box, out = self.box, {}
        ssh, ssh_how = self.sshd()

        def sshv(key: str) -> str | None:
            return None if ssh is None else ssh.get(key)

        passwd = [ln.split(":") for ln in box.ok("getent passwd").splitlines()]
        status = {f[0]: f[1] for f in (ln.split() for ln in box.ok("passwd -S -a").splitlines()) if len(f) > 1}

        # 8.1.4.1 a  身份鉴别 (S1 #1 empty passwords, #2 unique ids / UID 0, #3 ageing, #4-5 complexity, #6 warning,
        # #7 trust files)
        names = [f[0] for f in passwd]
        uids = [f[2] for f in passwd]
        dup = sorted({n for n in names if names.count(n) > 1} | {u for u in uids if uids.count(u) > 1})
        uid0 = [f[0] for f in passwd if f[2] == "0"]
        a = [
            Step(
                "unique identities, UID 0 only root",
                not dup and uid0 == ["root"],
                f"getent passwd: duplicates {dup or 'none'}, UID 0: {uid0}",
                ("l3-ia-uid0-only-root", "l3-ia-duplicate-uid", "l3-ia-duplicate-name"),
            ),
            Step(
                "no empty password",
                not [u for u, s in status.items() if s == "NP"],
                "passwd -S -a: NP " + str([u for u, s in status.items() if s == "NP"] or "none"),
                ("l3-ia-empty-password",),
            ),
        ]
        with_pw = [u for u, s in status.items() if s == "P"]
        old = {u: self.chage(u).get("Maximum number of days between password change", "?") for u in with_pw}
        box.ok(f"useradd -m -s /bin/bash {ASR}")
        new = self.chage(ASR)
        new_max = new.get("Maximum number of days between password change", "?")
        ua = box.run("useradd -m asr02 2>&1; true").stdout.strip()

        def days_ok(v: str) -> bool:
            return v.lstrip("-").isdigit() and 0 <= int(v) <= 90

        a.append(
            Step(
                "new accounts expire within 90 days",
                days_ok(new_max),
                f"useradd {ASR}; chage -l: maximum {new_max}" + (f" (useradd said: {ua})" if ua else ""),
                ("l3-ia-pass-max-days",),
            )
        )
        a.append(
            Step(
                "accounts with a password expire within 90 days",
                all(days_ok(v) for v in old.values()),
                "chage -l: " + (", ".join(f"{u} {v}" for u, v in old.items()) or "no account has a password"),
                ("l3-ia-shadow-aging",),
            )
        )
        warn = new.get("Number of days of warning before password expires", "?")
        a.append(
            Step(
                "expiry warning >= 7 days",
                warn.isdigit() and int(warn) >= 7,
                f"chage -l {ASR}: warning {warn}",
                ("l3-ia-pass-warn-age",),
            )
        )
        trust = box.run("ls -d /etc/hosts.equiv /root/.rhosts /home/*/.rhosts 2>/dev/null").stdout.split()
        a.append(Step("no .rhosts / hosts.equiv", not trust, f"ls: {trust or 'none'}", ("l3-ia-no-rhosts",)))
        box.ok("chpasswd", f"{ASR}:{ASR_PW}\n")
        # as root (pamtester runs as root): the guide wants the rule enforced for root too (S1 #5)
        weak = {"lower only": "qzmxnvbtkw", "7 characters": "Ab1#zqW"}
        refused = {k: self.pamtester("passwd", ASR, "chauthtok", [pw] * 8).returncode != 0 for k, pw in weak.items()}
        strong = self.pamtester("passwd", ASR, "chauthtok", ["Xq7#mLp2Wz-Kv"] * 2)
        if strong.returncode != 0:
            self.notes.append(f"passwd chauthtok refused a strong password: {strong.stderr.strip()[-200:]}")
        a.append(
            Step(
                "weak passwords refused (minlen 8, >= 2 classes, for root too)",
                all(refused.values()) and strong.returncode == 0,
                "pamtester passwd chauthtok as root: "
                + ", ".join(f"{k} {'refused' if v else 'accepted'}" for k, v in refused.items())
                + f", strong {'accepted' if strong.returncode == 0 else 'refused'}",
                ("l3-ia-pwquality-complexity", "l3-ia-pwquality-minlen", "l3-ia-pwquality-enforce-root"),
            )
        )
        box.ok("chpasswd", f"{ASR}:{ASR_PW}\n")
        out["ces.auth.identify"] = Verdict("ces.auth.identify", "8.1.4.1 a", combine(a), a)

        # 8.1.4.1 b  登录失败处理 (S1 #9/#10 lockout, root too; #11 TMOUT of a login shell <= 600)
        tmout, umask = self.login_shell(ASR)
        root_pw = ROOT_PW if status.get("root") != "P" else None
        if root_pw is None:  # the rectified root's own root password is the operator's
            root_pw = ADMIN_PASSWORD
        else:
            box.ok("chpasswd", f"root:{root_pw}\n")
        b = [self.lockout("sshd", ASR, ASR_PW), self.lockout("login", ASR, ASR_PW)]
        b = [
            Step(
                "lockout after <= 5 failures (sshd, login)",
                all(s.ok for s in b),
                "; ".join(s.evidence for s in b),
                ("l3-ia-login-lockout",),
            )
        ]
        r = self.lockout("sshd", "root", root_pw)
        b.append(Step("lockout applies to root", r.ok, r.evidence, ("l3-ia-lockout-root",)))
        b.append(
            Step(
                "login shell TMOUT 1-600 s",
                tmout.isdigit() and 0 < int(tmout) <= 600,
                f"su - {ASR} (interactive, under script): TMOUT={tmout}",
                ("l3-ia-shell-timeout",),
            )
        )
        out["ces.auth.login-failure"] = Verdict("ces.auth.login-failure", "8.1.4.1 b", combine(b), b)

        # 8.1.4.1 c  远程管理防窃听 (S1 #13: no telnet/rsh/ftp server, SSH for management)
        plain_pkgs = [
            "telnetd",
            "inetutils-telnetd",
            "telnetd-ssl",
            "rsh-server",
            "rsh-redone-server",
            "vsftpd",
            "proftpd-basic",
            "proftpd-core",
            "pure-ftpd",
            "inetutils-ftpd",
            "tftpd-hpa",
            "xinetd",
            "openbsd-inetd",
        ]
        plain = self.installed(*plain_pkgs)
        c = [
            Step(
                "no plaintext remote-management server",
                not plain,
                f"dpkg-query: {plain or 'none of ' + ' '.join(plain_pkgs)}",
                ("l3-ia-no-telnet-rsh-server", "l3-ia-no-ftp-server"),
            )
        ]
        out["ces.auth.remote-eavesdrop"] = Verdict("ces.auth.remote-eavesdrop", "8.1.4.1 c", combine(c), c)

        # 8.1.4.1 d  两种鉴别 (S1 #15: SSH key and password both required)
        am = sshv("authenticationmethods")
        lists = [m.split(",") for m in (am or "").split()] if am and am != "any" else []
        two = bool(lists) and all("publickey" in m and ({"password", "keyboard-interactive"} & set(m)) for m in lists)
        d = [
            Step(
                "SSH requires a key and a password",
                two,
                f"{ssh_how}: authenticationmethods {am}",
                ("l3-ia-ssh-two-factor",),
            )
        ]
        out["ces.auth.multi-factor"] = Verdict("ces.auth.multi-factor", "8.1.4.1 d", combine(d), d)

        # 8.1.4.2 b  默认账户 (S1 #16 default accounts locked or no shell; #17 PermitRootLogin no)
        nologin = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}
        open_sys = [
            f[0]
            for f in passwd
            if f[0] != "root"
            and f[2].isdigit()
            and int(f[2]) < 1000
            and status.get(f[0]) not in ("L",)
            and f[6] not in nologin
        ]
        e = [
            Step(
                "default accounts locked or without a shell",
                not open_sys,
                f"passwd -S -a + getent passwd: usable {open_sys or 'none'}",
                ("l3-ac-default-accounts-locked",),
            ),
            Step(
                "PermitRootLogin no",
                sshv("permitrootlogin") == "no",
                f"{ssh_how}: permitrootlogin {sshv('permitrootlogin')}",
                ("l3-ac-ssh-no-root-login",),
            ),
        ]
        out["ces.access.default-accounts"] = Verdict("ces.access.default-accounts", "8.1.4.2 b", combine(e), e)

        # 8.1.4.2 d  最小权限、权限分离 (S1 #19: su restricted by pam_wheel, sudo roles separated, 三权分立)
        su = box.run(f"su {ASR} -s /bin/sh -c 'su -c true root'", input=root_pw + "\n")
        su_ok = su.returncode != 0
        f2 = [
            Step(
                "su refused to a non-wheel user",
                su_ok,
                f"su as {ASR} with root's right password: "
                + ("refused" if su_ok else "accepted")
                + (f" ({su.stderr.strip()[-120:]})" if su.stderr.strip() else ""),
                ("l3-ac-su-wheel",),
            )
        ]
        roles = self.sudo_roles(passwd)
        f2.append(
            Step(
                "system/security/audit administrators separated",
                roles[0],
                roles[1],
                ("l3-ac-admin-separation", "l3-ac-sudo-no-full-root"),
            )
        )
        out["ces.access.least-privilege"] = Verdict("ces.access.least-privilege", "8.1.4.2 d", combine(f2), f2)

        # 8.1.4.2 e  umask (T6 #21; threshold 027 of the baseline's rationale)
        home = box.ok("stat -c %a /home/asr02").strip()
        g = [
            Step(
                "login shell umask 027 or stricter",
                int(umask, 8) & 0o027 == 0o027,
                f"su - {ASR}: umask {umask}",
                ("l3-ac-umask-profile",),
            ),
            Step(
                "useradd makes homes 0750 or stricter (login.defs UMASK/HOME_MODE)",
                int(home, 8) & 0o027 == 0,
                f"useradd -m asr02; stat: {home}",
                ("l3-ac-umask-login-defs",),
            ),
        ]
        out["ces.access.policy-by-authority"] = Verdict("ces.access.policy-by-authority", "8.1.4.2 e", combine(g), g)

        # 8.1.4.2 f  重要文件权限 (S1 #20: configuration <= 644; shadow <= 640; host keys as sshd accepts them)
        modes = dict(
            ln.split(" ", 1)[::-1]
            for ln in box.ok(
                "stat -c '%a %n' /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/ssh/sshd_config "
                "/etc/ssh/ssh_host_*_key /etc/login.defs /etc/pam.d/* /etc/crontab 2>/dev/null; true"
            ).splitlines()
        )

        def over(paths: list[str], limit: int) -> list[str]:
            return [f"{p} {m}" for p, m in modes.items() if p in paths and int(m, 8) & ~limit]

        keys = [p for p in modes if p.startswith("/etc/ssh/ssh_host_")]
        pams = [p for p in modes if p.startswith("/etc/pam.d/")]
        h = [
            Step(
                "/etc/passwd, /etc/group <= 644",
                not over(["/etc/passwd", "/etc/group"], 0o644),
                str(over(["/etc/passwd", "/etc/group"], 0o644) or "stat: within"),
                ("l3-ac-passwd-group-mode",),
            ),
            Step(
                "/etc/shadow, /etc/gshadow <= 640",
                not over(["/etc/shadow", "/etc/gshadow"], 0o640),
                str(over(["/etc/shadow", "/etc/gshadow"], 0o640) or "stat: within"),
                ("l3-ac-shadow-mode",),
            ),
            Step(
                "sshd_config <= 644",
                not over(["/etc/ssh/sshd_config"], 0o644),
                str(over(["/etc/ssh/sshd_config"], 0o644) or "stat: within"),
                ("l3-ac-sshd-config-mode",),
            ),
            Step(
                "host private keys <= 600",
                not over(keys, 0o600),
                str(over(keys, 0o600) or f"stat: {len(keys)} within"),
                ("l3-ac-ssh-host-key-mode",),
            ),
            Step(
                "PAM files and login.defs <= 644",
                not over(pams + ["/etc/login.defs"], 0o644),
                str(over(pams + ["/etc/login.defs"], 0o644) or "stat: within"),
                ("l3-ac-auth-config-mode",),
            ),
            Step(
                "/etc/crontab <= 644",
                not over(["/etc/crontab"], 0o644),
                str(over(["/etc/crontab"], 0o644) or "stat: within"),
                ("l3-ac-cron-config-mode",),
            ),
        ]
        out["ces.access.granularity"] = Verdict("ces.access.granularity", "8.1.4.2 f", combine(h), h)

        # 8.1.4.2 g  强制访问控制 (S1 #22): only its absence is decidable offline (enforcing is the kernel's state)
        mac = self.installed("apparmor", "selinux-basics", "selinux-policy-default")
        if not mac:
            s = [
                Step(
                    "a MAC system is installed",
                    False,
                    "dpkg-query: no apparmor/selinux package",
                    ("l3-ac-mac-enforcing",),
                )
            ]
            out["ces.access.security-labels"] = Verdict("ces.access.security-labels", "8.1.4.2 g", combine(s), s)

        # 8.1.4.3 a  安全审计 (S1 #23 auditd and rsyslog on, #24 audit watches, #25 authpriv logged)
        aud, slog = systemctl_enabled(self.root, "auditd.service"), systemctl_enabled(self.root, "rsyslog.service")
        watches = self.audit_watches()
        authpriv = self.rsyslog_authpriv()
        i = [
            Step(
                "auditd enabled at boot",
                aud == "enabled",
                f"systemctl --root is-enabled auditd: {aud}",
                ("l3-au-auditd-enabled",),
            ),
            Step(
                "rsyslog enabled at boot",
                slog == "enabled",
                f"systemctl --root is-enabled rsyslog: {slog}",
                ("l3-au-syslog-enabled",),
            ),
            Step(
                "audit rules watch identity/config files and account tools",
                watches[0],
                watches[1],
                ("l3-au-watch-identity", "l3-au-watch-config", "l3-au-watch-account-tools"),
            ),
            Step("authpriv messages written to a file", authpriv[0], authpriv[1], ("l3-au-syslog-authpriv",)),
        ]
        out["ces.audit.enabled"] = Verdict("ces.audit.enabled", "8.1.4.3 a", combine(i), i)

        # 8.1.4.3 c  审计记录保护 (S1 #27 modes, #28 kept >= 6 months: logrotate -d, or forwarded)
        j = self.record_protection()
        out["ces.audit.record-protection"] = Verdict("ces.audit.record-protection", "8.1.4.3 c", combine(j), j)

        # 8.1.4.4 c  管理终端限制 (S1 #32: sshd AllowUsers/AllowGroups with hosts, hosts.allow/deny, firewall)
        allow = (sshv("allowusers") or "").split() + (sshv("allowgroups") or "").split()
        by_host = bool(allow) and all("@" in u for u in (sshv("allowusers") or "").split()) and not sshv("allowgroups")
        wrap = box.run(
            "ldd /usr/sbin/sshd | grep -q libwrap && grep -Eqs '^\\s*(sshd|ALL)\\s*:\\s*ALL' /etc/hosts.deny"
        )
        nft = box.run("grep -Eqs 'dport (22|ssh).*saddr|saddr.*dport (22|ssh)' /etc/nftables.conf")
        k = [
            Step(
                "SSH limited to management addresses",
                by_host or wrap.returncode == 0 or nft.returncode == 0,
                f"{ssh_how}: allowusers {sshv('allowusers')} allowgroups {sshv('allowgroups')}; "
                f"libwrap+hosts.deny {'yes' if wrap.returncode == 0 else 'no'}; "
                f"nftables {'yes' if nft.returncode == 0 else 'no'}",
                ("l3-ip-mgmt-source-restricted-debian",),
            )
        ]
        out["ces.intrusion.mgmt-terminals"] = Verdict("ces.intrusion.mgmt-terminals", "8.1.4.4 c", combine(k), k)

        # 8.1.4.4 f  入侵检测 (S1 #34): only absence is decidable offline
        hids = (
            self.installed("wazuh-agent", "ossec-hids-agent", "ossec-hids", "osquery", "falco", "aide-hids")
            + box.run("ls -d /var/ossec /usr/local/aegis /usr/local/qcloud/YunJing 2>/dev/null").stdout.split()
        )
        if not hids:
            n = [Step("a HIDS agent is installed", False, "dpkg-query + ls: none", ("l3-ip-hids-installed",))]
            out["ces.intrusion.detection"] = Verdict("ces.intrusion.detection", "8.1.4.4 f", combine(n), n)

        # 8.1.4.5 a  恶意代码防范 (S1 #35: installed, signatures <= 1 week, updates running)
        out["ces.malware.protection"] = Verdict("ces.malware.protection", "8.1.4.5 a", "", self.malware())
        out["ces.malware.protection"].verdict = combine(out["ces.malware.protection"].steps)

        # 8.1.4.7 a / 8.1.4.8 a  传输完整性/保密性 of remote management (S1 #37; weak lists as scanners report)
        macs, ciphers, kex = (sshv("macs") or ""), (sshv("ciphers") or ""), (sshv("kexalgorithms") or "")
        weak_mac = [m for m in macs.split(",") if re.search(r"md5|-96\b", m)]
        weak_ci = [m for m in ciphers.split(",") if re.search(r"-cbc|3des|arcfour|blowfish|cast128", m)]
        weak_kx = [m for m in kex.split(",") if re.search(r"sha1$|group1-|gss-", m)]
        p7 = [
            c[0],
            Step(
                "SSH offers no weak MAC",
                ssh is not None and not weak_mac,
                f"{ssh_how}: weak MACs {weak_mac or 'none'}",
                ("l3-di-ssh-macs",),
            ),
        ]
        p8 = [
            c[0],
            Step(
                "SSH offers no weak cipher or key exchange",
                ssh is not None and not weak_ci and not weak_kx,
                f"{ssh_how}: weak ciphers {weak_ci or 'none'}, kex {weak_kx or 'none'}",
                ("l3-dc-ssh-ciphers", "l3-dc-ssh-kex"),
            ),
        ]
        out["ces.integrity.transit"] = Verdict("ces.integrity.transit", "8.1.4.7 a", combine(p7), p7)
        out["ces.confidentiality.transit"] = Verdict("ces.confidentiality.transit", "8.1.4.8 a", combine(p8), p8)

        # 8.1.4.7 b  存储完整性 (S1 #38: AIDE installed, baseline database, scheduled)
        aide = box.run("aide --version 2>&1")
        db = box.run("ls /var/lib/aide/aide.db /var/lib/aide/aide.db.gz 2>/dev/null").stdout.split()
        timer = systemctl_enabled(self.root, "dailyaidecheck.timer")
        q = [
            Step(
                "an integrity checker is installed",
                aide.returncode == 0,
                "aide --version: " + (aide.stdout.strip().splitlines() or ["not found"])[0],
                ("l3-di-integrity-tool-installed",),
            ),
            Step(
                "its baseline database exists",
                bool(db),
                f"ls: {db or 'no /var/lib/aide/aide.db'}",
                ("l3-di-aide-database",),
            ),
            Step(
                "checks are scheduled",
                timer == "enabled" or box.run("test -x /etc/cron.daily/aide").returncode == 0,
                f"systemctl --root is-enabled dailyaidecheck.timer: {timer}",
                ("l3-di-aide-scheduled",),
            ),
        ]
        out["ces.integrity.storage"] = Verdict("ces.integrity.storage", "8.1.4.7 b", combine(q), q)

        # 8.1.4.9 a  本地备份 (S1 #40): no scheduled backup is 不符合; a job's copies and restore test need a person
        jobs = box.run(
            "cat /etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/* 2>/dev/null | grep -v '^\\s*#' | "
            "grep -E '\\b(rsync|tar|borg|restic|duplicity|rdiff-backup|pg_dump|pg_basebackup|mysqldump|"
            "mariabackup|xtrabackup|rclone)\\b'"
        ).stdout.strip()
        cron = systemctl_enabled(self.root, "cron.service")
        if not (jobs and cron == "enabled"):
            t = [
                Step(
                    "a backup job is scheduled",
                    False,
                    f"crontabs: {jobs or 'no backup command'}; cron {cron}",
                    ("l3-br-backup-job",),
                )
            ]
            out["ces.backup.local"] = Verdict("ces.backup.local", "8.1.4.9 a", combine(t), t)
        return out

    def rpm_steps(self) -> list[Step]:
        """The steps the transplanted files decide (see rpm_layout): lockout, complexity as root sets a password
        (which only enforce_for_root decides: minlen and classes for a user changing its own are not compared
        here), sshd options."""
        box = self.box
        ssh, how = self.sshd()
        box.ok(f"useradd -m -s /bin/bash {ASR}")
        box.ok("chpasswd -c SHA512", f"{ASR}:{ASR_PW}\nroot:{ROOT_PW}\n")  # -c: without the stack under test
        lock = [self.lockout("sshd", ASR, ASR_PW), self.lockout("login", ASR, ASR_PW)]
        root = self.lockout("sshd", "root", ROOT_PW)
        weak = {"lower only": "qzmxnvbtkw", "7 characters": "Ab1#zqW"}
        refused = {k: self.pamtester("passwd", ASR, "chauthtok", [pw] * 8).returncode != 0 for k, pw in weak.items()}
        strong = self.pamtester("passwd", ASR, "chauthtok", ["Xq7#mLp2Wz-Kv"] * 2).returncode == 0
        am = (ssh or {}).get("authenticationmethods")
        lists = [m.split(",") for m in (am or "").split()] if am and am != "any" else []
        two = bool(lists) and all("publickey" in m and ({"password", "keyboard-interactive"} & set(m)) for m in lists)
        macs, ciphers = (ssh or {}).get("macs", ""), (ssh or {}).get("ciphers", "")
        return [
            Step(
                "lockout after <= 5 failures (sshd, login)",
                all(s.ok for s in lock),
                "; ".join(s.evidence for s in lock),
                ("l3-ia-login-lockout",),
            ),
            Step("lockout applies to root", root.ok, root.evidence, ("l3-ia-lockout-root",)),
            Step(
                "weak passwords refused when root sets them",
                all(refused.values()) and strong,
                f"pamtester passwd chauthtok as root: {refused}, strong {'accepted' if strong else 'refused'}",
                ("l3-ia-pwquality-enforce-root",),
            ),
            Step(
                "SSH requires a key and a password",
                ssh is not None and two,
                f"{how}: authenticationmethods {am}",
                ("l3-ia-ssh-two-factor",),
            ),
            Step(
                "PermitRootLogin no",
                ssh is not None and ssh.get("permitrootlogin") == "no",
                f"{how}: permitrootlogin {(ssh or {}).get('permitrootlogin')}",
                ("l3-ac-ssh-no-root-login",),
            ),
            Step(
                "SSH offers no weak MAC",
                ssh is not None and not re.search(r"md5|-96\b", macs),
                f"{how}: macs {macs}",
                ("l3-di-ssh-macs",),
            ),
            Step(
                "SSH offers no weak cipher",
                ssh is not None and not re.search(r"-cbc|3des|arcfour|blowfish|cast128", ciphers),
                f"{how}: ciphers {ciphers}",
                ("l3-dc-ssh-ciphers",),
            ),
        ]

    def sudo_roles(self, passwd: list[list[str]]) -> tuple[bool, str]:
        """Duties from what `sudo -l -U` lists (S1 #19): security = account/permission tools, audit = audit
        trail tools, system = services/packages; ALL = all three. Separated: security and audit each held,
        no account holding two, nobody but root holding ALL."""
        if not self.installed("sudo"):
            return False, "sudo not installed: root alone holds every duty"
        duty_re = {
            "security": r"/(useradd|usermod|userdel|passwd|chage|groupadd|gpasswd|visudo|chmod|chown|setfacl)\b",
            "audit": r"/(ausearch|aureport|auditctl|journalctl)\b|/var/log",
            "system": r"/(systemctl|apt|apt-get|dpkg|reboot|shutdown|mount)\b",
        }
        held: dict[str, set[str]] = {}
        for f in passwd:
            if f[0] == "root":
                continue
            run = self.box.run(f"sudo -l -U {f[0]}")
            text = run.stdout
            if "not allowed to run sudo" in text or run.returncode != 0:
                continue
            grants = text.split("may run the following commands", 1)[-1]
            duties = {d for d, rx in duty_re.items() if re.search(rx, grants)}
            if re.search(r"\)\s*(NOPASSWD:\s*)?ALL\s*$", grants, re.M):
                duties = {"security", "audit", "system", "ALL"}
            if duties:
                held[f[0]] = duties
        ev = "sudo -l -U: " + (", ".join(f"{u}: {'/'.join(sorted(d))}" for u, d in held.items()) or "no grants")
        ok = (
            any("security" in d for d in held.values())
            and any("audit" in d for d in held.values())
            and all(len(d - {"ALL"}) == 1 for d in held.values())
        )
        return ok, ev

    def audit_watches(self) -> tuple[bool, str]:
        """The rules auditd loads at boot (augenrules merges rules.d into audit.rules; run in the copy)."""
        if not self.installed("auditd"):
            return False, "auditd not installed"
        self.box.run("augenrules >/dev/null 2>&1")
        text = self.box.run("cat /etc/audit/audit.rules").stdout
        watched = {m.group(1): m.group(2) for m in re.finditer(r"^-w\s+(\S+)\s+-p\s+(\w+)", text, re.M)}
        need_wa = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/ssh/sshd_config", "/etc/rsyslog.conf"]
        need_x = ["/usr/sbin/useradd", "/usr/sbin/userdel"]
        missing = [p for p in need_wa if not set("wa") <= set(watched.get(p, ""))] + [
            p for p in need_x if "x" not in watched.get(p, "")
        ]
        if not (set("wa") <= set(watched.get("/etc/audit/", watched.get("/etc/audit/auditd.conf", "")))):
            missing.append("/etc/audit/")
        return not missing, f"/etc/audit/audit.rules after augenrules: missing {missing or 'none'}"

    def rsyslog_authpriv(self) -> tuple[bool, str]:
        if not self.installed("rsyslog"):
            return False, "rsyslog not installed (journald only)"
        check = self.box.run("rsyslogd -N1 2>&1")
        if check.returncode != 0:
            return False, "rsyslogd -N1 refuses the configuration: " + check.stdout.strip()[-200:]
        text = self.box.run("cat /etc/rsyslog.conf /etc/rsyslog.d/*.conf 2>/dev/null").stdout
        dest = [
            ln
            for ln in text.splitlines()
            if re.match(r"^\s*[^#$]*\bauthpriv\.(\*|info|notice|debug)[^;]*\s+-?[/@]", ln)
        ]
        return bool(dest), "rsyslogd -N1 ok; authpriv rule: " + (dest[0].strip() if dest else "none")

    def record_protection(self) -> list[Step]:
        box = self.box
        files = box.run(
            "stat -c '%a %n' /var/log/auth.log /var/log/syslog /var/log/messages /var/log/audit/audit.log "
            "2>/dev/null; true"
        ).stdout.split("\n")
        wide = [ln for ln in files if ln and int(ln.split()[0], 8) & 0o137]
        create = box.run(
            "grep -hE '^\\s*\\$FileCreateMode' /etc/rsyslog.conf /etc/rsyslog.d/*.conf 2>/dev/null"
        ).stdout.split()
        steps = []
        if self.installed("rsyslog"):
            mode = create[-1] if create else "0644"  # rsyslog's default without $FileCreateMode
            steps.append(
                Step(
                    "log files root/adm only (<= 0640, rsyslog FileCreateMode)",
                    not wide and not int(mode, 8) & 0o137,
                    f"stat: {wide or 'none wider'}; $FileCreateMode {mode}",
                    ("l3-au-log-file-mode",),
                )
            )
        adir = box.run("stat -c %a /var/log/audit 2>/dev/null").stdout.strip()
        if adir:
            steps.append(
                Step(
                    "audit log directory <= 0750",
                    not int(adir, 8) & 0o027,
                    f"stat /var/log/audit: {adir}",
                    ("l3-au-audit-dir-mode",),
                )
            )
        fwd = box.run(
            "grep -hE '^\\s*[^#]*\\s@@?[A-Za-z0-9]|type=\"omfwd\"' /etc/rsyslog.conf /etc/rsyslog.d/*.conf 2>/dev/null"
        ).stdout.strip()
        lr = box.run("logrotate -d /etc/logrotate.conf 2>&1")
        kept = self.logrotate_days(lr.stdout, "/var/log/auth.log")
        steps.append(
            Step(
                "authentication log kept >= 180 days or forwarded",
                bool(fwd) or (kept or 0) >= 180,
                f"logrotate -d: /var/log/auth.log {kept if kept is not None else 'not rotated (no rsyslog file)'} "
                f"days; forwarding {fwd or 'none'}",
                ("l3-au-log-retention-auth",),
            )
        )
        return steps

    @staticmethod
    def logrotate_days(debug: str, path: str) -> int | None:
        """From logrotate -d: 'rotating pattern: ... <path> ... weekly (26 rotations)'."""
        per = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}
        # the pattern list spans lines; n rotations of a period keep n periods of old logs
        for m in re.finditer(
            r"rotating pattern: ((?:(?!rotating pattern:).)*?)\s(daily|weekly|monthly|yearly|"
            r"after \d+ days?)? ?\((\d+) rotations\)",
            debug,
            re.S,
        ):
            pats, freq, n = m.group(1), m.group(2) or "", int(m.group(3))
            if path in pats.split():
                return per[freq] * n if freq in per else None
        return None

    def malware(self) -> list[Step]:
        box = self.box
        scan = box.run("clamscan --version 2>&1")
        steps = [
            Step(
                "anti-malware installed",
                scan.returncode == 0,
                "clamscan --version: " + (scan.stdout.strip() or "not found"),
                ("l3-mc-antimalware-installed",),
            )
        ]
        info = box.run(
            "for f in /var/lib/clamav/daily.cvd /var/lib/clamav/daily.cld; do [ -e $f ] && sigtool --info $f; done 2>&1"
        )
        built = re.search(r"Build time:\s*(.+)", info.stdout)
        age = None
        if built:
            from datetime import datetime, timezone
            from email.utils import parsedate_to_datetime

            try:
                age = (datetime.now(timezone.utc) - parsedate_to_datetime(built.group(1).strip())).days
            except (TypeError, ValueError):
                age = None
        steps.append(
            Step(
                "signatures present and <= 7 days old",
                age is not None and age <= 7,
                f"sigtool --info daily: {('built ' + built.group(1).strip()) if built else 'no signature database'}",
                ("l3-mc-signatures-week", "l3-mc-signatures-month"),
            )
        )
        fc = systemctl_enabled(self.root, "clamav-freshclam.service")
        steps.append(
            Step(
                "signature updates run",
                fc == "enabled",
                f"systemctl --root is-enabled clamav-freshclam: {fc}",
                ("l3-mc-freshclam-scheduled",),
            )
        )
        return steps


# ---------------------------------------------------------------------------------------------- comparison

RANK = {"不符合": 0, "部分符合": 1, "符合": 2}


SENTINEL_PATH: str | None = None  # --sentinel-path: another tree laid out as installed (the "before" figures)


def sentinel_report(root: Path, baseline: str) -> dict:
    env = dict(os.environ, PYTHONPATH=SENTINEL_PATH) if SENTINEL_PATH else None
    cli = "import sys; from sentinel.cli import main; sys.argv[0] = 'sentinel'; sys.exit(main())"
    run = subprocess.run(
        [sys.executable, "-c", cli, "check", "--root", str(root), "--format", "json", "--baseline", baseline],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd="/",
    )
    if run.returncode not in (0, 1):
        raise RuntimeError(f"sentinel check --root {root}: exit {run.returncode}: {run.stderr[-1000:]}")
    return json.loads(run.stdout)


@dataclass
class RootResult:
    name: str
    describe: str
    firm: int
    agree: int
    disagreements: list[dict]
    unsafe_items: list[dict]  # sentinel's item verdict above the assessor's
    false_passes: list[dict]  # a sentinel check passed whose step the real program failed
    notes: list[str]


def compare(name: str, root: Path, baseline: str) -> RootResult:
    assessor = Assessor(root)
    oracle = assessor.assess()
    report = sentinel_report(root, baseline)
    items = {it["key"]: it for it in report["items"]}
    results = {r["check_id"]: r for r in report["results"]}
    disagreements, unsafe, false_passes = [], [], []
    agree = 0
    for key, v in list(oracle.items()):
        it = items.get(key)
        # the baseline's level has no such item (level 2 has no 8.1.4.1 d), or asks something else under it that
        # no root here decides: level 4's 恶意代码防范 accepts only 主动免疫可信验证, and its 存储完整性 asks for
        # cryptographic protection (AIDE's keyless checksums are evidence only)
        level4_other = {"ces.malware.protection", "ces.integrity.storage"}
        if it is None or (report["baseline"]["level"] == 4 and key in level4_other):
            del oracle[key]
            continue
        ours = it["verdict"] if it else "(not in baseline)"
        shown = {
            c: results[c]["status"] + ("/advisory" if results[c].get("advisory") else "")
            for c in (it["checks"] if it else [])
            if c in results
        }
        row = {
            "item": f"{it['clause']} {it['item']} {key}",  # the baseline level's own clause number
            "assessor": v.verdict,
            "sentinel": ours,
            "assessor_steps": [f"{'✔' if s.ok else '✘'} {s.name}: {s.evidence}" for s in v.steps],
            "sentinel_checks": [f"{c} {st}: " + _evidence(results[c]) for c, st in shown.items()],
        }
        if ours == v.verdict:
            agree += 1
        else:
            disagreements.append(row)
            if RANK.get(ours, -1) > RANK[v.verdict]:
                unsafe.append(row)
        for s in v.steps:
            for c in s.checks:
                r = results.get(c)
                if r and r["status"] == "pass" and not s.ok:
                    false_passes.append(
                        {
                            "item": f"{it['clause']} {it['item']} {key}",
                            "check": c,
                            "step": s.name,
                            "real": s.evidence,
                            "sentinel": _evidence(r),
                        }
                    )
    return RootResult(
        name, BY_NAME[name].describe, len(oracle), agree, disagreements, unsafe, false_passes, assessor.notes
    )


def _evidence(r: dict) -> str:
    ev = "; ".join(f"{e.get('source')}: {e.get('excerpt')}" for e in (r.get("evidence") or [])[:3])
    return (ev or str(r.get("observed")) or r.get("reason") or "")[:300]


def render(results: list[RootResult], label: str, baseline: str) -> str:
    lines = [
        f"`python bench/agreement.py` ({label}; baseline {baseline}; Debian 12 roots built with debootstrap "
        "from deb.debian.org; the assessor's verdicts from the real programs, docs/agreement.md). "
        "Firm items are those the root decides; 'unsafe' counts sentinel saying more is in place than the "
        "real program shows (item verdict above the assessor's / a passing check whose step failed).",
        "",
        "| root | what it is | firm items | agree | agreement | unsafe items | false passes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    tf = ta = tu = tp = 0
    for r in results:
        pct = 100 * r.agree / r.firm if r.firm else 0
        lines.append(
            f"| {r.name} | {r.describe} | {r.firm} | {r.agree} | {pct:.1f}% | {len(r.unsafe_items)} | "
            f"{len(r.false_passes)} |"
        )
        tf, ta, tu, tp = tf + r.firm, ta + r.agree, tu + len(r.unsafe_items), tp + len(r.false_passes)
    lines.append(f"| **all** | | {tf} | {ta} | {100 * ta / tf if tf else 0:.1f}% | {tu} | {tp} |")
    for r in results:
        if not (r.disagreements or r.false_passes or r.notes):
            continue
        lines += ["", f"**{r.name}**", ""]
        for d in r.disagreements:
            lines.append(f"- {d['item']}: assessor {d['assessor']}, sentinel {d['sentinel']}")
            lines += [f"  - real: {s}" for s in d["assessor_steps"]]
            lines += [f"  - sentinel: {s}" for s in d["sentinel_checks"]]
        for f in r.false_passes:
            lines.append(
                f"- false pass {f['check']} ({f['item']}, {f['step']}): real: {f['real']}; sentinel: {f['sentinel']}"
            )
        lines += [f"- note: {n}" for n in r.notes]
    return "\n".join(lines)


RPM_FIXTURES = ["rocky9-default", "rocky9-hardened", "openeuler2203-default", "openeuler2203-hardened"]
RPM_FILES = [
    "etc/pam.d",
    "etc/authselect",
    "etc/security",
    "etc/ssh",
    "etc/login.defs",
    "etc/crypto-policies",
    "usr/share/crypto-policies",
]


def rpm_layout(fixture: str) -> dict:
    """BLOCKED for real RPM roots (no RPM repository is reachable from here). Instead: an RPM-layout fixture root
    (tests/fixtures/roots) judged by sentinel as it is, and its PAM stacks (system-auth/password-auth and the
    service files), security/*.conf, login.defs and sshd configuration transplanted over the Debian `rectified`
    root (opaque overlay directories, Debian's host keys) where Debian's real libpam/pamtester and sshd judge
    them. Compared check by check: only what those files decide."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.build import build_root

    base = ensure_root("rectified")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        fx = build_root(fixture, tmp)
        report = sentinel_report(fx, "dengbao-l3-linux")
        results = {r["check_id"]: r for r in report["results"]}
        a = Assessor(base)
        up = a.box.dir / "upper"
        for rel in RPM_FILES:
            src = fx / rel
            if not src.exists():
                continue
            dst = up / rel
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
                os.setxattr(dst, "trusted.overlay.opaque", b"y")  # the Debian files under it disappear
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst, follow_symlinks=False)
        for key in (base / "etc/ssh").glob("ssh_host_*"):  # the fixture's keys are placeholders
            shutil.copy2(key, up / "etc/ssh" / key.name)
        try:
            steps = a.rpm_steps()
        finally:
            a.box.close()
    rows, agree, false_pass = [], 0, []
    for st in steps:
        for c in st.checks:
            r = results.get(c)
            if r is None or r["status"] not in ("pass", "fail"):
                rows.append((c, r["status"] if r else "absent", st))
                continue
            ok = (r["status"] == "pass") == st.ok
            agree += ok
            if r["status"] == "pass" and not st.ok:
                false_pass.append(c)
            rows.append((c, r["status"], st))
    decided = sum(1 for c, s_, _ in rows if s_ in ("pass", "fail"))
    return {
        "fixture": fixture,
        "rows": rows,
        "decided": decided,
        "agree": agree,
        "false_pass": false_pass,
        "notes": a.notes,
    }


def render_rpm(out: list[dict]) -> str:
    lines = [
        "RPM family: **blocked** for real roots — no RPM repository resolves from this machine (dl.rockylinux.org, "
        "repo.openeuler.org, mirrors: DNS fails; Debian's `dnf`, `rpm` and `rinse` packages install but need "
        "such a repository). Measured instead, check by check, on the RPM-layout fixture roots: their PAM "
        "stacks, security/*.conf, login.defs and sshd configuration transplanted over the Debian root and "
        "judged by Debian's real pamtester/libpam 1.5 and sshd 9.2 (modules a Rocky host has and Debian lacks, "
        "such as pam_sss and pam_fprintd, fail to load as libpam does with any missing module).",
        "",
        "| fixture | checks decided | agree | false passes |",
        "| --- | ---: | ---: | ---: |",
    ]
    for o in out:
        lines.append(f"| {o['fixture']} | {o['decided']} | {o['agree']} | {len(o['false_pass'])} |")
    for o in out:
        bad = [(c, s_, st) for c, s_, st in o["rows"] if s_ in ("pass", "fail") and (s_ == "pass") != st.ok]
        other = [(c, s_) for c, s_, _ in o["rows"] if s_ not in ("pass", "fail")]
        if bad or other:
            lines += ["", f"**{o['fixture']}**", ""]
            lines += [f"- {c}: sentinel {s_}, real {'holds' if st.ok else 'fails'}: {st.evidence}" for c, s_, st in bad]
            lines += [f"- {c}: sentinel {s_} (not compared)" for c, s_ in other]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--roots", default=",".join(r.name for r in RECIPES))
    ap.add_argument("--baseline", default="dengbao-l3-linux")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--label", default="current tree")
    ap.add_argument("--json", type=Path, help="also write the full comparison as JSON here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    ap.add_argument(
        "--sentinel-path",
        help="judge with the sentinel package found here (a tree laid out as "
        "installed: sentinel/ with checks/, exporters/, baselines/ inside), e.g. an older commit's",
    )
    ap.add_argument("--rpm", default=",".join(RPM_FIXTURES), help="RPM-layout fixture roots to measure ('' none)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("needs root (debootstrap, chroot, mount namespaces)")
    for tool in ("debootstrap", "unshare", "chroot", "systemctl"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found (apt-get install debootstrap util-linux coreutils systemd)")
    global SENTINEL_PATH
    SENTINEL_PATH = args.sentinel_path
    names = [n for n in args.roots.split(",") if n]
    for n in names:
        if n not in BY_NAME:
            ap.error(f"--roots: unknown root {n!r} (known: {', '.join(BY_NAME)})")
    results = []
    for n in names:
        root = ensure_root(n, args.rebuild)
        print(f"assessing {n}", file=sys.stderr, flush=True)
        results.append(compare(n, root, args.baseline))
    body = render(results, args.label, args.baseline)
    rpm = [rpm_layout(f) for f in args.rpm.split(",") if f]
    if rpm:
        body += "\n\n" + render_rpm(rpm)
    print(body)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], ensure_ascii=False, indent=1))
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results import write_section

        slug = re.sub(r"[^a-z0-9]+", "-", args.label.lower()).strip("-")
        write_section(f"agreement-{args.baseline}-{slug}",
                      f"Item verdicts against an assessor's ({args.baseline}, {args.label})", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
