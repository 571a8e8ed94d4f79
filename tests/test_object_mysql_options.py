"""MySQL/MariaDB option files as the server reads them (checks/mysql_options.py), held to the installed programs:
the option list of each tree is `my_print_defaults`' for the server's groups, the effective values are those
`mariadbd --help --verbose` prints after reading the files, and the compiled-in defaults table is the program's
own `--no-defaults` output. Offline (RootHost) runs of the level-3 baseline over the Debian 12 stock
configuration (the package's conffiles, held to dpkg's checksums) and a rectified one give the config verdicts.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks.mysql_defaults import MARIADB_10_11, MARIADB_10_11_PLUGINS
from sentinel.checks.mysql_options import effective, read_option_files
from sentinel.cli import main
from sentinel.engine import run_baseline
from sentinel.hostview import LiveHost, RootHost
from sentinel.probe import ProbeContext, ProbeError, registry

FIXTURES = Path(__file__).parent / "fixtures" / "mysql"
STOCK = FIXTURES / "debian12-stock"
RECTIFIED_CNF = FIXTURES / "90-dengbao.cnf"
MARIADBD = "/usr/sbin/mariadbd"
PRINT_DEFAULTS = "/usr/bin/my_print_defaults"
GROUPS = ["mysqld", "server", "mysqld-10.11", "mariadb", "mariadb-10.11", "mariadbd", "mariadbd-10.11",
          "client-server", "galera"]


def _need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:  # tests/setup-machine.sh installs mariadb-server: missing in CI is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} not installed "
                                                               "(tests/setup-machine.sh installs mariadb-server)")


def _ctx(host) -> ProbeContext:
    return ProbeContext(host=host, family="debian", os_release={})


def _print_defaults(cnf: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PRINT_DEFAULTS, f"--defaults-file={cnf}", *GROUPS], capture_output=True, text=True,
                          timeout=30)


def _help_values(cnf: Path | None, *extra: str) -> dict[str, str]:
    """Variable -> value as mariadbd prints them after reading the option files (`--help --verbose`)."""
    first = [f"--defaults-file={cnf}"] if cnf else ["--no-defaults"]
    out = subprocess.run([MARIADBD, *first, *extra, "--help", "--verbose"], capture_output=True, text=True,
                         timeout=60).stdout
    values: dict[str, str] = {}
    table = False
    for line in out.splitlines():
        if line.startswith("----") and " -----" in line:
            table = True
            continue
        if table and line.strip():
            name, _, value = line.partition(" ")
            values[name.replace("-", "_")] = value.strip()
    return values


def _as_shown(value: str) -> str | None:
    """mariadbd --help's rendering as SHOW VARIABLES shows it: TRUE/FALSE as ON/OFF, no value as None."""
    return {"TRUE": "ON", "FALSE": "OFF", "(No default value)": None}.get(value, value)


# ---- trees ---------------------------------------------------------------------------------------------------
def _tree(tmp: Path) -> Path:
    """A tree with every rule: includes, includedir order and filter, comments, quotes, escapes, groups, prefixes."""
    d = tmp / "conf.d"
    d.mkdir()
    (tmp / "a#b").mkdir()  # secure_file_priv must exist for mariadbd to accept it
    (tmp / "my.cnf").write_text(
        "# comment\n"
        "; also a comment\n"
        "[client]\n"
        "wait_timeout = 1\n"  # a group the server does not read
        "[MySQLd]\n"  # group names are compared case-insensitively
        "wait_timeout = 100 # trailing comment\n"
        "interactive-timeout = \"200\"\n"
        "bind-address = '10.0.0.1'\n"
        "  local_infile=ON\n"
        f"secure_file_priv = \"{tmp}/a#b\"   # a # inside quotes is kept\n"
        "loose-max_password_errors = 7\n"
        "skip-name-resolve\n"
        f"!includedir {d}\n"
        "[mysqld-10.11]\n"
        "disable-local-infile\n"
        f"!include {tmp / 'extra.cnf'}\n"
        f"!include {tmp / 'absent.cnf'}\n"  # a missing !include is skipped
        "[mariadb-10.12]\n"  # another version's group is not read
        "wait_timeout = 5\n"
        "[mariadb]\n"
        "ssl_cipher = a\\sb\\tc\\\\d\n"
        "tls_version = TLSv1.2\n",
        encoding="utf-8")
    (d / "20-b.cnf").write_text("[server]\nwait-timeout=150\ngeneral_log\n", encoding="utf-8")
    (d / "10-a.cnf").write_text("[mysqld]\nwait-timeout=120\nenable-skip-networking\n", encoding="utf-8")
    (d / "30-c.conf").write_text("[mysqld]\nwait-timeout=999\n", encoding="utf-8")  # not *.cnf: not read
    (d / "40-d.cnf.bak").write_text("[mysqld]\nwait-timeout=998\n", encoding="utf-8")
    (tmp / "extra.cnf").write_text("[mariadbd]\nmax-password-errors = 4\nlocal_infile = yes\n", encoding="utf-8")
    return tmp / "my.cnf"


