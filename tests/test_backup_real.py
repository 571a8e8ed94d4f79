"""Disaster-recovery checks (checks/backup.py) on real data: restic and borg repositories made here with the tools
from Debian's packages and backups at chosen times, backup files with set mtimes, and a PostgreSQL streaming
replica (two throw-away clusters on their own socket directories and free loopback ports, never the machine's
5432 server). Expected ages and replica states come from the tools themselves (restic snapshots, borg list,
pg_stat_replication through psql), not from the probe.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline, run_check
from sentinel.hostview import open_host
from sentinel.model import Status, Verdict
from sentinel.osinfo import host_info
from sentinel.probe import ProbeContext
from tests import pgserver
from tests.mariaserver import CLIENT, INSTALL_DB, MARIADBD, root_sql, wait_answering

pytestmark = [pytest.mark.timeout(300)]
RESTIC_PW = secrets.token_urlsafe(18)
BORG_PW = secrets.token_urlsafe(18)
RO_PW = secrets.token_urlsafe(18)
MINE = ("l3-br-backup-rpo", "l3-br-offsite-rpo", "l3-br-db-replica", "l3-br-offsite-realtime")


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:  # tests/setup-machine.sh installs restic and borgbackup
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} missing (tests/setup-machine.sh)")


def _tree(path: Path) -> str:
    """Every file's name, size and content hash: the repository after the probe must equal it before."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _site(tmp: Path, overrides: dict) -> Path:
    doc = {"id": "site-dr", "version": "1", "extends": "dengbao-l3-linux", "override": overrides}
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _creds(tmp: Path, monkeypatch, entries: dict) -> None:
    path = tmp / "objects.yaml"
    path.write_text(yaml.safe_dump(entries), encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(path))


def _ro_account(tmp: Path, monkeypatch, kind: str, port: int) -> None:
    """The read-only account sentinel_ro of the test server on `port`, as the replica checks read it."""
    _creds(tmp, monkeypatch, {kind: {"instances": {str(port): {
        "user": "sentinel_ro", "password": RO_PW, "host": "127.0.0.1", "port": port}}}})


def _results(site: Path, ids=MINE) -> dict:
    baseline = load_baseline(site)
    host = open_host(None)
    info = host_info(host)
    ctx = ProbeContext(host=host, family=info.family, os_release=host.os_release())
    return {c.id: run_check(ctx, baseline, ctl, item, c) for ctl, item, c in baseline.iter_checks() if c.id in ids}


