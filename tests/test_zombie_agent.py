"""The agent's upkeep and use facts for zombie-system detection (sentinel/agent/upkeep.py, sampler.py), each held to
the real program that writes or reads the same data: wtmp files made by `utmpdump -r` and read back by `last`, a
package installed and removed by the real dpkg into a root of its own, /etc times against GNU find, the running
kernel against `uname`, inbound connections against `ss`."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sentinel.agent import upkeep
from sentinel.agent.sampler import Sampler, inbound_connections
from sentinel.collector.wire import InventoryBody
from sentinel.hostview import LiveHost, RootHost


def _need(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: tests/setup-machine.sh installs it")
        pytest.skip(f"{name} is not installed")
    return path


def _utmp_line(kind: int, pid: int, user: str, line: str, host: str, when: datetime) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S,000000+00:00")
    return f"[{kind}] [{pid:05d}] [ts/0] [{user:<8}] [{line:<12}] [{host:<20}] [{host or '0.0.0.0':<15}] [{stamp}]\n"


def make_wtmp(path: Path, logins: list[tuple[datetime, str]], boot: datetime | None = None) -> None:
    """A real wtmp file: USER_PROCESS records (with their DEAD_PROCESS an hour later) written by `utmpdump -r`."""
    text = ""
    if boot is not None:
        text += _utmp_line(2, 0, "reboot", "~", "6.1.0-test", boot)
    for i, (when, user) in enumerate(sorted(logins)):
        text += _utmp_line(7, 1000 + i, user, f"pts/{i % 9}", "10.0.0.5", when)
        text += _utmp_line(8, 1000 + i, "", f"pts/{i % 9}", "", when + timedelta(hours=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        subprocess.run([_need("utmpdump"), "-r"], input=text.encode(), stdout=out, stderr=subprocess.DEVNULL,
                       check=True, timeout=30)


def _last(path: Path) -> list[tuple[str, datetime]]:
    """(user, login time) of each session `last` lists, and nothing else (reboots left out)."""
    out = subprocess.run([_need("last"), "-f", str(path), "--time-format", "iso", "-w"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] not in ("reboot", "wtmp") and "T" in parts[3]:
            rows.append((parts[0], datetime.fromisoformat(parts[3])))
    return rows


def test_wtmp_records_as_last_reads_them_counted_by_week(tmp_path):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)  # a Wednesday
    logins = [(datetime(2026, 9, 28, 9, 0, tzinfo=timezone.utc), "alice"),  # before the 8 weeks sent
              (datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc), "alice"),
              (datetime(2026, 11, 3, 10, 0, tzinfo=timezone.utc), "alice"),
              (datetime(2026, 11, 4, 10, 0, tzinfo=timezone.utc), "bob"),
              (datetime(2026, 11, 24, 8, 30, tzinfo=timezone.utc), "carol")]
    root = tmp_path / "root"
    make_wtmp(root / "var/log/wtmp", logins, boot=datetime(2026, 9, 1, 0, 0, tzinfo=timezone.utc))
    seen = _last(root / "var/log/wtmp")
    assert sorted(seen) == sorted((u, t) for t, u in logins), "the file holds what last reads"

    facts = upkeep.login_weeks(RootHost(str(root)), now=now)
    assert facts["since"] == "2026-09-01T00:00:00Z"  # the boot record: the first the file holds
    assert facts["last_login"] == "2026-11-24T08:30:00Z"
    weeks = {w["start"]: (w["logins"], w["users"]) for w in facts["weeks"]}
    assert len(weeks) == upkeep.WEEKS and min(weeks) == "2026-10-05" and max(weeks) == "2026-11-23"
    # by ISO week as `last` lists them: the week of 2 November holds alice twice and bob once
    by_week: dict[str, list[str]] = {}
    for user, when in seen:
        by_week.setdefault(upkeep.week_start(when.date()).isoformat(), []).append(user)
    for start, (n, users) in weeks.items():
        assert n == len(by_week.get(start, [])) and users == len(set(by_week.get(start, []))), start
    assert weeks["2026-11-02"] == (3, 2) and weeks["2026-11-09"] == (0, 0)
    assert "alice" not in repr(facts), "user names never leave the host"


def test_login_records_that_hold_nothing_are_not_kept_so_not_read_as_no_logins(tmp_path):
    """A host writes at least its boots to wtmp: an empty file (a container, wtmp turned off) says nothing about
    logins. An empty current file after rotation is covered by the rotated one's records."""
    wtmp = tmp_path / "var/log/wtmp"
    wtmp.parent.mkdir(parents=True)
    wtmp.write_bytes(b"")
    facts = upkeep.collect(RootHost(str(tmp_path)), now=datetime(2026, 11, 25, tzinfo=timezone.utc))["logins"]
    assert "not even a boot" in facts["error"]
    make_wtmp(tmp_path / "var/log/wtmp.1", [], boot=datetime(2026, 9, 1, tzinfo=timezone.utc))
    assert _last(tmp_path / "var/log/wtmp.1") == []
    facts = upkeep.login_weeks(RootHost(str(tmp_path)), now=datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert facts["since"] == "2026-09-01T00:00:00Z" and facts["last_login"] is None
    assert facts["source"] == ["/var/log/wtmp", "/var/log/wtmp.1"] and all(w["logins"] == 0 for w in facts["weeks"])


def test_missing_or_torn_login_records_are_an_error_never_zero(tmp_path):
    host = RootHost(str(tmp_path))
    assert "error" in upkeep.collect(host)["logins"]
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/wtmp").write_bytes(b"\0" * 100)
    assert "whole number" in upkeep.collect(host)["logins"]["error"]


def _dpkg_root(tmp_path: Path) -> tuple[Path, Path]:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr/share/zb").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text("Package: zb-test\nVersion: 1.0\nArchitecture: all\n"
                                        "Maintainer: t <t@example.org>\nDescription: zombie test\n")
    (pkg / "usr/share/zb/file").write_text("x\n")
    deb = tmp_path / "zb.deb"
    subprocess.run([_need("dpkg-deb"), "--build", str(pkg), str(deb)], check=True, capture_output=True, timeout=60)
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/updates", "var/lib/dpkg/info", "var/log"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    return root, deb


