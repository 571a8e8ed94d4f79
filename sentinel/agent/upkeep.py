"""Upkeep and use facts for zombie-system detection (僵尸信息系统, sentinel/zombie.py), sent in the inventory's
`upkeep` key: when packages last changed, when the configuration under /etc last changed, how old the running
kernel is, and how many logins and distinct users each week's login records hold.

Every fact is read through the HostView, read-only, and is either known or carries the reason it is not
(`{"error": ...}`): the collector never reads a fact it was not given as "nothing happened". User names never
leave the host: only counts do.

Sources (docs/zombie.md says why each):
- packages: dpkg's log (`/var/log/dpkg.log` and its rotations, install/upgrade/remove/purge lines, local time as
  dpkg writes it) and the newest `/var/lib/dpkg/info/*.list` (dpkg writes a package's file list when it unpacks
  it); RPM: the newest INSTALLTIME of the packages in rpmdb.sqlite, read without locks or writes (`rpm -qa` only
  for the older Berkeley DB format on the live host);
- configuration: the newest modification time of a file or directory under /etc (not following symlinks,
  one file system), leaving out the files the system rewrites by itself (ld.so.cache, adjtime, ...);
- kernel: the running kernel's build date from `uname -v` (/proc/sys/kernel/version) where the distribution
  prints one, the time its modules were installed (/lib/modules/<release>), and the boot time;
- requests: the web servers' access logs at their packages' default paths (nginx, Apache httpd as Debian and the
  RHEL family install them; the last ACCESS_TAIL bytes of each file): requests from clients other than the host
  itself per ISO week, with distinct client addresses counted on the host (addresses never leave it), and the
  time the lines read start (`since`). The common and combined formats both servers log by default, and Apache's
  vhost_combined; lines in another format are counted as `unparsed`, and a file with none that parses is an error;
- logins: the wtmp records (`/var/log/wtmp`, then `/var/log/wtmp.1`): USER_PROCESS entries per ISO week, with
  distinct user names counted on the host, and the time the records start (`since`): weeks before it are not
  covered, so not "no logins". Records holding no entry at all (not even a boot) are not being written (a
  container, wtmp turned off): an error, never "nobody logged in".
"""
from __future__ import annotations

import gzip
import ipaddress
import logging
import os
import re
import sqlite3
import stat as stat_mod
import struct
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..hostview import HostView, ProbeError, run_command

log = logging.getLogger(__name__)

WEEKS = 8  # login weeks sent: enough for the rules' default four full weeks, whatever the day of the week
ETC_MAX_ENTRIES = 50_000  # a bound on the /etc walk; past it the fact is an error, not a partial answer
#: files under /etc the system itself rewrites (a boot, DHCP, ldconfig after any library install): their times
#: say nothing about whether anyone maintains the system's configuration
ETC_AUTOMATIC = frozenset({"/etc/adjtime", "/etc/ld.so.cache", "/etc/mtab", "/etc/resolv.conf",
                           "/etc/.pwd.lock", "/etc/machine-id", "/etc/resolv.conf.bak", "/etc/blkid.tab"})
DPKG_ACTIONS = frozenset({"install", "upgrade", "remove", "purge"})
_DPKG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (\S+) ")

# glibc's struct utmp on Linux (x86_64, aarch64 and the other 64-bit ABIs with 32-bit ut_tv; i386 is the same):
# ut_type, pad, ut_pid, ut_line[32], ut_id[4], ut_user[32], ut_host[256], ut_exit (2 shorts), ut_session,
# ut_tv (sec, usec), ut_addr_v6[4], unused[20]: 384 bytes
UTMP = struct.Struct("<h2xi32s4s32s256shhiii16s20s")
USER_PROCESS = 7
WTMP_FILES = ("/var/log/wtmp", "/var/log/wtmp.1")


def iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if dt is not None else None


