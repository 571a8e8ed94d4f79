"""`sentinel scan` against more real daemons from Debian's packages in the namespace lab (issue 19).

h1 runs what an assessor flags: redis-server without a password (protected-mode off, as a misconfigured host has
it), MariaDB whose root may log in from anywhere with an empty password, nginx offering only TLS 1.0/1.1 with an
expired self-signed certificate, and telnetd under inetutils-inetd. h2 runs the hardened forms: redis with
`requirepass`, MariaDB root with a strong password, and nginx whose cipher list includes NULL suites. The
expected answers come from the real clients (redis-cli, the mariadb client, openssl s_client) run from the
scanner's namespace; what the scan sent to MariaDB is read from the server's general log. Traffic stays inside
the lab's namespaces; every daemon runs in the foreground and is stopped with SIGTERM at teardown (nginx's master
and inetd reap their children), then Lab.close() removes the namespaces.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.netlab import Lab, _wait_port, make_cert, need_lab

pytestmark = [pytest.mark.root, pytest.mark.timeout(240)]
NGINX = "/usr/sbin/nginx"
REDIS = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL = "/usr/bin/mariadb-install-db"
MARIADB = "/usr/bin/mariadb"
INETD = "/usr/sbin/inetutils-inetd"
TELNETD = "/usr/sbin/telnetd"
STRONG = secrets.token_urlsafe(18)  # what no default list holds
PORTS = "23,443,3306,6379"


def _need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:  # as need_lab does: in CI tests/setup-machine.sh installs them, so missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} not installed "
                                                               "(tests/setup-machine.sh)")


def _private_dir(lab: Lab, what: str, host: str) -> Path:
    """A directory of its own under /tmp (pytest's tmp directories are root-only; nginx's workers run as nobody)."""
    d = Path(tempfile.mkdtemp(prefix=f"sntl-{what}-{lab.suffix}-{host}-"))
    lab.dirs.append(d)
    d.chmod(0o755)
    return d


def _popen(lab: Lab, host: str, key: str, argv: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns[host], *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lab.procs[f"{host}:{key}"] = proc
    return proc


def _start_redis(lab: Lab, host: str, password: str | None) -> None:
    d = _private_dir(lab, "redis", host)
    argv = [REDIS, "--bind", lab.hosts[host], "--port", "6379", "--daemonize", "no", "--dir", str(d),
            "--save", "", "--appendonly", "no", "--protected-mode", "no", "--logfile", str(d / "redis.log")]
    if password:
        argv += ["--requirepass", password]
    _wait_port(lab, host, 6379, _popen(lab, host, "redis", argv), "redis")


def _start_mariadb(lab: Lab, host: str, root_password: str) -> Path:
    """A throw-away datadir (mariadb-install-db, normal root authentication), mariadbd as root in the namespace
    with the grant tables on; root@'%' gets `root_password` (empty: the classic finding). Returns the general log."""
    d = _private_dir(lab, "mariadb", host)
    data, sock, log = d / "data", d / "mysqld.sock", d / "general.log"
    subprocess.run([MARIADB_INSTALL, "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"], check=True, capture_output=True,
                   timeout=120)
    argv = [MARIADBD, "--no-defaults", f"--datadir={data}", "--user=root", f"--socket={sock}",
            f"--bind-address={lab.hosts[host]}", "--port=3306", f"--pid-file={d / 'mysqld.pid'}",
            "--skip-name-resolve", "--general-log=1", f"--general-log-file={log}", f"--log-error={d / 'error.log'}",
            "--innodb-buffer-pool-size=16M", "--skip-log-bin"]
    _wait_port(lab, host, 3306, _popen(lab, host, "mariadb", argv), "mariadb", timeout=60)
    sql = (f"CREATE USER 'root'@'%' IDENTIFIED BY '{root_password}'; "
           "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;")
    proc = lab.exec(host, [MARIADB, "--no-defaults", f"--socket={sock}", "-u", "root", "-e", sql], timeout=30)
    assert proc.returncode == 0, proc.stderr
    return log


def _start_nginx(lab: Lab, host: str, tls: str) -> None:
    d = _private_dir(lab, "nginx", host)
    crt, key = make_cert(d / "cert", f"{host}.lab", expired=(host == "h1"))
    key.chmod(0o644)  # a throwaway lab key the workers read
    (d / "www").mkdir()
    (d / "www" / "index.html").write_text("<html><title>lab</title>ok</html>\n")
    (d / "www").chmod(0o755)
    temp = "\n".join(f"  {k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (d / "nginx.conf").write_text(
        f"user nobody nogroup;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n{temp}\n  access_log {d}/access.log;\n"
        f"  server {{\n    listen {lab.hosts[host]}:443 ssl;\n    ssl_certificate {crt};\n"
        f"    ssl_certificate_key {key};\n{tls}    root {d}/www;\n  }}\n}}\n")
    proc = _popen(lab, host, "nginx", [NGINX, "-e", str(d / "error.log"), "-p", str(d), "-c", str(d / "nginx.conf"),
                                       "-g", "daemon off;"])
    _wait_port(lab, host, 443, proc, "nginx")


def _start_telnetd(lab: Lab, host: str) -> None:
    """telnetd as Debian runs it, from inetutils-inetd, with a private inetd.conf bound to the lab address."""
    d = _private_dir(lab, "inetd", host)
    (d / "inetd.conf").write_text(f"{lab.hosts[host]}:telnet stream tcp nowait root {TELNETD} telnetd\n")
    proc = _popen(lab, host, "inetd", [INETD, "-d", "-p", str(d / "inetd.pid"), str(d / "inetd.conf")])
    _wait_port(lab, host, 23, proc, "inetd telnet")


def null_cipher_skip() -> str | None:
    """None if this OpenSSL offers a NULL suite at SECLEVEL=0 for TLS 1.2 with an ECDSA certificate."""
    out = subprocess.run(["openssl", "ciphers", "-v", "eNULL:@SECLEVEL=0"], capture_output=True, text=True,
                         timeout=30).stdout
    if "ECDHE-ECDSA-NULL-SHA" not in out:
        return f"this OpenSSL offers no ECDHE-ECDSA-NULL-SHA at SECLEVEL=0: {out.strip()[:200]!r}"
    return None


OLD_TLS = "    ssl_protocols TLSv1 TLSv1.1;\n    ssl_ciphers DEFAULT:@SECLEVEL=0;\n"
NULL_TLS = "    ssl_protocols TLSv1.2;\n    ssl_ciphers HIGH:ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0;\n"


@pytest.fixture(scope="module")
def svc_lab(tmp_path_factory):
    need_lab(real_services=True)
    _need(NGINX, REDIS, REDIS_CLI, MARIADBD, MARIADB_INSTALL, MARIADB, INETD, TELNETD)
    lab = Lab(tmp_path_factory.mktemp("svclab"))
    try:
        lab.build()
        _start_redis(lab, "h1", None)
        _start_redis(lab, "h2", STRONG)
        lab.general_log = {"h1": _start_mariadb(lab, "h1", ""), "h2": _start_mariadb(lab, "h2", STRONG)}
        _start_nginx(lab, "h1", OLD_TLS)
        lab.null_skip = null_cipher_skip()
        _start_nginx(lab, "h2", NULL_TLS if lab.null_skip is None else "    ssl_protocols TLSv1.2;\n")
        _start_telnetd(lab, "h1")
        yield lab
    finally:
        _stop_all(lab)
        lab.close()


def _stop_all(lab: Lab) -> None:
    """Stop every daemon the way its init script would (SIGTERM: nginx's master and inetd reap their children,
    mariadbd shuts down), before Lab.close() SIGKILLs what is left: a killed nginx master would leave its
    workers running, orphaned. Then nothing of ours may be left in the namespaces."""
    for proc in lab.procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in lab.procs.values():
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for host in ("h1", "h2", "h3"):
        left = subprocess.run(["ip", "netns", "pids", lab.ns[host]], capture_output=True, text=True, timeout=20)
        for pid in left.stdout.split():
            os.kill(int(pid), signal.SIGKILL)  # last resort; reported below
        assert not left.stdout.split(), f"processes left in {host} after SIGTERM: {left.stdout.split()}"


def _log_logins(log: Path, since: int) -> list[str]:
    """The general log's Connect lines after byte `since` (each one a login attempt, accepted or refused)."""
    time.sleep(0.3)
    with open(log, "rb") as fh:
        fh.seek(since)
        return [ln for ln in fh.read().decode(errors="replace").splitlines() if "\tConnect\t" in ln
                or " Connect\t" in ln]


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


