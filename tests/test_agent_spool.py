"""The agent's durable spool: atomic files, private permissions, order, bounds, rejects."""
from __future__ import annotations

import errno
import json
import logging
import os
import stat
import uuid

import pytest

from sentinel.agent.spool import REJECTED_KEEP, Spool, SpoolError


def _env(n: int, size: int = 10) -> dict:
    return {"report_id": str(uuid.uuid4()), "kind": "inventory", "body": {"n": n, "pad": "x" * size}}


def test_files_are_private_and_complete(tmp_path):
    spool = Spool(tmp_path / "spool", 10, 1 << 20)
    entry = spool.put(_env(1))
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert json.loads(entry.path.read_text())["body"]["n"] == 1
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [entry.path.name]  # no temporary left


def test_existing_open_directory_is_tightened(tmp_path):
    d = tmp_path / "spool"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    Spool(d, 10, 1 << 20)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_oldest_first_also_after_reopening(tmp_path):
    spool = Spool(tmp_path / "s", 100, 1 << 20)
    envs = [_env(i) for i in range(12)]
    for e in envs[:6]:
        spool.put(e)
    spool = Spool(tmp_path / "s", 100, 1 << 20)  # agent restart: sequence continues after the highest
    for e in envs[6:]:
        spool.put(e)
    assert [e.report_id for e in spool.pending()] == [e["report_id"] for e in envs]
    first = spool.pending()[0]
    assert spool.read(first)["report_id"] == envs[0]["report_id"]
    spool.remove(first)
    spool.remove(first)  # removing twice is harmless
    assert spool.pending()[0].report_id == envs[1]["report_id"]


def test_count_bound_drops_oldest_with_a_warning(tmp_path, caplog):
    spool = Spool(tmp_path / "s", 3, 1 << 20)
    envs = [_env(i) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="sentinel.agent.spool"):
        for e in envs:
            spool.put(e)
    assert [e.report_id for e in spool.pending()] == [e["report_id"] for e in envs[2:]]
    assert spool.dropped == 2
    assert "spool full" in caplog.text and envs[0]["report_id"] in caplog.text and envs[1]["report_id"] in caplog.text


def test_byte_bound_drops_as_many_oldest_as_needed(tmp_path, caplog):
    spool = Spool(tmp_path / "s", 100, 3000)
    small = [_env(i, 500) for i in range(5)]  # ~600 bytes each
    for e in small:
        spool.put(e)
    big = _env(99, 1500)
    with caplog.at_level(logging.WARNING):
        spool.put(big)
    count, size = spool.stats()
    assert size <= 3000
    kept = [e.report_id for e in spool.pending()]
    assert kept[-1] == big["report_id"] and kept[:-1] == [e["report_id"] for e in small][-(count - 1):]
    assert "dropped" in caplog.text


def test_envelope_bigger_than_the_whole_spool_is_refused(tmp_path):
    spool = Spool(tmp_path / "s", 10, 1000)
    spool.put(_env(1))
    with pytest.raises(SpoolError, match="larger than the whole spool"):
        spool.put(_env(2, 5000))
    assert len(spool.pending()) == 1  # nothing dropped for an envelope that cannot fit anyway


def test_bad_report_id_is_refused(tmp_path):
    spool = Spool(tmp_path / "s", 10, 1 << 20)
    for bad in ("", "../etc/passwd", "a/b", "x" * 65):
        with pytest.raises(SpoolError, match="not a plain id"):
            spool.put({"report_id": bad, "body": {}})


def test_corrupt_file_moves_to_rejected(tmp_path, caplog):
    spool = Spool(tmp_path / "s", 10, 1 << 20)
    entry = spool.put(_env(1))
    entry.path.write_text("{not json")
    with caplog.at_level(logging.ERROR):
        assert spool.read(entry) is None
    assert spool.pending() == []
    moved = spool.rejected_dir / entry.path.name
    assert moved.exists() and "corrupt spool file" in moved.with_suffix(".reason").read_text()
    assert stat.S_IMODE(spool.rejected_dir.stat().st_mode) == 0o700


def test_rejected_keeps_only_the_newest(tmp_path):
    spool = Spool(tmp_path / "s", 1000, 1 << 24)
    entries = [spool.put(_env(i)) for i in range(REJECTED_KEEP + 5)]
    for e in entries:
        spool.reject(e, "422 test")
    kept = sorted(p.name for p in spool.rejected_dir.glob("*.json"))
    assert len(kept) == REJECTED_KEEP and kept[0] == entries[5].path.name
    assert len(list(spool.rejected_dir.glob("*.reason"))) == REJECTED_KEEP