def _hours_ago(at: str) -> float:
    return (datetime.now(timezone.utc) - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds() / 3600


@pytest.fixture
def repos(tmp_path, monkeypatch):
    """A restic repository at this site (newest snapshot 3 h old), a borg repository declared at the DR site
    (newest archive 30 h old) and a mysqldump file (50 h old)."""
    _need("restic", "borg")
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("1,alice\n2,bob\n", encoding="utf-8")
    env = {**os.environ, "RESTIC_PASSWORD": RESTIC_PW, "BORG_PASSPHRASE": BORG_PW, "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / ".cache"), "BORG_BASE_DIR": str(tmp_path / "borgbase"), "TZ": "UTC"}
    restic, borg = tmp_path / "restic", tmp_path / "borg"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    subprocess.run(["restic", "init", "-r", str(restic)], env=env, check=True, capture_output=True, timeout=60)
    for hours in (27, 3):  # restic --time is local time; TZ=UTC above makes it UTC
        at = (now - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")
        subprocess.run(["restic", "-r", str(restic), "backup", "--time", at, str(data)], env=env, check=True,
                       capture_output=True, timeout=120)
    subprocess.run(["borg", "init", "-e", "repokey", str(borg)], env=env, check=True, capture_output=True, timeout=60)
    for hours in (54, 30):  # borg create --timestamp is UTC
        at = (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")
        subprocess.run(["borg", "create", "--timestamp", at, f"{borg}::h{hours}", str(data)], env=env, check=True,
                       capture_output=True, timeout=120)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    dump = dumps / "shop-2026.sql.gz"
    dump.write_bytes(gzip.compress(b"-- MariaDB dump 10.19\nCREATE TABLE orders (id int);\n"))
    old = (now - timedelta(hours=50)).timestamp()
    os.utime(dump, (old, old))
    # what the tools themselves say the newest backup is
    snaps = json.loads(subprocess.run(["restic", "-r", str(restic), "snapshots", "--json", "--no-lock"], env=env,
                                      check=True, capture_output=True, text=True, timeout=60).stdout)
    archives = json.loads(subprocess.run(["borg", "list", "--json", str(borg)], env=env, check=True,
                                         capture_output=True, text=True, timeout=60).stdout)["archives"]
    truth = {"restic": max(s["time"] for s in snaps), "borg": max(a["time"] for a in archives) + "+00:00",
             "restic_count": len(snaps), "borg_count": len(archives)}
    _creds(tmp_path, monkeypatch, {"backup": {"instances": {"nightly": {"password": RESTIC_PW},
                                                            "dr": {"password": BORG_PW}}}})
    monkeypatch.setenv("TZ", "UTC")  # borg 1.2 prints naive local times; the probe reads them in the host's zone
    time.tzset()
    backups = [{"name": "nightly", "tool": "restic", "repository": str(restic), "site": "dc-a"},
               {"name": "dr", "tool": "borg", "repository": str(borg), "site": "dc-b"},
               {"name": "dump", "tool": "files", "paths": [str(dumps / "*.sql.gz")], "site": "dc-a"}]
    yield {"restic": restic, "borg": borg, "backups": backups, "truth": truth, "tmp": tmp_path}
    monkeypatch.undo()
    time.tzset()


def test_copies_ages_and_offsite_against_the_rpo(repos):
    before = {k: _tree(repos[k]) for k in ("restic", "borg")}
    params = {"backups": repos["backups"], "site": "dc-a", "rpo_hours": 24}
    site = _site(repos["tmp"], {"l3-br-backup-rpo": {"params": params}, "l3-br-offsite-rpo": {"params": params}})
    res = _results(site, MINE[:2])
    local, offsite = res["l3-br-backup-rpo"], res["l3-br-offsite-rpo"]
    assert local.status == Status.PASS, local.reason
    copies = {c["name"]: c for c in local.observed["copies"]}
    truth = repos["truth"]
    assert copies["nightly"]["backups"] == truth["restic_count"] == 2
    assert copies["dr"]["backups"] == truth["borg_count"] == 2
    assert abs(copies["nightly"]["age_hours"] - _hours_ago(truth["restic"])) < 0.05
    assert abs(copies["dr"]["age_hours"] - _hours_ago(truth["borg"])) < 0.05
    assert 2.9 < copies["nightly"]["age_hours"] < 3.2 and copies["nightly"]["within_rpo"]
    assert 29.9 < copies["dr"]["age_hours"] < 30.2 and not copies["dr"]["within_rpo"]
    assert 49.9 < copies["dump"]["age_hours"] < 50.2 and copies["dump"]["backups"] == 1
    assert [c["name"] for c in local.observed["copies"] if c["offsite"]] == ["dr"]
    assert copies["nightly"]["where"] == str(repos["restic"]) and copies["dump"]["where"].endswith("*.sql.gz")
    assert local.observed["copy_count"] == 3 and local.observed["offsite_count"] == 1
    # the off-site copy is 30 h old: outside a 24 h RPO
    assert offsite.status == Status.FAIL and offsite.observed["offsite_within_rpo"] is False
    # the probe only read: no lock, cache or index entry was left in either repository
    assert {k: _tree(repos[k]) for k in ("restic", "borg")} == before
    text = json.dumps([r.model_dump(mode="json") for r in res.values()], ensure_ascii=False)
    assert RESTIC_PW not in text and BORG_PW not in text
    assert any("restic -r" in e.source and "snapshots" in e.source for e in local.evidence)

    # a site whose RPO is 36 h: the off-site copy is now in time, and 异地备份 is 符合 in the full run
    params36 = {**params, "rpo_hours": 36}
    site = _site(repos["tmp"], {"l3-br-backup-rpo": {"params": params36}, "l3-br-offsite-rpo": {"params": params36}})
    report = run_baseline(load_baseline(site), open_host(None))
    by_key = {i.key: i for i in report.items}
    assert by_key["ces.backup.offsite"].verdict == Verdict.CONFORM
    assert next(r for r in report.results if r.check_id == "l3-br-offsite-rpo").status == Status.PASS
    # the system's DR view of these stored results: meets now; ten hours on, with no newer run, the 30 h off-site
    # copy is 40 h old, past the 36 h RPO: a passed check does not keep a silent host meeting it
    from sentinel.dr import StoredResult, judge_host

    def stored(r):
        d = json.loads(json.dumps(r.model_dump(mode="json")))
        return StoredResult(check_id=r.check_id, status=d["status"], reason=r.reason, observed=d["observed"],
                            evidence=d["evidence"], waiver=None, run_id=7, checked_at=datetime.now(timezone.utc))

    rows = [stored(r) for r in report.results if r.check_id in MINE[:2]]
    now = datetime.now(timezone.utc)
    assert judge_host(1, "app-1", rows, now).verdict == "meets"
    later = judge_host(1, "app-1", rows, now + timedelta(hours=10))
    assert later.verdict == "misses" and later.rpo_hours == 36
    assert any(x.startswith("l3-br-offsite-rpo: passed at") and "now older than the RPO of 36 h" in x
               for x in later.reasons)
    assert later.newest_offsite == datetime.fromisoformat(repos["truth"]["borg"]).replace(microsecond=0)


def test_only_stale_local_copies_fail(repos):
    backups = [b for b in repos["backups"] if b["name"] == "dump"]
    site = _site(repos["tmp"], {"l3-br-backup-rpo": {"params": {"backups": backups, "site": "dc-a"}}})
    res = _results(site, ("l3-br-backup-rpo",))["l3-br-backup-rpo"]
    assert res.status == Status.FAIL and res.observed["local_within_rpo"] is False
    assert "local_within_rpo" in (res.reason or "")


def test_wrong_passphrase_is_an_error_without_the_secret(repos, monkeypatch):
    wrong = secrets.token_urlsafe(18)
    _creds(repos["tmp"], monkeypatch, {"backup": {"instances": {"nightly": {"password": wrong}}}})
    backups = [b for b in repos["backups"] if b["name"] == "nightly"]
    site = _site(repos["tmp"], {"l3-br-backup-rpo": {"params": {"backups": backups, "site": "dc-a"}}})
    res = _results(site, ("l3-br-backup-rpo",))["l3-br-backup-rpo"]
    assert res.status == Status.ERROR and "nightly" in (res.reason or "")
    text = json.dumps(res.model_dump(mode="json"))
    assert wrong not in text and RESTIC_PW not in text


def test_an_unreadable_offsite_copy_errors_only_the_offsite_check(repos, monkeypatch):
    wrong = secrets.token_urlsafe(18)
    _creds(repos["tmp"], monkeypatch, {"backup": {"instances": {"nightly": {"password": RESTIC_PW},
                                                                "dr": {"password": wrong}}}})
    params = {"backups": repos["backups"], "site": "dc-a", "rpo_hours": 24}
    site = _site(repos["tmp"], {"l3-br-backup-rpo": {"params": params}, "l3-br-offsite-rpo": {"params": params}})
    res = _results(site, MINE[:2])
    local, offsite = res["l3-br-backup-rpo"], res["l3-br-offsite-rpo"]
    assert local.status == Status.PASS, local.reason
    dr = next(c for c in local.observed["copies"] if c["name"] == "dr")
    assert dr["backups"] is None and "dr:" in dr["error"] and local.observed["offsite_within_rpo"] is None
    assert offsite.status == Status.ERROR and "borg list failed" in (offsite.reason or "")
    # the error keeps what could be read: the fresh local copy, the RPO, the unreadable copy's error
    kept = {c["name"]: c for c in offsite.observed["copies"]}
    assert offsite.observed["rpo_hours"] == 24 and kept["nightly"]["within_rpo"] and "dr:" in kept["dr"]["error"]
    text = json.dumps([r.model_dump(mode="json") for r in res.values()], ensure_ascii=False)
    assert wrong not in text and BORG_PW not in text


def test_nothing_declared_is_one_error_and_the_items_stay_pending(tmp_path, monkeypatch):
    """Nothing declared: the facts are not visible, so no 数据备份恢复 item is 符合 (not even on a cron job that
    looks like a backup). One error says where to declare the copies; the off-site and replica checks wait for
    a person with the same reason instead of counting two more errors."""
    _creds(tmp_path, monkeypatch, {})
    report = run_baseline(load_baseline("dengbao-l3-linux"), open_host(None))
    results = {r.check_id: r for r in report.results}
    local = results["l3-br-backup-rpo"]
    assert local.status == Status.ERROR
    assert local.reason == ("no backup declared for this host (docs/backups.md) (baseline dengbao-l3-linux: declare "
                            "it in a site file's override of l3-br-backup-rpo: params)")
    assert "l3-br-backup-rpo" in (local.reason_zh or "") and "未声明" in (local.reason_zh or "")
    for cid in ("l3-br-offsite-rpo", "l3-br-db-replica", "l3-br-offsite-realtime"):
        r = results[cid]
        assert r.status == Status.NOT_APPLICABLE and r.offline, cid
        assert "declared" in (r.reason or "") and f"override of {cid}" in (r.reason or "")
    assert [r.check_id for r in report.results if r.check_id in MINE and r.status == Status.ERROR] == \
        ["l3-br-backup-rpo"]
    by_key = {i.key: i for i in report.items}
    # with a backup-like cron job (l3-br-backup-job passes) the item is 待核查, without one 不符合: never 符合
    job = results["l3-br-backup-job"].status
    assert by_key["ces.backup.local"].verdict == (Verdict.PENDING if job == Status.PASS else Verdict.NONCONFORM)
    assert by_key["ces.backup.offsite"].verdict == Verdict.PENDING
    assert by_key["ces.backup.hot-redundancy"].verdict == Verdict.PENDING


def test_a_password_in_a_repository_url_is_masked():
    from sentinel.checks.backup import BackupCopy, shown

    copy = BackupCopy(name="dr", tool="restic", repository="rest:https://backup:s3cret@dr.example:8000/his")
    assert shown(copy) == "rest:https://backup:***@dr.example:8000/his"
    assert shown(BackupCopy(name="b", tool="borg", repository="ssh://backup@dr.example/./borg")) == \
        "ssh://backup@dr.example/./borg"


def test_offline_root_leaves_the_items_to_a_person(tmp_path):
    (tmp_path / "etc").mkdir()
    report = run_baseline(load_baseline("dengbao-l3-linux"), open_host(str(tmp_path)))
    results = {r.check_id: r for r in report.results}
    assert all(results[c].status == Status.NOT_APPLICABLE and results[c].offline for c in MINE)


def _dr_replication(res) -> tuple[str, int]:
    """The replication a system's DR view (sentinel/dr.py) gives a host from this result as the store keeps it."""
    from sentinel.dr import StoredResult, judge_host

    stored = json.loads(json.dumps(res.model_dump(mode="json")))
    host = judge_host(1, "db-1", [StoredResult(
        check_id=res.check_id, status=stored["status"], reason=res.reason, observed=stored["observed"],
        evidence=stored["evidence"], waiver=None, run_id=1, checked_at=datetime.now(timezone.utc))],
        datetime.now(timezone.utc))
    assert host.verdict == "unknown", "replication alone says nothing of the RPO"
    return host.replication, sum(d.streaming for d in host.databases)


# ---- PostgreSQL streaming replica ---------------------------------------------------------------------------
LIB, VERSION, BIN = pgserver.LIB, pgserver.VERSION, pgserver.BIN
_free_port = pgserver.free_port


class Pg:
    def __init__(self, base: Path, name: str) -> None:
        self.dir = base / name
        self.data, self.run = self.dir / "data", self.dir / "run"
        self.port = _free_port()
        self.name = name
        self.proc: subprocess.Popen | None = None

    def start(self, *settings: str) -> None:
        extra = [a for s in settings for a in ("-c", s)]
        self.proc = pgserver.start(
            ["-D", str(self.data), "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.run}",
             "-c", "listen_addresses=127.0.0.1", "-c", f"cluster_name={self.name}", *extra],
            self.dir / "server.log", self.run, self.port, what=f"postgres {self.name}")

    def stop(self) -> None:
        pgserver.stop(self.proc)
        self.proc = None

    def sql(self, query: str) -> list[list[str]]:
        return pgserver.sql(self.run, self.port, query)


@pytest.fixture
def replica_pair():
    if os.geteuid() != 0:
        pytest.skip("needs root (runs postgres as the postgres account)")
    if not (BIN / "initdb").exists() or not (BIN / "pg_basebackup").exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("PostgreSQL binaries missing (tests/setup-machine.sh)")
    base = Path(tempfile.mkdtemp(prefix="sntl-pgrep-"))  # pytest's tmp directories are 0700: postgres cannot enter
    base.chmod(0o755)
    pg = pwd.getpwnam("postgres")
    primary, standby = Pg(base, "dc-a-primary"), Pg(base, "dr-standby")
    for c in (primary, standby):
        c.dir.mkdir()
        c.run.mkdir()
        os.chown(c.dir, pg.pw_uid, pg.pw_gid)
        os.chown(c.run, pg.pw_uid, pg.pw_gid)
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(primary.data), "-U",
                        "postgres", "--auth-local=peer", "--auth-host=scram-sha-256"], check=True, capture_output=True,
                       timeout=120)
        primary.start()
        # initdb's pg_hba.conf admits local replication connections by peer: the standby's own walreceiver
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_basebackup"), "-D", str(standby.data), "-R",
                        "-X", "stream", "-h", str(primary.run), "-p", str(primary.port), "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        standby.start()
        primary.sql(f"CREATE ROLE sentinel_ro LOGIN PASSWORD '{RO_PW}'")
        primary.sql("GRANT pg_monitor TO sentinel_ro")
        for _ in range(100):
            if primary.sql("select state from pg_stat_replication") == [["streaming"]]:
                break
            time.sleep(0.2)
        yield primary, standby, base
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.root
def test_streaming_replica_state_and_lag(replica_pair, monkeypatch):
    primary, standby, base = replica_pair
    _ro_account(base, monkeypatch, "postgresql", primary.port)
    primary.sql("create table orders as select g from generate_series(1, 1000) g")
    site = _site(base, {"l3-br-db-replica": {"params": {"databases": [{"instance": str(primary.port)}]}}})
    res = _results(site, ("l3-br-db-replica",))["l3-br-db-replica"]
    truth = primary.sql("select application_name, state, sync_state from pg_stat_replication")
    assert truth == [["dr-standby", "streaming", "async"]]
    assert res.status == Status.PASS, res.reason
    db = res.observed["databases"][0]
    assert [(r["name"], r["state"], r["sync_state"]) for r in db["replicas"]] == [tuple(t) for t in truth]
    assert res.observed["streaming"] == 1
    assert db["replicas"][0]["lag_bytes"] is not None and db["replicas"][0]["lag_bytes"] >= 0
    assert RO_PW not in json.dumps(res.model_dump(mode="json"))
    assert _dr_replication(res) == ("streaming", 1), "the system's DR view reads the stored result so"
    # the standby stops: the primary lists no replica, hot redundancy fails
    standby.stop()
    for _ in range(100):
        if not primary.sql("select 1 from pg_stat_replication"):
            break
        time.sleep(0.2)
    res = _results(site, ("l3-br-db-replica",))["l3-br-db-replica"]
    assert res.status == Status.FAIL and res.observed["streaming"] == 0
    assert res.observed["databases"][0]["replicas"] == []
    assert _dr_replication(res) == ("broken", 0)


@pytest.mark.root
def test_a_declared_standby_shows_its_own_receiver(replica_pair, monkeypatch):
    primary, standby, base = replica_pair
    standby.sql("select 1")  # a hot standby answers read-only queries
    # the role exists on the standby too: replicated from the primary
    _ro_account(base, monkeypatch, "postgresql", standby.port)
    site = _site(base, {"l3-br-db-replica": {"params": {"databases": [{"instance": str(standby.port)}]}}})
    res = _results(site, ("l3-br-db-replica",))["l3-br-db-replica"]
    truth = standby.sql("select status, sender_port from pg_stat_wal_receiver")
    assert truth == [["streaming", str(primary.port)]]
    assert res.status == Status.PASS, res.reason
    row = res.observed["databases"][0]["replicas"][0]
    assert (row["name"], row["state"]) == ("(this standby)", "streaming")
    assert row["client"] == f"{primary.run}:{primary.port}"  # the primary it receives from
    # its primary gone, the standby's receiver stops: not hot any more
    primary.stop()
    for _ in range(100):
        if not standby.sql("select 1 from pg_stat_wal_receiver where status = 'streaming'"):
            break
        time.sleep(0.2)
    res = _results(site, ("l3-br-db-replica",))["l3-br-db-replica"]
    assert res.status == Status.FAIL and res.observed["streaming"] == 0


# ---- MariaDB replica ----------------------------------------------------------------------------------------


class Maria:
    """A throw-away mariadbd (--no-defaults: nothing of the machine's /etc/mysql) on its own socket and port."""

    def __init__(self, base: Path, name: str, server_id: int) -> None:
        self.dir = base / name
        self.dir.mkdir()
        self.data, self.sock, self.port = self.dir / "data", self.dir / "mysqld.sock", _free_port()
        shutil.chown(self.dir, "mysql", "mysql")
        self.server_id = server_id
        self.proc: subprocess.Popen | None = None
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=mysql", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        argv = [MARIADBD, "--no-defaults", "--user=mysql", f"--datadir={self.data}", f"--socket={self.sock}",
                f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.dir / 'mysqld.pid'}",
                f"--server-id={self.server_id}", f"--log-bin={self.dir / 'binlog'}", "--innodb-buffer-pool-size=16M",
                f"--log-error={self.dir / 'error.log'}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_answering(self.proc, self.sock, self.dir / "error.log")

    def sql(self, statement: str, check: bool = True) -> subprocess.CompletedProcess:
        return root_sql(self.sock, statement, check)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def maria_pair():
    if os.geteuid() != 0:
        pytest.skip("needs root (mariadbd --user=mysql)")
    if not (Path(MARIADBD).exists() and Path(INSTALL_DB).exists()):
        (pytest.fail if os.environ.get("CI") else pytest.skip)("mariadb-server missing (tests/setup-machine.sh)")
    base = Path(tempfile.mkdtemp(prefix="sntl-mariarep-"))
    base.chmod(0o755)
    source, replica = Maria(base, "source", 1), Maria(base, "replica", 2)
    repl_pw = secrets.token_urlsafe(18)
    try:
        source.start()
        replica.start()
        source.sql(f"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{repl_pw}'; "
                   "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';")
        replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, MASTER_USER='repl', "
                    f"MASTER_PASSWORD='{repl_pw}', MASTER_USE_GTID=slave_pos; START SLAVE;")
        replica.sql(f"CREATE USER 'sentinel_ro'@'127.0.0.1' IDENTIFIED BY '{RO_PW}'; "
                    "GRANT REPLICA MONITOR ON *.* TO 'sentinel_ro'@'127.0.0.1';")
        yield source, replica, base
    finally:
        replica.stop()
        source.stop()
        shutil.rmtree(base, ignore_errors=True)