def test_option_list_is_my_print_defaults(tmp_path):
    """Options of the server's groups, in order, with their values, exactly as my_print_defaults lists them."""
    _need(PRINT_DEFAULTS)
    cnf = _tree(tmp_path)
    real = _print_defaults(cnf)
    assert real.returncode == 0, real.stderr
    files = read_option_files(_ctx(LiveHost()), (str(cnf),))
    ours = [f"--{o.name}" + ("" if o.value is None else f"={o.value}") for o in files.for_groups(set(GROUPS))]
    assert ours == real.stdout.splitlines()
    assert str(tmp_path / "absent.cnf") in files.missing and not any(f.endswith((".conf", ".bak"))
                                                                       for f in files.files)


@pytest.mark.parametrize("variable,kind", [
    ("wait_timeout", "int"), ("interactive_timeout", "int"), ("bind_address", "str"), ("local_infile", "bool"),
    ("secure_file_priv", "str"), ("max_password_errors", "int"), ("skip_name_resolve", "bool"),
    ("general_log", "bool"), ("skip_networking", "bool"), ("ssl_cipher", "str"), ("tls_version", "str")])
def test_effective_values_are_mariadbds(tmp_path, variable, kind):
    """The value the option files give a variable is the one mariadbd reports after reading them."""
    _need(MARIADBD)
    cnf = _tree(tmp_path)
    files = read_option_files(_ctx(LiveHost()), (str(cnf),))
    got = effective(files.for_groups(set(GROUPS)), variable, kind)
    want = _as_shown(_help_values(cnf)[variable])
    if variable == "secure_file_priv":  # the server stores the directory with a trailing slash
        want = (want or "").rstrip("/")
    assert got.value == want


def test_boolean_the_server_does_not_know_is_off_with_a_warning(tmp_path):
    _need(MARIADBD)
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[mysqld]\nlocal_infile = yes\n", encoding="utf-8")
    files = read_option_files(_ctx(LiveHost()), (str(cnf),))
    got = effective(files.for_groups(set(GROUPS)), "local_infile", "bool")
    assert _help_values(cnf)["local_infile"] == "FALSE"
    assert got.value == "OFF" and "not recognised" in (got.warning or "")


@pytest.mark.parametrize("text,why", [
    ("wait_timeout = 1\n[mysqld]\n", r"option without a preceding \[group\]"),
    ("[mysqld\nwait_timeout = 1\n", "group header without '\\]'"),
    ("[mysqld]\n!includedir /nonexistent-sentinel-dir\n", "no such directory"),
])
def test_files_the_server_refuses_are_errors(tmp_path, text, why):
    """Where the server aborts ('Fatal error in defaults handling'), the probe says so instead of guessing."""
    _need(PRINT_DEFAULTS)
    cnf = tmp_path / "my.cnf"
    cnf.write_text(text, encoding="utf-8")
    assert _print_defaults(cnf).returncode != 0
    with pytest.raises(ProbeError, match=why):
        read_option_files(_ctx(LiveHost()), (str(cnf),))


def test_compiled_in_defaults_are_the_programs():
    """Every default sentinel assumes for an unset variable is what this MariaDB prints with no option file."""
    _need(MARIADBD)
    values = _help_values(None)
    skipped = {"log_bin", "user"}  # --help shows log-bin's file name, not the ON/OFF variable; user is not shown
    for name, default in MARIADB_10_11.items():
        if name in skipped:
            continue
        assert name in values, name
        shown = _as_shown(values[name])
        assert (shown or None) == (default or None), (name, values[name], default)
    assert "log_bin" not in values or values["log_bin"] == "(No default value)"  # no log-bin: log_bin is OFF
    for plugin, names in MARIADB_10_11_PLUGINS.items():
        values = _help_values(None, f"--plugin-load-add={plugin}")
        for name, default in names.items():
            assert (_as_shown(values[name]) or None) == (default or None), (plugin, name, values[name])