@pytest.fixture(scope="module")
def svc_scan(svc_lab):
    """The default scan (credential probes off), with the MariaDB general logs' size before and after."""
    lab = svc_lab
    before = {h: _size(p) for h, p in lab.general_log.items()}
    proc = lab.sentinel(["scan", lab.hosts["h1"], lab.hosts["h2"], "--scope", lab.net, "--ports", PORTS,
                         "--format", "json", "--lang", "en"], timeout=180)
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    logins = {h: _log_logins(p, before[h]) for h, p in lab.general_log.items()}
    return report, {(f["host"], f["proto"], f["port"]): f for f in report["findings"]}, logins


def _results(finding, check_id) -> list[dict]:
    return [r for r in finding["results"] if r["check_id"] == check_id]


def _one(finding, check_id) -> dict:
    res = _results(finding, check_id)
    assert len(res) == 1, (check_id, finding["results"])
    return res[0]


def _fails(finding) -> set[str]:
    return {r["check_id"] for r in finding["results"] if r["status"] == "fail"}


def test_redis_without_password_is_unauthenticated_access(svc_lab, svc_scan):
    lab = svc_lab
    h1 = lab.hosts["h1"]
    cli = lab.exec("scan", [REDIS_CLI, "-h", h1, "-p", "6379", "PING"], timeout=30)
    assert cli.stdout.strip() == "PONG"  # the real client's truth: no password asked
    _, found, _ = svc_scan
    r = found[(h1, "tcp", 6379)]
    assert r["service"] == "redis" and r["exposure"]["unauthenticated"] is True
    assert r["exposure"]["detail"].startswith("PING answered +PONG without AUTH; INFO: redis_version 7.")
    res = _one(r, "net-unauth-access")
    assert (res["status"], res["severity"], res["high_risk"]) == ("fail", "critical", "6.4.1.1")
    assert "6.4.1.1" in r["high_risk"]


