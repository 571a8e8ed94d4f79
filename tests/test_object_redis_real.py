"""The Redis object kind against the real redis-server 7.0 of Debian's package (issue 15).

Each server is started by the test as the package's `redis` account (setpriv, as redis-server.service does),
listening on a Unix socket in a private directory only (port 0: no TCP at all), and stopped with SIGTERM at
teardown. Its configuration is a small wrapper file that `include`s the configuration under test (a copy of the
package's /etc/redis/redis.conf, as shipped or with rectified lines appended) and then sets what the test needs to
run it privately: port 0, the socket, the pid, log and data files in the private directory, daemonize no. The probes
read that wrapper, so the include and precedence rules are exercised for real too.

Expected answers come from redis-cli against the same server: `CONFIG GET` for every configuration the level-3
baseline judges, PING without AUTH, `ACL DRYRUN` for each dangerous command, `COMMAND INFO` for the renamed ones,
and `ACL GETUSER`. Passwords come from secrets.token_urlsafe and are checked never to appear in a report.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.checks import _redis_conf as conf
from sentinel.engine import run_baseline
from sentinel.hostview import LiveHost
from sentinel.model import Status
from sentinel.probe import ProbeContext, registry

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]
REDIS = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
STOCK = Path("/etc/redis/redis.conf")
DANGEROUS = ("flushall", "flushdb", "config", "keys", "debug", "shutdown")


def _need() -> None:
    missing = [p for p in (REDIS, REDIS_CLI, str(STOCK), "/usr/bin/setpriv") if not os.path.exists(p)]
    if os.geteuid() != 0:
        missing.append("root")
    if missing:  # in CI tests/setup-machine.sh installs redis-server, so missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} not available "
                                                               "(tests/setup-machine.sh)")


class Server:
    """One redis-server of the test's own, on a Unix socket in a private directory."""

    def __init__(self, name: str, extra: str = "", base: Path | None = STOCK) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"sntl-redis-{name}-"))
        shutil.chown(self.dir, "redis", "redis")
        self.dir.chmod(0o750)
        self.sock = self.dir / "redis.sock"
        self.tls_port = 0
        self.conf = self.dir / "redis.conf"  # the configuration under test
        text = base.read_text(encoding="utf-8") if base else ""
        self.conf.write_text(text + ("\n# rectified\n" + extra if extra else ""), encoding="utf-8")
        self.wrapper = self.dir / "wrapper.conf"
        self.wrapper.write_text(f"include {self.conf}\nport 0\nunixsocket {self.sock}\nunixsocketperm 700\n"
                                f"daemonize no\npidfile {self.dir / 'redis.pid'}\nlogfile {self.dir / 'redis.log'}\n"
                                f"dir {self.dir}\n", encoding="utf-8")
        for f in (self.conf, self.wrapper):
            shutil.chown(f, "redis", "redis")
            f.chmod(0o640)
        self.proc = subprocess.Popen(["/usr/bin/setpriv", "--reuid=redis", "--regid=redis", "--init-groups",
                                      REDIS, str(self.wrapper)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                log = (self.dir / "redis.log").read_text(errors="replace") if (self.dir / "redis.log").exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start: {err[-500:]} {log[-1000:]}")
            time.sleep(0.05)

    def cli(self, *args: str, user: str | None = None, password: str | None = None) -> str:
        argv = [REDIS_CLI, "-s", str(self.sock), "--no-auth-warning"]
        if user:
            argv += ["--user", user]
        if password:
            argv += ["--pass", password]
        return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=10, check=True).stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


ADMIN, APP, RO = (secrets.token_urlsafe(18) + "aA1-" for _ in range(3))
RECTIFIED = f"""
timeout 300
maxclients 500
rename-command FLUSHALL ""
rename-command FLUSHDB ""
rename-command KEYS ""
user default off
user admin on >{ADMIN} ~* &* +@all
user app on >{APP} ~app:* resetchannels -@all +@read +@write -@dangerous
user sentinel on >{RO} resetkeys resetchannels -@all +ping +info +config|get +acl|list +command|info
"""


@pytest.fixture(scope="module")
def stock():
    _need()
    srv = Server("stock")
    yield srv
    srv.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_files():
    """A self-signed certificate that is the server's, the client's and the CA (tests/netlab.make_cert)."""
    from tests.netlab import make_cert

    d = Path(tempfile.mkdtemp(prefix="sntl-redis-tls-"))
    crt, key = make_cert(d / "redis", "127.0.0.1", expired=False)
    for f in (d, crt, key):
        shutil.chown(f, "redis", "redis")
    yield crt, key
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def rectified(tls_files):
    _need()
    crt, key = tls_files
    port = _free_port()
    srv = Server("rectified", RECTIFIED + f"tls-port {port}\ntls-cert-file {crt}\ntls-key-file {key}\n"
                                         f"tls-ca-cert-file {crt}\ntls-protocols \"TLSv1.2 TLSv1.3\"\n")
    srv.tls_port = port
    yield srv
    srv.stop()


def _account(monkeypatch, srv: Server, user: str | None = None, password: str | None = None) -> None:
    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(srv.dir / "no-site-file.yaml"))
    monkeypatch.setenv("SENTINEL_REDIS_SOCKET", str(srv.sock))
    for name, value in (("USER", user), ("PASSWORD", password)):
        if value:
            monkeypatch.setenv(f"SENTINEL_REDIS_{name}", value)
        else:
            monkeypatch.delenv(f"SENTINEL_REDIS_{name}", raising=False)


