"""dengbao-l3-mysql against a real MariaDB from Debian's package, started by the test.

Each scenario is a throw-away server: a datadir made by mariadb-install-db as Debian's postinst makes it
(--skip-test-db, socket-authenticated root), mariadbd as the mysql account on its own Unix socket and a free
loopback port, reading /etc/mysql exactly as installed, because the test bind-mounts the scenario's tree over
/etc/mysql in a private mount namespace (`unshare -m`) for the server and for `sentinel check --object mysql`.
The stock tree is the package's (tests/fixtures/mysql/debian12-stock, held to dpkg's md5sums); the rectified one
adds tests/fixtures/mysql/90-dengbao.cnf with this run's paths. A third server is made with mariadb-install-db's
own defaults (test database, anonymous accounts, root with an empty password), as upstream and RHEL-family
installs leave it.

Expected answers come from the server itself: the `mariadb` client's SHOW GLOBAL VARIABLES and mysql.user,
whether an account is refused after wrong passwords, and the MariaDB Audit Plugin's log of what sentinel's
account sent (one connection, SELECT and SHOW only). Every server is stopped in the fixture's teardown.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.mariaserver import CLIENT, INSTALL_DB, MARIADBD, root_sql, wait_answering

FIXTURES = Path(__file__).parent / "fixtures" / "mysql"
TOOLS = (MARIADBD, INSTALL_DB, CLIENT, "/usr/bin/unshare", "/usr/bin/openssl")
RO_USER = "sentinel_ro"

STOCK_FAILS = {  # what an assessor fails on Debian 12's MariaDB as installed
    "l3-mysql-ia-password-complexity", "l3-mysql-ia-password-complexity-config", "l3-mysql-ia-password-lifetime",
    "l3-mysql-ia-password-lifetime-config", "l3-mysql-ia-login-lockout", "l3-mysql-ia-login-lockout-config",
    "l3-mysql-ia-idle-timeout", "l3-mysql-ia-idle-timeout-config", "l3-mysql-ac-local-infile-off",
    "l3-mysql-ac-local-infile-off-config", "l3-mysql-ac-secure-file-priv", "l3-mysql-ac-secure-file-priv-config",
    "l3-mysql-au-audit-on", "l3-mysql-au-audit-on-config", "l3-mysql-au-audit-plugin-permanent",
    "l3-mysql-ip-skip-name-resolve", "l3-mysql-di-tls-required", "l3-mysql-di-tls-required-config",
    "l3-mysql-dc-tls-required", "l3-mysql-dc-tls-required-config", "l3-mysql-br-binlog", "l3-mysql-br-binlog-config",
    "l3-mysql-au-log-files-protected"}
UPSTREAM_FAILS = {"l3-mysql-ia-empty-password", "l3-mysql-ac-no-anonymous", "l3-mysql-ac-no-test-database",
                  "l3-mysql-ia-duplicate-names", "l3-mysql-ac-root-local-only", "l3-mysql-ia-no-password-never-expires"}


def _need() -> None:
    missing = [p for p in TOOLS if not os.path.exists(p)]
    why = f"{', '.join(missing)} not installed (tests/setup-machine.sh)" if missing else None
    if os.geteuid() != 0:
        why = "needs root (mount namespace, mariadbd --user=mysql)"
    if why:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _password() -> str:
    # meets simple_password_check (upper, lower, digit, other) whatever token_urlsafe drew
    return secrets.token_urlsafe(18) + "Aa1-"


def _in_namespace(etc: Path, argv: list[str]) -> list[str]:
    """argv run with `etc` mounted over /etc/mysql (and nothing over /etc/my.cnf's place), visible to it alone."""
    script = 'mount --bind "$0" /etc/mysql && exec "$@"'
    if os.path.exists("/etc/my.cnf"):  # this machine's own file would be read first: hide it
        script = 'mount --bind /dev/null /etc/my.cnf && ' + script
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(etc), *argv]


