"""`package.installed`: installed packages from the host's own package database.

dpkg: /var/lib/dpkg/status stanzas whose Status is `<want> ok installed`. rpm: rpmdb.sqlite read
directly (read-only, immutable: nothing is written next to the inspected database) and the header blob
of each package parsed; a Berkeley DB `Packages` or ndb `Packages.db` needs the `rpm` tool, which is
run on a private copy of the database directory for an offline root.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from fnmatch import translate
from typing import Optional

from pydantic import Field, field_validator

from sentinel.hostview import ProbeError, run_command
from sentinel.model import Evidence, Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import read_lines

DPKG_STATUS = "/var/lib/dpkg/status"
RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")

# rpm header tags and types (rpmtag.h)
TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH = 1000, 1001, 1002, 1003, 1022
TYPE_INT32, TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING = 4, 6, 8, 9
_WANTED_TAGS = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH}


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # dpkg: Version as written (epoch included); rpm: VERSION-RELEASE
    arch: str
    source: str  # database path
    line: Optional[int] = None  # dpkg: line of the `Package:` field
    epoch: Optional[int] = None

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass
class PackageDB:
    kind: str  # dpkg, rpm-sqlite, rpm-bdb, rpm-ndb
    source: str
    packages: list[Package]


# ---- dpkg ----------------------------------------------------------------------------------------


def _dpkg(ctx: ProbeContext) -> PackageDB:
    lines = read_lines(ctx, DPKG_STATUS) or []
    packages: list[Package] = []
    fields: dict[str, str] = {}
    start = 0

    def flush() -> None:
        status = fields.get("status", "").split()
        if fields.get("package") and len(status) == 3 and status[2] == "installed":
            packages.append(Package(fields["package"], fields.get("version", ""), fields.get("architecture", ""),
                                    DPKG_STATUS, start))

    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            if fields:
                flush()
            fields = {}
            continue
        if raw[0] in " \t":
            continue  # continuation of a multi-line field (Description, Conffiles)
        key, sep, value = raw.partition(":")
        if not sep:
            raise ProbeError(f"{DPKG_STATUS}:{number}: malformed line {raw[:80]!r}",
                             f"{DPKG_STATUS} 第 {number} 行格式错误: {raw[:80]!r}")
        key = key.lower()
        if key == "package":
            start = number
        fields[key] = value.strip()
    if fields:
        flush()
    return PackageDB("dpkg", DPKG_STATUS, packages)


# ---- rpm header blobs ----------------------------------------------------------------------------


def parse_rpm_header(blob: bytes) -> dict[int, object]:
    """NAME/VERSION/RELEASE/EPOCH/ARCH of one header blob as stored in rpmdb.sqlite.

    Layout (big-endian): int32 index count, int32 data length, that many 16-byte index entries
    (tag, type, offset, count), then the data store. Raises ValueError when malformed.
    """
    if len(blob) < 8:
        raise ValueError("header shorter than 8 bytes")
    il, dl = struct.unpack_from(">ii", blob, 0)
    data_start = 8 + il * 16
    if il < 1 or dl < 0 or data_start + dl > len(blob):
        raise ValueError(f"bad header sizes (index {il}, data {dl}, blob {len(blob)})")
    out: dict[int, object] = {}
    for i in range(il):
        tag, typ, offset, count = struct.unpack_from(">iiii", blob, 8 + i * 16)
        if tag not in _WANTED_TAGS:
            continue
        if offset < 0 or offset >= dl:
            raise ValueError(f"tag {tag}: offset {offset} outside data ({dl})")
        pos = data_start + offset
        end = data_start + dl
        if typ in (TYPE_STRING, TYPE_I18NSTRING, TYPE_STRING_ARRAY):
            nul = blob.find(b"\0", pos, end)
            if nul < 0:
                raise ValueError(f"tag {tag}: unterminated string")
            out[tag] = blob[pos:nul].decode("utf-8", errors="replace")
        elif typ == TYPE_INT32:
            if pos + 4 > end or count < 1:
                raise ValueError(f"tag {tag}: int32 outside data")
            out[tag] = struct.unpack_from(">i", blob, pos)[0]
    return out


def _rpm_sqlite(ctx: ProbeContext, path: str) -> PackageDB:
    real = ctx.host.real_path(path)
    wal = real + "-wal"
    if os.path.isfile(wal) and os.path.getsize(wal) > 0:
        # Recent transactions may still sit in the write-ahead log, which an immutable open would
        # ignore; read a private copy of database + log instead (never touching the host's files).
        with tempfile.TemporaryDirectory(prefix="sentinel-rpmdb-") as tmp:
            copy = os.path.join(tmp, "rpmdb.sqlite")
            shutil.copyfile(real, copy)
            shutil.copyfile(wal, copy + "-wal")
            rows = _sqlite_rows(path, copy, immutable=False)
    else:
        rows = _sqlite_rows(path, real, immutable=True)
    packages = []
    for hnum, blob in rows:
        try:
            tags = parse_rpm_header(bytes(blob))
        except (ValueError, struct.error) as exc:
            raise ProbeError(f"{path}: package header #{hnum} is malformed: {exc}") from exc
        if TAG_NAME not in tags:
            raise ProbeError(f"{path}: package header #{hnum} has no NAME tag")
        version = f"{tags.get(TAG_VERSION, '')}-{tags.get(TAG_RELEASE, '')}"
        epoch = tags.get(TAG_EPOCH)
        packages.append(Package(str(tags[TAG_NAME]), version, str(tags.get(TAG_ARCH, "")), path,
                                epoch=epoch if isinstance(epoch, int) else None))
    return PackageDB("rpm-sqlite", path, packages)


def _sqlite_rows(path: str, real: str, immutable: bool) -> list:
    import sqlite3  # only hosts with an rpm database pay for the import
    from urllib.parse import quote

    # the host's own file: read-only and immutable (no lock, journal or -shm file is ever created);
    # a private copy may be opened normally so its write-ahead log can be applied
    uri = f"file:{quote(real)}" + ("?mode=ro&immutable=1" if immutable else "")
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            return con.execute("SELECT hnum, blob FROM Packages").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ProbeError(f"{path}: cannot read the rpm sqlite database: {exc}",
                         f"{path}：无法读取 rpm sqlite 数据库：{exc}") from exc


def rpm_tool() -> Optional[str]:
    """The scanning machine's rpm binary, if any."""
    return shutil.which("rpm", path="/usr/sbin:/usr/bin:/sbin:/bin")


