"""sysctl.value, systemd.unit, and the live-only probes (process.running, socket.listening, command.output)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from sentinel.hostview import LiveHost, NotApplicable, ProbeError, RootHost
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


def run(kind: str, params: dict, root: Path | None, family: str | None = None):
    pdef = registry()[kind]
    host = RootHost(str(root)) if root is not None else LiveHost()
    ctx = ProbeContext(host=host, family=family, os_release=host.os_release())
    return pdef.func(ctx, pdef.params.model_validate(params))


# ---- sysctl --------------------------------------------------------------------------------------


@pytest.fixture
def sysctl_root(tmp_path: Path) -> Path:
    put(tmp_path, "/usr/lib/sysctl.d/50-default.conf", "net.ipv4.ip_forward = 1\nkernel.randomize_va_space=1\n")
    put(tmp_path, "/etc/sysctl.d/50-default.conf", "kernel.randomize_va_space = 2\n")  # masks /usr/lib's
    put(tmp_path, "/usr/lib/sysctl.d/10-early.conf", "kernel.kptr_restrict = 1\n")
    put(tmp_path, "/etc/sysctl.d/99-hardening.conf", """\
; an ini-style comment
net/ipv4/conf/all/accept_redirects = 0
-net.ipv4.tcp_syncookies = 1
net.ipv4.conf.*.rp_filter = 1
kernel.kptr_restrict = 2
""")
    put(tmp_path, "/etc/sysctl.conf", "# read last\nnet.ipv4.conf.all.accept_redirects=1\n")
    return tmp_path


def test_sysctl_configured_order_masking_and_key_forms(sysctl_root: Path):
    def value(key: str):
        return run("sysctl.value", {"key": key, "source": "configured"}, sysctl_root).observed

    assert value("kernel.randomize_va_space") == "2"
    assert value("net.ipv4.ip_forward") is None  # its only file is masked by /etc/sysctl.d/50-default.conf
    assert value("net.ipv4.conf.all.accept_redirects") == "1"  # /etc/sysctl.conf is applied last
    assert value("net.ipv4.tcp_syncookies") == "1"
    assert value("net.ipv4.conf.eth0.rp_filter") == "1"
    assert value("kernel.kptr_restrict") == "2"
    obs = run("sysctl.value", {"key": "kernel.kptr_restrict"}, sysctl_root)  # auto offline = configured
    assert obs.observed == "2"
    assert obs.evidence[0].source == "/etc/sysctl.d/99-hardening.conf" and obs.evidence[0].line == 5
    assert "overridden" in obs.evidence[1].excerpt


def test_sysctl_runtime_is_live_only(sysctl_root: Path):
    with pytest.raises(NotApplicable):
        run("sysctl.value", {"key": "kernel.randomize_va_space", "source": "runtime"}, sysctl_root)
    live = run("sysctl.value", {"key": "kernel.ostype"}, None)
    assert live.observed == "Linux" and live.evidence[0].source == "/proc/sys/kernel/ostype"
    assert run("sysctl.value", {"key": "kernel.no_such_param"}, None).observed is None


def test_sysctl_key_validation():
    with pytest.raises(ValidationError):
        registry()["sysctl.value"].params.model_validate({"key": "net..ipv4"})
    with pytest.raises(ValidationError):
        registry()["systemd.unit"].params.model_validate({"units": ["bad name"], "state": "enabled"})


# ---- systemd -------------------------------------------------------------------------------------


@pytest.fixture
def units(tmp_path: Path) -> Path:
    lib = "/usr/lib/systemd/system"
    put(tmp_path, f"{lib}/sshd.service", "[Unit]\nDescription=OpenSSH\n[Install]\nWantedBy=multi-user.target\n")
    link(tmp_path, "/etc/systemd/system/multi-user.target.wants/sshd.service", f"{lib}/sshd.service")
    put(tmp_path, f"{lib}/systemd-journald.service", "[Unit]\nDescription=Journal\n[Service]\nType=notify\n")
    put(tmp_path, f"{lib}/rsyslog.service", "[Service]\nType=notify\n\n[Install]\nWantedBy=multi-user.target\n")
    put(tmp_path, f"{lib}/telnet.socket", "[Socket]\nListenStream=23\n[Install]\nWantedBy=sockets.target\n")
    link(tmp_path, "/etc/systemd/system/telnet.socket", "/dev/null")
    # Debian: chrony.service with Alias=chronyd.service, enabled
    put(tmp_path, "/lib/systemd/system/chrony.service",
        "[Install]\nAlias=chronyd.service\nWantedBy=multi-user.target\n")
    link(tmp_path, "/etc/systemd/system/chronyd.service", "/lib/systemd/system/chrony.service")
    link(tmp_path, "/etc/systemd/system/multi-user.target.wants/chrony.service", "/lib/systemd/system/chrony.service")
    put(tmp_path, f"{lib}/getty@.service", "[Install]\nWantedBy=getty.target\n")
    link(tmp_path, "/etc/systemd/system/getty.target.wants/getty@tty1.service", f"{lib}/getty@.service")
    put(tmp_path, "/etc/init.d/legacyd", "#!/bin/sh\n")
    link(tmp_path, "/etc/rc3.d/S20legacyd", "../init.d/legacyd")
    return tmp_path


@pytest.mark.parametrize("unit,state", [
    ("sshd.service", "enabled"), ("sshd", "enabled"), ("systemd-journald.service", "static"),
    ("rsyslog.service", "disabled"), ("telnet.socket", "masked"), ("nosuch.service", "not-found"),
    ("chronyd.service", "enabled"), ("chrony.service", "enabled"), ("getty@tty1.service", "enabled"),
    ("getty@tty2.service", "disabled"), ("legacyd.service", "enabled"),
])
def test_systemd_enabled_states(units: Path, unit: str, state: str):
    obs = run("systemd.unit", {"units": [unit], "state": "enabled"}, units)
    assert obs.observed == state
    assert obs.evidence and all(e.excerpt for e in obs.evidence)


def test_systemd_any_and_all(units: Path):
    params = {"units": ["rsyslog.service", "syslog-ng.service", "sshd.service"], "state": "enabled"}
    best = run("systemd.unit", params, units)
    assert best.observed == "enabled"
    assert "rsyslog.service=disabled" in best.note and "syslog-ng.service=not-found" in best.note
    assert run("systemd.unit", {**params, "require": "all"}, units).observed == "not-found"


def test_systemd_active_offline_and_without_systemd(units: Path):
    with pytest.raises(NotApplicable):
        run("systemd.unit", {"units": ["sshd.service"], "state": "active"}, units)
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("this machine runs systemd as PID 1")
    with pytest.raises(ProbeError, match="systemd is not PID 1"):
        run("systemd.unit", {"units": ["sshd.service"], "state": "active"}, None)


# ---- live-only probes ----------------------------------------------------------------------------


def test_live_only_probes_are_registered_live_only():
    reg = registry()
    for kind in ("process.running", "socket.listening", "command.output"):
        assert reg[kind].live_only, kind


@pytest.mark.parametrize("kind,params", [
    ("process.running", {"names": ["sshd"]}),
    ("socket.listening", {}),
    ("command.output", {"argv": ["true"]}),
])
def test_live_only_probes_not_applicable_offline(tmp_path: Path, kind: str, params: dict):
    with pytest.raises(NotApplicable):
        run(kind, params, tmp_path)


def test_process_running_live(tmp_path: Path):
    assert LiveHost().processes(), "this machine has processes"
    exe = tmp_path / "sntl-probe-test"  # a name no other process on this shared machine has
    shutil.copy("/bin/sleep", exe)
    child = subprocess.Popen([str(exe), "30"])
    try:
        obs = run("process.running", {"names": ["sntl-probe-test", "no-such-daemon-xyz"]}, None)
        assert obs.observed == ["sntl-probe-test"]
        assert f"pid {child.pid} " in obs.evidence[0].excerpt
    finally:
        child.kill()
        child.wait()
    assert run("process.running", {"names": ["no-such-daemon-xyz"]}, None).observed == []


def test_socket_listening_live_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        seen = run("socket.listening", {"ports": [port], "proto": "tcp", "include_loopback": True}, None)
        assert len(seen.observed) == 1 and seen.observed[0].startswith(f"tcp/{port} 127.0.0.1 (")
        hidden = run("socket.listening", {"ports": [port]}, None)
        assert hidden.observed == []  # loopback excluded by default
        assert run("socket.listening", {"ports": [port], "proto": "udp", "include_loopback": True},
                   None).observed == []


def test_command_output_stdout_pattern_and_errors():
    assert run("command.output", {"argv": ["echo", "hello world"]}, None).observed == "hello world"
    captured = run("command.output", {"argv": ["echo", "hello world"], "pattern": r"hello (\w+)", "group": 1}, None)
    assert captured.observed == "world" and captured.evidence[0].source == "cmd: echo hello world"
    assert run("command.output", {"argv": ["echo", "x"], "pattern": "nomatch"}, None).observed is None
    with pytest.raises(ProbeError, match="timed out after 0.3s"):
        run("command.output", {"argv": ["sleep", "5"], "timeout": 0.3}, None)
    with pytest.raises(ProbeError, match="exit status 3: oops"):
        run("command.output", {"argv": ["sh", "-c", "echo oops >&2; exit 3"]}, None)
    with pytest.raises(ProbeError, match="command not found"):
        run("command.output", {"argv": ["no-such-binary-xyz"]}, None)


def test_systemd_vendor_wants_links(units: Path):
    lib = "/usr/lib/systemd/system"
    put(units, f"{lib}/auditd.service", "[Install]\nWantedBy=multi-user.target\n")
    link(units, f"{lib}/multi-user.target.wants/auditd.service", "../auditd.service")
    link(units, f"{lib}/sysinit.target.wants/systemd-journald.service", "../systemd-journald.service")
    assert run("systemd.unit", {"units": ["auditd"], "state": "enabled"}, units).observed == "enabled"
    # no [Install] section: static, however the vendor wires it
    assert run("systemd.unit", {"units": ["systemd-journald"], "state": "enabled"}, units).observed == "static"
    link(units, "/etc/systemd/system/auditd.service", "/dev/null")
    assert run("systemd.unit", {"units": ["auditd"], "state": "enabled"}, units).observed == "masked"


def test_sysctl_kernel_default_applies_when_unconfigured(tmp_path):
    """An offline root that never sets kernel.randomize_va_space still boots with the kernel's value."""
    from sentinel.hostview import RootHost
    from sentinel.probe import ProbeContext, registry

    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    (tmp_path / "etc/sysctl.d/90-x.conf").write_text("net.ipv4.ip_forward = 0\n")
    ctx = ProbeContext(RootHost(str(tmp_path)), "debian", {})
    pdef = registry()["sysctl.value"]
    obs = pdef.func(ctx, pdef.params(key="kernel.randomize_va_space", default="2"))
    assert obs.observed == "2" and "kernel default" in obs.note
    obs = pdef.func(ctx, pdef.params(key="net.ipv4.ip_forward", default="1"))
    assert obs.observed == "0"