def _from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _fact(read: Callable[[HostView], dict[str, Any]], host: HostView, what: str) -> dict[str, Any]:
    """A fact's dict, or {"error": reason} when it cannot be determined (logged, never guessed)."""
    try:
        return read(host)
    except (ProbeError, OSError, ValueError) as exc:
        log.warning("upkeep: %s unknown: %s", what, exc)
        return {"error": str(exc)[:500]}


# ---- packages --------------------------------------------------------------------------------------------


def _read_bytes(host: HostView, path: str) -> bytes:
    with open(host.real_path(path), "rb") as fh:
        data = fh.read(64 << 20)
    return gzip.decompress(data) if path.endswith(".gz") else data


def host_zone(host: HostView) -> Optional[tzinfo]:
    """The time zone the host's own programs write local times in: this process's for the live host; for an offline
    root (an agent container reading its node at /host) the root's /etc/timezone or /etc/localtime link, else UTC."""
    if host.live:
        return None
    name = (host.read_optional("/etc/timezone") or "").strip()
    if not name:
        try:
            target = os.readlink(host.real_path("/etc/localtime", follow=False))
        except OSError:
            target = ""
        name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("upkeep: time zone %r of %s unknown here; its local times are read as UTC", name, host.root)
        return timezone.utc


def dpkg_log_last(text: str, zone: Optional[tzinfo] = None) -> Optional[datetime]:
    """The newest install/upgrade/remove/purge line of a dpkg log, in the local time zone dpkg wrote it in (`zone`;
    None: this process's)."""
    newest: Optional[datetime] = None
    for line in text.splitlines():
        m = _DPKG_LINE.match(line)
        if m and m.group(2) in DPKG_ACTIONS:
            naive = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")  # local time, as dpkg logs
            when = naive.astimezone() if zone is None else naive.replace(tzinfo=zone)
            if newest is None or when > newest:
                newest = when
    return newest


def last_package_change(host: HostView) -> dict[str, Any]:
    if host.exists("/var/lib/dpkg/status"):
        found: list[tuple[datetime, str]] = []
        for path in host.glob("/var/log/dpkg.log*"):
            when = dpkg_log_last(_read_bytes(host, path).decode("utf-8", errors="replace"), host_zone(host))
            if when is not None:
                found.append((when, path))
        lists = [p for p in host.glob("/var/lib/dpkg/info/*.list")]
        if lists:
            newest = max(lists, key=lambda p: host.stat(p, follow=False).st_mtime)
            found.append((_from_ts(host.stat(newest, follow=False).st_mtime), newest))
        if not found:
            raise ProbeError("dpkg: neither /var/log/dpkg.log* nor /var/lib/dpkg/info/*.list shows a package change")
        when, source = max(found)
        return {"last_change": iso(when), "source": source, "manager": "dpkg"}
    for path in RPM_SQLITE:
        if host.exists(path):
            times = rpm_sqlite_installtimes(host.real_path(path))
            if not times:
                raise ProbeError(f"{path}: the RPM database lists no installed package")
            return {"last_change": iso(_from_ts(max(times))), "source": f"{path} INSTALLTIME", "manager": "rpm"}
    for path in RPM_BDB:
        if host.exists(path):
            if not host.live:  # `rpm -qa` would read this machine's database, not the mounted root's
                raise ProbeError(f"{path}: a Berkeley DB RPM database under an offline root cannot be read")
            result = run_command(["rpm", "-qa", "--qf", "%{INSTALLTIME}\\n"], timeout=120)
            if not result.ok:
                raise ProbeError(f"`rpm -qa` failed: {result.stderr.strip()[:200] or result.returncode}")
            times = [int(t) for t in result.stdout.split() if t.isdigit()]
            if not times:
                raise ProbeError("the RPM database lists no installed package")
            return {"last_change": iso(_from_ts(max(times))), "source": "rpm INSTALLTIME", "manager": "rpm"}
    raise ProbeError("no package database found (/var/lib/dpkg/status, rpmdb.sqlite, rpm Packages)")


