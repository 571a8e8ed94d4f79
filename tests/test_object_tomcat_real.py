"""The Tomcat object kind against the real tomcat10 of Debian's package, with tomcat10-admin (issue 15).

Each Tomcat runs as the package's `tomcat` account (setpriv, as tomcat10.service does) inside a network namespace
the test creates (loopback only, plus one extra address on its loopback so a client can come from an address that
is not 127.0.0.0/8) and removes; its CATALINA_BASE is a private copy of /etc/tomcat10 and
/var/lib/tomcat10/webapps: as shipped (stock: server.xml byte for byte, port 8080 on every address of the namespace)
or rectified. Each is stopped with SIGTERM at teardown. The expected answers come from the server: HTTP requests from
the namespace's loopback and from the other address (manager's 401 or 403, the version on an error page, the default
page), a TLS 1.2 handshake, the LockOutRealm refusing the right password after the failures.
"""
from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.hostview import LiveHost
from sentinel.model import Status

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
HOME = Path("/usr/share/tomcat10")
FIXTURES = Path(__file__).parent / "fixtures" / "tomcat" / "hardened" / "etc" / "tomcat10"
NEEDED = (HOME / "bin" / "catalina.sh", Path("/etc/tomcat10/server.xml"), Path("/usr/share/tomcat10-admin/manager"),
          Path("/usr/bin/curl"), Path("/usr/bin/setpriv"))
OPS = secrets.token_urlsafe(16) + "aA1-"


def _need() -> None:
    missing = [str(p) for p in NEEDED if not p.exists()] + ([] if os.geteuid() == 0 else ["root"])
    if shutil.which("ip") is None:
        missing.append("ip")
    if missing:  # in CI tests/setup-machine.sh installs tomcat10 and tomcat10-admin, so missing there is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{', '.join(missing)} not available "
                                                               "(tests/setup-machine.sh)")


