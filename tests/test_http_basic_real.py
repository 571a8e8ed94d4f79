"""Opt-in credential probes on HTTP Basic-auth consoles (issue 19) against Debian's nginx in the namespace lab.

nginx decides every answer: `auth_basic` with htpasswd files made by `openssl passwd -apr1`, and an access log
that records each request's Authorization header, so what the scan sent is read from the server's side.
h1: port 80 asks for Basic auth on `/` and accepts admin/admin; port 8443 (TLS) serves `/` openly and guards
`/manager/html` (Tomcat's console path) with tomcat/tomcat. h2: the same two shapes with strong passwords
(ports 80 and 8080), and port 8081 accepting admin/admin on a directory without an index (nginx then answers
403: neither refused nor accepted). h3: admin/admin on `/`, scanned with the probes off.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

import pytest

from sentinel.checks.network.credentials import MAX_ATTEMPTS_PER_PORT
from tests.netlab import Lab, _wait_port, need_lab

pytestmark = pytest.mark.timeout(300)
NGINX = "/usr/sbin/nginx"
STRONG = secrets.token_urlsafe(18)  # what no default list holds


def _htpasswd(path: Path, user: str, password: str) -> None:
    hashed = subprocess.run(["openssl", "passwd", "-apr1", password], check=True, capture_output=True, text=True,
                            timeout=30).stdout.strip()
    path.write_text(f"{user}:{hashed}\n")
    path.chmod(0o644)


def _start_nginx(lab: Lab, host: str, servers: list[str], ports: list[int], root_password: str,
                 console_password: str) -> Path:
    """nginx in the foreground in namespace `host` (Lab.close() ends it by its pid), its files in a directory
    of its own under /tmp that its workers (user nobody) can read: pytest's tmp directories are root-only.
    `/` asks for admin/root_password where a server has ROOT_AUTH, /manager/html for tomcat/console_password."""
    d = Path(tempfile.mkdtemp(prefix=f"sntl-nginx-{lab.suffix}-{host}-"))
    lab.dirs.append(d)
    d.chmod(0o755)
    _htpasswd(d / "root.htpasswd", "admin", root_password)
    _htpasswd(d / "console.htpasswd", "tomcat", console_password)
    _htpasswd(d / "default.htpasswd", "admin", "admin")  # WEAK_AUTH's, whatever the host's passwords
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lab",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True,
                   timeout=60)
    (d / "key.pem").chmod(0o644)  # a throwaway lab key the workers read
    www = d / "www"
    (www / "manager" / "html").mkdir(parents=True)
    (d / "bare").mkdir()  # no index: a request that passes auth_basic gets 403 (autoindex is off)
    for page in (www / "index.html", www / "manager" / "html" / "index.html"):
        page.write_text("<html><title>lab console</title>ok</html>\n")
    for p in (www, www / "manager", www / "manager" / "html", d / "bare"):
        p.chmod(0o755)
    temp = "\n".join(f"  {k}_temp_path {d}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    ip = lab.hosts[host]
    body = "\n".join(s.replace("@IP@", ip).replace("@D@", str(d)) for s in servers)
    (d / "nginx.conf").write_text(
        f"user nobody nogroup;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  log_format probe '$remote_addr \"$request\" $status \"$http_authorization\"';\n{temp}\n"
        f"{body}\n}}\n")
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns[host], NGINX, "-e", str(d / "error.log"), "-p", str(d),
                             "-c", str(d / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lab.procs[f"{host}:nginx"] = proc
    for port in ports:
        _wait_port(lab, host, port, proc, "nginx")
    return d


def _server(port: int, extra: str = "", ssl: bool = False, root: str = "www") -> str:
    """One nginx server block; @IP@ and @D@ (the host's address, nginx's directory) are filled in at start."""
    tls = " ssl;\n    ssl_certificate @D@/cert.pem;\n    ssl_certificate_key @D@/key.pem" if ssl else ""
    return (f"  server {{\n    listen @IP@:{port}{tls};\n    access_log @D@/access-{port}.log probe;\n"
            f"    root @D@/{root};\n{extra}  }}")


ROOT_AUTH = '    auth_basic "lab root";\n    auth_basic_user_file @D@/root.htpasswd;\n'
WEAK_AUTH = '    auth_basic "lab bare";\n    auth_basic_user_file @D@/default.htpasswd;\n'
CONSOLE_AUTH = ('    location /manager/html {\n      auth_basic "Tomcat Manager Application";\n'
                '      auth_basic_user_file @D@/console.htpasswd;\n    }\n')


def _log(d: Path, port: int) -> list[tuple[str, int, str]]:
    """(request line, status, Authorization header or '-') per request nginx logged on `port`."""
    out = []
    for line in (d / f"access-{port}.log").read_text().splitlines():
        _, request, rest = line.split('"', 2)
        status, auth = rest.split('"', 1)[0].strip(), rest.split('"')[1]
        out.append((request, int(status), auth))
    return out


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def basic_lab(tmp_path_factory):
    need_lab(real_services=True)
    if not os.path.exists(NGINX):
        # as need_lab does: in CI tests/setup-machine.sh installs it, so missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)("nginx not installed (tests/setup-machine.sh)")
    lab = Lab(tmp_path_factory.mktemp("basiclab"))
    try:
        lab.build()
        shown = [_server(80, ROOT_AUTH), _server(8443, CONSOLE_AUTH, ssl=True)]
        logs = {
            "h1": _start_nginx(lab, "h1", shown, [80, 8443], "admin", "tomcat"),
            "h2": _start_nginx(lab, "h2", [_server(80, ROOT_AUTH), _server(8080, CONSOLE_AUTH),
                                           _server(8081, WEAK_AUTH, root="bare")], [80, 8080, 8081],
                               STRONG, STRONG),
            "h3": _start_nginx(lab, "h3", shown, [80, 8443], "admin", "tomcat"),
        }
        yield lab, logs
    finally:
        # SIGTERM first: nginx's master then stops its workers, which Lab.close()'s SIGKILL would orphan
        for key, proc in lab.procs.items():
            if key.endswith(":nginx") and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        lab.close()


def _scan(lab: Lab, host: str, ports: str, *extra: str) -> tuple[dict, dict, str]:
    proc = lab.sentinel(["scan", lab.hosts[host], "--scope", lab.net, "--ports", ports, "--no-version",
                         "--format", "json", "--lang", "en", *extra], timeout=180)
    assert proc.stdout, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return report, {f["port"]: f for f in report["findings"] if f["proto"] == "tcp"}, proc.stderr


def _results(finding: dict, check_id: str) -> list[dict]:
    return [r for r in finding["results"] if r["check_id"] == check_id]


def test_a_default_pair_accepted_is_a_high_risk_finding(basic_lab):
    lab, logs = basic_lab
    report, found, _ = _scan(lab, "h1", "80,8443", "--credential-probes")
    assert "http-basic" in report["coverage"]["credential_probes"]
    root = found[80]
    tried = [(c["protocol"], c["user"], c["accepted"]) for c in root["credentials"]]
    assert tried == [("http-basic", "admin/admin", True)]
    (fail,) = _results(root, "net-default-console-password")
    assert fail["status"] == "fail" and fail["severity"] == "critical" and fail["high_risk"] == "6.4.2.1"
    assert (fail["clause"], fail["item"]) == ("8.1.4.2", "b")
    assert "admin/admin" in fail["reason"] and "realm 'lab root'" in fail["reason"]
    assert "默认凭据被接受" in fail["reason_zh"] and "6.4.2.1" in root["high_risk"]
    # nginx saw the one pair it accepted, and nothing after the acceptance
    tried = [(req, status, auth) for req, status, auth in _log(logs["h1"], 80) if auth != "-"]
    assert tried == [("GET / HTTP/1.0", 200, _basic("admin", "admin"))]

    console = found[8443]  # TLS; `/` is open, Tomcat's console path asks for Basic auth
    assert console["tls"] is not None
    assert [(c["user"], c["accepted"]) for c in console["credentials"]] == [("tomcat/tomcat", True)]
    assert _results(console, "net-default-console-password")[0]["status"] == "fail"
    assert "GET /manager/html with Basic tomcat/tomcat" in console["credentials"][0]["detail"]
    tried = [(req, status, auth) for req, status, auth in _log(logs["h1"], 8443) if auth != "-"]
    # past auth_basic, nginx redirects the directory to /manager/html/: a 3xx, which only an accepted pair gets
    assert tried == [("GET /manager/html HTTP/1.0", 301, _basic("tomcat", "tomcat"))]
    assert "-> 301: accepted" in console["credentials"][0]["detail"]


def test_a_strong_password_gives_no_finding_and_exactly_the_capped_attempts(basic_lab):
    lab, logs = basic_lab
    report, found, _ = _scan(lab, "h2", "80,8080,8081", "--credential-probes")
    for port, users in ((80, ["admin/admin", "admin/(empty password)"]),
                        (8080, ["tomcat/tomcat", "admin/admin"])):
        f = found[port]
        assert [(c["user"], c["accepted"]) for c in f["credentials"]] == [(u, False) for u in users]
        assert [r["status"] for r in _results(f, "net-default-console-password")] == ["pass", "pass"]
        assert "6.4.2.1" not in f["high_risk"]
        with_auth = [(req, status) for req, status, auth in _log(logs["h2"], port) if auth != "-"]
        assert len(with_auth) == MAX_ATTEMPTS_PER_PORT == 2  # the cap, as nginx counted them
        assert {status for _, status in with_auth} == {401}
    assert {req for req, _, auth in _log(logs["h2"], 8080) if auth != "-"} == {"GET /manager/html HTTP/1.0"}
    # nginx's 403 after admin/admin (a directory without an index) is neither a refusal nor an acceptance:
    # undetermined, an error, never a pass on its own
    bare = found[8081]
    assert [(c["user"], c["accepted"]) for c in bare["credentials"]] == [("admin/(empty password)", False)]
    statuses = sorted(r["status"] for r in _results(bare, "net-default-console-password"))
    assert statuses == ["error", "pass"]
    assert any("-> HTTP 403" in e and "undetermined" in e for e in bare["errors"]), bare["errors"]
    assert [status for _, status, auth in _log(logs["h2"], 8081) if auth != "-"] == [403, 401]


def test_probes_off_send_no_authorization_header(basic_lab):
    lab, logs = basic_lab
    report, found, _ = _scan(lab, "h3", "80,8443")
    assert report["options"]["credential_probes"] is False and report["coverage"]["credential_probes"] == {}
    assert found[80]["http"]["basic_auth"] is True  # the console was seen...
    assert all(f["credentials"] == [] and not _results(f, "net-default-console-password") for f in found.values())
    seen = _log(logs["h3"], 80) + _log(logs["h3"], 8443)
    assert seen and all(auth == "-" for _, _, auth in seen), seen  # ...and no login was tried on it
    assert not any("/manager/html" in req for req, _, _ in seen)  # nor its console paths looked at


def test_the_documented_list_stays_below_lockout():
    """No path lists more pairs than the per-port cap, and no account is tried more than twice on a port:
    pam_faillock's default deny=3 and Tomcat's LockOutRealm (5) are never reached by one scan."""
    from collections import Counter

    from sentinel.checks.network.credentials import BASIC_AUTH_CONSOLES

    assert BASIC_AUTH_CONSOLES[0][0] == "/" and len(BASIC_AUTH_CONSOLES) <= 3
    for _path, _product, pairs in BASIC_AUTH_CONSOLES:
        assert 0 < len(pairs) <= MAX_ATTEMPTS_PER_PORT
        assert max(Counter(user for user, _ in pairs).values()) <= 2