# ---- the stock and rectified trees, offline -------------------------------------------------------------------
def test_stock_fixture_is_the_packages_conffiles():
    """tests/fixtures/mysql/debian12-stock/etc/mysql holds Debian 12's files byte for byte (dpkg's md5sums)."""
    _need("/usr/bin/dpkg-query", MARIADBD)
    out = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}\n", "mariadb-common", "mariadb-server",
                          "mariadb-client", "mysql-common"], capture_output=True, text=True, check=True).stdout
    sums = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("/etc/mysql/"):
            sums[parts[0]] = parts[1]
    assert "/etc/mysql/mariadb.cnf" in sums and "/etc/mysql/mariadb.conf.d/50-server.cnf" in sums
    for path, md5 in sums.items():
        if path == "/etc/mysql/debian-start":
            continue  # a script, not an option file
        assert hashlib.md5((STOCK / path.lstrip("/")).read_bytes()).hexdigest() == md5, path


def _rectified_root(tmp: Path) -> Path:
    root = tmp / "root"
    shutil.copytree(STOCK, root, symlinks=True)
    shutil.copy(RECTIFIED_CNF, root / "etc/mysql/mariadb.conf.d/90-dengbao.cnf")
    return root


CONFIG_CHECKS = ["l3-mysql-ia-password-complexity-config", "l3-mysql-ia-password-lifetime-config",
                 "l3-mysql-ia-login-lockout-config", "l3-mysql-ia-idle-timeout-config",
                 "l3-mysql-ac-local-infile-off-config", "l3-mysql-ac-secure-file-priv-config",
                 "l3-mysql-au-audit-on-config", "l3-mysql-di-tls-required-config",
                 "l3-mysql-dc-tls-required-config", "l3-mysql-br-binlog-config"]


def _statuses(root: Path) -> dict[str, str]:
    report = run_baseline(load_baseline("dengbao-l3-mysql"), RootHost(str(root)))
    return {r.check_id: r.status.value for r in report.results}


def test_offline_stock_fails_the_config_checks_and_live_ones_are_not_applicable():
    got = _statuses(STOCK)
    assert {c: got[c] for c in CONFIG_CHECKS} == dict.fromkeys(CONFIG_CHECKS, "fail")
    # Debian's 50-server.cnf binds 127.0.0.1 and the default TLS versions are 1.2 and 1.3
    assert got["l3-mysql-ip-bind-address-config"] == got["l3-mysql-dc-tls-version-config"] == "pass"
    live = [c for c, spec in ((k.id, k) for _, _, k in load_baseline("dengbao-l3-mysql").iter_checks())
            if registry()[spec.probe].live_only]
    assert live and all(got[c] == "not_applicable" for c in live)


def test_offline_rectified_passes_the_config_checks(tmp_path):
    got = _statuses(_rectified_root(tmp_path))
    assert {c: got[c] for c in CONFIG_CHECKS} == dict.fromkeys(CONFIG_CHECKS, "pass")


def test_rectified_file_is_what_mariadbd_reads(tmp_path):
    """The rectified example is a file the installed server accepts, with the values the config checks judged."""
    _need(MARIADBD)
    root = _rectified_root(tmp_path)
    # the tree's includes are absolute host paths: point them at the copy for the real program
    top = root / "etc/mysql/mariadb.cnf"
    text = top.read_text(encoding="utf-8").replace("/etc/mysql/", f"{root}/etc/mysql/")
    (tmp_path / "top.cnf").write_text(text, encoding="utf-8")
    ours = root / "etc/mysql/mariadb.conf.d/90-dengbao.cnf"  # mariadbd refuses a secure_file_priv that is not there
    (tmp_path / "files").mkdir()
    ours.write_text(ours.read_text(encoding="utf-8").replace("/var/lib/mysql-files", str(tmp_path / "files")),
                    encoding="utf-8")
    values = _help_values(tmp_path / "top.cnf")
    for name, want in {"wait_timeout": "300", "interactive_timeout": "300", "max_password_errors": "5",
                       "local_infile": "FALSE", "default_password_lifetime": "90", "require_secure_transport": "TRUE",
                       "simple_password_check_minimal_length": "10", "server_audit_logging": "TRUE"}.items():
        assert values.get(name) == want, name


