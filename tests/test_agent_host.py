"""Utilisation sampler, host inventory and the check process's lowered priority."""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import psutil
import pytest

from sentinel.agent.inventory import addresses, collect, count_dpkg, cpu_model, packages_count
from sentinel.agent.sampler import Sampler
from sentinel.collector.wire import InventoryBody
from sentinel.hostview import LiveHost, ProbeError, RootHost

DPKG_STATUS = textwrap.dedent("""\
    Package: bash
    Status: install ok installed
    Version: 5.2

    Package: removed-thing
    Status: deinstall ok config-files
    Version: 1.0

    Package: openssh-server
    Priority: optional
    Status: install ok installed

    Package: half
    Status: install ok half-configured
    """)


def _root(tmp_path, files: dict):
    for rel, content in files.items():
        path = tmp_path / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return RootHost(str(tmp_path))


def test_sampler_values_and_bounded_ring():
    sampler = Sampler(ring_size=3)
    samples = [sampler.sample() for _ in range(5)]
    for s in samples:
        assert 0 <= s["cpu_percent"] <= 100 and 0 < s["memory_percent"] <= 100
        assert s["net_bytes_sent"] >= 0 and s["net_bytes_recv"] >= 0 and s["logins"] >= 0
        at = dt.datetime.fromisoformat(s["at"].replace("Z", "+00:00"))
        assert abs((dt.datetime.now(dt.timezone.utc) - at).total_seconds()) < 60
    assert s["logins"] == len(psutil.users())
    assert sampler.drain() == samples[-3:]  # the oldest went first
    assert sampler.drain() == [] and len(sampler) == 0


def test_count_dpkg_counts_only_installed():
    assert count_dpkg(DPKG_STATUS) == 2
    assert count_dpkg("") == 0


def test_packages_count_debian_root(tmp_path):
    host = _root(tmp_path, {"/var/lib/dpkg/status": DPKG_STATUS})
    assert packages_count(host) == 2


def test_packages_count_rpm_sqlite_root(tmp_path):
    db = tmp_path / "var/lib/rpm/rpmdb.sqlite"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b"x",)] * 7)
    conn.commit()
    conn.close()
    before = sorted(p.name for p in db.parent.iterdir())
    assert packages_count(RootHost(str(tmp_path))) == 7
    assert sorted(p.name for p in db.parent.iterdir()) == before  # read-only: no -wal/-shm/journal made


def test_packages_count_unknown_is_an_error_with_reason(tmp_path):
    host = _root(tmp_path, {"/etc/os-release": "ID=debian\n"})
    with pytest.raises(ProbeError, match="no package database found"):
        packages_count(host)
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    (tmp_path / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(ProbeError, match="cannot read the RPM database"):
        packages_count(RootHost(str(tmp_path)))


def test_cpu_model_x86_and_arm(tmp_path):
    x86 = _root(tmp_path / "x86", {"/proc/cpuinfo": "processor\t: 0\nmodel name\t: Hygon C86 7285\n"})
    assert cpu_model(x86) == "Hygon C86 7285"
    arm = _root(tmp_path / "arm", {"/proc/cpuinfo": "processor\t: 0\nBogoMIPS\t: 200\n\nModel\t: Kunpeng 920\n"})
    assert cpu_model(arm) == "Kunpeng 920"


def test_inventory_of_this_host_matches_the_collector_schema():
    inv = collect(LiveHost())
    assert set(inv) == {"os", "arch", "cpu_model", "cpu_count", "memory_bytes", "packages_count", "addresses",
                        "agent_version", "upkeep", "domestic"}
    # the 国产化 components and 国密 state: tests/test_domestic.py
    assert {c["category"] for c in inv["domestic"]["components"]} >= {"os", "cpu"}
    # each fact against the real program: tests/test_zombie_agent.py
    assert set(inv["upkeep"]) == {"packages", "config", "kernel", "logins", "requests"}
    InventoryBody.model_validate(inv)
    assert inv["os"]["hostname"] and inv["arch"] == os.uname().machine
    assert inv["cpu_count"] == psutil.cpu_count() and inv["memory_bytes"] == psutil.virtual_memory().total
    if os.path.exists("/var/lib/dpkg/status"):
        out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\n"], capture_output=True, text=True)
        assert inv["packages_count"] == sum(1 for line in out.stdout.splitlines() if line.startswith("ii"))
    assert all(not a.startswith("127.") and a != "::1" for a in addresses())
    json.dumps(inv)  # serialisable as it is


def test_lower_priority_in_a_child():
    code = ("import os, psutil, json; from sentinel.agent.runner import lower_priority; "
            "before = os.nice(0); problems = lower_priority(7, True); "
            "print(json.dumps([before, os.nice(0), int(psutil.Process().ionice().ioclass), problems]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    before, after, ioclass, problems = json.loads(out.stdout)
    assert after == min(before + 7, 19)
    assert problems == [] and ioclass == int(psutil.IOPRIO_CLASS_IDLE)
