"""A postmaster run by a test: the installed PostgreSQL's binaries, started as the postgres account on its own
socket directory and free loopback port, waited for, asked over psql, stopped with its process group. Shared by
the object tests (tests/test_object_postgresql_real.py) and the backup tests (tests/test_backup_real.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

LIB = Path("/usr/lib/postgresql")
VERSION = max((p.name for p in LIB.iterdir() if p.name.isdigit()), key=int, default="") if LIB.is_dir() else ""
BIN = LIB / VERSION / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, run: Path, port: int, what: str = "postgres",
          tries: int = 150) -> subprocess.Popen:
    """`postgres ARGS` as the postgres account in a session of its own, once pg_isready answers on `run`/`port`."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(["runuser", "-u", "postgres", "--", str(BIN / "postgres"), *args],
                                stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    ready = [str(BIN / "pg_isready"), "-q", "-h", str(run), "-p", str(port)]
    for _ in range(tries):
        if subprocess.run(ready).returncode == 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    """Fast shutdown of the postmaster and its children (SIGINT to the group), SIGKILL after 30 s."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def sql(run: Path, port: int, query: str) -> list[list[str]]:
    """As the superuser postgres over the socket (peer), the answer's rows."""
    out = subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "psql"), "-X", "-h", str(run), "-p", str(port),
                          "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\x1f", "-c", query],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\x1f") for line in out.splitlines() if line]