RPMTAG_INSTALLTIME = 1008
RPM_SQLITE = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
RPM_BDB = ("/var/lib/rpm/Packages", "/var/lib/rpm/Packages.db", "/usr/lib/sysimage/rpm/Packages.db")
_RPM_INDEX = struct.Struct(">iiii")  # tag, type, offset, count


def header_installtime(blob: bytes) -> Optional[int]:
    """INSTALLTIME (tag 1008, one INT32) of an rpm header as the sqlite backend stores it: big-endian index
    count and data length, the 16-byte index entries, then the data store."""
    if len(blob) < 8:
        return None
    count, _length = struct.unpack_from(">ii", blob)
    store = 8 + count * _RPM_INDEX.size
    for i in range(count):
        tag, kind, offset, n = _RPM_INDEX.unpack_from(blob, 8 + i * _RPM_INDEX.size)
        if tag == RPMTAG_INSTALLTIME and kind == 4 and n >= 1 and store + offset + 4 <= len(blob):
            return int(struct.unpack_from(">I", blob, store + offset)[0])
    return None


def rpm_sqlite_installtimes(path: str) -> list[int]:
    # immutable=1: read without locks and without making WAL/shm files (the host is never written)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            blobs = [row[0] for row in conn.execute("SELECT blob FROM Packages")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ProbeError(f"{path}: cannot read the RPM database: {exc}") from exc
    return [t for t in (header_installtime(bytes(b)) for b in blobs if b) if t is not None]


# ---- configuration -------------------------------------------------------------------------------------


def last_config_change(host: HostView, top: str = "/etc") -> dict[str, Any]:
    """The newest mtime of an entry under `top` (symlinks not followed, other file systems not entered)."""
    real_top = host.real_path(top)
    device = os.lstat(real_top).st_dev
    newest: Optional[tuple[float, str]] = None
    entries = 0
    stack = [top]
    while stack:
        directory = stack.pop()
        for name in host.listdir(directory):
            path = f"{directory.rstrip('/')}/{name}"
            entries += 1
            if entries > ETC_MAX_ENTRIES:
                raise ProbeError(f"{top}: more than {ETC_MAX_ENTRIES} entries; the walk was stopped")
            try:
                st = host.stat(path, follow=False)
            except FileNotFoundError:
                continue  # removed while walking
            if stat_mod.S_ISDIR(st.st_mode):
                if st.st_dev == device:
                    stack.append(path)
                else:
                    continue
            if path in ETC_AUTOMATIC:
                continue
            if newest is None or st.st_mtime > newest[0]:
                newest = (st.st_mtime, path)
    if newest is None:
        raise ProbeError(f"{top} is empty or missing")
    return {"last_change": iso(_from_ts(newest[0])), "path": newest[1], "entries": entries}


# ---- kernel ------------------------------------------------------------------------------------------------

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
# "... Debian 6.1.158-1 (2025-10-21)" (Debian, Ubuntu) or "... Tue Oct  8 12:00:00 UTC 2024" (RHEL family, kylin)
_ISO_DATE = re.compile(r"\((\d{4})-(\d{2})-(\d{2})\)\s*$")
_C_DATE = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (?:\S+ )?(\d{4})\s*$")


def kernel_build_date(version: str) -> Optional[datetime]:
    """The build date `uname -v` prints, when it prints one (reproducible builds print none or `@0`)."""
    m = _ISO_DATE.search(version)
    if m:
        return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=timezone.utc)
    m = _C_DATE.search(version)
    if m and m.group(1) in _MONTHS:
        return datetime(int(m.group(6)), _MONTHS.index(m.group(1)) + 1, int(m.group(2)), int(m.group(3)),
                        int(m.group(4)), int(m.group(5)), tzinfo=timezone.utc)
    return None


