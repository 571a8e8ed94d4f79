"""dengbao-l3-postgresql against a real PostgreSQL from Debian's package (issue 15).

Each test makes a throw-away cluster with the installed major version's initdb in a private /tmp directory and
runs its postgres binary as the postgres account on a Unix socket directory there and a free loopback port (never
the machine's own server on 5432). The configuration is the package's stock one: the postgresql.conf that Debian's
pg_createcluster wrote under /etc/postgresql/VERSION/main (copied, only the paths, port and socket moved by a
conf.d file its own include_dir reads) and the pg_hba.conf initdb renders from the package's sample with
pg_createcluster's methods (peer, scram-sha-256); then a rectified one. The expected values come from the server
itself: pg_settings (the value, its source file and line, the boot value of an unset one), pg_hba_file_rules, a
password-less TCP login refused, the delay auth_delay puts on a wrong password. Every server is stopped at teardown.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks._pg_gucs import GUCS, normalize
from sentinel.engine import run_baseline
from sentinel.hostview import open_host
from sentinel.model import ObjectRef, Status
from tests import pgserver
from tests.netlab import make_cert

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
LIB, VERSION, BIN = pgserver.LIB, pgserver.VERSION, pgserver.BIN
STOCK_CONF = Path(f"/etc/postgresql/{VERSION}/main/postgresql.conf")
PGAUDIT = LIB / VERSION / "lib" / "pgaudit.so"
RO_PASSWORD = secrets.token_urlsafe(18)
AUTOMATED = {"l3-postgresql-" + s for s in (
    "hba-no-remote-trust", "hba-no-trust", "password-check", "failed-login", "idle-session-timeout",
    "idle-in-transaction-timeout",
    "hba-no-cleartext", "ssl-on", "process-user", "postgres-not-remote", "expired-roles", "superusers",
    "logging-collector", "log-connections", "log-disconnections", "log-statement", "pgaudit",
    "audit-settings-in-effect", "log-line-prefix", "log-file-mode", "listen-addresses", "hba-no-wide-range",
    "ssl-min-protocol", "ssl-ciphers", "hba-remote-hostssl", "password-encryption", "wal-archiving")}


def _need() -> None:
    missing = [str(p) for p in (BIN / "initdb", BIN / "postgres", BIN / "psql", STOCK_CONF, PGAUDIT) if not p.exists()]
    if os.geteuid() != 0:
        pytest.skip("needs root (runs postgres as the postgres account)")
    if missing:  # tests/setup-machine.sh installs postgresql and pgaudit and creates the stock cluster
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} missing (tests/setup-machine.sh)")


class Cluster:
    """A throw-away cluster: d/data (initdb), d/etc (the configuration), d/run (the socket)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sntl-pg-"))
        self.dir.chmod(0o755)
        self.port = pgserver.free_port()
        self.data, self.etc, self.run, self.log = (self.dir / n for n in ("data", "etc", "run", "log"))
        self.pg = pwd.getpwnam("postgres")
        for d in (self.etc, self.etc / "conf.d", self.run, self.log, self.dir / "archive"):
            d.mkdir()
        for d in (self.dir, self.run, self.log, self.dir / "archive"):
            os.chown(d, self.pg.pw_uid, self.pg.pw_gid)
        self.proc: subprocess.Popen | None = None
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth-local=peer", "--auth-host=scram-sha-256"], check=True, capture_output=True,
                       timeout=120)
        self.conf = self.etc / "postgresql.conf"
        shutil.copy(STOCK_CONF, self.conf)
        shutil.copy(self.data / "pg_hba.conf", self.etc / "pg_hba.conf")  # the package sample, initdb-rendered
        shutil.copy(self.data / "pg_ident.conf", self.etc / "pg_ident.conf")
        # Only where the stock file points at the machine's own cluster; its include_dir = 'conf.d' reads this.
        (self.etc / "conf.d" / "00-test-paths.conf").write_text(
            f"data_directory = '{self.data}'\nhba_file = '{self.etc}/pg_hba.conf'\n"
            f"ident_file = '{self.etc}/pg_ident.conf'\nexternal_pid_file = '{self.run}/pid'\n"
            f"port = {self.port}\nunix_socket_directories = '{self.run}'\nlisten_addresses = '127.0.0.1'\n"
            "cluster_name = 'sentinel-test'\n", encoding="utf-8")
        for p in self.etc.rglob("*"):
            os.chown(p, self.pg.pw_uid, self.pg.pw_gid)
        os.chown(self.etc, self.pg.pw_uid, self.pg.pw_gid)

    def start(self) -> None:
        self.proc = pgserver.start(["-c", f"config_file={self.conf}"], self.dir / "server.log", self.run, self.port,
                                   tries=100)

    def stop(self) -> None:
        pgserver.stop(self.proc)
        self.proc = None

    def sql(self, query: str) -> list[list[str]]:
        """As the superuser postgres over the socket (peer), the answer's rows."""
        return pgserver.sql(self.run, self.port, query)

    def tcp_login(self, user: str, password: str | None, sslmode: str = "prefer") -> tuple[bool, float]:
        """A TCP login from this machine: (accepted, seconds it took)."""
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": sslmode}
        env.pop("PGPASSWORD", None)
        if password is not None:
            env["PGPASSWORD"] = password
        start = time.monotonic()
        r = subprocess.run([str(BIN / "psql"), "-X", "-w", "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                            "-d", "postgres", "-tAc", "SELECT 1"], env=env, capture_output=True, text=True, timeout=60)
        return r.returncode == 0, time.monotonic() - start

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster(monkeypatch):
    _need()
    c = Cluster()
    monkeypatch.setenv("SENTINEL_POSTGRESQL_CONFIG", str(c.conf))
    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(c.dir / "no-such-file.yaml"))
    for field, value in (("USER", "sentinel_ro"), ("PASSWORD", RO_PASSWORD), ("HOST", "127.0.0.1"),
                         ("PORT", str(c.port))):
        monkeypatch.setenv(f"SENTINEL_POSTGRESQL_{field}", value)
    try:
        yield c
    finally:
        c.close()


def _read_only_account(c: Cluster) -> None:
    c.sql(f"CREATE ROLE sentinel_ro LOGIN PASSWORD '{RO_PASSWORD}'")
    c.sql("GRANT pg_read_all_settings, pg_monitor TO sentinel_ro")


def _run(target: ObjectRef | None = None) -> dict:
    report = run_baseline(load_baseline("dengbao-l3-postgresql"), open_host(None), target=target)
    return {r.check_id: r for r in report.results}


def _assert_files_match_server(c: Cluster, results: dict) -> None:
    """What the probe read from the files is what the server runs with, and unset ones are its boot values."""
    names = [n for n in GUCS if "." not in n and n not in ("data_directory", "hba_file")
             and int(VERSION) >= GUCS[n].since]
    rows = {r[0]: r for r in c.sql("SELECT name, setting, source, sourcefile, sourceline, boot_val FROM pg_settings "
                                   f"WHERE name IN ({', '.join(repr(n) for n in names)})")}
    assert set(rows) == set(names)
    from sentinel.checks.postgresql import SECRET_PRONE, _conf_value
    from sentinel.checks.postgresql import cluster as read_cluster
    from sentinel.probe import ProbeContext

    ctx = ProbeContext(open_host(None), "debian", {})
    pc = read_cluster(ctx)
    assert pc.version == int(VERSION) and pc.data_dir == str(c.data)
    for name in names:
        value, ev, note = _conf_value(pc, name)
        _, setting, source, sourcefile, sourceline, boot = rows[name]
        if name == "archive_command" and setting == "(disabled)":  # its show hook, while archive_mode is off
            setting = boot
        if name in SECRET_PRONE:  # shown only as set or not: a command may hold a password
            setting = "(set)" if setting else ""
        assert value == normalize(name, setting), (name, value, setting)
        if source == "configuration file":
            assert (ev[0].source, ev[0].line) == (sourcefile, int(sourceline)), name
        else:
            assert note is not None and source == "default", (name, source)
            assert GUCS[name].default(int(VERSION)) == normalize(name, boot), (name, boot)


def test_stock_configuration_fails_what_an_assessor_fails(cluster):
    c = cluster
    c.start()
    _read_only_account(c)
    c.sql("CREATE ROLE dba LOGIN SUPERUSER")  # a second superuser, and a login role past its validity
    c.sql("CREATE ROLE olduser LOGIN VALID UNTIL '2001-01-01'")
    results = _run()
    assert set(results) == AUTOMATED
    status = {k: r.status for k, r in results.items()}
    failing = {k for k, s in status.items() if s == Status.FAIL}
    expected = {"l3-postgresql-" + s for s in (
        "password-check", "failed-login", "idle-session-timeout", "idle-in-transaction-timeout",
        "superusers", "expired-roles", "logging-collector", "log-connections", "log-disconnections",
        "log-statement", "pgaudit", "log-line-prefix", "ssl-ciphers", "wal-archiving")}
    # pg_createcluster turns ssl on when it finds the ssl-cert package's snakeoil certificate: the server says
    if c.sql("SHOW ssl") == [["off"]]:
        expected.add("l3-postgresql-ssl-on")
    assert failing == expected, {k: (s, results[k].reason) for k, s in status.items() if s != Status.PASS}
    assert all(s == Status.PASS for k, s in status.items() if k not in failing)
    assert results["l3-postgresql-superusers"].observed == ["dba", "postgres"]
    assert [r.split(" ")[0] for r in results["l3-postgresql-expired-roles"].observed] == ["olduser"]
    # the server's own answers: no trust line, and a TCP login without a password is refused
    rules = c.sql("SELECT line_number, type, auth_method, coalesce(error, '') FROM pg_hba_file_rules")
    assert rules and all(r[3] == "" for r in rules) and not [r for r in rules if r[2] == "trust"]
    assert results["l3-postgresql-hba-no-trust"].observed == []
    assert c.tcp_login("postgres", None)[0] is False
    assert c.tcp_login("sentinel_ro", RO_PASSWORD)[0] is True
    # ssl-on's verdict is whether the server takes a TLS connection
    assert c.tcp_login("sentinel_ro", RO_PASSWORD, sslmode="require")[0] is (
        results["l3-postgresql-ssl-on"].status == Status.PASS)
    _assert_files_match_server(c, results)
    # no secret anywhere in what the report holds
    assert RO_PASSWORD not in str([r.model_dump() for r in results.values()])


RECTIFIED = """\
ssl = on
ssl_cert_file = '{etc}/server.crt'
ssl_key_file = '{etc}/server.key'
ssl_ciphers = 'HIGH:!aNULL:!MD5:!3DES'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = scram-sha-256
shared_preload_libraries = 'pgaudit,auth_delay,passwordcheck'   # restart needed
pgaudit.log = 'ddl, role, write'
auth_delay.milliseconds = 1500
idle_in_transaction_session_timeout = 300s
logging_collector = on
log_directory = '{log}'
log_file_mode = 0600
log_connections = on
log_disconnections = yes
log_statement = 'ddl'
log_line_prefix = '%m [%p] %q%u@%d %r '
archive_mode = on
archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'
"""
RECTIFIED_HBA = """\
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
local   all       all                      scram-sha-256
hostssl all       all       127.0.0.1/32   scram-sha-256
host    all       postgres  0.0.0.0/0      reject
hostssl all       "app", \\
                  report    10.1.0.0/24    scram-sha-256
host    all       all       0.0.0.0/0      reject
host    all       all       0.0.0.0/0      trust     # never reached: the line above matches first
"""


def test_rectified_configuration_passes(cluster, monkeypatch):
    c = cluster
    crt, key = make_cert(c.etc / "server", "localhost", expired=False)
    (c.etc / "conf.d" / "50-rectified.conf").write_text(
        RECTIFIED.format(etc=c.etc, log=c.log, archive=c.dir / "archive"), encoding="utf-8")
    (c.etc / "pg_hba.conf").write_text(RECTIFIED_HBA, encoding="utf-8")
    for p in (crt, key, c.etc / "conf.d" / "50-rectified.conf", c.etc / "pg_hba.conf"):
        os.chown(p, c.pg.pw_uid, c.pg.pw_gid)
    key.chmod(0o600)
    c.start()
    _read_only_account(c)
    c.sql("ALTER SYSTEM SET idle_session_timeout = '10min'")  # postgresql.auto.conf, read after the files
    c.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    # as the agent runs it: the instance discovery found names the configuration (no SENTINEL_POSTGRESQL_CONFIG);
    # the account is the default one, as nothing is given for this instance
    monkeypatch.delenv("SENTINEL_POSTGRESQL_CONFIG")
    results = _run(ObjectRef(kind="postgresql", instance=str(c.port), port=c.port, config=str(c.conf)))
    bad = {k: (r.status.value, r.reason) for k, r in results.items() if r.status != Status.PASS}
    assert not bad, bad
    assert results["l3-postgresql-idle-session-timeout"].observed == 600000
    assert any(e.source == str(c.data / "postgresql.auto.conf") for e in
               results["l3-postgresql-idle-session-timeout"].evidence)
    # the trust line after the catch-all reject is never reached: the server's first match is the reject
    assert results["l3-postgresql-hba-no-trust"].observed == []
    assert any("never reached" in (e.excerpt or "") for e in results["l3-postgresql-hba-no-trust"].evidence)
    rules = c.sql("SELECT line_number, type, database, user_name, address, auth_method, coalesce(error, '') "
                  "FROM pg_hba_file_rules ORDER BY line_number")
    assert [r[0] for r in rules] == ["2", "3", "4", "5", "6", "8", "9"] and all(r[6] == "" for r in rules)
    assert rules[4][3] == "{app,report}"  # the continued line, one rule
    # the server does what the settings say: a wrong password waits auth_delay, no password is refused
    refused, took = c.tcp_login("sentinel_ro", "wrong-" + secrets.token_urlsafe(8))
    assert refused is False and took >= 1.4
    assert c.tcp_login("postgres", None)[0] is False
    assert c.sql("SHOW ssl") == [["on"]]
    assert c.tcp_login("sentinel_ro", RO_PASSWORD, sslmode="require")[0] is True
    assert c.tcp_login("sentinel_ro", RO_PASSWORD, sslmode="disable")[0] is False  # hostssl only
    monkeypatch.setenv("SENTINEL_POSTGRESQL_CONFIG", str(c.conf))
    _assert_files_match_server(c, results)


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "postgresql" / "debian15"


def test_the_offline_fixture_reads_as_the_server_reads_it(cluster):
    """tests/test_object_postgresql.py's Debian fixture (includes, quoting, precedence, @file, a continued hba line)
    loaded into the real server: the probe's values and rules are the server's pg_settings and pg_hba_file_rules."""
    c = cluster
    src = FIXTURE / "etc/postgresql/15/main"
    for p in src.rglob("*"):
        if p.is_file():
            dest = c.etc / p.relative_to(src)
            dest.parent.mkdir(exist_ok=True)
            shutil.copy(p, dest)
    shutil.copy(FIXTURE / "var/lib/postgresql/15/main/postgresql.auto.conf", c.data / "postgresql.auto.conf")
    for p in [*c.etc.rglob("*"), c.data / "postgresql.auto.conf"]:
        os.chown(p, c.pg.pw_uid, c.pg.pw_gid)
    c.start()  # its conf.d/00-test-paths.conf (name order: before the fixture's files) moves only paths and port
    _assert_files_match_server(c, {})
    from sentinel.checks._pg_hba import read_hba

    parsed = read_hba(open_host(None), str(c.etc / "pg_hba.conf"), int(VERSION))
    rules = c.sql("SELECT line_number, type, array_to_string(database, ','), array_to_string(user_name, ','), "
                  "coalesce(address, ''), coalesce(netmask, ''), auth_method, coalesce(error, '') "
                  "FROM pg_hba_file_rules ORDER BY line_number")
    # the server keeps a hostssl line while ssl is off but says it cannot match; the probe skips it likewise
    assert [(r[0], r[7]) for r in rules if r[7]] == [("6", "hostssl record cannot match because SSL is disabled")]
    mine = [[str(r.line), r.type, ",".join(t.text for t in r.databases), ",".join(t.text for t in r.users),
             r.method] for r in parsed.rules]
    assert mine == [[r[0], r[1], r[2].replace('"', ""), r[3], r[6]] for r in rules]
    for r, (_, _, _, _, address, netmask, _, _) in zip(parsed.rules, rules, strict=True):
        if r.network is not None:
            assert (str(r.network.network_address), str(r.network.netmask)) == (address, netmask)


BOOLS = ["on", "off", "of", "t", "TRUE", "ye", "n", "1", "0", "Yes", "o", "2", "tru", "truee", "onn", "offf"]
INTS = ["90s", "1.5min", "10 min", "0x10", "010", "08", "1.5", "2.5", "5 parsecs", "1h", "100us", "-1", "1e3",
        "3 d", "7MB"]


def test_value_spellings_parse_as_the_server_parses_them(cluster):
    """parse_bool and parse_int (checks/_pg_gucs.py) against the server's own parser: SET in a session, the value
    pg_settings then shows, or the refusal."""
    from sentinel.checks._pg_gucs import InvalidValue, parse_bool, parse_int

    c = cluster
    c.start()

    def server(name: str, spelling: str) -> str | None:
        r = subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "psql"), "-X", "-h", str(c.run), "-p",
                            str(c.port), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tA", "-c",
                            f"SET {name} = '{spelling}'", "-c",
                            f"SELECT setting FROM pg_settings WHERE name = '{name}'"],
                           capture_output=True, text=True, timeout=60)
        return r.stdout.split()[-1] if r.returncode == 0 else None

    differ = []
    for spelling in BOOLS:
        mine = parse_bool(spelling)
        theirs = server("enable_seqscan", spelling)
        if theirs != (None if mine is None else "on" if mine else "off"):
            differ.append((spelling, mine, theirs))
    for spelling in INTS:
        try:
            number: str | None = str(parse_int(spelling, "ms"))
        except InvalidValue:
            number = None
        theirs = server("log_min_duration_statement", spelling)  # ms, from -1
        if theirs != number:
            differ.append((spelling, number, theirs))
    assert differ == []


