"""audit.watch / audit.immutable, logs.retention, time.sync, os.release and mac.status on offline roots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentinel.hostview import RootHost
from sentinel.probe import ProbeContext, registry


def put(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def run(kind: str, params: dict, root: Path, family: str | None = None):
    pdef = registry()[kind]
    host = RootHost(str(root))
    ctx = ProbeContext(host=host, family=family, os_release=host.os_release())
    return pdef.func(ctx, pdef.params.model_validate(params))


# ---- audit ---------------------------------------------------------------------------------------

WATCHED = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers.d/admins", "/var/log/audit/audit.log",
           "/etc/gshadow", "/etc/hosts"]


@pytest.fixture
def audit_root(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/audit/rules.d/10-base.rules", "-D\n-b 8192\n--backlog_wait_time 60000\n")
    put(tmp_path, "/etc/audit/rules.d/30-watch.rules", """\
-w /etc/passwd -p wa -k identity
-w /etc/shadow -p w -k identity
-a always,exit -F arch=b64 -S all -F path=/etc/shadow -F perm=a -k identity
-a exit,always -F dir=/etc/sudoers.d -F perm=wa -k scope
-w /var/log/audit/ -k auditlog
-a never,exit -F path=/etc/group -F perm=wa
-w /etc/gshadow -p wa
-W /etc/gshadow -p wa
-a always,exit -F arch=b64 -S openat -F path=/etc/hosts -k hosts
# -w /etc/group -p wa
""")
    put(tmp_path, "/etc/audit/rules.d/99-finalize.rules", "-e 1\n-e 2\n")
    put(tmp_path, "/etc/audit/rules.d/notes.txt", "-w /etc/group -p wa\n")  # not a .rules file
    put(tmp_path, "/etc/audit/audit.rules", "-w /etc/group -p wa\n")  # generated; rules.d wins
    return tmp_path


def test_audit_watch_forms(audit_root: Path):
    obs = run("audit.watch", {"paths": WATCHED, "perms": "wa"}, audit_root)
    # shadow: w from -w plus a from the syscall rule; sudoers.d/admins: under a dir= rule;
    # audit.log: under a -w directory watch with all perms; group: only a `never` rule;
    # gshadow: removed with -W; hosts: syscall rule without perm= is not counted
    assert obs.observed == ["/etc/group", "/etc/gshadow", "/etc/hosts"]
    text = "\n".join(e.excerpt or "" for e in obs.evidence)
    assert "/etc/shadow: -a always,exit -F arch=b64 -S all -F path=/etc/shadow -F perm=a -k identity" in text
    assert "not counted" in text
    assert run("audit.watch", {"paths": ["/etc/shadow"], "perms": "r"}, audit_root).observed == ["/etc/shadow"]


def test_audit_immutable(audit_root: Path):
    obs = run("audit.immutable", {}, audit_root)
    assert obs.observed is True and obs.evidence[0].line == 2
    put(audit_root, "/etc/audit/rules.d/99-finalize.rules", "-e 2\n-e 1\n")
    assert run("audit.immutable", {}, audit_root).observed is False


def test_audit_rules_file_fallback_and_no_rules(tmp_path: Path):
    assert run("audit.watch", {"paths": ["/etc/passwd"]}, tmp_path).observed == ["/etc/passwd"]
    assert run("audit.immutable", {}, tmp_path).observed is False
    put(tmp_path, "/etc/audit/audit.rules", "-w /etc/passwd -p wa\n-e 2\n")
    (tmp_path / "etc/audit/rules.d").mkdir()
    assert run("audit.watch", {"paths": ["/etc/passwd"]}, tmp_path).observed == []
    assert run("audit.immutable", {}, tmp_path).observed is True


# ---- logs.retention ------------------------------------------------------------------------------


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    put(tmp_path, "/etc/logrotate.conf", """\
weekly
rotate 4
create
include /etc/logrotate.d
/var/log/wtmp {
    monthly
    rotate 1
}
""")
    put(tmp_path, "/etc/logrotate.d/syslog", """\