def kernel_facts(host: HostView) -> dict[str, Any]:
    release = host.kernel()
    if not release:
        raise ProbeError("the kernel release is unknown (no /lib/modules, no /boot/vmlinuz-*)")
    out: dict[str, Any] = {"release": release, "built": None, "installed": None, "booted": None}
    if host.live:
        # a small read: some kernels refuse a large one on sysctl files (ENOMEM)
        version = host.read_text("/proc/sys/kernel/version", limit=4096).strip()
        out["version"] = version[:200]
        out["built"] = iso(kernel_build_date(version))
        for line in host.read_text("/proc/stat", limit=1 << 20).splitlines():
            if line.startswith("btime "):
                out["booted"] = iso(_from_ts(int(line.split()[1])))
    for directory in (f"/lib/modules/{release}", f"/usr/lib/modules/{release}"):
        if host.is_dir(directory):
            out["installed"] = iso(_from_ts(host.stat(directory).st_mtime))
            break
    if out["built"] is None and out["installed"] is None:
        raise ProbeError(f"kernel {release}: neither `uname -v` nor /lib/modules/{release} dates it")
    return out


# ---- logins -------------------------------------------------------------------------------------------------


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())  # Monday of its ISO week


def wtmp_logins(data: bytes) -> list[tuple[datetime, str]]:
    """(time, user) of each USER_PROCESS record of a wtmp file's bytes; any other record is left out."""
    out = []
    for offset in range(0, len(data) - UTMP.size + 1, UTMP.size):
        ut_type, _pid, _line, _id, user, _host, _t, _e, _sess, sec, _usec, _addr, _unused = UTMP.unpack_from(
            data, offset)
        if ut_type == USER_PROCESS and sec > 0:
            name = user.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            if name:
                out.append((_from_ts(sec), name))
    return out


def first_record(data: bytes) -> Optional[datetime]:
    times = [UTMP.unpack_from(data, off)[9] for off in range(0, len(data) - UTMP.size + 1, UTMP.size)]
    times = [t for t in times if t > 0]
    return _from_ts(min(times)) if times else None


def login_weeks(host: HostView, now: Optional[datetime] = None, weeks: int = WEEKS) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    records: list[tuple[datetime, str]] = []
    sources, since = [], None
    for path in WTMP_FILES:
        if not host.exists(path):
            continue
        data = _read_bytes(host, path)
        if len(data) % UTMP.size:
            raise ProbeError(f"{path}: {len(data)} bytes is not a whole number of {UTMP.size}-byte utmp records")
        sources.append(path)
        records += wtmp_logins(data)
        start = first_record(data)
        if start is not None:
            since = start if since is None else min(since, start)
    if not sources:
        raise ProbeError("no login records (/var/log/wtmp, /var/log/wtmp.1)")
    if since is None:
        # a host that writes wtmp records at least its boots: records holding nothing at all are not being kept
        # (a container, or wtmp turned off), which says nothing about logins
        raise ProbeError(f"{', '.join(sources)}: no record at all, not even a boot: logins are not recorded here")
    first_week = week_start(now.date()) - timedelta(weeks=weeks - 1)
    logins: dict[date, int] = defaultdict(int)
    users: dict[date, set[str]] = defaultdict(set)
    for when, user in records:
        week = week_start(when.date())
        if week >= first_week:
            logins[week] += 1
            users[week].add(user)
    rows = [{"start": (first_week + timedelta(weeks=i)).isoformat(),
             "logins": logins.get(first_week + timedelta(weeks=i), 0),
             "users": len(users.get(first_week + timedelta(weeks=i), ()))} for i in range(weeks)]
    last = max((when for when, _ in records), default=None)
    return {"source": sources, "since": iso(since), "weeks": rows, "last_login": iso(last)}


# ---- application requests ---------------------------------------------------------------------------------

ACCESS_LOGS = ("/var/log/nginx/access.log*", "/var/log/apache2/access.log*",
               "/var/log/apache2/other_vhosts_access.log*", "/var/log/httpd/access_log*",
               "/var/log/httpd/ssl_access_log*")