def _dpkg(root: Path, *args: str) -> None:
    subprocess.run([_need("dpkg"), f"--root={root}", f"--log={root}/var/log/dpkg.log", "--force-script-chrootless",
                    "--force-not-root", *args], check=True, capture_output=True, timeout=120)


def test_last_package_change_from_what_the_real_dpkg_wrote(tmp_path):
    root, deb = _dpkg_root(tmp_path)
    host = RootHost(str(root))
    assert "error" in upkeep.collect(host)["packages"], "an empty package database shows no change"
    _dpkg(root, "-i", str(deb))
    listing = root / "var/lib/dpkg/info/zb-test.list"
    facts = upkeep.last_package_change(host)
    assert facts["manager"] == "dpkg" and facts["source"] == "/var/lib/dpkg/info/zb-test.list"
    assert facts["last_change"] == upkeep.iso(datetime.fromtimestamp(listing.stat().st_mtime, timezone.utc))
    time.sleep(1.1)  # dpkg's log has whole seconds: the removal must be in a later one
    _dpkg(root, "--remove", "zb-test")
    assert not listing.exists()
    removed = [line for line in (root / "var/log/dpkg.log").read_text().splitlines() if " remove zb-test" in line]
    assert len(removed) == 1
    expected = datetime.strptime(removed[0][:19], "%Y-%m-%d %H:%M:%S").astimezone()
    facts = upkeep.last_package_change(host)
    assert facts["source"] == "/var/log/dpkg.log" and facts["last_change"] == upkeep.iso(expected)