/var/log/messages
/var/log/secure
{
    daily
    rotate 180
    maxage 200
    sharedscripts
    postrotate
        rotate 1
        /usr/bin/systemctl kill -s HUP rsyslog.service >/dev/null 2>&1 || true
    endscript
}
""")
    put(tmp_path, "/etc/logrotate.d/syslog.rpmsave", "/var/log/secure {\n daily\n rotate 1\n}\n")
    put(tmp_path, "/etc/logrotate.d/rsyslog",
        "/var/log/auth.log /var/log/kern.log {\n\trotate 52\n\tweekly\n\tmaxage 180\n}\n")
    put(tmp_path, "/etc/logrotate.d/app", "/var/log/app/*.log { rotate 7 }\n")
    return tmp_path


def test_logrotate_retention(log_root: Path):
    secure = run("logs.retention", {"log": "/var/log/secure"}, log_root)
    assert secure.observed == {"local_days": 180, "remote": []}
    assert secure.evidence[0].source == "/etc/logrotate.d/syslog" and secure.evidence[0].line == 1
    auth = run("logs.retention", {"log": "/var/log/auth.log"}, log_root)
    assert auth.observed["local_days"] == 180  # 52 weeks, bounded by maxage 180
    app = run("logs.retention", {"log": "/var/log/app/server.log"}, log_root)
    assert app.observed["local_days"] == 49  # rotate 7, weekly inherited from the globals before include
    unnamed = run("logs.retention", {"log": "/var/log/cron"}, log_root)
    assert unnamed.observed["local_days"] == 28 and "no logrotate stanza" in unnamed.note
    glob = run("logs.retention", {"log": "/var/log/sec*"}, log_root)
    assert glob.observed["local_days"] == 180


def test_rsyslog_and_syslog_ng_forwarding(log_root: Path):
    put(log_root, "/etc/rsyslog.conf", """\
module(load="imuxsock")
$IncludeConfig /etc/rsyslog.d/*.conf
authpriv.*    @@logs.example.gov.cn:514
#*.* @commented-out.example
*.info;mail.none   /var/log/messages
""")
    put(log_root, "/etc/rsyslog.d/50-forward.conf", """\
# action(type="omfwd" target="commented.example" port="514")
*.* action(type="omfwd"
           target="10.2.3.4" port="6514"
           protocol="tcp")
/* action(type="omfwd" target="blockcomment.example") */
""")
    put(log_root, "/etc/rsyslog.d/60-udp.conf", "*.* @loghost\n")
    obs = run("logs.retention", {"log": "/var/log/secure"}, log_root)
    assert obs.observed["remote"] == ["tcp://10.2.3.4:6514", "tcp://logs.example.gov.cn:514", "udp://loghost"]
    fwd = [e for e in obs.evidence if e.source == "/etc/rsyslog.d/50-forward.conf"]
    assert fwd and fwd[0].line == 2

    put(log_root, "/etc/syslog-ng/syslog-ng.conf", """\
@version: 3.38
@include "scl.conf"
source s_src { system(); internal(); };
destination d_net { network("10.9.9.9" transport("udp") port(514)); };
destination d_unused { tcp("192.0.2.1" port(601)); };
log { source(s_src); destination(d_net); };
""")
    obs = run("logs.retention", {"log": "/var/log/secure"}, log_root)
    assert "udp://10.9.9.9:514" in obs.observed["remote"]
    assert not any("192.0.2.1" in r for r in obs.observed["remote"])  # defined but never used


def test_logs_retention_without_logrotate(tmp_path: Path):
    obs = run("logs.retention", {"log": "/var/log/secure"}, tmp_path)
    assert obs.observed == {"local_days": None, "remote": []}


# ---- time.sync -----------------------------------------------------------------------------------

LIB = "/usr/lib/systemd/system"


def enable(root: Path, unit: str, libdir: str = LIB, target: str = "multi-user.target", install: str = "") -> None:
    put(root, f"{libdir}/{unit}", f"[Install]\nWantedBy={target}\n{install}")
    link(root, f"/etc/systemd/system/{target}.wants/{unit}", f"{libdir}/{unit}")


def test_time_sync_chrony_with_sourcedir(tmp_path: Path):
    enable(tmp_path, "chronyd.service")
    put(tmp_path, "/etc/chrony.conf", """\