class Server:
    def __init__(self, name: str, rectified: bool = False, install_args: tuple[str, ...] = ("--skip-test-db",)):
        self.dir = Path(tempfile.mkdtemp(prefix=f"sentinel-mysql-{name}-"))
        os.chmod(self.dir, 0o755)  # mariadbd runs as mysql and must reach its datadir and socket
        self.etc = self.dir / "etc-mysql"
        run = self.dir / "run"  # the mysql account writes its socket and pid file here
        run.mkdir()
        shutil.chown(run, "mysql", "mysql")
        self.data, self.sock, self.pid, self.port = self.dir / "data", run / "mysqld.sock", run / "mysqld.pid", \
            _free_port()
        self.audit_log = self.dir / "log" / "server_audit.log"
        self.ro_password = _password()
        self.proc: subprocess.Popen | None = None
        self.err = None
        shutil.copytree(FIXTURES / "debian12-stock" / "etc" / "mysql", self.etc, symlinks=False,
                        ignore=shutil.ignore_patterns("my.cnf"))
        # /etc/mysql/my.cnf -> /etc/alternatives/my.cnf -> mariadb.cnf on Debian: the same file, copied
        shutil.copy(self.etc / "mariadb.cnf", self.etc / "my.cnf")
        if rectified:
            self._rectify()
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=mysql", "--disable-log-bin",
                        *install_args], check=True, capture_output=True, timeout=120)

    def _rectify(self) -> None:
        for sub in ("log", "files", "binlog", "ssl"):
            (self.dir / sub).mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=sentinel-test", "-keyout", str(self.dir / "ssl/key.pem"), "-out",
                        str(self.dir / "ssl/cert.pem")], check=True, capture_output=True, timeout=60)
        for sub in ("log", "files", "binlog", "ssl"):
            shutil.chown(self.dir / sub, "mysql", "mysql")
            for f in (self.dir / sub).iterdir():
                shutil.chown(f, "mysql", "mysql")
        text = (FIXTURES / "90-dengbao.cnf").read_text(encoding="utf-8")
        for old, new in {"/var/log/mysql/server_audit.log": str(self.audit_log),
                         "/var/lib/mysql-files": str(self.dir / "files"),
                         "/etc/mysql/ssl/server-cert.pem": str(self.dir / "ssl/cert.pem"),
                         "/etc/mysql/ssl/server-key.pem": str(self.dir / "ssl/key.pem"),
                         "/var/log/mysql/mariadb-bin": str(self.dir / "binlog/mariadb-bin"),
                         # every statement of every account, so the test sees all that sentinel sent
                         "server_audit_events = CONNECT,QUERY_DDL,QUERY_DCL": "server_audit_events = CONNECT,QUERY",
                         }.items():
            assert old in text, old
            text = text.replace(old, new)
        (self.etc / "mariadb.conf.d" / "90-dengbao.cnf").write_text(text, encoding="utf-8")

    def start(self) -> None:
        argv = [MARIADBD, "--user=mysql", f"--datadir={self.data}", f"--socket={self.sock}", f"--port={self.port}",
                f"--pid-file={self.pid}", "--innodb-buffer-pool-size=16M"]
        self.err = open(self.dir / "stderr.log", "wb")  # closed with the process in stop()
        self.proc = subprocess.Popen(_in_namespace(self.etc, argv), stdout=self.err, stderr=self.err)
        wait_answering(self.proc, self.sock, self.dir / "stderr.log")

    def sql(self, statement: str, check: bool = True) -> subprocess.CompletedProcess:
        return root_sql(self.sock, statement, check)

    def tcp_login(self, user: str, password: str, tls: bool) -> subprocess.CompletedProcess:
        argv = [CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", user, "-N", "-e", "SELECT 1"]
        # the password goes in the environment the client reads (MYSQL_PWD), never on a command line
        # --skip-ssl: the 10.11 client would otherwise use TLS when the server offers it
        return subprocess.run(argv + (["--ssl"] if tls else ["--skip-ssl"]), capture_output=True, text=True, timeout=30,
                              env={**os.environ, "MYSQL_PWD": password})

    def variables(self) -> dict[str, str]:
        out = self.sql("SHOW GLOBAL VARIABLES").stdout
        return dict(line.split("\t", 1) if "\t" in line else (line, "") for line in out.splitlines())

    def grant_reader(self) -> None:
        """The read-only account of docs/objects/mysql.md."""
        self.sql(f"CREATE USER '{RO_USER}'@'localhost' IDENTIFIED BY '{self.ro_password}'; "
                 f"GRANT SELECT ON mysql.* TO '{RO_USER}'@'localhost'; "
                 f"GRANT SHOW DATABASES ON *.* TO '{RO_USER}'@'localhost';")

    def check(self) -> dict:
        """`sentinel check --object mysql:PORT --format json` as a separate process seeing this server's /etc/mysql."""
        env = {**os.environ, "SENTINEL_MYSQL_USER": RO_USER, "SENTINEL_MYSQL_PASSWORD": self.ro_password,
               "SENTINEL_MYSQL_SOCKET": str(self.sock),
               "SENTINEL_OBJECT_CREDENTIALS": str(self.dir / "no-such-credentials-file.yaml")}
        argv = [sys.executable, "-m", "sentinel.cli", "check", "--object", f"mysql:{self.port}", "--format", "json"]
        done = subprocess.run(_in_namespace(self.etc, argv), capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode in (0, 1), done.stderr
        assert self.ro_password not in done.stdout + done.stderr  # the secret is never in the output
        return json.loads(done.stdout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            pid = self.pid.read_text().strip() if self.pid.exists() else None
            if pid:
                os.kill(int(pid), signal.SIGTERM)  # mariadbd itself (the unshare wrapper exec'd into it)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.err is not None:
            self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _results(report: dict) -> dict[str, dict]:
    return {r["check_id"]: r for r in report["results"]}


@pytest.fixture(scope="module")
def stock():
    _need()
    srv = Server("stock")
    try:
        srv.start()
        srv.grant_reader()
        srv.sql(f"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{_password()}'")
        yield srv, srv.check()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rectified():
    _need()
    srv = Server("rectified", rectified=True)
    try:
        srv.start()
        srv.grant_reader()
        yield srv, srv.check()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def upstream():
    _need()
    srv = Server("upstream", install_args=("--auth-root-authentication-method=normal",))
    try:
        srv.start()
        srv.grant_reader()
        # an application account left from an old install, exempt from password expiry
        srv.sql(f"CREATE USER 'legacy'@'localhost' IDENTIFIED BY '{_password()}' PASSWORD EXPIRE NEVER")
        yield srv, srv.check()
    finally:
        srv.stop()


def test_stock_debian_fails_what_an_assessor_fails(stock):
    _, report = stock
    got = {cid: r["status"] for cid, r in _results(report).items()}
    assert {c for c, s in got.items() if s == "fail"} == STOCK_FAILS
    assert {c for c, s in got.items() if s == "error"} == set()
    assert report["object"]["kind"] == "mysql" and report["baseline"]["id"] == "dengbao-l3-mysql"


def test_rectified_passes_every_check(rectified):
    _, report = rectified
    assert {cid: r["status"] for cid, r in _results(report).items() if r["status"] != "pass"} == {}


@pytest.mark.parametrize("scenario", ["stock", "rectified"])
def test_live_values_are_the_servers(scenario, request):
    """Every variable a live check judged is what the mariadb client's SHOW GLOBAL VARIABLES shows."""
    srv, report = request.getfixturevalue(scenario)
    real = srv.variables()
    judged = 0
    for r in report["results"]:
        source = r["evidence"][0]["source"] if r["evidence"] else ""
        if isinstance(r["observed"], dict) and source.startswith("SHOW GLOBAL VARIABLES"):
            for name, value in r["observed"].items():
                assert value == real.get(name), (r["check_id"], name)
                judged += 1
    assert judged >= 15


def test_accounts_are_the_servers(stock, upstream):
    """Account verdicts follow mysql.user as the client reads it."""
    for srv, report in (stock, upstream):
        res = _results(report)
        listed = srv.sql("SELECT user, host, Super_priv FROM mysql.user").stdout
        rows = [line.split("\t") for line in listed.splitlines()]
        anonymous = sorted(f"''@{h}" for u, h, _ in rows if u == "")
        assert res["l3-mysql-ac-no-anonymous"]["observed"] == anonymous
        supers = sorted(f"{u}@{h}" for u, h, s in rows if s == "Y" and f"{u}@{h}" not in
                        ("root@localhost", "mysql@localhost"))
        assert res["l3-mysql-au-super-restricted"]["observed"] == supers
    srv, report = upstream
    never = srv.sql("SELECT CONCAT(User, '@', Host) FROM mysql.global_priv "
                    "WHERE JSON_VALUE(Priv, '$.password_lifetime') = 0").stdout.split()
    observed = _results(report)["l3-mysql-ia-no-password-never-expires"]["observed"]
    assert observed == sorted(never) == ["legacy@localhost"]
    databases = stock[0].sql("SHOW DATABASES").stdout.split()
    assert "test" not in databases and "test" in upstream[0].sql("SHOW DATABASES").stdout.split()


def test_upstream_install_defaults_fail_as_default_accounts(upstream):
    """mariadb-install-db's own defaults: anonymous accounts, the test database and root without a password."""
    srv, report = upstream
    res = _results(report)
    assert {c for c in UPSTREAM_FAILS if res[c]["status"] == "fail"} == UPSTREAM_FAILS
    assert res["l3-mysql-ia-empty-password"]["high_risk"] == "6.4.1.1"
    assert any(a.startswith("root@") for a in res["l3-mysql-ia-empty-password"]["observed"])
    # what the verdict means: root really logs in over TCP without a password
    assert srv.tcp_login("root", "", tls=False).returncode == 0
    assert report["summary"]["high_risk"] >= 2


def test_failed_logins_block_the_account_only_when_rectified(stock, rectified):
    """max_password_errors = 5: after five wrong passwords even the right one is refused; stock never blocks."""
    srv, report = rectified
    password = _password()
    srv.sql(f"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{password}'")
    for _ in range(5):
        assert srv.tcp_login("app", "wrong-" + password, tls=True).returncode != 0
    blocked = srv.tcp_login("app", password, tls=True)
    assert blocked.returncode != 0 and "blocked" in blocked.stderr.lower()
    assert _results(report)["l3-mysql-ia-login-lockout"]["status"] == "pass"

    srv, report = stock
    srv.sql("DROP USER 'app'@'127.0.0.1'")
    srv.sql(f"CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{password}'")
    for _ in range(6):
        assert srv.tcp_login("app", "wrong-" + password, tls=False).returncode != 0
    assert srv.tcp_login("app", password, tls=False).returncode == 0
    assert _results(report)["l3-mysql-ia-login-lockout"]["status"] == "fail"


def test_cipher_verdict_is_on_the_servers_own_list(stock, rectified):
    """The ciphers judged are the server's Ssl_cipher_list as the client reads it; none of OpenSSL 3's defaults is
    weak; with TLS off (stock) the cipher check is not applicable, the TLS-required checks fail instead."""
    srv, report = rectified
    shown = srv.sql("SHOW GLOBAL STATUS LIKE 'Ssl_cipher_list'").stdout.split("\t", 1)[1].strip().split(":")
    got = _results(report)["l3-mysql-dc-tls-ciphers"]
    assert got["status"] == "pass" and got["observed"]["ciphers"] == shown and len(shown) > 5
    assert _results(stock[1])["l3-mysql-dc-tls-ciphers"]["status"] == "not_applicable"


def test_weak_suites_are_named():
    from sentinel.checks.mysql import weak_ciphers

    offered = ["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "DES-CBC3-SHA", "RC4-SHA", "NULL-SHA256",
               "ADH-AES128-SHA", "EXP-RC4-MD5", "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES256-GCM-SHA384",
               "PSK-AES256-GCM-SHA384"]
    assert weak_ciphers(offered) == ["DES-CBC3-SHA", "RC4-SHA", "NULL-SHA256", "ADH-AES128-SHA", "EXP-RC4-MD5"]


def test_tls_is_required_only_when_rectified(stock, rectified):
    """require_secure_transport: a TCP login without TLS is refused on the rectified server, accepted on stock."""
    srv, _ = rectified
    password = _password()
    srv.sql(f"CREATE USER 'tls_probe'@'127.0.0.1' IDENTIFIED BY '{password}'")
    # MariaDB 10.11 answers an insecure TCP login with "access denied" (1045) whatever the password
    assert srv.tcp_login("tls_probe", password, tls=False).returncode != 0
    assert srv.tcp_login("tls_probe", password, tls=True).returncode == 0
    srv, _ = stock
    srv.sql(f"CREATE USER 'tls_probe'@'127.0.0.1' IDENTIFIED BY '{password}'")
    assert srv.tcp_login("tls_probe", password, tls=False).returncode == 0


def test_sentinel_sent_only_select_and_show_on_one_connection(rectified):
    """The audit plugin's log of sentinel's account: one connection, and every statement a SELECT or a SHOW."""
    srv, _ = rectified
    # time,serverhost,user,host,connection,query id,operation,database,'object',retcode (the object may hold commas)
    lines = srv.audit_log.read_text(encoding="utf-8", errors="replace").splitlines()
    ours = [r for r in (line.split(",", 8) for line in lines) if len(r) == 9 and r[2] == RO_USER]
    assert sum(1 for r in ours if r[6] == "CONNECT") == 1
    queries = [r[8].rsplit(",", 1)[0].strip("'") for r in ours if r[6] == "QUERY"]
    assert queries and all(q.lstrip().upper().startswith(("SELECT", "SHOW")) for q in queries), queries


def test_wrong_or_missing_account_is_an_error_not_a_verdict(stock):
    """Live checks that cannot log in are `error` with the server's reason, never pass or fail; no secret shown."""
    srv, _ = stock
    wrong = _password()
    for user, password in ((RO_USER, wrong), ("", "")):
        env = {**os.environ, "SENTINEL_MYSQL_USER": user, "SENTINEL_MYSQL_PASSWORD": password,
               "SENTINEL_MYSQL_SOCKET": str(srv.sock),
               "SENTINEL_OBJECT_CREDENTIALS": str(srv.dir / "no-such-credentials-file.yaml")}
        argv = [sys.executable, "-m", "sentinel.cli", "check", "--object", f"mysql:{srv.port}", "--format", "json"]
        done = subprocess.run(_in_namespace(srv.etc, argv), capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 1 and (not password or password not in done.stdout + done.stderr)
        res = _results(json.loads(done.stdout))
        live = res["l3-mysql-ia-login-lockout"]
        assert live["status"] == "error"
        assert ("Access denied" in live["reason"]) if user else ("no read-only" in live["reason"])
        assert res["l3-mysql-ia-login-lockout-config"]["status"] == "fail"  # the option files are still judged


CONFIG_KEYS = {"wait_timeout": "int", "interactive_timeout": "int", "max_password_errors": "int",
               "default_password_lifetime": "int", "local_infile": "bool", "general_log": "bool",
               "require_secure_transport": "bool", "skip_name_resolve": "bool", "tls_version": "str", "log_bin": "flag",
               "server_audit_logging": "bool", "simple_password_check_minimal_length": "int",
               "simple_password_check_digits": "int"}


def _from_option_files(srv: Server) -> dict[str, str | None]:
    """What the option-file probe says each variable will be, reading the scenario's /etc/mysql offline."""
    from sentinel.hostview import RootHost
    from sentinel.probe import NotApplicable, ProbeContext, registry

    root = srv.dir / "root"
    if not root.exists():
        shutil.copytree(srv.etc, root / "etc" / "mysql")
        (root / "var/lib/dpkg").mkdir(parents=True)
        shutil.copy(FIXTURES / "debian12-stock/var/lib/dpkg/status", root / "var/lib/dpkg/status")
    ctx = ProbeContext(host=RootHost(str(root)), family="debian", os_release={})
    probe = registry()["mysql.option"]
    out: dict[str, str | None] = {}
    for key, kind in CONFIG_KEYS.items():
        try:
            out[key] = probe.func(ctx, probe.params.model_validate({"key": key, "kind": kind})).observed
        except NotApplicable:
            out[key] = None
    return out


@pytest.fixture(scope="module")
def plugin_off():
    """Plugins loaded by plugin_load_add and then turned off or forced by their own option."""
    _need()
    srv = Server("plugin-off")
    (srv.etc / "mariadb.conf.d" / "90-plugins.cnf").write_text(
        "[mariadb]\nplugin_load_add = simple_password_check\nplugin_load_add = server_audit\n"
        "simple_password_check = OFF\nserver_audit = FORCE_PLUS_PERMANENT\nwait_timeout = 600\n", encoding="utf-8")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("scenario", ["stock", "rectified", "plugin_off"])
def test_option_files_predict_the_running_servers_variables(scenario, request):
    """Read offline, the option files give every judged variable the value the started server reports (defaults
    of unset ones, plugins loaded or turned off), so the -config checks judge what the server will run with."""
    got = request.getfixturevalue(scenario)
    srv = got[0] if isinstance(got, tuple) else got
    real = srv.variables()
    assert _from_option_files(srv) == {k: real.get(k) for k in CONFIG_KEYS}


def test_account_without_select_on_mysql_errors_only_the_account_checks(stock):
    """The GRANT matters: without SELECT on mysql.* the account checks are errors naming the missing privilege,
    and the variables are still judged."""
    srv, _ = stock
    password = _password()
    srv.sql(f"CREATE USER 'narrow'@'localhost' IDENTIFIED BY '{password}'; "
            "GRANT SHOW DATABASES ON *.* TO 'narrow'@'localhost';")
    env = {**os.environ, "SENTINEL_MYSQL_USER": "narrow", "SENTINEL_MYSQL_PASSWORD": password,
           "SENTINEL_MYSQL_SOCKET": str(srv.sock),
           "SENTINEL_OBJECT_CREDENTIALS": str(srv.dir / "no-such-credentials-file.yaml")}
    argv = [sys.executable, "-m", "sentinel.cli", "check", "--object", f"mysql:{srv.port}", "--format", "json"]
    done = subprocess.run(_in_namespace(srv.etc, argv), capture_output=True, text=True, env=env, timeout=120)
    res = _results(json.loads(done.stdout))
    assert res["l3-mysql-ac-no-anonymous"]["status"] == "error"
    assert "SELECT on mysql.global_priv" in res["l3-mysql-ac-no-anonymous"]["reason"]
    assert res["l3-mysql-ia-idle-timeout"]["status"] == "fail"
    assert res["l3-mysql-ac-no-test-database"]["status"] == "pass"


def test_mariadb_before_10_4_reads_mysql_user():
    """No mysql.global_priv (MariaDB 10.3): the accounts come from mysql.user, roles left out by the query."""
    from sentinel.checks.mysql import _MARIADB_LEGACY_ACCOUNTS, _read_accounts

    class NoSuchTable(Exception):
        pass

    class Cursor:
        sent: list[str] = []

        def execute(self, sql: str) -> None:
            self.sent.append(sql)
            if "global_priv" in sql:
                raise NoSuchTable(1146, "Table 'mysql.global_priv' doesn't exist")

        def fetchall(self):
            # comparisons come back as 1/0, as the server returns them
            return [("", "localhost", "mysql_native_password", 1, 0, 0, 0, 0, 0, 0, "", -1),
                    ("root", "%", "mysql_native_password", 0, 0, 1, 1, 1, 1, 1, "", -1)]

    cur = Cursor()
    accounts = _read_accounts(cur, "mariadb", NoSuchTable)
    assert cur.sent[-1] == _MARIADB_LEGACY_ACCOUNTS and "is_role = 'N'" in cur.sent[-1]
    assert [(a.name, a.empty_password, "SUPER" in a.privileges) for a in accounts] == [
        ("''@localhost", True, False), ("root@%", False, True)]