def test_cli_check_offline_root_exit_code_and_evidence(capsys):
    """`sentinel check --object mysql --root DIR` (dengbao-l3-mysql) works offline: failures exit 1, evidence names the
    file and line a value came from, or the default and the installed version it belongs to."""
    assert main(["check", "--object", "mysql", "--root", str(STOCK), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["baseline"]["id"] == "dengbao-l3-mysql" and report["object"]["kind"] == "mysql"
    by_id = {r["check_id"]: r for r in report["results"]}
    bind = by_id["l3-mysql-ip-bind-address-config"]["evidence"][0]
    assert bind["source"] == "/etc/mysql/mariadb.conf.d/50-server.cnf" and bind["line"] == 27
    idle = by_id["l3-mysql-ia-idle-timeout-config"]
    assert idle["observed"] == {"wait_timeout": "28800", "interactive_timeout": "28800"}
    assert "compiled-in default of MariaDB 10.11" in idle["evidence"][0]["excerpt"]
    assert "mariadb-server-core 1:10.11" in idle["evidence"][0]["excerpt"]


def test_mysql_8_host_takes_mysqls_defaults_and_skips_mariadb_only_variables(tmp_path):
    """On a MySQL 8.0 host (by its package) unset variables take MySQL 8.0's defaults, and a MariaDB-only variable
    (max_password_errors, simple_password_check's) is not applicable rather than a guessed default."""
    root = tmp_path / "root"
    shutil.copytree(STOCK, root, symlinks=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: mysql-server-core-8.0\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 8.0.36-2\n\n", encoding="utf-8")
    got = {r.check_id: r for r in run_baseline(load_baseline("dengbao-l3-mysql"), RootHost(str(root))).results}
    assert got["l3-mysql-ac-local-infile-off-config"].status.value == "pass"  # MySQL 8.0: local_infile OFF
    assert "MySQL 8.0" in (got["l3-mysql-ac-local-infile-off-config"].reason or "")
    assert got["l3-mysql-br-binlog-config"].status.value == "pass"  # MySQL 8.0 logs binary by default
    for cid in ("l3-mysql-ia-login-lockout-config", "l3-mysql-ia-password-complexity-config"):
        assert got[cid].status.value == "not_applicable", cid


def test_rhel_layout_without_a_package_database(tmp_path):
    """RHEL family: /etc/my.cnf includes /etc/my.cnf.d/ (its stock files, abridged); with no package database the
    server is known by its binary, and the defaults used say which version they are and that it is a guess."""
    root = tmp_path / "root"
    (root / "etc/my.cnf.d").mkdir(parents=True)
    (root / "usr/libexec").mkdir(parents=True)
    (root / "usr/libexec/mariadbd").write_bytes(b"")
    (root / "etc/os-release").write_text('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n', encoding="utf-8")
    (root / "etc/my.cnf").write_text("#\n# include *.cnf from the config directory\n#\n!includedir /etc/my.cnf.d\n",
                                     encoding="utf-8")
    (root / "etc/my.cnf.d/mariadb-server.cnf").write_text(
        "[server]\n\n[mysqld]\ndatadir=/var/lib/mysql\nsocket=/var/lib/mysql/mysql.sock\n"
        "log-error=/var/log/mariadb/mariadb.log\npid-file=/run/mariadb/mariadb.pid\n\n[galera]\n\n[embedded]\n\n"
        "[mariadb]\n\n[mariadb-10.5]\n", encoding="utf-8")
    (root / "etc/my.cnf.d/client.cnf").write_text("[client]\n\n[client-mariadb]\n", encoding="utf-8")
    (root / "etc/my.cnf.d/zz-site.cnf").write_text("[mysqld]\nwait_timeout=300\ninteractive_timeout=300\n",
                                                   encoding="utf-8")
    got = {r.check_id: r for r in run_baseline(load_baseline("dengbao-l3-mysql"), RootHost(str(root))).results}
    idle = got["l3-mysql-ia-idle-timeout-config"]
    assert idle.status.value == "pass" and idle.evidence[0].source == "/etc/my.cnf.d/zz-site.cnf"
    infile = got["l3-mysql-ac-local-infile-off-config"]
    assert infile.status.value == "fail" and "MariaDB 10.11" in infile.evidence[0].excerpt
    assert "/usr/libexec/mariadbd" in infile.evidence[0].excerpt  # how the product was known