_QF = "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"


def _rpm_with_tool(ctx: ProbeContext, directory: str, path: str, kind: str) -> PackageDB:
    fmt = "Berkeley DB" if kind == "rpm-bdb" else "ndb"
    tool = rpm_tool()
    if tool is None:
        raise ProbeError(f"{path}: rpm database in {fmt} format needs the rpm tool, which is not installed "
                         "on the scanning machine", f"{path}：{fmt} 格式的 rpm 数据库需要 rpm 工具读取，本机未安装")
    # rpm may create lock/environment files (__db.*) next to a Berkeley DB even for a query: give it a
    # private copy of the database directory, live or offline, so the inspected host is never written.
    with tempfile.TemporaryDirectory(prefix="sentinel-rpmdb-") as tmp:
        real_dir = ctx.host.real_path(directory)
        for name in os.listdir(real_dir):
            src = os.path.join(real_dir, name)
            if os.path.isfile(src) and not name.startswith("__db"):
                shutil.copyfile(src, os.path.join(tmp, name))
        argv = [tool, "--dbpath", tmp, "-qa", "--qf", _QF]
        result = run_command(argv, timeout=60)
        return _parse_rpm_output(result, argv, path, kind)


def _parse_rpm_output(result, argv, path: str, kind: str) -> PackageDB:
    if result.timed_out:
        raise ProbeError(f"{' '.join(argv)} timed out after {result.duration_s:.0f}s")
    if result.returncode != 0:
        raise ProbeError(f"{path}: rpm could not read the database (exit {result.returncode}): "
                         f"{result.stderr.strip()[:500]}",
                         f"{path}：rpm 无法读取该数据库（退出码 {result.returncode}）：{result.stderr.strip()[:500]}")
    packages = []
    for row in result.stdout.splitlines():
        parts = row.split("\t")
        if len(parts) == 3:
            packages.append(Package(parts[0], parts[1], parts[2], path))
    return PackageDB(kind, path, packages)