def test_an_account_without_pg_read_all_settings_is_told_what_to_grant(cluster):
    """Without the documented GRANT the account cannot see superuser-only parameters (shared_preload_libraries):
    the drift check is an error naming the GRANT, never a verdict; the role checks still work."""
    c = cluster
    c.start()
    c.sql(f"CREATE ROLE sentinel_ro LOGIN PASSWORD '{RO_PASSWORD}'")
    results = _run()
    drift = results["l3-postgresql-audit-settings-in-effect"]
    assert drift.status == Status.ERROR and "GRANT pg_read_all_settings TO sentinel_ro" in drift.reason
    assert results["l3-postgresql-superusers"].status == Status.PASS


def test_all_does_not_match_a_replication_connection(cluster):
    """The first-match model against the server: a reject for `all` databases does not stop a physical replication
    connection, which reaches the later `replication ... trust` line; the probe reports that line."""
    c = cluster
    (c.etc / "pg_hba.conf").write_text("local all postgres peer\nhost all all 127.0.0.1/32 reject\n"
                                       "host replication all 127.0.0.1/32 trust\n", encoding="utf-8")
    c.start()
    _read_only_account(c)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    replication = subprocess.run([str(BIN / "psql"), "-X", "-w", "-tA", "-c", "IDENTIFY_SYSTEM",
                                  f"host=127.0.0.1 port={c.port} user=postgres replication=true dbname=replication"],
                                 env=env, capture_output=True, text=True, timeout=60)
    assert replication.returncode == 0, replication.stderr  # let in without a password
    assert c.tcp_login("postgres", None)[0] is False  # an ordinary connection meets the reject
    results = _run()
    assert [h.split(":")[1] for h in results["l3-postgresql-hba-no-trust"].observed] == ["3"]