def _replica_status(replica: Maria) -> dict[str, str]:
    """What the replica's own client shows (a header line and one row, tab-separated)."""
    out = subprocess.run([CLIENT, "--no-defaults", "-S", str(replica.sock), "-u", "root", "-B", "-e",
                          "SHOW SLAVE STATUS"], capture_output=True, text=True, timeout=30, check=True).stdout
    head, row = out.splitlines()[:2]
    return dict(zip(head.split("\t"), row.split("\t"), strict=True))


@pytest.mark.root
def test_mariadb_replica_running_then_stopped(maria_pair, monkeypatch):
    source, replica, base = maria_pair
    _ro_account(base, monkeypatch, "mysql", replica.port)
    source.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id int primary key); "
               "INSERT INTO shop.orders VALUES (1)")
    for _ in range(100):  # the row reaches the replica: replication is really running
        if replica.sql("SELECT id FROM shop.orders", check=False).stdout.strip() == "1":
            break
        time.sleep(0.2)
    truth = _replica_status(replica)
    assert truth["Slave_IO_Running"] == truth["Slave_SQL_Running"] == "Yes"
    # declared on the replica, at the DR site; its source (by address) at the primary site
    dr = {"site": "dc-b", "sites": {"127.0.0.1": "dc-a"},
          "databases": [{"kind": "mysql", "instance": str(replica.port)}]}
    site = _site(base, {"l3-br-db-replica": {"params": dr}, "l3-br-offsite-realtime": {"params": dr}})
    both = _results(site, ("l3-br-db-replica", "l3-br-offsite-realtime"))
    res, realtime = both["l3-br-db-replica"], both["l3-br-offsite-realtime"]
    assert res.status == Status.PASS, res.reason
    assert realtime.status == Status.PASS, realtime.reason  # the link crosses sites and streams: 异地实时备份
    link = realtime.observed["databases"][0]["replicas"][0]
    assert (link["site"], link["offsite"], link["realtime"]) == ("dc-a", True, True)
    row = res.observed["databases"][0]["replicas"][0]
    assert row["state"] == "streaming" and row["client"] == f"127.0.0.1:{source.port}"
    assert row["replay_lag_seconds"] == float(truth["Seconds_Behind_Master"])
    assert RO_PW not in json.dumps(res.model_dump(mode="json"))
    # the replica's SQL thread stopped: no longer hot
    replica.sql("STOP SLAVE SQL_THREAD")
    assert _replica_status(replica)["Slave_SQL_Running"] == "No"
    both = _results(site, ("l3-br-db-replica", "l3-br-offsite-realtime"))
    res = both["l3-br-db-replica"]
    assert res.status == Status.FAIL and res.observed["streaming"] == 0
    assert res.observed["databases"][0]["replicas"][0]["state"] == "io=Yes sql=No"
    assert both["l3-br-offsite-realtime"].status == Status.FAIL
    assert both["l3-br-offsite-realtime"].observed["offsite_realtime"] == 0
    assert _dr_replication(res) == ("broken", 0)


