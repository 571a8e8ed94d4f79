"""package.installed: dpkg status, rpm sqlite (header blobs), Berkeley DB / ndb via the rpm tool."""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

import sentinel.checks.packages as packages
from sentinel.hostview import ProbeError, RootHost
from sentinel.probe import ProbeContext, registry
from tests.rpmdb import header_blob, write_rpmdb


def put(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(params: dict, root: Path, family: str | None = None):
    pdef = registry()["package.installed"]
    host = RootHost(str(root))
    ctx = ProbeContext(host=host, family=family, os_release=host.os_release())
    return pdef.func(ctx, pdef.params.model_validate(params))


def snapshot(directory: Path) -> dict[str, tuple[int, float]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime) for p in directory.iterdir()}


DPKG_STATUS = """\
Package: openssh-server
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1:9.2p1-2+deb12u3
Description: secure shell (SSH) server
 Multi-line description: Package: fake-inside-description
 .
 continues here

Package: telnet
Status: deinstall ok config-files
Architecture: amd64
Version: 0.17+2.4-2

Package: rsyslog
Status: hold ok installed
Architecture: amd64
Version: 8.2302.0-1

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9
"""


def test_dpkg_status(tmp_path: Path):
    put(tmp_path, "/var/lib/dpkg/status", DPKG_STATUS)
    obs = run({"names": ["openssh-server", "telnet"]}, tmp_path, family="debian")
    assert obs.observed == ["openssh-server-1:9.2p1-2+deb12u3"]  # telnet only left config files
    assert obs.evidence[0].source == "/var/lib/dpkg/status" and obs.evidence[0].line == 1
    assert run({"names": ["rsys*"]}, tmp_path).observed == ["rsyslog-8.2302.0-1"]  # held is installed
    assert run({"names": ["fake-inside-description"]}, tmp_path).observed == []
    none = run({"names": ["telnet*", "rsh-server"]}, tmp_path)
    assert none.observed == [] and "no installed package matches" in none.evidence[0].excerpt


RPMS = [("openssh-server", "8.7p1", "34.el9", "x86_64"), ("bash", "5.1.8", "6.el9", "x86_64", 1),
        ("audit", "3.0.7", "104.el9", "x86_64")]


@pytest.mark.parametrize("dbdir", ["/var/lib/rpm", "/usr/lib/sysimage/rpm"])
def test_rpm_sqlite_read_only(tmp_path: Path, dbdir: str):
    db = write_rpmdb(tmp_path / dbdir.lstrip("/") / "rpmdb.sqlite", RPMS)
    before = snapshot(Path(db).parent)
    obs = run({"names": ["openssh-server", "aud*", "telnet-server"]}, tmp_path, family="rhel")
    assert obs.observed == ["audit-3.0.7-104.el9", "openssh-server-8.7p1-34.el9"]
    assert obs.evidence[0].source == f"{dbdir}/rpmdb.sqlite"
    assert snapshot(Path(db).parent) == before  # no journal, -shm or lock file left behind


def test_rpm_sqlite_pending_write_ahead_log(tmp_path: Path):
    db = write_rpmdb(tmp_path / "var/lib/rpm/rpmdb.sqlite", RPMS)
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO Packages (blob) VALUES (?)", (header_blob("aide", "0.16", "100.el9", "x86_64"),))
        writer.commit()
        assert os.path.getsize(db + "-wal") > 0
        before = snapshot(Path(db).parent)
        assert run({"names": ["aide"]}, tmp_path, family="rhel").observed == ["aide-0.16-100.el9"]
        assert snapshot(Path(db).parent) == before
    finally:
        writer.close()


def test_rpm_header_parser_matches_written_blobs():
    tags = packages.parse_rpm_header(header_blob("kernel", "5.14.0", "362.el9", "x86_64", 2))
    assert tags == {1000: "kernel", 1001: "5.14.0", 1002: "362.el9", 1003: 2, 1022: "x86_64"}
    with pytest.raises(ValueError):
        packages.parse_rpm_header(b"\x00\x00\x00\x05\x00\x00\x00\x10")


def test_rpm_sqlite_malformed_header_is_error(tmp_path: Path):
    db = write_rpmdb(tmp_path / "var/lib/rpm/rpmdb.sqlite", RPMS[:1])
    con = sqlite3.connect(db)
    con.execute("INSERT INTO Packages (blob) VALUES (?)", (b"\x00\x00\x00\x02garbage",))
    con.commit()
    con.close()
    with pytest.raises(ProbeError, match="header #2 is malformed"):
        run({"names": ["openssh-server"]}, tmp_path, family="rhel")


def test_rpm_sqlite_not_a_database_is_error(tmp_path: Path):
    put(tmp_path, "/var/lib/rpm/rpmdb.sqlite", "this is not sqlite")
    with pytest.raises(ProbeError, match="cannot read the rpm sqlite database"):
        run({"names": ["bash"]}, tmp_path, family="rhel")


@pytest.mark.parametrize("name,fmt", [("Packages", "Berkeley DB"), ("Packages.db", "ndb")])
def test_rpm_bdb_or_ndb_without_rpm_tool_is_error(tmp_path: Path, monkeypatch, name: str, fmt: str):
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm" / name).write_bytes(b"\0" * 4096)
    monkeypatch.setattr(packages, "rpm_tool", lambda: None)
    with pytest.raises(ProbeError, match=f"{fmt} format needs the rpm tool"):
        run({"names": ["bash"]}, tmp_path, family="rhel")


@pytest.mark.skipif(shutil.which("rpm") is None, reason="the rpm tool is not installed")
def test_rpm_bdb_unreadable_with_rpm_tool_is_error_and_root_untouched(tmp_path: Path):
    rpmdir = tmp_path / "var/lib/rpm"
    rpmdir.mkdir(parents=True)
    (rpmdir / "Packages").write_bytes(os.urandom(8192))
    before = snapshot(rpmdir)
    with pytest.raises(ProbeError, match="rpm could not read the database"):
        run({"names": ["bash"]}, tmp_path, family="rhel")
    assert snapshot(rpmdir) == before


def test_no_package_database_is_error(tmp_path: Path):
    with pytest.raises(ProbeError, match="no package database found"):
        run({"names": ["bash"]}, tmp_path)


def test_family_picks_database_when_both_exist(tmp_path: Path):
    put(tmp_path, "/var/lib/dpkg/status", DPKG_STATUS)
    write_rpmdb(tmp_path / "var/lib/rpm/rpmdb.sqlite", RPMS)
    assert run({"names": ["openssh-server"]}, tmp_path, family="rhel").observed == ["openssh-server-8.7p1-34.el9"]
    assert run({"names": ["openssh-server"]}, tmp_path, family="debian").observed == [
        "openssh-server-1:9.2p1-2+deb12u3"]


@pytest.mark.skipif(shutil.which("rpm") is None, reason="the rpm tool is not installed")
def test_written_rpmdb_is_readable_by_real_rpm(tmp_path: Path):
    from sentinel.hostview import run_command

    db = write_rpmdb(tmp_path / "rpm/rpmdb.sqlite", RPMS)
    result = run_command(["rpm", "--dbpath", os.path.dirname(db), "-qa",
                          "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"])
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["audit-3.0.7-104.el9.x86_64", "bash-5.1.8-6.el9.x86_64",
                                             "openssh-server-8.7p1-34.el9.x86_64"]
