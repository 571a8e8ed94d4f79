"""The core's one backoff (sentinel/backoff.py) and one atomic write (sentinel/atomicfile.py)."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from sentinel.atomicfile import atomic_output, write_atomic
from sentinel.backoff import Backoff


def test_backoff_doubles_to_its_cap_and_jitters_within_bounds():
    b = Backoff(max_attempts=4, initial_delay=1, max_delay=5, jitter=0)
    assert [b.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.delay(10_000) == 5.0  # a long outage never overflows
    assert [b.exhausted(n) for n in (1, 3, 4)] == [False, False, True]
    j = Backoff(initial_delay=2, max_delay=3, jitter=0.5)
    assert j.delay(1, uniform=lambda lo, hi: lo) == 1.0 and j.delay(1, uniform=lambda lo, hi: hi) == 3.0
    assert j.delay(2, uniform=lambda lo, hi: hi) == 3.0  # jitter never takes a delay past max_delay
    for bad in ({"max_attempts": 0}, {"initial_delay": 5, "max_delay": 1}, {"factor": 0.5}, {"jitter": 1.0}):
        with pytest.raises(ValueError):
            Backoff(**bad)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_keeps_modes_and_never_leaves_half_a_file(tmp_path):
    key = tmp_path / "collector.key"
    write_atomic(key, b"secret")
    assert key.read_bytes() == b"secret" and _mode(key) == 0o600
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "ca.crt", b"public", mode=0o644)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "ca.crt") == 0o644

    def full_disk(fd, view):
        os.write(fd, view[:2])
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        write_atomic(key, b"a much longer new secret", write=full_disk)
    assert err.value.errno == errno.ENOSPC
    assert key.read_bytes() == b"secret" and _leftovers(tmp_path) == []
    with pytest.raises(FileExistsError):  # the first of racing writers wins
        write_atomic(key, b"second", replace=False)
    assert key.read_bytes() == b"secret" and _leftovers(tmp_path) == []


def test_atomic_output_replaces_only_on_success(tmp_path):
    out = tmp_path / "bundle.zip"
    with atomic_output(out, mode=0o644) as fh:
        fh.write(b"one")
    assert out.read_bytes() == b"one" and _mode(out) == 0o644
    with pytest.raises(RuntimeError):
        with atomic_output(out, mode=0o644) as fh:
            fh.write(b"two, half")
            raise RuntimeError("the export failed")
    assert out.read_bytes() == b"one" and _leftovers(tmp_path) == []