pool 2.rhel.pool.ntp.org iburst
server 10.1.1.1 iburst
# server commented.example
sourcedir /etc/chrony/sources.d
driftfile /var/lib/chrony/drift
""")
    put(tmp_path, "/etc/chrony/sources.d/site.sources", "server ntp.site.gov.cn iburst\n")
    obs = run("time.sync", {}, tmp_path)
    assert obs.observed == {"service": "chronyd", "enabled": True,
                            "servers": ["2.rhel.pool.ntp.org", "10.1.1.1", "ntp.site.gov.cn"]}


def test_time_sync_debian_chrony_alias_and_confdir(tmp_path: Path):
    enable(tmp_path, "chrony.service", libdir="/lib/systemd/system", install="Alias=chronyd.service\n")
    link(tmp_path, "/etc/systemd/system/chronyd.service", "/lib/systemd/system/chrony.service")
    put(tmp_path, "/etc/chrony/chrony.conf", "confdir /etc/chrony/conf.d\nsourcedir /run/chrony-dhcp\n")
    put(tmp_path, "/etc/chrony/conf.d/10-pool.conf", "pool cn.pool.ntp.org iburst maxsources 4\n")
    obs = run("time.sync", {}, tmp_path)
    assert obs.observed == {"service": "chronyd", "enabled": True, "servers": ["cn.pool.ntp.org"]}


def test_time_sync_ntpd_skips_local_clock(tmp_path: Path):
    enable(tmp_path, "ntpd.service")
    put(tmp_path, "/etc/ntp.conf", "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\nserver ntp1.example iburst\n")
    assert run("time.sync", {}, tmp_path).observed == {"service": "ntpd", "enabled": True, "servers": ["ntp1.example"]}


def test_time_sync_timesyncd_reset_and_fallback(tmp_path: Path):
    enable(tmp_path, "systemd-timesyncd.service", target="sysinit.target")
    put(tmp_path, "/etc/systemd/timesyncd.conf", "[Time]\nNTP=a.example b.example\nFallbackNTP=fb.example\n")
    put(tmp_path, "/etc/systemd/timesyncd.conf.d/10-site.conf", "[Time]\nNTP=\nNTP=c.example\n")
    obs = run("time.sync", {}, tmp_path)
    assert obs.observed == {"service": "systemd-timesyncd", "enabled": True, "servers": ["c.example"]}
    put(tmp_path, "/etc/systemd/timesyncd.conf.d/10-site.conf", "[Time]\nNTP=\n")
    assert run("time.sync", {}, tmp_path).observed["servers"] == ["fb.example"]


def test_time_sync_installed_but_disabled(tmp_path: Path):
    put(tmp_path, f"{LIB}/chronyd.service", "[Install]\nWantedBy=multi-user.target\n")
    put(tmp_path, "/etc/chrony.conf", "server 10.1.1.1\n")
    obs = run("time.sync", {}, tmp_path)
    assert obs.observed == {"service": None, "enabled": False, "servers": []}
    assert "chronyd" in obs.note and "disabled" in obs.note
    assert run("time.sync", {}, tmp_path / "etc").observed["service"] is None  # nothing installed at all


# ---- os.release / mac.status ---------------------------------------------------------------------


def test_os_release(tmp_path: Path):
    put(tmp_path, "/usr/lib/os-release", 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\n')
    obs = run("os.release", {"field": "VERSION_ID"}, tmp_path)
    assert obs.observed == "9.3" and obs.evidence[0].source == "/usr/lib/os-release" and obs.evidence[0].line == 3
    put(tmp_path, "/etc/os-release", "ID=kylin\nVERSION_ID='V10'\n")
    assert run("os.release", {"field": "id"}, tmp_path).observed == "kylin"
    assert run("os.release", {"field": "VERSION_CODENAME"}, tmp_path).observed is None


def test_mac_status_selinux(tmp_path: Path):
    put(tmp_path, "/etc/selinux/config", "# SELINUX=disabled\nSELINUX=enforcing\nSELINUXTYPE=targeted\n")
    obs = run("mac.status", {}, tmp_path)
    assert obs.observed == "selinux:enforcing" and obs.evidence[0].line == 2
    put(tmp_path, "/etc/default/grub", 'GRUB_CMDLINE_LINUX="crashkernel=auto selinux=0 quiet"\n')
    assert run("mac.status", {}, tmp_path).observed == "selinux:disabled"


def test_mac_status_apparmor_offline(tmp_path: Path):
    put(tmp_path, "/var/lib/dpkg/status", "Package: apparmor\nStatus: install ok installed\nVersion: 3.0.8-3\n")
    assert run("mac.status", {}, tmp_path, family="debian").observed == "apparmor:enabled"
    put(tmp_path, "/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet apparmor=0"\n')
    assert run("mac.status", {}, tmp_path, family="debian").observed == "none"


def test_mac_status_kysec_and_none(tmp_path: Path):
    assert run("mac.status", {}, tmp_path).observed == "none"
    (tmp_path / "etc/kysec").mkdir(parents=True)
    put(tmp_path, "/etc/default/grub", 'GRUB_CMDLINE_LINUX="security=kysec quiet"\n')
    obs = run("mac.status", {}, tmp_path)
    assert obs.observed == "kysec:enabled"
    assert any(e.source == "/etc/default/grub" for e in obs.evidence)
