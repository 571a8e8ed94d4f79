"""Issue 11, small CLI defects: bad CIDRs named, a scope refusal said once, help without <bool>/<list[str]>,
--root that is no root refused or warned about, and the hint to run as root."""
from __future__ import annotations

import builtins
import logging
import re

import pytest

from sentinel import hostview
from sentinel.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


RAW_PYDANTIC = re.compile(r"validation error|Value error|type=value_error|errors\.pydantic\.dev|input_value")


# ---- bad CIDR --------------------------------------------------------------------------------------


def test_scan_with_a_bad_cidr_names_the_option_and_value(capsys):
    code, _, err = run(capsys, "scan", "10.0.0.1", "--scope", "10.0.0.300/8")
    assert code == 2 and not RAW_PYDANTIC.search(err), err
    assert err.strip() == ("sentinel scan: --scope '10.0.0.300/8': not a network in CIDR form ('10.0.0.300/8' "
                           "does not appear to be an IPv4 or IPv6 network)")
    code, _, err = run(capsys, "scan", "10.0.0.1", "--scope", "10.0.0.0/8", "--ports", "0")
    assert code == 2 and err.strip() == "sentinel scan: --ports '0': bad port '0': ports are 1-65535"


def test_scan_scope_file_with_a_bad_cidr_names_file_key_and_value(capsys, tmp_path):
    f = tmp_path / "scope.yaml"
    f.write_text("networks: [10.1.0.0/16, 10.2.0.300/16]\n")
    code, _, err = run(capsys, "scan", "10.1.0.1", "--scope-file", str(f))
    assert code == 2 and not RAW_PYDANTIC.search(err), err
    assert f"--scope-file {f}: networks '10.2.0.300/16': not a network in CIDR form" in err


@pytest.fixture
def state(tmp_path, capsys):
    d = tmp_path / "state"
    assert run(capsys, "db", "upgrade", "--state-dir", str(d))[0] == 0
    assert run(capsys, "department", "add", "hrss", "--state-dir", str(d))[0] == 0
    return str(d)


def test_system_add_with_a_bad_cidr_or_zone_names_the_option_and_value(capsys, state):
    base = ["system", "add", "portal", "--department", "hrss", "--level", "3", "--s-grade", "3", "--a-grade", "2",
            "--state-dir", state]
    code, _, err = run(capsys, *base, "--scope", "10.0.0.300/8")
    assert code == 2 and not RAW_PYDANTIC.search(err), err
    assert "--scope '10.0.0.300/8': not a network in CIDR form" in err
    code, _, err = run(capsys, *base, "--zone", " dmz")
    assert code == 2 and not RAW_PYDANTIC.search(err) and "--zone ' dmz': " in err, err
    assert run(capsys, *base, "--zone", "dmz")[0] == 0  # a valid scope also needs the address plan


# ---- scope refusal ---------------------------------------------------------------------------------


def test_scope_refusal_is_printed_once_and_still_audited(capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="sentinel.audit"):
        code, out, err = run(capsys, "scan", "192.168.5.5", "--scope", "10.0.0.0/8")
    assert code == 2 and out == ""
    assert err.count("192.168.5.5") == 1 and "no packet was sent" in err, err
    assert [r.getMessage() for r in caplog.records if r.name == "sentinel.audit"] == \
        ["scan refused: 192.168.5.5 is not inside scope [10.0.0.0/8]"]


# ---- --help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"], ["scan", "--help"], ["up", "--help"],
                                  ["agent", "--help"], ["system", "add", "--help"], ["verify", "--help"]])
def test_help_shows_no_python_types(capsys, argv):
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "--help" in out
    assert "<bool>" not in out and "<list[" not in out, out


def test_help_shows_the_metavars(capsys):
    _, out, _ = run(capsys, "scan", "--help")
    assert re.search(r"--scope\s+CIDR\|ADDRESS", out) and re.search(r"--udp\s+Also scan UDP", out)
    assert "{TARGET}..." in out
    _, out, _ = run(capsys, "check", "--help")
    assert re.search(r"--root\s+DIR", out) and re.search(r"--format\s+-f\s+table\|json\|csv\|junit", out)


# ---- --root ----------------------------------------------------------------------------------------


def test_root_without_etc_is_refused(capsys, tmp_path):
    code, out, err = run(capsys, "check", "--root", str(tmp_path))
    assert code == 2 and out == "" and "not a root filesystem: it has no etc/ directory" in err


def test_root_without_os_release_is_warned_about(capsys, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, out, err = run(capsys, "check", "--root", str(tmp_path), "--format", "json")
    assert code == 1 and out.startswith("{")
    assert "warning: --root" in err and "no etc/os-release" in err


def test_root_with_os_release_runs_quietly(capsys, fixture_root):
    _, _, err = run(capsys, "check", "--root", str(fixture_root("debian12-default")), "--format", "json")
    assert err == ""


# ---- unprivileged ----------------------------------------------------------------------------------


@pytest.fixture
def unprivileged(monkeypatch):
    """What an ordinary user meets: euid 1000, and /etc/shadow and /etc/gshadow unreadable (the real open of
    the host view raises PermissionError as the kernel would; root bypasses file modes, so it is simulated)."""
    real_open = builtins.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith(("/etc/shadow", "/etc/gshadow")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hostview, "open", guarded, raising=False)
    monkeypatch.setattr("sentinel.cli_check.os.geteuid", lambda: 1000)


def test_unprivileged_run_hints_once_to_run_as_root(capsys, fixture_root, unprivileged):
    root = str(fixture_root("debian12-default"))
    code, out, err = run(capsys, "check", "--root", root, "--format", "json", "--lang", "en")
    assert code == 1 and "permission denied" in out
    assert err.count("hint:") == 1 and "run as root" in err, err
    _, _, err = run(capsys, "check", "--root", root, "--format", "json")
    assert err.count("提示") == 1 and "root" in err


def test_no_hint_as_root_or_without_permission_errors(capsys, fixture_root, monkeypatch):
    root = str(fixture_root("debian12-default"))
    assert "hint" not in run(capsys, "check", "--root", root, "--format", "json", "--lang", "en")[2]
    monkeypatch.setattr("sentinel.cli_check.os.geteuid", lambda: 1000)
    assert "hint" not in run(capsys, "check", "--root", root, "--format", "json", "--lang", "en")[2]


# ---- scan table language ---------------------------------------------------------------------------


def test_scan_table_speaks_the_chosen_language():
    import io
    from datetime import datetime, timezone

    from sentinel.checks.network.findings import ServiceFinding
    from sentinel.cli_scan_oneshot import _print_table
    from tests.scan_helpers import NET, scan_report

    report = scan_report([ServiceFinding(host="10.9.0.5", port=23, service="telnet")], [NET],
                         datetime(2026, 3, 2, tzinfo=timezone.utc))
    zh, en = io.StringIO(), io.StringIO()
    _print_table(report, "zh", file=zh)
    _print_table(report, "en", file=en)
    assert "1 台主机在线，1 个开放服务" in zh.getvalue() and "host(s) up" not in zh.getvalue()
    assert "1 host(s) up, 1 open service(s)" in en.getvalue()


def test_no_command_shows_python_types_in_help(capsys):
    import typer

    from sentinel import cli

    cli._register()
    paths, todo = [], [((), typer.main.get_command(cli.app))]
    while todo:
        path, cmd = todo.pop()
        paths.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            todo.append((path + (name,), sub))
    assert len(paths) > 20
    for path in paths:
        code, out, _ = run(capsys, *path, "--help")
        assert code == 0 and "<bool>" not in out and "<list[" not in out, (path, out)
