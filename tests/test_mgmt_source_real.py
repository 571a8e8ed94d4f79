"""SSH management source restriction (8.1.4.4 c, ssh.source_restriction) against the programs that enforce it.

bench/agreement.py found l3-ip-mgmt-source-restricted-debian passing on a root whose sshd drop-in `sshd -t`
refuses: the check matched an `AllowUsers *@10.10.8.0/24` line sshd never applies (it does not start). The
probe now reads sshd's effective configuration and tcp_wrappers as hosts_access(5) decides:

- tcp_wrappers: the real `tcpdmatch -d sshd ADDRESS` (tcpd) over the same hosts.allow/hosts.deny says whether a
  client from outside the management network is let in; sentinel counts a restriction exactly when it is not;
- sshd: a real `sshd -d` on a free loopback port with the configuration under test, and one real `ssh`
  connection from 127.0.0.1 as root (BatchMode, no key: it never logs in); sshd's own log says whether
  AllowUsers turned it away ("not allowed because not listed in AllowUsers"). sentinel counts AllowUsers
  exactly when sshd refused the outsider; a configuration `sshd -t` refuses is an error.

Needs root, tcpdmatch (apt: tcpd), sshd/ssh/ssh-keygen (openssh-server) and /run/sshd; skipped otherwise. The
daemon listens on 127.0.0.1 only and serves one connection (debug mode), the host's /etc/ssh is not read.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from sentinel.hostview import ProbeError, RootHost
from sentinel.probe import ProbeContext, registry

SSHD = "/usr/sbin/sshd"
OUTSIDE = "192.0.2.9"  # TEST-NET-1: never the management network of these cases

wrappers_real = pytest.mark.skipif(not shutil.which("tcpdmatch"),
                                   reason="tcpdmatch not installed (apt-get install tcpd)")
sshd_real = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(SSHD).exists() or not shutil.which("ssh") or not shutil.which("ssh-keygen")
    or not Path("/run/sshd").is_dir(),
    reason="needs root, sshd, ssh and ssh-keygen (apt-get install openssh-server) and /run/sshd")


def _root(tmp: Path, sshd_config: str, allow: str = "", deny: str = "") -> Path:
    """An offline root with the files under test and the host's real sshd binary (its libwrap link decides
    whether tcp_wrappers apply, as it does for the daemon)."""
    root = tmp / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "usr" / "sbin").mkdir(parents=True)
    shutil.copy(SSHD, root / "usr" / "sbin" / "sshd")
    key = tmp / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "etc" / "ssh" / "sshd_config").write_text(f"HostKey {key}\n{sshd_config}")
    (root / "etc" / "hosts.allow").write_text(allow)
    (root / "etc" / "hosts.deny").write_text(deny)
    return root


def _sentinel(root: Path) -> list[dict]:
    pdef = registry()["ssh.source_restriction"]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    return pdef.func(ctx, pdef.params.model_validate({})).observed


def _tcpd_denies(root: Path, client: str) -> bool:
    run = subprocess.run(["tcpdmatch", "-d", "sshd", client], cwd=root / "etc", capture_output=True, text=True,
                         timeout=30)
    assert "access:" in run.stdout, (run.stdout, run.stderr)
    return "denied" in run.stdout.split("access:", 1)[1]


WRAPPERS = {  # name: (hosts.allow, hosts.deny)
    "deny all, allow the bastions": ("sshd: 10.20.1.10 10.20.1.11\n", "sshd: ALL\n"),
    "allow list only (no deny)": ("sshd: 10.20.1.10\n", ""),
    "deny all, but allow all too": ("sshd: ALL\n", "sshd: ALL\n"),
    "ALL: ALL deny, continued allow line": ("sshd: 10.20.1.10, \\\n   10.20.1.11\n", "ALL: ALL\n"),
    "deny for another daemon only": ("", "vsftpd: ALL\n"),
    "commented deny": ("sshd: 10.20.1.10\n", "# sshd: ALL\n"),
}


@pytest.mark.root
@sshd_real
@wrappers_real
@pytest.mark.parametrize("name", WRAPPERS)
def test_tcp_wrappers_as_tcpdmatch_decides(tmp_path, name):
    if b"libwrap.so" not in Path(SSHD).read_bytes():
        pytest.skip("this sshd is not linked with libwrap: tcp_wrappers do not apply to it")
    allow, deny = WRAPPERS[name]
    root = _root(tmp_path, "PermitRootLogin no\n", allow, deny)
    restricted = _tcpd_denies(root, OUTSIDE)
    rows = [r for r in _sentinel(root) if r["how"] == "tcp_wrappers"]
    assert bool(rows) == restricted, (name, rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sshd_refuses_outsider(root: Path) -> bool:
    """A real sshd (debug mode: one connection, then it exits) and one ssh attempt from 127.0.0.1 as root."""
    port = _free_port()
    config = root / "etc" / "ssh" / "sshd_config"
    daemon = subprocess.Popen([SSHD, "-d", "-e", "-f", str(config), "-o", f"ListenAddress=127.0.0.1:{port}",
                               "-o", "UsePAM=no"], stderr=subprocess.PIPE, text=True)
    assert daemon.stderr is not None
    try:
        # a probing connect would be the one connection debug mode serves: wait for its own word instead
        seen = []
        for line in daemon.stderr:
            seen.append(line)
            if "Server listening on 127.0.0.1" in line:
                break
        else:
            raise AssertionError("sshd exited: " + "".join(seen))
        subprocess.run(["ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-F", "/dev/null",
                        "root@127.0.0.1", "true"], capture_output=True, timeout=60)
        log = "".join(seen) + daemon.communicate(timeout=60)[1]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    return "not allowed because not listed in AllowUsers" in log


SSHD_CASES = {
    "every entry bound to an address": "AllowUsers root@10.20.1.10 ops@10.20.1.0/24\n",
    "one entry without an address": "AllowUsers root ops@10.20.1.10\n",
    "host part a wildcard": "AllowUsers root@*\n",
    "only in a Match block": "Match Address 10.0.0.0/8\n    AllowUsers root@10.20.1.10\n",
}


@pytest.mark.root
@sshd_real
@pytest.mark.parametrize("name", SSHD_CASES)
def test_allow_users_as_sshd_applies_it(tmp_path, name):
    root = _root(tmp_path, SSHD_CASES[name])
    refused = _sshd_refuses_outsider(root)
    rows = [r for r in _sentinel(root) if r["how"] == "sshd AllowUsers"]
    assert bool(rows) == refused, (name, rows)


@pytest.mark.root
@sshd_real
def test_a_configuration_sshd_refuses_restricts_nothing(tmp_path):
    """The bench's case: the restriction sits in a file `sshd -t` refuses, so sshd does not start with it."""
    root = _root(tmp_path, "AllowUsers *@10.10.8.0/24\nMaxAuthTries five\n")
    check = subprocess.run([SSHD, "-t", "-f", str(root / "etc" / "ssh" / "sshd_config")], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode != 0 and "MaxAuthTries" in check.stderr
    with pytest.raises(ProbeError, match="sshd refuses this configuration.*no firewall rule"):
        _sentinel(root)
    # a firewall rule holds whatever sshd does
    (root / "etc" / "nftables.conf").write_text("tcp dport 22 ip saddr 10.10.8.0/24 accept\n")
    pdef = registry()["ssh.source_restriction"]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    got = pdef.func(ctx, pdef.params.model_validate({"firewall_paths": ["/etc/nftables.conf"]}))
    assert [r["how"] for r in got.observed] == ["firewall"]
