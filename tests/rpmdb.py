"""Write a real rpm sqlite database (rpmdb.sqlite) for fixture roots of RPM-based distributions.

    from tests.rpmdb import write_rpmdb
    write_rpmdb(root / "var/lib/rpm/rpmdb.sqlite", [("openssh-server", "8.7p1", "34.el9", "x86_64")])

Each package becomes a genuine rpm header blob, laid out as rpm stores it in the `Packages` table:
big-endian index count and data length, 16-byte index entries (tag, type, offset, count) sorted by
tag, the data store, and the immutable-region tag (63) whose trailer closes the data. Tuples may carry
a fifth element, the epoch (int).
"""
from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from typing import Union

RPMTAG_HEADERIMMUTABLE = 63
RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_ARCH = 1000, 1001, 1002, 1003, 1022
RPMTAG_OS, RPMTAG_SOURCERPM = 1021, 1044
TYPE_INT32, TYPE_STRING, TYPE_BIN = 4, 6, 7
_ALIGN = {TYPE_INT32: 4}

# The index tables rpm (4.16+, sqlite backend) expects; it refuses a database lacking any of them.
_BOTH = ("key", "hnum")
_INDEX_TABLES = (
    ("Name", "TEXT", ("key",)), ("Basenames", "TEXT", _BOTH), ("Group", "TEXT", ("key",)),
    ("Requirename", "TEXT", _BOTH), ("Providename", "TEXT", _BOTH), ("Conflictname", "TEXT", _BOTH),
    ("Obsoletename", "TEXT", _BOTH), ("Triggername", "TEXT", _BOTH), ("Dirnames", "TEXT", _BOTH),
    ("Installtid", "BLOB", ()), ("Sigmd5", "BLOB", ()), ("Sha1header", "TEXT", ("key",)),
    ("Filetriggername", "TEXT", _BOTH), ("Transfiletriggername", "TEXT", _BOTH),
    ("Recommendname", "TEXT", _BOTH), ("Suggestname", "TEXT", _BOTH), ("Supplementname", "TEXT", _BOTH),
    ("Enhancename", "TEXT", _BOTH),
)

PackageTuple = Union[tuple[str, str, str, str], tuple[str, str, str, str, int]]


def header_blob(name: str, version: str, release: str, arch: str, epoch: int | None = None) -> bytes:
    tags: list[tuple[int, int, bytes, int]] = [
        (RPMTAG_NAME, TYPE_STRING, name.encode() + b"\0", 1),
        (RPMTAG_VERSION, TYPE_STRING, version.encode() + b"\0", 1),
        (RPMTAG_RELEASE, TYPE_STRING, release.encode() + b"\0", 1),
        (RPMTAG_OS, TYPE_STRING, b"linux\0", 1),
        (RPMTAG_ARCH, TYPE_STRING, arch.encode() + b"\0", 1),
        # a binary package names its source rpm; without it rpm takes the header for a .src one
        (RPMTAG_SOURCERPM, TYPE_STRING, f"{name}-{version}-{release}.src.rpm".encode() + b"\0", 1),
    ]
    if epoch is not None:
        tags.append((RPMTAG_EPOCH, TYPE_INT32, struct.pack(">i", epoch), 1))
    data = bytearray()
    index = []
    for tag, typ, payload, count in sorted(tags):
        data += b"\0" * ((-len(data)) % _ALIGN.get(typ, 1))
        index.append((tag, typ, len(data), count))
        data += payload
    il = len(index) + 1  # + the region tag
    trailer_at = len(data)
    data += struct.pack(">iiii", RPMTAG_HEADERIMMUTABLE, TYPE_BIN, -il * 16, 16)
    entries = [(RPMTAG_HEADERIMMUTABLE, TYPE_BIN, trailer_at, 16)] + index
    return (struct.pack(">ii", il, len(data)) + b"".join(struct.pack(">iiii", *e) for e in entries)
            + bytes(data))


def write_rpmdb(path: Union[str, os.PathLike], packages: Iterable[Sequence]) -> str:
    """Create (or replace) an rpmdb.sqlite at `path` holding `packages`; returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.remove(path)
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        for table, key_type, indexes in _INDEX_TABLES:
            con.execute(f"CREATE TABLE '{table}' (key '{key_type}' NOT NULL, hnum INTEGER NOT NULL, "
                        f"idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))")
            for column in indexes:
                con.execute(f"CREATE INDEX '{table}_{column}_idx' ON '{table}'({column} ASC)")
        for pkg in packages:
            if len(pkg) not in (4, 5):
                raise ValueError(f"package {pkg!r}: expected (name, version, release, arch[, epoch])")
            cur = con.execute("INSERT INTO Packages (blob) VALUES (?)", (header_blob(*pkg),))
            con.execute("INSERT INTO Name (key, hnum, idx) VALUES (?, ?, 0)", (pkg[0], cur.lastrowid))
            con.execute("INSERT INTO Providename (key, hnum, idx) VALUES (?, ?, 0)", (pkg[0], cur.lastrowid))
        con.commit()
    finally:
        con.close()
    return path
