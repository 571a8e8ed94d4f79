"""Durable on-disk queue of envelopes waiting for the collector.

One JSON file per envelope, written atomically (temporary file, fsync, rename, fsync of the directory)
so a crash leaves either the whole envelope or nothing. File names start with a sequence number, so
sorting by name delivers the oldest first even if the wall clock jumps. The directory is 0700: reports
describe the host's weaknesses. The spool is bounded by count and bytes; when full, the oldest
envelopes are dropped with a warning, because the newest state of the host matters most. The same
holds when the disk itself is full (ENOSPC, EDQUOT) before the bounds are reached: the oldest waiting
envelopes are dropped, one at a time, until the new one fits; only when nothing is left to drop is
the new one refused. Every drop is logged and counted (`dropped`, by reason; the agent's /metrics
shows them as `sentinel_agent_spool_dropped_total`).
Envelopes the collector refuses for good (schema, size) move to `rejected/` so they stop blocking the
queue and stay available to an operator.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..atomicfile import write_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})-([0-9A-Za-z_-]{1,64})\.json$")
REJECTED_KEEP = 50


class SpoolError(Exception):
    """The spool cannot take or give an envelope (disk, permissions, a corrupt file)."""


class SpoolDiskFull(SpoolError):
    """The file system holding the spool has no room (or the user's quota is used up)."""


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_write = os.write  # one place the spool writes file data (the disk-full tests stand in for a full disk here)
DROP_REASONS = ("bounds", "disk_full")  # why envelopes were dropped: the spool's limits, or the disk


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    seq: int
    report_id: str
    size: int


def _make_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        os.chmod(directory, 0o700)  # an existing directory made too open by hand


class Spool:
    def __init__(self, directory: Path, max_count: int, max_bytes: int) -> None:
        if max_count < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self.directory = Path(directory)
        self.rejected_dir = self.directory / "rejected"
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.dropped_by = dict.fromkeys(DROP_REASONS, 0)  # envelopes dropped since start, by reason
        try:
            _make_private_dir(self.directory)
            self._remove_stale_temporaries()
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: {exc.strerror or exc}") from exc
        self._seq = max((e.seq for e in self._scan()), default=0)

    # ---- queue -----------------------------------------------------------------------------------
    def put(self, envelope: dict[str, Any]) -> SpoolEntry:
        """Store an envelope durably; drops the oldest entries first if the bounds require it."""
        report_id = str(envelope.get("report_id", ""))
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", report_id):
            raise SpoolError(f"envelope report_id {report_id!r} is not a plain id")
        data = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > self.max_bytes:
            raise SpoolError(f"envelope {report_id} ({len(data)} bytes) is larger than the whole spool "
                             f"(spool_max_bytes={self.max_bytes}); not stored")
        with self._lock:
            entries = self._scan()
            count, total = len(entries), sum(e.size for e in entries)
            victims = []
            while entries and (count + 1 > self.max_count or total + len(data) > self.max_bytes):
                oldest = entries.pop(0)
                victims.append(oldest)
                count -= 1
                total -= oldest.size
            for victim in victims:
                self._unlink(victim.path)
            if victims:
                self.dropped_by["bounds"] += len(victims)
                log.warning("spool full (max %d envelopes, %d bytes): dropped %d oldest undelivered "
                            "envelope(s): %s", self.max_count, self.max_bytes, len(victims),
                            ", ".join(v.report_id for v in victims))
            self._seq += 1
            path = self.directory / f"{self._seq:012d}-{report_id}.json"
            while True:
                try:
                    self._write_atomic(path, data)
                    break
                except SpoolDiskFull as exc:
                    if not entries:
                        raise SpoolDiskFull(f"{exc}; the spool is empty, nothing older to drop") from None
                    oldest = entries.pop(0)  # the disk is full: the oldest report goes, never the newest
                    self._unlink(oldest.path)
                    self.dropped_by["disk_full"] += 1
                    log.warning("spool disk full (%s): dropped the oldest undelivered envelope %s to keep "
                                "the new one %s", self.directory, oldest.report_id, report_id)
            return SpoolEntry(path=path, seq=self._seq, report_id=report_id, size=len(data))

    @property
    def dropped(self) -> int:
        """Envelopes dropped since start, for any reason."""
        return sum(self.dropped_by.values())

    def pending(self) -> list[SpoolEntry]:
        """Entries waiting for delivery, oldest first."""
        with self._lock:
            return self._scan()

    def read(self, entry: SpoolEntry) -> Optional[dict[str, Any]]:
        """The envelope, or None if it was dropped meanwhile. A corrupt file moves to rejected/."""
        try:
            raw = entry.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
        try:
            envelope = json.loads(raw)
            if not isinstance(envelope, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.reject(entry, f"corrupt spool file: {exc}")
            return None
        return envelope

    def remove(self, entry: SpoolEntry) -> None:
        with self._lock:
            self._unlink(entry.path)

    def reject(self, entry: SpoolEntry, reason: str) -> None:
        """Move an envelope the collector will never accept out of the queue, keeping the reason beside it."""
        with self._lock:
            try:
                _make_private_dir(self.rejected_dir)
                target = self.rejected_dir / entry.path.name
                os.replace(entry.path, target)
                self._write_atomic(target.with_suffix(".reason"), (reason + "\n").encode("utf-8"))
            except FileNotFoundError:
                return
            except OSError as exc:
                raise SpoolError(f"cannot move {entry.path} to {self.rejected_dir}: {exc.strerror or exc}") from exc
            log.error("envelope %s rejected for good, kept in %s: %s", entry.report_id, self.rejected_dir, reason)
            kept = sorted(p for p in self.rejected_dir.iterdir() if p.suffix == ".json")
            for old in kept[:-REJECTED_KEEP]:
                self._unlink(old)
                self._unlink(old.with_suffix(".reason"))

    def stats(self) -> tuple[int, int]:
        """(envelopes, bytes) waiting."""
        entries = self.pending()
        return len(entries), sum(e.size for e in entries)

    # ---- files -----------------------------------------------------------------------------------
    def _scan(self) -> list[SpoolEntry]:
        entries = []
        try:
            with os.scandir(self.directory) as it:
                for de in it:
                    m = _NAME.match(de.name)
                    if not m or not de.is_file(follow_symlinks=False):
                        continue
                    try:
                        size = de.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
                    entries.append(SpoolEntry(Path(de.path), int(m.group(1)), m.group(2), size))
        except OSError as exc:
            raise SpoolError(f"cannot list spool {self.directory}: {exc.strerror or exc}") from exc
        entries.sort(key=lambda e: e.seq)
        return entries

    def _write_atomic(self, path: Path, data: bytes) -> None:
        try:
            write_atomic(path, data, mode=0o600, write=_write)
        except OSError as exc:
            error = SpoolDiskFull if exc.errno in _DISK_FULL else SpoolError
            raise error(f"cannot write {path}: {exc.strerror or exc}") from exc

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SpoolError(f"cannot remove {path}: {exc.strerror or exc}") from exc

    def _remove_stale_temporaries(self) -> None:
        """Half-written files from a crash: their envelope was never acknowledged as stored."""
        for p in self.directory.glob(".*.tmp"):
            p.unlink(missing_ok=True)
