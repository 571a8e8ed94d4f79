"""A mariadbd run by a test: the installed MariaDB's binaries, waited for until root answers on its socket, asked
as root over that socket. Shared by the object tests (tests/test_object_mysql_real.py, a server in a mount
namespace of its own) and the backup tests (tests/test_backup_real.py, a source and a replica)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
CLIENT = "/usr/bin/mariadb"


def root_sql(sock: Path, statement: str, check: bool = True) -> subprocess.CompletedProcess:
    """As root over the socket (root@localhost authenticates by unix_socket: the tests run as root)."""
    return subprocess.run([CLIENT, "--no-defaults", "-S", str(sock), "-u", "root", "-N", "-B", "-e", statement],
                          capture_output=True, text=True, timeout=30, check=check)


def wait_answering(proc: subprocess.Popen, sock: Path, log: Path) -> None:
    """Until root's `SELECT 1` answers on `sock`; AssertionError with the tail of `log` if mariadbd exits, or
    after 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mariadbd exited: {log.read_text()[-2000:]}")
        if sock.exists() and root_sql(sock, "SELECT 1", check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("mariadbd did not answer within 60 s")
