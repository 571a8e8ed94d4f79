"""Which Linux a host view shows, and which family's file layout its checks should expect.

Family decides layouts that differ across distributions: PAM stacks (system-auth/password-auth vs
common-auth/common-password), package databases (rpm vs dpkg), log file names. It comes from os-release
`ID`, then `ID_LIKE`, then the package database actually present (Kylin and UOS ship both
Debian-based and RPM-based editions under one `ID`).
"""
from __future__ import annotations

from typing import Optional

from .hostview import HostView
from .model import HostInfo

_RHEL_IDS = {"rhel", "centos", "rocky", "almalinux", "ol", "fedora", "openeuler", "anolis", "alinux",
             "amzn", "euleros", "hce", "tencentos", "opencloudos", "circle", "neokylin", "bclinux"}
_DEBIAN_IDS = {"debian", "ubuntu", "deepin", "linuxmint", "kali", "raspbian"}
# IDs used for both an RPM-based server edition and a Debian-based desktop edition.
_AMBIGUOUS_IDS = {"kylin", "uos", "uniontech", "isoft", "nfs"}


def family_of(os_release: dict[str, str], host: Optional[HostView] = None) -> Optional[str]:
    os_id = os_release.get("ID", "").lower()
    likes = os_release.get("ID_LIKE", "").lower().split()
    if os_id in _RHEL_IDS:
        return "rhel"
    if os_id in _DEBIAN_IDS:
        return "debian"
    if os_id not in _AMBIGUOUS_IDS:
        for like in likes:
            if like in _RHEL_IDS:
                return "rhel"
            if like in _DEBIAN_IDS:
                return "debian"
    if host is not None:
        if host.exists("/var/lib/dpkg/status"):
            return "debian"
        if host.exists("/var/lib/rpm") or host.exists("/usr/lib/sysimage/rpm"):
            return "rhel"
    for like in likes:  # ambiguous ID and no package database: trust ID_LIKE
        if like in _RHEL_IDS:
            return "rhel"
        if like in _DEBIAN_IDS:
            return "debian"
    return None


def host_info(host: HostView) -> HostInfo:
    rel = host.os_release()
    return HostInfo(
        hostname=host.hostname(),
        os_id=rel.get("ID", "unknown"),
        os_version=rel.get("VERSION_ID", ""),
        os_name=rel.get("PRETTY_NAME") or rel.get("NAME") or "unknown",
        family=family_of(rel, host),
        arch=host.arch(),
        kernel=host.kernel(),
        root=host.root,
    )
