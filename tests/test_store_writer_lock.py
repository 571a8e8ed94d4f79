"""SQLite writers in different processes (the collector's --workers) queue on the writer lock file."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from sentinel.store.db import Database
from tests.waits import until

WRITER = """
import sys
from sentinel.store.db import Database
db = Database(sys.argv[1])
with db.write() as conn:
    conn.exec_driver_sql("INSERT INTO t VALUES (2)")
print("written", flush=True)
"""


def _blocked_on(path, pid: int) -> bool:
    """Whether process `pid` waits for a lock on `path`: the kernel lists each blocked request in /proc/locks
    with `->` (`N: -> FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> ...`)."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields[1:2] and fields[5] == str(pid) and fields[6].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def test_a_writer_in_another_process_waits_for_the_lock_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = Database(url)
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
    lock_path = tmp_path / "x.db-writer.lock"
    assert lock_path.exists() and (lock_path.stat().st_mode & 0o777) == 0o600
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another worker's write transaction would
        proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
        until(lambda: _blocked_on(lock_path, proc.pid) or proc.poll() is not None,
              "the other process to block on the lock file")
        assert proc.poll() is None, "the other process wrote while the lock file was held"
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar_one() == 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(fd)
    assert proc.returncode == 0 and out.strip() == "written"
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT v FROM t").scalars().all() == [2]
    db.dispose()


def test_a_read_only_directory_falls_back_to_sqlite_locking(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    Database(url).dispose()
    db = Database(url)
    db._lock_file._path = str(tmp_path / "missing-dir" / "x.db-writer.lock")  # cannot be created
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM t").scalar_one() == 1
    db.dispose()