def test_redis_with_requirepass_is_not_a_finding(svc_lab, svc_scan):
    lab = svc_lab
    h2 = lab.hosts["h2"]
    cli = lab.exec("scan", [REDIS_CLI, "-h", h2, "-p", "6379", "PING"], timeout=30)
    assert cli.stdout.strip().startswith("NOAUTH")  # the real client is refused
    _, found, _ = svc_scan
    r = found[(h2, "tcp", 6379)]
    assert r["service"] == "redis" and r["exposure"]["unauthenticated"] is False
    assert _one(r, "net-unauth-access")["status"] == "pass"
    assert "6.4.1.1" not in r["high_risk"] and not r["errors"], r


def test_mariadb_no_login_attempt_without_the_probes(svc_lab, svc_scan):
    report, found, logins = svc_scan
    assert report["options"]["credential_probes"] is False
    assert logins == {"h1": [], "h2": []}  # the server saw no login at all, only the greeting being read
    for host in ("h1", "h2"):
        f = found[(svc_lab.hosts[host], "tcp", 3306)]
        assert f["service"] == "mysql" and f["product"] == "MariaDB" and f["credentials"] == []
        assert not _results(f, "net-empty-password") or _one(f, "net-empty-password")["status"] != "fail"


def test_mariadb_empty_root_password_with_the_probes(svc_lab, svc_scan):
    lab = svc_lab
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    # the real client's truth: root logs in to h1 with an empty password, h2 refuses it
    ok = lab.exec("scan", [MARIADB, "--no-defaults", "-h", h1, "-u", "root", "--password=", "-N", "-e",
                           "SELECT CURRENT_USER(), VERSION(), @@have_ssl"], timeout=30)
    assert ok.returncode == 0, ok.stderr
    user, version, have_ssl = ok.stdout.strip().split("\t")
    assert user == "root@%" and have_ssl == "DISABLED"
    # the default scan read the greeting: the server's real version (without MariaDB's "5.5.5-" wire prefix)
    # and no TLS offered, as the server says
    seen = svc_scan[1][(h1, "tcp", 3306)]
    assert seen["version"] == version and seen["banner"] == f"MariaDB {version} (protocol 10, ssl=no)"
    plain = _one(seen, "net-plaintext-transport")
    assert (plain["status"], plain["severity"]) == ("fail", "high")
    no = lab.exec("scan", [MARIADB, "--no-defaults", "-h", h2, "-u", "root", "--password=", "-e", "SELECT 1"],
                  timeout=30)
    assert no.returncode != 0 and "ERROR 1045" in no.stderr, no.stderr
    before = {h: _size(p) for h, p in lab.general_log.items()}
    proc = lab.sentinel(["scan", h1, h2, "--scope", lab.net, "--ports", "3306", "--no-version",
                         "--credential-probes", "--format", "json", "--lang", "en"], timeout=120)
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    assert report["options"]["credential_probes"] is True
    found = {(f["host"], f["proto"], f["port"]): f for f in report["findings"]}
    weak, strong = found[(h1, "tcp", 3306)], found[(h2, "tcp", 3306)]
    assert [(c["protocol"], c["user"], c["accepted"]) for c in weak["credentials"]] == [("mysql", "root", True)]
    res = _one(weak, "net-empty-password")
    assert (res["status"], res["severity"], res["high_risk"]) == ("fail", "critical", "6.4.1.1")
    assert "6.4.1.1" in weak["high_risk"]
    assert [(c["user"], c["accepted"]) for c in strong["credentials"]] == [("root", False)]
    assert _one(strong, "net-empty-password")["status"] == "pass"
    # the servers' side: exactly one login each, as root from the scanner
    logins = {h: _log_logins(p, before[h]) for h, p in lab.general_log.items()}
    for host in ("h1", "h2"):
        attempts = [ln for ln in logins[host] if ln.endswith(f"Connect\troot@{lab.scanner_ip} on  using TCP/IP")]
        assert len(attempts) == 1, logins[host]
    assert not any("Access denied" in ln for ln in logins["h1"])
    assert any(f"Access denied for user 'root'@'{lab.scanner_ip}' (using password: NO)" in ln for ln in logins["h2"])