ACCESS_TAIL = 64 << 20  # bytes read from the end of each file: a busy site's log is judged on its recent part
# `[03/Dec/2026:14:00:00 +0800]`: %t of Apache's common/combined/vhost_combined, $time_local of nginx's
_CLF_TIME = re.compile(r"\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\]")


def _read_tail(host: HostView, path: str) -> bytes:
    """The file's last ACCESS_TAIL bytes from the first whole line on (a compressed rotation: all of it)."""
    if path.endswith(".gz"):  # streamed: a compressed rotation may hold far more than it weighs
        tail = b""
        with gzip.open(host.real_path(path), "rb") as gz:
            while chunk := gz.read(8 << 20):
                tail = (tail + chunk)[-ACCESS_TAIL:]
        return tail.split(b"\n", 1)[1] if len(tail) == ACCESS_TAIL and b"\n" in tail else tail
    with open(host.real_path(path), "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - ACCESS_TAIL))
        data = fh.read(ACCESS_TAIL)
    if size > ACCESS_TAIL:
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data


def access_line(line: str) -> Optional[tuple[datetime, str]]:
    """(time, client address) of a common/combined (or vhost_combined) log line; None for any other line."""
    m = _CLF_TIME.search(line)
    if m is None or m.group(2) not in _MONTHS:
        return None
    head = line[:m.start()].split()
    if len(head) < 3:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    when = datetime(int(year), _MONTHS.index(mon) + 1, int(day), int(hh), int(mm), int(ss), tzinfo=timezone.utc)
    return when - offset, head[-3]  # client, ident, user before the time (vhost:port first in vhost_combined)


def _is_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address == "localhost"


def access_requests(host: HostView, now: Optional[datetime] = None, weeks: int = WEEKS) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    paths = [p for pattern in ACCESS_LOGS for p in host.glob(pattern)]
    if not paths:  # no web server here (or not at its package's paths): nothing to count, and no error either
        return {"source": [], "since": None, "weeks": [], "unparsed": 0}
    first_week = week_start(now.date()) - timedelta(weeks=weeks - 1)
    requests: dict[date, int] = defaultdict(int)
    clients: dict[date, set[str]] = defaultdict(set)
    since: Optional[datetime] = None
    unparsed = 0
    read = []
    for path in paths:
        parsed = 0
        lines = _read_tail(host, path).decode("utf-8", errors="replace").splitlines()
        for line in lines:
            found = access_line(line)
            if found is None:
                unparsed += bool(line.strip())
                continue
            parsed += 1
            when, client = found
            since = when if since is None or when < since else since
            week = week_start(when.date())
            if week >= first_week and not _is_local(client):
                requests[week] += 1
                clients[week].add(client)
        if parsed:
            read.append(path)
        elif any(line.strip() for line in lines):
            raise ProbeError(f"{path}: no line in the common or combined log format")
    if since is None:
        raise ProbeError(f"{', '.join(paths)}: no request logged")
    rows = [{"start": (first_week + timedelta(weeks=i)).isoformat(),
             "requests": requests.get(first_week + timedelta(weeks=i), 0),
             "clients": len(clients.get(first_week + timedelta(weeks=i), ()))} for i in range(weeks)]
    return {"source": read[:8], "since": iso(since), "weeks": rows, "unparsed": unparsed}


def collect(host: HostView, now: Optional[datetime] = None) -> dict[str, Any]:
    return {
        "packages": _fact(last_package_change, host, "last package change"),
        "config": _fact(last_config_change, host, "last configuration change"),
        "kernel": _fact(kernel_facts, host, "kernel age"),
        "logins": _fact(lambda h: login_weeks(h, now), host, "logins per week"),
        "requests": _fact(lambda h: access_requests(h, now), host, "web requests per week"),
    }