def _rpm(ctx: ProbeContext) -> Optional[PackageDB]:
    for directory in RPM_DIRS:
        sqlite_path = f"{directory}/rpmdb.sqlite"
        if ctx.host.exists(sqlite_path):
            return _rpm_sqlite(ctx, sqlite_path)
    for directory in RPM_DIRS:
        for name, kind in (("Packages", "rpm-bdb"), ("Packages.db", "rpm-ndb")):
            path = f"{directory}/{name}"
            if ctx.host.exists(path):
                return _rpm_with_tool(ctx, directory, path, kind)
    return None


def package_db(ctx: ProbeContext) -> PackageDB:
    """The host's package database, the family's own kind first (cached per run)."""

    def load() -> PackageDB:
        has_dpkg = ctx.host.exists(DPKG_STATUS)
        order = ("dpkg", "rpm") if ctx.family == "debian" or (ctx.family is None and has_dpkg) else ("rpm", "dpkg")
        for kind in order:
            if kind == "dpkg" and has_dpkg:
                return _dpkg(ctx)
            if kind == "rpm":
                db = _rpm(ctx)
                if db is not None:
                    return db
        looked = ", ".join([DPKG_STATUS] + [f"{d}/rpmdb.sqlite, {d}/Packages, {d}/Packages.db" for d in RPM_DIRS])
        raise ProbeError(f"no package database found (looked for {looked})", f"未找到软件包数据库（查找了 {looked}）")

    return ctx.cached(("packages", "db"), load)


def find_installed(ctx: ProbeContext, patterns: list[str]) -> tuple[list[Package], PackageDB]:
    db = package_db(ctx)
    # One compiled pattern for all names: a package database holds a thousand or more packages.
    matcher = re.compile("|".join(f"(?:{translate(p.lower())})" for p in patterns))
    hits = [pkg for pkg in db.packages if matcher.match(pkg.name.lower())]
    return hits, db


class PackageParams(Strict):
    names: list[str] = Field(min_length=1)

    @field_validator("names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or any(ch.isspace() for ch in name) or "/" in name:
                raise ValueError(f"{name!r} is not a package name or glob")
        return v


@probe("package.installed", PackageParams)
def package_installed(ctx: ProbeContext, params: PackageParams) -> Observation:
    """Sorted `name-version` of installed packages matching any of `names` (globs allowed)."""
    hits, db = find_installed(ctx, params.names)
    labels = sorted({p.label for p in hits})
    ev: list[Evidence] = []
    for pkg in sorted(hits, key=lambda p: p.label)[:50]:
        detail = f"{pkg.name} {pkg.version} {pkg.arch}".strip()
        if db.kind == "dpkg":
            ev.append(evidence(db.source, f"Package: {pkg.name} (Version: {pkg.version}, Architecture: "
                                          f"{pkg.arch}, Status: installed)", pkg.line))
        else:
            ev.append(evidence(db.source, f"{db.kind}: {detail}"))
    if not hits:
        ev.append(evidence(db.source, f"no installed package matches {', '.join(params.names)} "
                                      f"({len(db.packages)} installed, {db.kind})"))
    return Observation(observed=labels, evidence=ev)