def _probe(srv: Server, kind: str, ctx: ProbeContext | None = None, **params):
    ctx = ctx or ProbeContext(host=LiveHost(), family="debian", os_release={})
    pdef = registry()[kind]
    return pdef.func(ctx, pdef.params.model_validate({"config": str(srv.wrapper), **params}))


def _report(srv: Server):
    spec = load_baseline("dengbao-l3-redis")
    for _, _, check in spec.iter_checks():
        if check.probe.startswith("redis."):
            check.params["config"] = str(srv.wrapper)
    return run_baseline(spec, LiveHost())


def _judged_keys() -> set[str]:
    keys: set[str] = set()
    for _, _, check in load_baseline("dengbao-l3-redis").iter_checks():
        if check.probe in ("redis.config", "redis.server_config"):
            keys.add(check.params["key"])
        elif check.probe == "redis.options":
            keys.update(check.params["keys"])
    return keys | {"bind", "port", "tls-port", "protected-mode", "tls-auth-clients", "aclfile", "dir"}


def _config_get(srv: Server, key: str, **auth) -> str:
    out = srv.cli("--raw", "CONFIG", "GET", key, **auth).split("\n")
    assert out[0] == key, out
    return out[1]


# ---- the file model against the program ---------------------------------------------------------------


def test_compiled_in_defaults_are_the_programs():
    """An empty configuration: every default sentinel uses is what the real server reports."""
    _need()
    srv = Server("empty", base=None)
    try:
        local = {"port", "unixsocket", "unixsocketperm", "daemonize", "dir", "logfile"}  # the wrapper sets these
        for key, value in conf.DEFAULTS_70.items():
            if key not in local:
                assert _config_get(srv, key) == value, key
        assert srv.cli("--raw", "INFO", "server").count("redis_version:7.0.") == 1
    finally:
        srv.stop()


@pytest.mark.parametrize("which", ["stock", "rectified"])
def test_file_values_are_what_the_server_runs(request, which):
    srv = request.getfixturevalue(which)
    auth = {"user": "admin", "password": ADMIN} if which == "rectified" else {}
    for key in sorted(_judged_keys()):
        assert _probe(srv, "redis.config", key=key).observed == _config_get(srv, key, **auth), key


def test_stock_acl_model_matches_the_server(stock):
    facts = _probe(stock, "redis.acl").observed
    assert stock.cli("PING").strip() == "PONG" and facts["unauthenticated"] is True
    runnable = []
    for cmd in DANGEROUS:
        args = {"config": ["config", "set", "timeout", "5"], "keys": ["keys", "*"],
                "debug": ["debug", "sleep", "0"]}.get(cmd, [cmd])
        if stock.cli("ACL", "DRYRUN", "default", *args).strip() == "OK" and (
                cmd != "debug" or _config_get(stock, "enable-debug-command") != "no"):
            runnable.append(cmd)
    assert facts["default_commands"] == sorted(runnable) == ["config", "flushall", "flushdb", "keys", "shutdown"]
    assert "on nopass" in stock.cli("ACL", "LIST") and facts["default_superuser"] is True


def test_rectified_acl_model_matches_the_server(rectified):
    facts = _probe(rectified, "redis.acl").observed
    assert "NOAUTH" in rectified.cli("PING") and facts["unauthenticated"] is False
    admin = {"user": "admin", "password": ADMIN}
    getuser = rectified.cli("ACL", "GETUSER", "default", **admin)
    assert "off" in getuser.split() and facts["default_enabled"] is False
    for cmd in ("flushall", "flushdb", "keys"):  # removed by rename-command: the server no longer knows them
        assert rectified.cli("COMMAND", "INFO", cmd, **admin).strip() == "", cmd
    assert rectified.cli("ACL", "DRYRUN", "app", "flushall", **admin).strip() != "OK"
    assert facts["superusers"] == ["admin"] and facts["named_users"] == 3
    assert facts["weak_passwords"] == []