def _s_client(lab: Lab, host: str, *args: str) -> str:
    proc = lab.exec("scan", ["openssl", "s_client", "-connect", f"{lab.hosts[host]}:443", *args], input="",
                    timeout=30)
    return proc.stdout + proc.stderr


def test_nginx_old_protocols_and_expired_certificate(svc_lab, svc_scan):
    lab = svc_lab
    # openssl's truth: TLS 1.0 and 1.1 are offered, 1.2 is not; the certificate expired and signs itself
    for flag, name in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")):
        out = _s_client(lab, "h1", flag, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert f"Protocol  : {name}\n" in out and "Cipher is (NONE)" not in out, out[-1500:]
    for flag in ("-tls1_2", "-tls1_3"):
        assert "Cipher is (NONE)" in _s_client(lab, "h1", flag)  # the handshake fails
    verify = _s_client(lab, "h1", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "certificate has expired" in verify and "self-signed certificate" in verify
    _, found, _ = svc_scan
    f = found[(lab.hosts["h1"], "tcp", 443)]
    assert f["service"] == "https" and f["product"] == "nginx"
    assert f["tls"]["protocols"] == ["TLSv1.0", "TLSv1.1"]
    assert (f["tls"]["expired"], f["tls"]["self_signed"]) == (True, True) and f["tls"]["days_left"] < -30
    proto, cert = _one(f, "net-tls-protocol"), _one(f, "net-tls-certificate")
    assert (proto["status"], proto["severity"]) == ("fail", "medium")
    assert (cert["status"], cert["severity"]) == ("fail", "medium") and "certificate expired" in cert["reason"]
    # DEFAULT holds no NULL, anonymous, RC4, DES or 3DES suite here (`openssl ciphers -v DEFAULT`): none reported
    listed = subprocess.run(["openssl", "ciphers", "DEFAULT:@SECLEVEL=0"], capture_output=True, text=True,
                            timeout=30).stdout
    assert not any(w in listed for w in ("NULL", "ADH", "AECDH", "RC4", "DES")), listed
    assert f["tls"]["weak_ciphers"] == [] and _one(f, "net-tls-weak-cipher")["status"] == "pass"
    assert _fails(f) == {"net-tls-protocol", "net-tls-certificate"}


def test_nginx_null_cipher_is_high(svc_lab, svc_scan):
    lab = svc_lab
    if lab.null_skip:
        pytest.skip(lab.null_skip)
    # openssl's truth: the server negotiates the NULL suite when the client asks for it
    # and, as HIGH holds anonymous suites, the anonymous ECDH ones too (no DH parameters: no ADH)
    accepted = {}
    for name in ("ECDHE-ECDSA-NULL-SHA", "AECDH-AES128-SHA", "AECDH-AES256-SHA", "ADH-AES128-SHA"):
        out = _s_client(lab, "h2", "-tls1_2", "-cipher", f"{name}:@SECLEVEL=0")
        accepted[name] = f"Cipher is {name}" in out
    assert accepted == {"ECDHE-ECDSA-NULL-SHA": True, "AECDH-AES128-SHA": True, "AECDH-AES256-SHA": True,
                        "ADH-AES128-SHA": False}
    _, found, _ = svc_scan
    f = found[(lab.hosts["h2"], "tcp", 443)]
    assert f["tls"]["protocols"] == ["TLSv1.2"]
    assert set(f["tls"]["weak_ciphers"]) == {"TLS_ECDHE_ECDSA_WITH_NULL_SHA", "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
                                             "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"}, f["tls"]
    weak = _one(f, "net-tls-weak-cipher")
    assert (weak["status"], weak["severity"]) == ("fail", "high"), weak
    assert _one(f, "net-tls-protocol")["status"] == "pass"


def test_telnetd_is_plaintext_remote_management(svc_lab, svc_scan):
    lab = svc_lab
    _, found, _ = svc_scan
    t = found[(lab.hosts["h1"], "tcp", 23)]
    assert t["service"] == "telnet"
    assert _fails(t) >= {"net-plaintext-mgmt", "net-plaintext-transport", "net-forbidden-port"}
    mgmt = _one(t, "net-plaintext-mgmt")
    assert (mgmt["severity"], mgmt["high_risk"]) == ("high", "6.4.1.2") and "6.4.1.2" in t["high_risk"]
    assert (lab.hosts["h2"], "tcp", 23) not in found  # no phantom telnet where nothing listens


def test_nothing_else_reported(svc_lab, svc_scan):
    report, found, _ = svc_scan
    h1, h2 = svc_lab.hosts["h1"], svc_lab.hosts["h2"]
    assert set(found) == {(h1, "tcp", 23), (h1, "tcp", 443), (h1, "tcp", 3306), (h1, "tcp", 6379),
                          (h2, "tcp", 443), (h2, "tcp", 3306), (h2, "tcp", 6379)}
    assert shutil.which("nmap") and report["coverage"]["tcp_ports"] == PORTS
