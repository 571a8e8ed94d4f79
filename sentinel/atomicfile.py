"""The one way sentinel writes a state, spool, key or output file: whole or not at all, with its mode from
the start.

The data goes to a temporary file beside the target (`.<name>.<random>.tmp`, created 0600 and exclusively,
so never through a planted symlink), is flushed to disk, given its mode, and renamed over the target; the
directory is then synced so the rename itself survives a crash. A reader (or a crash) sees the old file or
the new one, never half of one, and a key is never readable by others even for a moment. A failure removes
the temporary file. Leftovers of a crash match `.*.tmp` (the spool sweeps them at start).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

PathLike = Union[str, "os.PathLike[str]"]
Write = Callable[[int, memoryview], int]


def write_atomic(path: PathLike, data: bytes, *, mode: int = 0o600, replace: bool = True,
                 write: Write = os.write) -> None:
    """Write `data` to `path` atomically with `mode`. With `replace=False` an existing file is kept and
    FileExistsError raised (the first of several racing writers wins). `write(fd, view) -> bytes written`
    is the low-level write, for a caller that must stand a full disk in for it (the spool's tests)."""
    target = Path(path)
    fd, tmp = _temporary(target)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[write(fd, view):]
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        _commit(tmp, target, replace)
    except BaseException:
        _discard(tmp)
        raise


@contextmanager
def atomic_output(path: PathLike, *, mode: int = 0o600, replace: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write `path` through (e.g. a zip archive streamed to disk): it becomes `path`,
    with `mode`, when the block ends without an exception, and is removed otherwise."""
    target = Path(path)
    fd, tmp = _temporary(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        _commit(tmp, target, replace)
    except BaseException:
        _discard(tmp)
        raise


def sync_directory(directory: PathLike) -> None:
    """Make the names in `directory` (a rename, a new or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(target: Path) -> tuple[int, str]:
    # mkstemp: O_CREAT|O_EXCL and mode 0600, in the target's directory so the rename stays on one file system
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)


def _commit(tmp: str, target: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, target)
    else:
        os.link(tmp, target)  # FileExistsError when another writer was first
        os.unlink(tmp)
    sync_directory(target.parent)


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