class Tomcat:
    """One Tomcat of the test's own, in its own network namespace."""

    def __init__(self, name: str, rectify: bool) -> None:
        self.ns = f"sntl-tc-{name}-{random.getrandbits(24):06x}"
        self.other = f"10.{random.randint(100, 250)}.{random.randint(0, 254)}.2"  # a non-loopback source
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", self.ns, "addr", "add", f"{self.other}/32", "dev", "lo"], check=True)
        self.base = Path(tempfile.mkdtemp(prefix=f"sntl-tomcat-{name}-"))
        self.proc: subprocess.Popen | None = None
        try:
            self._lay_out(rectify)
            self._start()
        except BaseException:
            self.stop()
            raise

    def _lay_out(self, rectify: bool) -> None:
        shutil.copytree("/etc/tomcat10", self.base / "conf", symlinks=True)
        shutil.copytree("/var/lib/tomcat10/webapps", self.base / "webapps", symlinks=True)
        for d in ("logs", "work", "temp", "lib"):
            (self.base / d).mkdir()
        if rectify:
            conf = self.base / "conf"
            from tests.netlab import make_cert

            crt, key = make_cert(conf / "tomcat", "127.0.0.1", expired=False)
            # the fixture's hardened server.xml, plus a TLS connector left at Tomcat's default protocols (all)
            xml = (FIXTURES / "server.xml").read_text(encoding="utf-8")
            extra = ('    <Connector port="8444" protocol="org.apache.coyote.http11.Http11NioProtocol" '
                     'SSLEnabled="true" address="127.0.0.1">\n      <SSLHostConfig>\n        <Certificate '
                     'certificateFile="${tls.cert}" certificateKeyFile="${tls.key}" />\n      </SSLHostConfig>\n'
                     '    </Connector>\n    <Connector port="8009"')
            (conf / "server.xml").write_text(xml.replace('    <Connector port="8009"', extra), encoding="utf-8")
            web = (conf / "web.xml").read_text(encoding="utf-8")  # the stock file (it maps the default servlet)
            assert web.count("<session-timeout>30</session-timeout>") == 1
            (conf / "web.xml").write_text(web.replace("<session-timeout>30<", "<session-timeout>15<"),
                                          encoding="utf-8")
            shutil.copy(FIXTURES / "Catalina" / "localhost" / "manager.xml", conf / "Catalina" / "localhost")
            (conf / "Catalina" / "localhost" / "host-manager.xml").unlink()
            with (conf / "catalina.properties").open("a", encoding="utf-8") as fh:
                fh.write(f"\nhttp.port=8080\nhttps.port=8443\ntls.cert={crt}\ntls.key={key}\n"
                         f"ajp.secret={secrets.token_urlsafe(24)}\n")
            (conf / "tomcat-users.xml").write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n<tomcat-users xmlns="http://tomcat.apache.org/xml" '
                f'version="1.0">\n  <user username="ops" password="{OPS}" roles="manager-gui"/>\n</tomcat-users>\n',
                encoding="utf-8")
            (self.base / "webapps" / "ROOT" / "index.html").write_text("<p>the business application</p>\n")
        for path in [self.base, *self.base.rglob("*")]:
            if not path.is_symlink():
                shutil.chown(path, "tomcat", "tomcat")
        self.base.chmod(0o750)

    def _start(self) -> None:
        env = ["env", "-i", "PATH=/usr/bin:/bin", f"CATALINA_HOME={HOME}", f"CATALINA_BASE={self.base}",
               f"CATALINA_TMPDIR={self.base / 'temp'}", "JAVA_OPTS=-Djava.awt.headless=true"]
        # every step execs the next, so the Popen's pid is the JVM's
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "/usr/bin/setpriv", "--reuid=tomcat",
                                      "--regid=tomcat", "--init-groups", *env, str(HOME / "bin" / "catalina.sh"),
                                      "run"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while self.get("/")[0] == "000":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = "".join(p.read_text(errors="replace")[-1500:] for p in (self.base / "logs").glob("catalina*"))
                raise RuntimeError(f"Tomcat did not start: {log}")
            time.sleep(0.5)

    def get(self, path: str, source: str = "127.0.0.1", auth: str | None = None,
            host: str = "127.0.0.1") -> tuple[str, str]:
        """(status, body) of a GET inside the namespace, from `source`; status 000 when nothing answers."""
        argv = ["ip", "netns", "exec", self.ns, "curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}",
                "--interface", source]
        if auth:
            argv += ["-u", auth]
        out = subprocess.run([*argv, f"http://{host}:8080{path}"], capture_output=True, text=True, timeout=20).stdout
        body, _, status = out.rpartition("\n")
        return status.strip() or "000", body

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def stock():
    _need()
    server = Tomcat("stock", rectify=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rectified():
    _need()
    server = Tomcat("rect", rectify=True)
    yield server
    server.stop()


def _results(server: Tomcat) -> dict:
    spec = load_baseline("dengbao-l3-tomcat")
    for _, _, check in spec.iter_checks():
        if check.probe.startswith("tomcat."):
            check.params.update({"base": str(server.base), "home": str(HOME)})
    report = run_baseline(spec, LiveHost())
    # file.mode checks judge the host's /etc/tomcat10 and /var/log/tomcat10, not the test's copy; the unit checks
    # read the host's tomcat10.service (the test runs Tomcat as the same account); -rhel ones are another family's
    return {r.check_id: r for r in report.results if r.check_id not in ("l3-tomcat-config-mode", "l3-tomcat-log-mode")
            and not r.check_id.endswith("-rhel")}


def test_stock_server_answers_as_the_model_says(stock):
    # manager is deployed and asks a client from another address for a password: reachable (no valve applies)
    assert stock.get("/manager/html", source=stock.other, host=stock.other)[0] == "401"
    assert stock.get("/host-manager/html", source=stock.other, host=stock.other)[0] == "401"
    status, body = stock.get("/no-such-page")
    assert status == "404" and "Apache Tomcat/10.1" in body  # the version on the error page
    assert "It works !" in stock.get("/")[1]  # the package's default page
    assert stock.get("/", source=stock.other, host=stock.other)[0] == "200"  # 8080 on every address


STOCK_FAILS = {"l3-tomcat-no-plaintext-network", "l3-tomcat-no-default-root", "l3-tomcat-admin-apps",
               "l3-tomcat-version-disclosure"}


def test_stock_fails_what_an_assessor_fails(stock):
    results = _results(stock)
    status = {k: r.status for k, r in results.items()}
    assert {k for k, s in status.items() if s == Status.FAIL} == STOCK_FAILS, status
    assert all(s == Status.PASS for k, s in status.items() if k not in STOCK_FAILS), status
    assert results["l3-tomcat-not-root"].observed == ["tomcat"]


def test_rectified_server_answers_as_the_model_says(rectified):
    assert rectified.get("/manager/html", source=rectified.other, host="127.0.0.1")[0] == "403"  # the valve
    assert rectified.get("/", source=rectified.other, host=rectified.other)[0] == "000"  # plaintext on loopback only
    status, body = rectified.get("/no-such-page")
    assert status == "404" and "Tomcat" not in body
    status, body = rectified.get("/")
    assert status == "200" and "the business application" in body


def test_rectified_lockout_refuses_the_right_password_after_the_failures(rectified):
    """LockOutRealm failureCount=3: the right password works, then after 3 wrong ones it is refused."""
    assert rectified.get("/manager/html", auth=f"ops:{OPS}")[0] == "200"
    for _ in range(3):
        assert rectified.get("/manager/html", auth="ops:wrong-password")[0] == "401"
    assert rectified.get("/manager/html", auth=f"ops:{OPS}")[0] == "401"


def test_rectified_tls_connector_speaks_tls12(rectified):
    out = subprocess.run(["ip", "netns", "exec", rectified.ns, "curl", "-sk", "-m", "10", "--tlsv1.2",
                          "--tls-max", "1.2", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                          "https://127.0.0.1:8443/"], capture_output=True, text=True, timeout=20).stdout
    assert out.startswith("200")


_HANDSHAKE = """
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
version = getattr(ssl.TLSVersion, sys.argv[1])
ctx.minimum_version = ctx.maximum_version = version
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client offers the old protocol at all
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        print("accepted", s.version())
except ssl.SSLError as exc:
    print("refused", exc.reason)
"""


def _handshake(server: Tomcat, version: str, port: int) -> str:
    return subprocess.run(["ip", "netns", "exec", server.ns, sys.executable, "-c", _HANDSHAKE, version, str(port)],
                          capture_output=True, text=True, timeout=30).stdout.strip()


def test_tomcats_default_protocols_are_what_the_jvm_leaves(rectified):
    """Port 8444 keeps protocols at `all` (TLSv1.1 included): the JVM refuses TLS 1.1, so the model says no weak
    protocol is in effect; TLS 1.2 is served."""
    assert _handshake(rectified, "TLSv1_2", 8444) == "accepted TLSv1.2"
    refused = _handshake(rectified, "TLSv1_1", 8444)
    # refused by the server: this client offers TLS 1.1 at SECLEVEL=0 (a client-side refusal names no protocol)
    assert refused.startswith("refused") and "NO_PROTOCOLS" not in refused and "NO_SUPPORTED" not in refused, refused
    spec = load_baseline("dengbao-l3-tomcat")
    facts = next(_probe_obs(rectified, spec, "l3-tomcat-tls-protocols"))
    assert facts["tls_connectors"] == 2 and facts["weak_tls"] == []


def _probe_obs(server: Tomcat, spec, check_id: str):
    from sentinel.probe import ProbeContext, registry

    for _, _, check in spec.iter_checks():
        if check.id == check_id:
            pdef = registry()[check.probe]
            ctx = ProbeContext(host=LiveHost(), family="debian", os_release={})
            yield pdef.func(ctx, pdef.params.model_validate({"base": str(server.base), "home": str(HOME)})).observed


def test_rectified_passes(rectified):
    results = _results(rectified)
    bad = {k: (r.status, r.reason) for k, r in results.items() if r.status != Status.PASS}
    assert not bad, bad
    text = repr([r.model_dump() for r in results.values()])
    assert OPS not in text