# ---- pgBackRest --------------------------------------------------------------------------------------------


@pytest.mark.root
def test_pgbackrest_stanza_backups(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (runs postgres and pgbackrest as the postgres account)")
    _need("pgbackrest")
    if not (BIN / "initdb").exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("PostgreSQL binaries missing (tests/setup-machine.sh)")
    base = Path(tempfile.mkdtemp(prefix="sntl-pgbr-"))
    base.chmod(0o755)
    pg = pwd.getpwnam("postgres")
    c = Pg(base, "dc-a-db")
    c.dir.mkdir()
    c.run.mkdir()
    for sub in ("repo", "log", "lock", "spool"):
        (base / sub).mkdir()
    for d in (c.dir, c.run, *(base / sub for sub in ("repo", "log", "lock", "spool"))):
        os.chown(d, pg.pw_uid, pg.pw_gid)
    conf = base / "pgbackrest.conf"
    conf.write_text(f"[global]\nrepo1-path={base / 'repo'}\nlog-path={base / 'log'}\nlock-path={base / 'lock'}\n"
                    f"spool-path={base / 'spool'}\nrepo1-retention-full=2\nstart-fast=y\n\n"
                    f"[shop]\npg1-path={c.data}\npg1-socket-path={c.run}\npg1-port={c.port}\n", encoding="utf-8")
    conf.chmod(0o644)
    as_pg = ["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}", "--stanza=shop"]
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(c.data), "-U", "postgres",
                        "--auth-local=peer"], check=True, capture_output=True, timeout=120)
        c.start("archive_mode=on", f"archive_command=pgbackrest --config={conf} --stanza=shop archive-push %p",
                "wal_level=replica")
        subprocess.run([*as_pg, "stanza-create"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_pg, "--type=full", "backup"], check=True, capture_output=True, timeout=240)
        before = _tree(base / "repo")
        logs = sorted(p.name for p in (base / "log").iterdir())
        truth = json.loads(subprocess.run([*as_pg, "--output=json", "info"], check=True, capture_output=True,
                                          text=True, timeout=60).stdout)[0]["backup"]
        backups = [{"name": "shop-pgbr", "tool": "pgbackrest", "repository": "shop", "config": str(conf),
                    "site": "dc-a"}]
        site = _site(tmp_path, {"l3-br-backup-rpo": {"params": {"backups": backups, "site": "dc-a"}}})
        res = _results(site, ("l3-br-backup-rpo",))["l3-br-backup-rpo"]
        assert res.status == Status.PASS, res.reason
        copy = res.observed["copies"][0]
        assert copy["backups"] == len(truth) == 1
        stop = datetime.fromtimestamp(truth[0]["timestamp"]["stop"], timezone.utc)
        assert copy["newest"] == stop.isoformat(timespec="seconds")
        assert _tree(base / "repo") == before and sorted(p.name for p in (base / "log").iterdir()) == logs
        # an RPO shorter than the backup's age fails
        site = _site(tmp_path, {"l3-br-backup-rpo": {"params": {"backups": backups, "site": "dc-a",
                                                                "rpo_hours": 0.0001}}})
        time.sleep(1)
        assert _results(site, ("l3-br-backup-rpo",))["l3-br-backup-rpo"].status == Status.FAIL
        # a stanza that does not exist is an error, not "no backup"
        missing = [{**backups[0], "repository": "nosuch"}]
        site = _site(tmp_path, {"l3-br-backup-rpo": {"params": {"backups": missing, "site": "dc-a"}}})
        res = _results(site, ("l3-br-backup-rpo",))["l3-br-backup-rpo"]
        assert res.status == Status.ERROR, (res.status, res.observed)
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---- 异地实时备份: an off-site replica as the off-site real-time copy -----------------------------------------