def test_last_configuration_change_is_what_find_reports(tmp_path):
    etc = tmp_path / "etc"
    (etc / "ssh").mkdir(parents=True)
    old = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    for name in ("hostname", "ssh/sshd_config", "ld.so.cache", "adjtime"):
        (etc / name).write_text("x\n")
    for path in (etc / "hostname", etc / "ssh", etc):
        os.utime(path, (old, old))
    changed = datetime(2025, 6, 1, 12, tzinfo=timezone.utc).timestamp()
    os.utime(etc / "ssh/sshd_config", (changed, changed))
    os.utime(etc / "ssh", (old, old))
    newer = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    for name in ("ld.so.cache", "adjtime"):  # rewritten by the system itself: not a change anyone made
        os.utime(etc / name, (newer, newer))
    os.utime(etc, (old, old))
    out = subprocess.run([_need("find"), str(etc), "-mindepth", "1", "-xdev", "-printf", "%T@ %P\n"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    by_find = sorted((float(t), "/etc/" + p) for t, p in (line.split(" ", 1) for line in out.splitlines())
                     if "/etc/" + p not in upkeep.ETC_AUTOMATIC)[-1]
    facts = upkeep.last_config_change(RootHost(str(tmp_path)))
    assert facts["path"] == by_find[1] == "/etc/ssh/sshd_config"
    assert facts["last_change"] == upkeep.iso(datetime.fromtimestamp(by_find[0], timezone.utc))
    assert facts["entries"] == len(out.splitlines())


def test_kernel_age_on_this_host_agrees_with_uname():
    facts = upkeep.collect(LiveHost())["kernel"]
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()
    version = subprocess.run(["uname", "-v"], capture_output=True, text=True, check=True).stdout.strip()
    built = upkeep.kernel_build_date(version)
    modules = Path(f"/lib/modules/{release}")
    if built is None and not modules.is_dir():
        assert "error" in facts and release in facts["error"], "an undatable kernel is unknown, with the reason"
        return
    assert facts["release"] == release and facts["built"] == upkeep.iso(built)
    if modules.is_dir():
        assert facts["installed"] == upkeep.iso(datetime.fromtimestamp(modules.stat().st_mtime, timezone.utc))
    stat = Path("/proc/stat").read_text().splitlines()
    btime = int(next(line for line in stat if line.startswith("btime")).split()[1])
    assert facts["booted"] == upkeep.iso(datetime.fromtimestamp(btime, timezone.utc))


@pytest.mark.parametrize("version, expected", [
    ("#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-10-21)", datetime(2025, 10, 21, tzinfo=timezone.utc)),
    ("#1 SMP PREEMPT_DYNAMIC Tue Oct  8 12:34:56 UTC 2024", datetime(2024, 10, 8, 12, 34, 56, tzinfo=timezone.utc)),
    ("#1 SMP Wed Mar 5 02:01:00 CST 2025", datetime(2025, 3, 5, 2, 1, tzinfo=timezone.utc)),
    ("#1 SMP PREEMPT_DYNAMIC @0", None),
])
def test_kernel_build_dates_as_distributions_print_them(version, expected):
    assert upkeep.kernel_build_date(version) == expected


def test_offline_root_kernel_is_dated_by_its_modules(tmp_path):
    modules = tmp_path / "lib/modules/5.10.0-216.0.0.115.oe2203sp4.x86_64"
    modules.mkdir(parents=True)
    when = datetime(2024, 5, 6, tzinfo=timezone.utc).timestamp()
    os.utime(modules, (when, when))
    facts = upkeep.kernel_facts(RootHost(str(tmp_path)))
    assert facts["built"] is None and facts["installed"] == "2024-05-06T00:00:00Z"


def test_the_inventory_carries_the_facts_and_the_collector_reads_them(tmp_path):
    root = tmp_path / "root"
    make_wtmp(root / "var/log/wtmp", [(datetime(2026, 11, 2, 10, tzinfo=timezone.utc), "alice")])
    body = {"os": {"hostname": "h", "os_id": "debian", "os_version": "12", "os_name": "Debian", "family": "debian",
                   "arch": "x86_64", "kernel": None}, "arch": "x86_64",
            "upkeep": upkeep.collect(RootHost(str(root)), now=datetime(2026, 11, 25, tzinfo=timezone.utc))}
    inv = InventoryBody.model_validate(body)
    assert inv.upkeep is not None and inv.upkeep.logins.weeks and inv.upkeep.packages.error
    assert InventoryBody.model_validate({k: v for k, v in body.items() if k != "upkeep"}).upkeep is None


def test_inbound_connections_count_what_ss_shows_from_other_hosts():
    """Loopback peers are the host talking to itself: a connection the test makes on 127.0.0.1 is not counted."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        ss = _need("ss")
        listening = {line.split()[3].rsplit(":", 1)[1] for line in subprocess.run(
            [ss, "-Htln"], capture_output=True, text=True, check=True).stdout.splitlines()}
        established = subprocess.run([ss, "-Htn", "state", "established"], capture_output=True, text=True,
                                     check=True).stdout.splitlines()
        expected = 0
        for line in established:
            local, peer = line.split()[2], line.split()[3]
            peer_ip = peer.rsplit(":", 1)[0].strip("[]")
            if local.rsplit(":", 1)[1] in listening and not (peer_ip.startswith("127.") or peer_ip == "::1"
                                                             or peer_ip.startswith("::ffff:127.")):
                expected += 1
        assert inbound_connections() == expected
        sample = Sampler(4).sample()
        assert sample["inbound_connections"] == expected
    finally:
        for s in (accepted, client, server):
            s.close()


def test_last_package_change_from_an_rpm_database_the_real_rpm_wrote(tmp_path):
    """A package recorded by the real rpm (4.16+: rpmdb.sqlite) into a root of its own; the probe reads the newest
    INSTALLTIME from the headers without writing a byte, and agrees with what `rpm -q` prints."""
    rpm, rpmbuild = _need("rpm"), _need("rpmbuild")
    top = tmp_path / "build"
    (top / "SPECS").mkdir(parents=True)
    (top / "SPECS/zb.spec").write_text("Name: zb-test\nVersion: 1.0\nRelease: 1\nSummary: zombie test\nLicense: MIT\n"
                                       "BuildArch: noarch\n%description\ntest\n%files\n")
    subprocess.run([rpmbuild, "--define", f"_topdir {top}", "-bb", str(top / "SPECS/zb.spec")], check=True,
                   capture_output=True, timeout=120)
    (package,) = (top / "RPMS/noarch").glob("zb-test-*.rpm")
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    base = [rpm, "--root", str(root), "--dbpath", "/var/lib/rpm"]
    subprocess.run(base + ["--initdb"], check=True, capture_output=True, timeout=60)
    host = RootHost(str(root))
    assert "lists no installed package" in upkeep.collect(host)["packages"]["error"]
    before = int(time.time())
    subprocess.run(base + ["-i", "--justdb", "--nodeps", "--noscripts", "--ignoreos", str(package)], check=True,
                   capture_output=True, timeout=120)
    after = int(time.time())
    printed = subprocess.run(base + ["-q", "zb-test", "--qf", "%{INSTALLTIME}"], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    state = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    facts = upkeep.last_package_change(host)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == state, "the probe wrote nothing"
    assert facts["manager"] == "rpm" and facts["source"] == "/var/lib/rpm/rpmdb.sqlite INSTALLTIME"
    assert before <= int(printed) <= after
    assert facts["last_change"] == upkeep.iso(datetime.fromtimestamp(int(printed), timezone.utc))


@pytest.mark.root
def test_web_requests_counted_from_what_the_real_nginx_logged(tmp_path):
    """nginx started by the test on loopback logs in its default combined format; the realip module takes the client
    address from X-Forwarded-For, so the log holds other hosts' requests as a proxied site's does. Requests from the
    host itself are not use; a rotated file in the same format adds its week; a log in another format is an error."""
    import socket
    import urllib.request

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx) or os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs nginx (tests/setup-machine.sh) and root")
    root = tmp_path / "root"
    logs = root / "var/log/nginx"
    logs.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "nginx"
    work.mkdir()
    conf = work / "nginx.conf"
    temps = " ".join(f"{t}_temp_path {work}/{t};" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"pid {work}/nginx.pid; error_log {work}/error.log; events {{}}\n"
                    f"http {{ access_log {logs}/access.log combined; {temps}\n"
                    f"  set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For;\n"
                    f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }} }}\n")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        sent = ["10.0.0.7"] * 40 + ["10.0.0.8"] * 20 + ["127.0.0.1"] * 30 + [None] * 5  # None: no header
        for client in sent:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": client} if client
                                         else {})
            assert urllib.request.urlopen(req, timeout=10).read() == b"ok\n"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = (logs / "access.log").read_text().splitlines()
    assert len(lines) == len(sent) and lines[0].startswith("10.0.0.7 - - [")
    # last week's rotation, in the format nginx wrote, a week earlier
    def earlier(line: str, days: int = 7) -> str:
        when = upkeep.access_line(line)[0] - timedelta(days=days)
        return upkeep._CLF_TIME.sub(when.strftime("[%d/%b/%Y:%H:%M:%S +0000]"), line)

    week_ago = [earlier(line) for line in lines[:10]]
    (logs / "access.log.1").write_text("\n".join(week_ago) + "\n")
    now = datetime.now(timezone.utc)
    facts = upkeep.collect(RootHost(str(root)), now=now)["requests"]
    weeks = {w["start"]: (w["requests"], w["clients"]) for w in facts["weeks"]}
    this, last = upkeep.week_start(now.date()), upkeep.week_start(now.date() - timedelta(days=7))
    assert weeks[this.isoformat()] == (60, 2), "the host's own 35 requests are not use"
    assert weeks[last.isoformat()] == (10, 1)
    assert facts["source"] == ["/var/log/nginx/access.log", "/var/log/nginx/access.log.1"]
    assert facts["unparsed"] == 0
    assert datetime.fromisoformat(facts["since"].replace("Z", "+00:00")) <= now - timedelta(days=7)
    assert "10.0.0.7" not in repr(facts), "client addresses never leave the host"
    with gzip.open(logs / "access.log.2.gz", "wt") as gz:  # an older rotation, compressed as logrotate leaves it
        gz.write("\n".join(earlier(line, 14) for line in lines[:5]) + "\n")
    facts = upkeep.collect(RootHost(str(root)), now=now)["requests"]
    weeks = {w["start"]: w["requests"] for w in facts["weeks"]}
    assert weeks[upkeep.week_start(now.date() - timedelta(days=14)).isoformat()] == 5
    (logs / "access.log.1").write_text('{"time": "2026-12-01T00:00:00Z", "client": "10.0.0.9"}\n')
    assert "no line in the common or combined log format" in upkeep.collect(RootHost(str(root)))["requests"]["error"]


@pytest.mark.parametrize("how", ["timezone", "localtime"])
def test_an_offline_roots_dpkg_log_is_read_in_the_roots_time_zone(tmp_path, how):
    """dpkg logs local time: a node mounted at /host (the DaemonSet) is read in its own zone, as GNU date reads it."""
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    (tmp_path / "var/log").mkdir()
    (tmp_path / "var/log/dpkg.log").write_text("2026-01-01 08:30:00 startup archives unpack\n"
                                               "2026-01-01 08:30:00 upgrade bash:amd64 5.2-1 5.2-2\n")
    (tmp_path / "etc").mkdir()
    if how == "timezone":
        (tmp_path / "etc/timezone").write_text("Asia/Shanghai\n")
    else:
        (tmp_path / "etc/localtime").symlink_to("/usr/share/zoneinfo/Asia/Shanghai")
    expected = subprocess.run(["date", "-u", "-d", "TZ=\"Asia/Shanghai\" 2026-01-01 08:30:00", "+%Y-%m-%dT%H:%M:%SZ"],
                              capture_output=True, text=True, check=True).stdout.strip()
    facts = upkeep.last_package_change(RootHost(str(tmp_path)))
    assert facts["last_change"] == expected == "2026-01-01T00:30:00Z"