def test_half_written_temporaries_are_cleaned_and_ignored(tmp_path):
    d = tmp_path / "s"
    spool = Spool(d, 10, 1 << 20)
    spool.put(_env(1))
    (d / ".000000000002-abc.json.tmp").write_text("{")
    (d / "notes.txt").write_text("operator notes")
    spool = Spool(d, 10, 1 << 20)
    assert not (d / ".000000000002-abc.json.tmp").exists()
    assert len(spool.pending()) == 1 and (d / "notes.txt").exists()


def test_vanished_spool_directory_is_a_clear_error(tmp_path):
    d = tmp_path / "s"
    spool = Spool(d, 10, 1 << 20)
    d.rmdir()  # e.g. removed by hand under a running agent
    with pytest.raises(SpoolError, match=f"spool {d}"):
        spool.put(_env(1))


def test_spool_path_that_is_a_file(tmp_path):
    (tmp_path / "s").write_text("")
    with pytest.raises(SpoolError, match="spool .*s"):
        Spool(tmp_path / "s", 10, 1 << 20)


class _SmallDisk:
    """Stands in for the spool's file system with room for `capacity` bytes: a write past it fails with
    ENOSPC, as os.write does on a full disk (the spool's files are the only ones on it)."""

    def __init__(self, directory, capacity: int) -> None:
        self.directory, self.capacity = directory, capacity

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())

    def write(self, fd: int, data) -> int:
        if self.used() + len(data) > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


def test_a_full_disk_drops_the_oldest_not_the_newest(tmp_path, monkeypatch, caplog):
    from sentinel.agent import spool as spool_module

    spool = Spool(tmp_path / "s", 100, 1 << 20)  # the bounds are far away: the disk fills first
    disk = _SmallDisk(tmp_path / "s", 2500)
    monkeypatch.setattr(spool_module, "_write", disk.write)
    envs = [_env(i, 500) for i in range(4)]  # ~580 bytes each: four fit
    for e in envs:
        spool.put(e)
    newest = _env(99, 500)
    with caplog.at_level(logging.WARNING, logger="sentinel.agent.spool"):
        entry = spool.put(newest)
    kept = [e.report_id for e in spool.pending()]
    assert kept[-1] == newest["report_id"] == entry.report_id and envs[0]["report_id"] not in kept
    assert kept[:-1] == [e["report_id"] for e in envs[1:]]
    assert spool.read(entry)["body"]["n"] == 99
    assert spool.dropped_by == {"bounds": 0, "disk_full": 1} and spool.dropped == 1
    assert "disk full" in caplog.text and envs[0]["report_id"] in caplog.text
    assert not list((tmp_path / "s").glob(".*.tmp"))  # no half-written file left behind


def test_a_full_disk_with_nothing_left_to_drop_refuses_the_envelope(tmp_path, monkeypatch):
    from sentinel.agent import spool as spool_module
    from sentinel.agent.spool import SpoolDiskFull

    spool = Spool(tmp_path / "s", 100, 1 << 20)
    monkeypatch.setattr(spool_module, "_write", _SmallDisk(tmp_path / "s", 100).write)
    with pytest.raises(SpoolDiskFull, match="nothing older to drop"):
        spool.put(_env(1, 500))
    assert spool.pending() == [] and spool.dropped == 0


def test_the_agent_exporter_shows_the_spool_and_its_drops(tmp_path, monkeypatch):
    """A full spool is visible where the agent is scraped: waiting envelopes, bytes, drops by reason."""
    from datetime import datetime, timezone

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from sentinel.agent import spool as spool_module
    from sentinel.agent.config import load_settings
    from sentinel.agent.enroll import Identity
    from sentinel.agent.exporter import AgentExporter
    from sentinel.wiring import exporters

    spool = Spool(tmp_path / "s", 2, 1 << 20)
    for i in range(3):  # one over the count bound
        spool.put(_env(i))
    spool.max_count = 100
    monkeypatch.setattr(spool_module, "_write", _SmallDisk(tmp_path / "s", spool.stats()[1] + 10).write)
    spool.put(_env(9))  # within the bounds now, but the disk is full: the oldest goes
    from tests.obs_support import free_port

    settings = load_settings(None, default_file=False, state_dir=tmp_path / "state", metrics_port=free_port())
    identity = Identity(agent_id="a1", collector_url="http://127.0.0.1:1", system="门户网站", department="财政局",
                        enrolled_at=datetime.now(timezone.utc))
    exporter = AgentExporter(settings, identity, exporters().metrics, spool=spool)
    exporter.start()
    try:
        text = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=10, trust_env=False).text
    finally:
        exporter.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("sentinel_agent_spool_envelopes", ())] == 2
    assert samples[("sentinel_agent_spool_bytes", ())] == spool.stats()[1]
    assert samples[("sentinel_agent_spool_dropped_total", (("reason", "bounds"),))] == 1
    assert samples[("sentinel_agent_spool_dropped_total", (("reason", "disk_full"),))] == 1