def _stored(r, run_id: int = 1, at: datetime | None = None):
    from sentinel.dr import StoredResult

    d = json.loads(json.dumps(r.model_dump(mode="json")))
    return StoredResult(check_id=r.check_id, status=d["status"], reason=r.reason, observed=d["observed"],
                        evidence=d["evidence"], waiver=None, run_id=run_id, checked_at=at or datetime.now(timezone.utc))


def _dumps(tmp: Path, hours: dict[str, float]) -> list[dict]:
    """files copies, one file each at the age given: `local` at dc-a, `nightly` (sent off-site) at dc-b."""
    out = []
    for name, age in hours.items():
        d = tmp / name
        d.mkdir()
        f = d / f"{name}.sql.gz"
        f.write_bytes(gzip.compress(b"-- dump\n"))
        at = time.time() - age * 3600
        os.utime(f, (at, at))
        out.append({"name": name, "tool": "files", "paths": [str(d / "*.sql.gz")],
                    "site": "dc-b" if name == "nightly" else "dc-a"})
    return out


def test_a_nightly_off_site_copy_is_off_site_but_not_real_time(tmp_path, monkeypatch):
    """8.1.4.9 b at level 3 asks for 实时: an off-site copy sent nightly is within a 36 h RPO (l3-br-offsite-rpo
    passes) but no copy reaches the backup site in real time, so the item is 部分符合, as assessors record it; at
    level 2 (定时批量传送) the scheduled copy is the whole item."""
    from sentinel.dr import judge_host
    from sentinel.scoring import item_verdict

    _creds(tmp_path, monkeypatch, {})
    dr = {"site": "dc-a", "rpo_hours": 36, "backups": _dumps(tmp_path, {"local": 2, "nightly": 20})}
    site = _site(tmp_path, {cid: {"params": dr} for cid in MINE})
    res = _results(site)
    off, rt = res["l3-br-offsite-rpo"], res["l3-br-offsite-realtime"]
    assert off.status == Status.PASS, off.reason
    assert rt.status == Status.FAIL and rt.observed["offsite_realtime"] == 0
    assert rt.observed["scheduled_offsite_copies"] == ["nightly"]
    assert item_verdict([off, rt], True) == Verdict.PARTIAL
    assert res["l3-br-db-replica"].status == Status.NOT_APPLICABLE  # no database: hot redundancy is a person's
    host = judge_host(1, "app-1", [_stored(r) for r in res.values()], datetime.now(timezone.utc))
    assert host.verdict == "meets" and host.offsite_realtime == "not_met", host.reasons
    assert any(x.startswith("l3-br-offsite-realtime: failed") for x in host.reasons)
    l2 = load_baseline("dengbao-l2-linux")
    assert "l3-br-offsite-realtime" not in {c.id for _, _, c in l2.iter_checks()}