# ---- the baseline's verdicts -------------------------------------------------------------------------------

STOCK_FAILS = {"l3-redis-auth-required", "l3-redis-auth-required-server", "l3-redis-weak-passwords",
               "l3-redis-weak-passwords-server", "l3-redis-idle-timeout", "l3-redis-idle-timeout-server",
               "l3-redis-named-users", "l3-redis-default-user", "l3-redis-default-user-server",
               "l3-redis-dangerous-commands", "l3-redis-dangerous-commands-server", "l3-redis-superusers",
               "l3-redis-superusers-server", "l3-redis-maxclients"}


def _redis_results(report) -> dict:
    # the file.mode and logrotate checks judge the host's own files, not the test's copy; -rhel ones another family
    return {r.check_id: r for r in report.results if r.check_id.startswith("l3-redis-")
            and r.check_id not in ("l3-redis-config-mode", "l3-redis-log-mode", "l3-redis-log-retention")
            and not r.check_id.endswith("-rhel")}


def test_stock_fails_what_an_assessor_fails(stock, monkeypatch):
    _account(monkeypatch, stock)  # the stock server needs no account: default is open
    results = _redis_results(_report(stock))
    status = {k: r.status for k, r in results.items()}
    assert {k for k, s in status.items() if s == Status.FAIL} == STOCK_FAILS, status
    assert {k for k, s in status.items() if s != Status.FAIL} == {k for k in status if k not in STOCK_FAILS}
    assert all(s == Status.PASS for k, s in status.items() if k not in STOCK_FAILS), status
    assert results["l3-redis-not-root"].observed["user"] == "redis"
    assert results["l3-redis-not-root"].observed["pid"] == stock.proc.pid


def test_rectified_passes(rectified, monkeypatch):
    _account(monkeypatch, rectified, "sentinel", RO)
    report = _report(rectified)
    results = _redis_results(report)
    bad = {k: (r.status, r.reason) for k, r in results.items() if r.status != Status.PASS}
    assert not bad, bad
    text = report.model_dump_json()
    for secret in (ADMIN, APP, RO):
        assert secret not in text
    assert "<withheld>" in json.dumps([e.model_dump(mode="json") for r in report.results for e in r.evidence])


def test_without_the_account_the_server_checks_are_errors_not_passes(rectified, monkeypatch):
    _account(monkeypatch, rectified)  # no user or password: the login as default is refused (default is off)
    results = _redis_results(_report(rectified))
    for check_id, result in results.items():
        if check_id.endswith("-server") or check_id == "l3-redis-not-root":
            assert result.status == Status.ERROR, (check_id, result.status)
            assert "redis unix:" in (result.reason or "")


def test_a_runtime_change_is_seen_by_the_server_checks_only(rectified, monkeypatch):
    """CONFIG SET by the administrator (the test, not sentinel): the file still says 300, the server 0."""
    admin = {"user": "admin", "password": ADMIN}
    rectified.cli("CONFIG", "SET", "timeout", "0", **admin)
    try:
        _account(monkeypatch, rectified, "sentinel", RO)
        results = _redis_results(_report(rectified))
        assert results["l3-redis-idle-timeout"].status == Status.PASS
        assert results["l3-redis-idle-timeout-server"].status == Status.FAIL
    finally:
        rectified.cli("CONFIG", "SET", "timeout", "300", **admin)


def test_the_read_only_account_cannot_write(rectified):
    ro = {"user": "sentinel", "password": RO}
    assert "NOPERM" in rectified.cli("CONFIG", "SET", "timeout", "1", **ro)
    assert "NOPERM" in rectified.cli("SET", "k", "v", **ro)


def _tls_ping(port: int, crt: Path, key: Path | None) -> str:
    """PING over TLS 1.2, with or without a client certificate: the server's answer, or the handshake's error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the lab certificate names 127.0.0.1 in its CN only
    ctx.load_verify_locations(crt)
    if key is not None:
        ctx.load_cert_chain(crt, key)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            tls.sendall(b"PING\r\n")
            return tls.recv(200).decode(errors="replace")
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused: {type(exc).__name__}"


def test_rectified_tls_wants_a_client_certificate(rectified, tls_files):
    """What l3-redis-client-certificates judges from the file, asked of the server with real handshakes."""
    crt, key = tls_files
    assert _tls_ping(rectified.tls_port, crt, key).startswith("-NOAUTH")  # TLS is up, AUTH still required
    assert _tls_ping(rectified.tls_port, crt, None).startswith("refused")  # no certificate, no session
    facts = _probe(rectified, "redis.exposure").observed
    assert facts["tls_port"] == rectified.tls_port and facts["tls_auth_clients"] == "yes"
