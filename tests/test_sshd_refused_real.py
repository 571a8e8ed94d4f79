"""A configuration the real `sshd -t` refuses is not judged as if it applied: sshd.option reports an error
naming the refused line (sshd would not start with it; a running one keeps its old settings). Each case
runs the real `sshd -t -f` on the file (with a throw-away host key; no daemon is started) and asserts that
sentinel refuses exactly when sshd does.

sshd -t reads the copy through a private mount namespace (the copy's etc/ssh bound over /etc/ssh), so the
host's /etc/ssh is never read or written. Needs root, `unshare`, `sshd` and `ssh-keygen` (apt:
openssh-server); the real-program tests are skipped otherwise.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks.sshd_valid import DEPRECATED
from sentinel.engine import run_baseline
from sentinel.hostview import LiveHost, ProbeError, RootHost
from sentinel.probe import ProbeContext, registry

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
real = pytest.mark.skipif(
    not SSHD or not shutil.which("ssh-keygen") or not Path("/run/sshd").is_dir() or os.geteuid() != 0
    or not shutil.which("unshare"),
    reason="needs root, unshare, sshd and ssh-keygen (apt-get install openssh-server) and /run/sshd")


def _root(tmp: Path, body: str) -> Path:
    root = tmp / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    key = tmp / "hostkey"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "etc" / "ssh" / "sshd_config").write_text(f"HostKey {key}\n{body}")
    if "Include" in body:  # the drop-in holds the refused line; sshd reads it from the real /etc/ssh path
        drop = root / "etc" / "ssh" / "sshd_config.d"
        drop.mkdir()
        (drop / "10-x.conf").write_text("MaxAuthTries many\n")
        (root / "etc" / "ssh" / "sshd_config").write_text(f"HostKey {key}\nInclude sshd_config.d/*.conf\n")
    return root


def _sshd_accepts(root: Path) -> tuple[bool, str]:
    # the copy bound over /etc/ssh in a private mount namespace, so relative Includes resolve as sshd does
    script = f"mount --bind {shlex.quote(str(root / 'etc' / 'ssh'))} /etc/ssh && exec {SSHD} -t -f /etc/ssh/sshd_config"
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=30)
    assert "mount:" not in run.stderr, run.stderr
    return run.returncode == 0, run.stderr.strip()


def _sentinel_accepts(root: Path, key: str = "PermitRootLogin") -> tuple[bool, str]:
    pdef = registry()["sshd.option"]
    ctx = ProbeContext(host=RootHost(str(root)), family=None, os_release={})
    try:
        pdef.func(ctx, pdef.params.model_validate({"key": key, "default": "prohibit-password"}))
    except ProbeError as exc:
        return False, str(exc)
    return True, ""


CASES = {
    "stock": "PermitRootLogin no\nPasswordAuthentication yes\nMaxAuthTries 5\nClientAliveInterval 600\n",
    "unknown-keyword": "PermitRootLogin no\nPermitRootLogn no\n",
    "typo-value": "PermitRootLogin noo\n",
    "flag-maybe": "PasswordAuthentication maybe\n",
    "flag-upper-case": "PasswordAuthentication YES\nPermitRootLogin NO\n",
    "int-not-number": "MaxAuthTries five\n",
    "time-units": "ClientAliveInterval 5m\nLoginGraceTime 1m30s\n",
    "time-bad": "ClientAliveInterval 10 minutes\n",
    "time-bad-unit": "ClientAliveInterval 10x\n",
    "missing-argument": "MaxAuthTries\n",
    "match-not-allowed": "Match User bob\n    UsePAM no\n",
    "match-allowed": "Match User bob\n    PermitRootLogin no\n    MaxAuthTries 3\n",
    "deprecated": "Protocol 2\nUsePrivilegeSeparation sandbox\nRSAAuthentication yes\n",
    "port-bad": "Port 70000\n",
    "comment-after-value": "PermitRootLogin no # 等保\n",
    "extra-argument": "PermitRootLogin no yes\n",
    "include-refused": "Include /etc/ssh/sshd_config.d/*.conf\n",
}


@pytest.mark.root
@real
@pytest.mark.parametrize("name", list(CASES))
def test_refused_exactly_when_sshd_refuses(tmp_path, name):
    root = _root(tmp_path, CASES[name])
    accepts, stderr = _sshd_accepts(root)
    ours, why = _sentinel_accepts(root)
    assert ours == accepts, (name, stderr, why)
    if not accepts:
        assert "sshd refuses this configuration (/etc/ssh/sshd_config" in why  # names the refused line


@pytest.mark.root
@real
def test_every_deprecated_keyword_is_only_logged(tmp_path):
    root = _root(tmp_path, "".join(f"{k} whatever\n" for k in sorted(DEPRECATED)))
    assert _sshd_accepts(root)[0], _sshd_accepts(root)[1]
    assert _sentinel_accepts(root)[0]


def test_refused_config_is_an_error_not_a_pass(tmp_path):
    """issue 14: a refused file with 'PermitRootLogin no' no longer passes l3-ac-ssh-no-root-login."""
    root = tmp_path / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "etc" / "ssh" / "sshd_config").write_text("PermitRootLogin no\nMaxAuthTries 3\n"
                                                      "PasswordAuthentication nope\n")
    results = {r.check_id: r for r in run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(root))).results}
    for cid in ("l3-ac-ssh-no-root-login", "l3-ia-ssh-max-auth-tries"):
        assert results[cid].status.value == "error", (cid, results[cid].status)
        assert "PasswordAuthentication nope" in results[cid].reason


@pytest.mark.root
@real
@pytest.mark.parametrize("body,accepted", [("PermitRootLogin no\n", True),
                                           ("MaxStartups lots\n", False),  # not in the model: only sshd knows
                                           ("PermitRootLogin perhaps\n", False)])
def test_live_host_asks_the_real_sshd(tmp_path, body, accepted):
    """On a live host (as root) sshd.option runs the real sshd -t on the file instead of the model."""
    config = _root(tmp_path, body) / "etc" / "ssh" / "sshd_config"
    pdef = registry()["sshd.option"]
    ctx = ProbeContext(host=LiveHost(), family=None, os_release={})
    params = pdef.params.model_validate({"key": "PermitRootLogin", "config": str(config)})
    if accepted:
        obs = pdef.func(ctx, params)
        assert obs.observed == ["no"] and any(e.excerpt == "accepted by sshd" for e in obs.evidence)
    else:
        with pytest.raises(ProbeError, match=r"sshd refuses this configuration \(sshd -t -f .*line 2"):
            pdef.func(ctx, params)