def test_sites_without_the_host_s_own_site_is_refused(tmp_path):
    from sentinel.yamldoc import DataFileError

    site = _site(tmp_path, {"l3-br-offsite-realtime": {"params": {"databases": [{"instance": "5432"}],
                                                                 "sites": {"dr-standby": "dc-b"}}}})
    with pytest.raises(DataFileError) as err:
        load_baseline(site)
    assert "site.yaml" in str(err.value) and "own site" in str(err.value)


@pytest.mark.root
def test_an_off_site_streaming_replica_is_the_off_site_real_time_copy(replica_pair, monkeypatch):
    """The real two-cluster replica, its standby (application_name dr-standby) declared at the DR site: an off-site
    real-time copy and the failover target; then declared at the primary's own site: not off-site; then stopped:
    no longer met. Truth from the primary's pg_stat_replication."""
    from sentinel.dr import judge_host, roll_up
    from sentinel.scoring import item_verdict

    primary, standby, base = replica_pair
    _ro_account(base, monkeypatch, "postgresql", primary.port)
    # the scheduled copies: a fresh local dump, and a nightly off-site one 30 h old (outside the 24 h RPO)
    work = base / "dumps"
    work.mkdir()
    dr = {"site": "dc-a", "rpo_hours": 24, "backups": _dumps(work, {"local": 2, "nightly": 30}),
          "databases": [{"instance": str(primary.port)}], "sites": {"dr-standby": "dc-b"}, "failover": ["dr-standby"]}
    site = _site(base, {cid: {"params": dr} for cid in MINE})
    assert primary.sql("select application_name, state from pg_stat_replication") == [["dr-standby", "streaming"]]
    res = _results(site)
    rt, off = res["l3-br-offsite-realtime"], res["l3-br-offsite-rpo"]
    assert rt.status == Status.PASS, rt.reason
    link = rt.observed["databases"][0]["replicas"][0]
    assert (link["name"], link["site"], link["offsite"], link["realtime"], link["failover"]) == \
        ("dr-standby", "dc-b", True, True, True)
    assert rt.observed["offsite_realtime"] == rt.observed["failover_ready"] == 1
    assert rt.observed["realtime_lag_seconds"] == 1800
    # the replica is an off-site copy within the RPO, though the nightly one is not
    assert off.status == Status.PASS, off.reason
    copies = {c["name"]: c for c in off.observed["copies"]}
    assert copies["nightly"]["within_rpo"] is False
    assert copies["dr-standby"]["tool"] == "postgresql replica" and copies["dr-standby"]["within_rpo"]
    assert copies["dr-standby"]["site"] == "dc-b" and copies["dr-standby"]["backups"] == 1
    assert off.observed["offsite_count"] == 2
    assert item_verdict([off, rt], True) == Verdict.CONFORM
    assert RO_PW not in json.dumps([r.model_dump(mode="json") for r in res.values()])
    now = datetime.now(timezone.utc)
    host = judge_host(1, "db-1", [_stored(r) for r in res.values()], now)
    assert host.verdict == "meets" and host.offsite_realtime == "met", host.reasons
    assert host.offsite_count == 2 and host.offsite_replicas == 1
    assert host.newest_offsite is not None and now - host.newest_offsite < timedelta(minutes=5)
    assert [c.name for c in host.copies if c.offsite] == ["nightly", "dr-standby"]
    assert len(host.failover_targets) == 1 and "dr-standby" in host.failover_targets[0]
    assert "real-time off-site copy" in host.failover_targets[0]
    system = roll_up(1, "his", 1, "wsj", 4, [host], now)
    assert system.offsite_realtime == "met" and system.failover_targets == [f"db-1: {host.failover_targets[0]}"]
    # a silent agent: 26 h on, the replica's data as last seen is past the 24 h RPO
    assert judge_host(1, "db-1", [_stored(r) for r in res.values()], now + timedelta(hours=26)).verdict == "misses"

    # the same standby declared at the primary's own site: a hot standby, not an off-site copy
    same = {**dr, "sites": {"dr-standby": "dc-a"}}
    res = _results(_site(base, {cid: {"params": same} for cid in MINE}))
    assert res["l3-br-db-replica"].status == Status.PASS
    assert res["l3-br-offsite-realtime"].status == Status.FAIL
    assert res["l3-br-offsite-realtime"].observed["databases"][0]["replicas"][0]["offsite"] is False
    assert res["l3-br-offsite-rpo"].status == Status.FAIL  # only the 30 h nightly copy is off-site
    host = judge_host(1, "db-1", [_stored(r) for r in res.values()], datetime.now(timezone.utc))
    assert host.verdict == "misses" and host.offsite_realtime == "not_met" and host.offsite_count == 1
    assert host.offsite_replicas == 0

    # replication broken: the standby stops, nothing streams to the DR site
    standby.stop()
    for _ in range(100):
        if not primary.sql("select 1 from pg_stat_replication"):
            break
        time.sleep(0.2)
    res = _results(site)
    assert res["l3-br-offsite-realtime"].status == Status.FAIL
    assert res["l3-br-offsite-rpo"].status == Status.FAIL and res["l3-br-db-replica"].status == Status.FAIL
    host = judge_host(1, "db-1", [_stored(r) for r in res.values()], datetime.now(timezone.utc))
    assert host.verdict == "misses" and host.offsite_realtime == "not_met" and host.replication == "broken"
    assert host.failover_targets == []
