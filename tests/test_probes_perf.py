"""A level-3-sized run (~60 probe calls sharing one context) over a realistic offline root stays fast."""
from __future__ import annotations

import os
import time
from pathlib import Path

from sentinel.hostview import NotApplicable, ProbeError, RootHost
from sentinel.probe import ProbeContext, registry
from tests.rpmdb import write_rpmdb


def put(root: Path, rel: str, text: str = "", mode: int | None = None) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def build_root(root: Path) -> None:
    put(root, "/etc/os-release", 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n')
    users = "".join(f"user{i}:x:{1000 + i}:{1000 + i}::/home/user{i}:/bin/bash\n" for i in range(300))
    put(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/bin:/sbin/nologin\n" + users)
    put(root, "/etc/shadow", "root:$6$s$h:19000:0:90:7:::\nbin:*:19000::::::\n"
        + "".join(f"user{i}:$6$s$h:19000:1:90:7:::\n" for i in range(300)))
    put(root, "/etc/group", "root:x:0:\nbin:x:1:\n" + "".join(f"user{i}:x:{1000 + i}:\n" for i in range(300)))
    put(root, "/etc/login.defs", "PASS_MAX_DAYS 90\nPASS_MIN_DAYS 1\nPASS_WARN_AGE 7\nUID_MIN 1000\n" * 20)
    put(root, "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n"
        "PasswordAuthentication yes\nMaxAuthTries 4\nClientAliveInterval 300\n# comment\n" * 10)
    put(root, "/etc/ssh/sshd_config.d/50-redhat.conf", "X11Forwarding yes\nUsePAM yes\n")
    put(root, "/etc/pam.d/system-auth", "auth required pam_env.so\n"
        "auth required pam_faillock.so preauth silent deny=5 unlock_time=900\n"
        "auth sufficient pam_unix.so nullok\nauth [default=die] pam_faillock.so authfail\n"
        "account required pam_unix.so\npassword requisite pam_pwquality.so retry=3\n"
        "password sufficient pam_unix.so sha512 shadow remember=5\nsession required pam_limits.so\n")
    put(root, "/etc/pam.d/password-auth", "auth include system-auth\naccount include system-auth\n"
        "password include system-auth\nsession include system-auth\n")
    put(root, "/etc/security/faillock.conf", "deny = 5\nunlock_time = 900\n")
    put(root, "/etc/security/pwquality.conf", "minlen = 12\nminclass = 3\n")
    put(root, "/etc/sysctl.d/99-hardening.conf", "".join(f"net.ipv4.conf.all.key{i} = {i}\n" for i in range(200)))
    put(root, "/etc/sysctl.conf", "kernel.randomize_va_space = 2\n")
    put(root, "/usr/lib/systemd/system/chronyd.service", "[Install]\nWantedBy=multi-user.target\n")
    put(root, "/usr/lib/systemd/system/auditd.service", "[Install]\nWantedBy=multi-user.target\n")
    put(root, "/usr/lib/systemd/system/rsyslog.service", "[Install]\nWantedBy=multi-user.target\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    for unit in ("chronyd.service", "auditd.service", "rsyslog.service"):
        os.symlink(f"/usr/lib/systemd/system/{unit}", wants / unit)
    put(root, "/etc/chrony.conf", "pool 2.rocky.pool.ntp.org iburst\n")
    put(root, "/etc/audit/rules.d/audit.rules", "-D\n" + "".join(f"-w /etc/file{i} -p wa -k k\n" for i in range(100))
        + "-e 2\n")
    put(root, "/etc/logrotate.conf", "weekly\nrotate 4\ninclude /etc/logrotate.d\n")
    put(root, "/etc/logrotate.d/rsyslog", "/var/log/messages /var/log/secure {\n rotate 26\n weekly\n}\n")
    put(root, "/etc/rsyslog.conf", "$IncludeConfig /etc/rsyslog.d/*.conf\n*.* @@10.0.0.9:514\n")
    put(root, "/etc/selinux/config", "SELINUX=enforcing\n")
    write_rpmdb(root / "var/lib/rpm/rpmdb.sqlite",
                [(f"pkg{i}", "1.0", "1.el9", "x86_64") for i in range(800)]
                + [("openssh-server", "8.7p1", "34.el9", "x86_64")])


CHECKS = [
    ("file.mode", {"paths": ["/etc/passwd", "/etc/shadow", "/etc/group"]}),
    ("file.exists", {"paths": ["/home/*/.rhosts", "/etc/hosts.equiv"]}),
    ("file.regex", {"paths": ["/etc/login.defs"], "pattern": r"^PASS_MAX_DAYS\s+(\d+)", "group": 1, "pick": "last"}),
    ("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_MAX_DAYS"}),
    ("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_MIN_DAYS"}),
    ("config.value", {"paths": ["/etc/login.defs"], "key": "PASS_WARN_AGE"}),
    ("config.value", {"paths": ["/etc/profile", "/etc/profile.d/*.sh"], "key": "TMOUT"}),
    ("sshd.option", {"key": "PermitRootLogin"}),
    ("sshd.option", {"key": "PasswordAuthentication"}),
    ("sshd.option", {"key": "MaxAuthTries"}),
    ("sshd.option", {"key": "ClientAliveInterval"}),
    ("sshd.option", {"key": "X11Forwarding"}),
    ("sshd.option", {"key": "PermitEmptyPasswords", "default": "no"}),
    ("pam.module", {"stack": "auth", "modules": ["pam_faillock", "pam_tally2"]}),
    ("pam.module", {"stack": "password", "modules": ["pam_pwquality", "pam_cracklib"]}),
    ("pam.module", {"stack": "password", "modules": ["pam_unix"]}),
    ("accounts.empty_password", {}),
    ("accounts.uid0", {}),
    ("accounts.duplicate", {"field": "uid"}),
    ("accounts.duplicate", {"field": "name"}),
    ("accounts.duplicate", {"field": "gid"}),
    ("accounts.unlocked_default", {"names": ["bin", "daemon", "adm", "lp", "sync", "games"]}),
    ("accounts.password_aging", {}),
    ("sysctl.value", {"key": "kernel.randomize_va_space"}),
    ("sysctl.value", {"key": "net.ipv4.ip_forward"}),
    ("sysctl.value", {"key": "net.ipv4.conf.all.accept_redirects"}),
    ("sysctl.value", {"key": "net.ipv4.conf.all.send_redirects"}),
    ("sysctl.value", {"key": "net.ipv4.tcp_syncookies"}),
    ("systemd.unit", {"units": ["auditd.service"], "state": "enabled"}),
    ("systemd.unit", {"units": ["rsyslog.service", "syslog-ng.service"], "state": "enabled"}),
    ("systemd.unit", {"units": ["telnet.socket"], "state": "enabled"}),
    ("systemd.unit", {"units": ["auditd.service"], "state": "active"}),
    ("package.installed", {"names": ["telnet-server", "rsh-server"]}),
    ("package.installed", {"names": ["openssh-server"]}),
    ("package.installed", {"names": ["aide", "tripwire"]}),
    ("package.installed", {"names": ["clamav*"]}),
    ("audit.watch", {"paths": ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers"]}),
    ("audit.immutable", {}),
    ("time.sync", {}),
    ("os.release", {"field": "ID"}),
    ("mac.status", {}),
    ("logs.retention", {"log": "/var/log/secure"}),
    ("process.running", {"names": ["auditd"]}),
    ("socket.listening", {}),
    ("command.output", {"argv": ["auditctl", "-s"]}),
]
CHECKS = (CHECKS * 2)[:60]


def test_sixty_checks_run_well_under_half_a_second(tmp_path: Path):
    build_root(tmp_path)
    reg = registry()
    parsed = [(reg[kind], reg[kind].params.model_validate(params)) for kind, params in CHECKS]
    host = RootHost(str(tmp_path))
    ctx = ProbeContext(host=host, family="rhel", os_release=host.os_release())
    statuses = {"ok": 0, "na": 0}
    start = time.perf_counter()
    for pdef, params in parsed:
        try:
            obs = pdef.func(ctx, params)
            assert obs.evidence, pdef.kind
            statuses["ok"] += 1
        except NotApplicable:
            statuses["na"] += 1
        except ProbeError as exc:  # pragma: no cover - would be a bug in the fixture or a probe
            raise AssertionError(f"{pdef.kind}: {exc}") from exc
    elapsed = time.perf_counter() - start
    assert statuses["ok"] >= 50
    assert elapsed < 0.5, f"{len(parsed)} checks took {elapsed:.3f}s"
