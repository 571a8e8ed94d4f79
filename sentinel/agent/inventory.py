"""Host inventory sent as an `inventory` envelope: os (HostInfo), arch, CPU model and count, memory,
package count, the host's own (non-loopback) addresses, and the upkeep and use facts of upkeep.py
(zombie-system detection).

The package count reads the package database directly (dpkg status file, or the RPM sqlite database
opened read-only), like the `package.*` probes do, and falls back to `rpm -qa` for the older Berkeley DB
format. A count that cannot be determined is sent as null and logged with the reason.
"""
from __future__ import annotations

import ipaddress
import logging
import platform
import socket
import sqlite3
from typing import Any, Optional

import psutil

from .. import __version__
from ..hostview import HostView, LiveHost, ProbeError, run_command
from ..osinfo import host_info
from . import domestic, upkeep

log = logging.getLogger(__name__)

_RPM_SQLITE = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
_RPM_BDB = ("/var/lib/rpm/Packages", "/var/lib/rpm/Packages.db", "/usr/lib/sysimage/rpm/Packages.db")


def cpu_model(host: HostView) -> Optional[str]:
    text = host.read_optional("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "cpu model", "Processor", "uarch"):  # x86, arm, mips/loongarch, riscv
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or None


def count_dpkg(status_text: str) -> int:
    """Packages whose status stanza says `install ok installed`."""
    count = 0
    for stanza in status_text.split("\n\n"):
        for line in stanza.splitlines():
            if line.startswith("Status:"):
                if line.split(":", 1)[1].split() == ["install", "ok", "installed"]:
                    count += 1
                break
    return count


def count_rpm_sqlite(path: str) -> int:
    # immutable=1: read without taking locks or touching the WAL/shm files (the host is never written)
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM Packages").fetchone()[0])
    finally:
        conn.close()


def packages_count(host: HostView) -> int:
    """Installed packages; ProbeError naming what was tried when no database can be read."""
    status = host.read_optional("/var/lib/dpkg/status")
    if status is not None:
        return count_dpkg(status)
    for path in _RPM_SQLITE:
        if host.exists(path):
            try:
                return count_rpm_sqlite(host.real_path(path))
            except sqlite3.Error as exc:
                raise ProbeError(f"{path}: cannot read the RPM database: {exc}") from exc
    for path in _RPM_BDB:
        if host.exists(path):
            if not host.live:  # `rpm -qa` would count this machine's packages, not the mounted root's
                raise ProbeError(f"{path}: a Berkeley DB RPM database under an offline root cannot be read")
            result = run_command(["rpm", "-qa", "--qf", "%{NAME}\\n"], timeout=60)
            if not result.ok:
                raise ProbeError(f"{path}: `rpm -qa` failed: {result.stderr.strip()[:200] or result.returncode}")
            return sum(1 for line in result.stdout.splitlines() if line.strip())
    raise ProbeError("no package database found (/var/lib/dpkg/status, rpmdb.sqlite, rpm Packages)")


def addresses() -> list[str]:
    """Sorted unicast addresses of this host's interfaces, loopback and link-local left out."""
    found = set()
    for nic_addrs in psutil.net_if_addrs().values():
        for addr in nic_addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(addr.address.split("%", 1)[0])
            except ValueError:
                continue
            if not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified):
                found.add(str(ip))
    return sorted(found, key=lambda a: (":" in a, a))[:256]


def collect(host: Optional[HostView] = None) -> dict[str, Any]:
    host = host or LiveHost()
    info = host_info(host)
    try:
        packages: Optional[int] = packages_count(host)
    except ProbeError as exc:
        log.warning("inventory: packages count unknown: %s", exc)
        packages = None
    return {
        "os": info.model_dump(mode="json"),
        "arch": info.arch,
        "cpu_model": cpu_model(host),
        "cpu_count": psutil.cpu_count(logical=True),
        "memory_bytes": psutil.virtual_memory().total,
        "packages_count": packages,
        "addresses": addresses(),
        "agent_version": __version__,  # the collector shows it as sentinel_host_info's agent_version
        "upkeep": upkeep.collect(host),
        "domestic": _domestic(host),
    }


def _domestic(host: HostView) -> Optional[dict[str, Any]]:
    """The 国产化 components (sentinel/agent/domestic.py); None, logged, when the rules cannot be read (a broken
    site file must not cost the host its inventory)."""
    from ..yamldoc import DataFileError

    try:
        return domestic.collect(host).model_dump(mode="json")
    except (DataFileError, OSError) as exc:
        log.error("inventory: 国产化 components not sent: %s", exc)
        return None
