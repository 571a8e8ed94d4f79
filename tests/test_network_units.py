"""Network scan parts that need no network: scope, arguments, parsers, zone baselines, diff and scoring."""
from __future__ import annotations

import os
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sentinel.baseline import BaselineError
from sentinel.checks.network import banners, discovery, ssh, tls, unauth
from sentinel.checks.network.discovery import NmapMissing, RateLimit, ScanOptions
from sentinel.checks.network.findings import Exposure, HTTPInfo, ServiceFinding, SSHInfo, TLSInfo
from sentinel.checks.network.scope import PortRange, Scope, ScopeError, ensure_in_scope, parse_ports
from sentinel.checks.network.services import EXTRA_TCP_PORTS
from sentinel.model import Status, Verdict
from sentinel.network.checks import shipped_checks
from sentinel.network.diff import diff_findings
from sentinel.network.scoring import Reachability, score_network
from sentinel.network.zones import load_zone_baseline

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


# ---- scope --------------------------------------------------------------------------------------


def test_parse_ports_merges_and_rejects():
    assert [str(r) for r in parse_ports("80,22,81-90,8080")] == ["22", "80-90", "8080"]
    with pytest.raises(ValueError, match="bad port '70000'"):
        parse_ports("22,70000")
    with pytest.raises(ValueError, match="bad port 'ssh'"):
        parse_ports("ssh")


def test_scope_refuses_outside_targets_and_ports():
    scope = Scope.from_cli(["192.0.2.0/28", "198.51.100.7"], ports="1-1024", name="egov-a")
    ok = ensure_in_scope(["192.0.2.3", "192.0.2.0/29", "198.51.100.7"], scope, ports=[PortRange(start=22, end=80)])
    assert [t.nmap_spec for t in ok] == ["192.0.2.3", "192.0.2.0/29", "198.51.100.7"]
    audited = []
    with pytest.raises(ScopeError) as err:
        ensure_in_scope(["192.0.2.3", "192.0.2.16", "192.0.2.0/24", "10.0.0.1"], scope,
                        ports=[PortRange(start=22, end=3306)], audit=audited.append)
    refused = err.value.refused
    assert refused == [
        "192.0.2.16 is not inside scope 'egov-a' [192.0.2.0/28, 198.51.100.7]",
        "192.0.2.0/24 is not inside scope 'egov-a' [192.0.2.0/28, 198.51.100.7]",
        "10.0.0.1 is not inside scope 'egov-a' [192.0.2.0/28, 198.51.100.7]",
        "port 22-3306 is outside the scope's ports 1-1024",
    ]
    assert audited == [refused]
    assert "no packet was sent" in str(err.value)


def test_scope_validation_errors():
    with pytest.raises(ValueError, match="host bits set"):
        Scope.from_cli(["10.0.0.5/24"])
    with pytest.raises(ValueError, match="bad scope entry 'example'"):
        Scope.from_cli(["example"])
    with pytest.raises(ValueError, match="at least one network or host"):
        Scope.model_validate({"networks": []})
    scope = Scope.from_cli(["10.0.0.0/8"])
    with pytest.raises(ScopeError, match="at most 65536"):
        ensure_in_scope(["10.0.0.0/8"], scope)


# ---- nmap arguments ------------------------------------------------------------------------------


def test_discovery_args_are_explicit():
    opts = ScanOptions(privileged=True, rate=RateLimit(packets_per_second=300, max_hosts=4), host_timeout=60)
    args = discovery.discovery_args(opts)
    assert args[0] == "-sS" and "-sV" not in args and "-n" in args
    assert args[args.index("--max-rate") + 1] == "300"
    assert args[args.index("--max-hostgroup") + 1] == "4"
    assert args[args.index("--host-timeout") + 1] == "60s"
    unpriv = discovery.discovery_args(ScanOptions(privileged=False, udp=True, host_discovery=False))
    assert unpriv[:2] == ["-sT", "-sU"] and "-Pn" in unpriv
    assert discovery.discovery_args(ScanOptions(privileged=True, connect_scan=True))[0] == "-sT"
    v = discovery.version_args(ScanOptions(privileged=False))
    assert "-sV" in v and "-Pn" in v and v[0] == "-sT"


def test_default_ports_are_top_ports_plus_extras():
    ports = set(discovery.default_tcp_ports() and
                [p for r in discovery.default_tcp_ports() for p in range(r.start, r.end + 1)])
    top = set(discovery.top_ports())
    assert len(top) == 1000 and {22, 80, 443, 3389} <= top
    assert top <= ports
    assert set(EXTRA_TCP_PORTS) <= ports
    assert {6379, 27017, 9200, 11211, 2375, 5432, 1433, 1521, 5900, 873, 2049, 2181, 5601} <= ports
    assert discovery.port_spec(parse_ports("22,80"), parse_ports("161")) == "T:22,80,U:161"


def test_missing_nmap_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NmapMissing, match="apt-get install -y nmap"):
        discovery.nmap_path()


def test_run_nmap_refuses_output_and_script_arguments():
    if discovery.shutil.which("nmap") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("nmap not installed")
    for bad in ("-oX", "--script", "-A"):
        with pytest.raises(ValueError, match="not allowed"):
            discovery.run_nmap(["192.0.2.1"], "T:22", ["-sT", bad], "x")


# ---- protocol parsers ---------------------------------------------------------------------------


def _kexinit(lists: list[str]) -> bytes:
    payload = bytes([20]) + b"\x00" * 16
    for names in lists:
        payload += struct.pack(">I", len(names)) + names.encode()
    return payload + b"\x00" + b"\x00" * 4


def test_parse_kexinit_and_weak_lists():
    lists = ["curve25519-sha256,diffie-hellman-group1-sha1,gss-gex-sha1-abc", "ssh-ed25519,ssh-dss",
             "aes256-gcm@openssh.com,arcfour,aes128-cbc", "chacha20-poly1305@openssh.com",
             "hmac-sha2-256,hmac-md5-96", "umac-64@openssh.com", "none", "none", "", ""]
    parsed = ssh.parse_kexinit(_kexinit(lists))
    assert parsed["kex"] == ["curve25519-sha256", "diffie-hellman-group1-sha1", "gss-gex-sha1-abc"]
    assert parsed["languages_c2s"] == []
    assert [k for k in parsed["kex"] if ssh._weak_kex(k)] == ["diffie-hellman-group1-sha1", "gss-gex-sha1-abc"]
    assert [c for c in parsed["ciphers_c2s"] if ssh._weak_cipher(c)] == ["arcfour", "aes128-cbc"]
    with pytest.raises(banners.ProbeFailed, match="not KEXINIT"):
        ssh.parse_kexinit(b"\x15abc")
    with pytest.raises(banners.ProbeFailed, match="truncated"):
        ssh.parse_kexinit(_kexinit(lists)[:40])


def test_ssh_identification_line_after_other_lines_and_its_limits():
    # audit() and auth_methods() read the identification line through one helper: lines before it are
    # skipped (RFC 4253 §4.2), but only 20 of them, and a peer closing early is named as such.
    import socket

    def served(data: bytes) -> socket.socket:
        ours, theirs = socket.socketpair()
        theirs.sendall(data)
        theirs.close()
        return ours

    with served(b"hello\r\nnotice\r\nSSH-2.0-OpenSSH_9.6 x\r\nrest") as sock:
        assert ssh._read_identification(sock, "h", 22) == b"SSH-2.0-OpenSSH_9.6 x\r\n"
    with served(b"other\r\n" * 20 + b"SSH-2.0-late\r\n") as sock:
        with pytest.raises(banners.ProbeFailed, match="h:22 sent no SSH identification line"):
            ssh._read_identification(sock, "h", 22)
    with served(b"other\r\n") as sock:
        with pytest.raises(banners.ProbeFailed, match="h:22 closed before sending an SSH identification"):
            ssh._read_identification(sock, "h", 22)


def test_recv_exact_reads_across_chunks_and_names_an_early_close():
    # one reader for the fixed-length frames of the ssh, tls, mysql, mongodb and postgresql probes
    import socket
    import threading

    ours, theirs = socket.socketpair()
    with ours:
        def send():
            for part in (b"ab", b"cde", b"fgh"):
                theirs.sendall(part)
            theirs.close()

        threading.Thread(target=send).start()
        assert banners.recv_exact(ours, 4, "x: closed") == b"abcd"
        assert banners.recv_exact(ours, 10) == b"efgh"  # no message given: the short read as it came
        with pytest.raises(banners.ProbeFailed, match="^mysql: truncated packet$"):
            banners.recv_exact(ours, 1, "mysql: truncated packet")
    with pytest.raises(banners.ProbeFailed, match="connection closed after 0 of 4 bytes"):
        a, b = socket.socketpair()
        b.close()
        with a:
            ssh._recv_exact(a, 4)


def test_client_hello_layout():
    hello = tls.client_hello(0x0301, [0x0005, 0xC018], "portal.example")
    assert hello[0] == 0x16 and hello[1:3] == b"\x03\x01"
    assert struct.unpack(">H", hello[3:5])[0] == len(hello) - 5
    assert hello[5] == 1 and hello[9:11] == b"\x03\x01"
    suites_at = 5 + 4 + 2 + 32 + 1
    assert hello[suites_at:suites_at + 6] == b"\x00\x04\x00\x05\xc0\x18"
    assert b"portal.example" in hello
    assert b"\x00\x0d" not in hello[suites_at + 8:suites_at + 12]  # no signature_algorithms below TLS 1.2
    ssl3 = tls.client_hello(0x0300, [0x000A])
    assert ssl3[1:3] == b"\x03\x00" and ssl3.endswith(b"\x01\x00")  # no extensions in SSLv3


def test_snmp_request_and_response_roundtrip():
    req = unauth.snmp_get_request("public", request_id=0x1234)
    tag, msg, _ = unauth.ber_read(req, 0)
    assert tag == 0x30 and b"public" in msg and unauth._ber_oid("1.3.6.1.2.1.1.1.0") in req
    value = unauth._ber(0x04, b"Linux box")
    vb = unauth._ber(0x30, unauth._ber_oid(unauth.SYS_DESCR) + value)
    pdu = unauth._ber(0xA2, unauth._ber_int(0x1234) + unauth._ber_int(0) + unauth._ber_int(0) + unauth._ber(0x30, vb))
    resp = unauth._ber(0x30, unauth._ber_int(1) + unauth._ber(0x04, b"public") + pdu)
    assert unauth.parse_snmp_response(resp) == ("public", 0, "Linux box")
    assert unauth._ber_oid("1.3.6.1.4.1.2021") == b"\x06\x07\x2b\x06\x01\x04\x01\x8f\x65"


def test_bson_roundtrip():
    doc = {"listDatabases": 1, "nameOnly": True, "$db": "admin", "x": 1.5, "sub": {"a": "b"}}
    decoded, end = unauth.bson_decode(unauth.bson_encode(doc))
    assert decoded == doc and end == len(unauth.bson_encode(doc))


def test_mysql_greeting_and_banner_classification():
    from tests.netlab import mysql_greeting

    b = banners.classify(mysql_greeting())
    assert (b.service, b.product, b.version) == ("mysql", "MySQL", "5.7.33-log")
    assert b.text == "MySQL 5.7.33-log (protocol 10, ssl=no)"
    assert banners.classify(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n").product == "OpenSSH"
    assert banners.classify(b"220 (vsFTPd 3.0.3)\r\n").service == "ftp"
    assert banners.classify(b"220 mail ESMTP Postfix\r\n").service == "smtp"
    assert banners.classify(bytes([255, 253, 24]) + b"login: ").service == "telnet"
    assert banners.classify(b"RFB 003.008\n").service == "vnc"
    assert banners.classify(b"").service is None


def test_http_login_form_detection():
    page = (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n<html><title>Sign in</title>"
            b"<form><input type='PASSWORD' name=p></form></html>")
    info = banners.parse_http_response(page)
    assert info.status == 200 and info.login_form and info.title == "Sign in"
    basic = banners.parse_http_response(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\n\r\n")
    assert basic.basic_auth and not basic.login_form
    with pytest.raises(banners.ProbeFailed, match="not an HTTP response"):
        banners.parse_http_response(b"-ERR unknown command\r\n")


# ---- zone baselines ------------------------------------------------------------------------------


def test_shipped_zone_baseline_loads():
    b = load_zone_baseline("zone-egov-default")
    assert {z.name for z in b.zones} == {"internet", "dmz", "business", "database", "management", "office"}
    assert b.kind == "zone" and b.level == 3
    assert b.judge_port("dmz", "tcp", 6379, "redis") == (True, "tcp/6379 (redis) is forbidden in zone dmz", True)
    assert b.judge_port("dmz", "tcp", 443, "https") == (False, None, False)
    assert b.judge_port("database", "tcp", 3306, "mysql") == (False, None, False)
    assert b.judge_port("business", "tcp", 5000, None)[0] is True  # default deny
    assert b.judge_port(None, "tcp", 23, "telnet")[2] is True
    assert b.management_from("database") == ["management"]


def test_site_zone_baseline_extends_and_reports_lines(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text("id: site-x\nversion: '2026.1'\nextends: zone-egov-default\n"
                    "networks: {dmz: [10.1.1.0/24], database: [10.1.3.0/24]}\n"
                    "waive: {net-tls-certificate: internal CA not in the scanner's store}\n")
    b = load_zone_baseline(str(site))
    assert b.lineage == ["zone-egov-default"]
    assert b.zone_for("10.1.3.9") == "database" and b.zone_for("10.9.9.9") is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: '1'\nkind: zone\ntitle: {zh: x, en: x}\nlevel: 3\nzones:\n"
                   "  - name: a\n    title: {zh: a, en: a}\n    allowed: [tcp/99999]\n"
                   "  - name: b\n    title: {zh: b, en: b}\n    colour: red\n")
    with pytest.raises(BaselineError) as err:
        load_zone_baseline(str(bad))
    assert err.value.problems == [f"{bad}:9: zones[0].allowed: Value error, bad port '99999': ports are 1-65535",
                                  f"{bad}:12: zones[1].colour: unknown key"]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("id: u\nversion: '1'\nextends: zone-egov-default\nnetworks:\n  nope: [10.0.0.0/24]\n")
    with pytest.raises(BaselineError, match=r"unknown.yaml:5: networks.nope: unknown zone 'nope'"):
        load_zone_baseline(str(unknown))


# ---- diff and scoring ------------------------------------------------------------------------------


def _f(host, port, service, **kw) -> ServiceFinding:
    return ServiceFinding(host=host, port=port, service=service, first_seen=NOW, last_seen=NOW, **kw)


def test_diff_findings_events():
    prev = [_f("10.0.0.1", 22, "ssh", product="OpenSSH", version="7.4"), _f("10.0.0.1", 80, "http"),
            _f("10.0.0.2", 443, "https")]
    cur = [_f("10.0.0.1", 22, "ssh", product="OpenSSH", version="8.9p1"), _f("10.0.0.1", 23, "telnet", forbidden=True,
                                                                             high_risk=["6.4.1.2"]),
           _f("10.0.0.2", 443, "https")]
    events = diff_findings(prev, cur, at=NOW)
    assert [(e.kind, e.host, e.port, e.before, e.after, e.severity.value) for e in events] == [
        ("version_change", "10.0.0.1", 22, "OpenSSH 7.4", "OpenSSH 8.9p1", "low"),
        ("new_open_port", "10.0.0.1", 23, None, "telnet", "high"),
        ("new_forbidden_port", "10.0.0.1", 23, None, "telnet", "critical"),
        ("closed_port", "10.0.0.1", 80, "http", None, "low"),
    ]
    # a host the current scan did not cover is not reported closed
    assert diff_findings(prev, [], at=NOW, scanned_hosts=["10.0.0.2"])[0].host == "10.0.0.2"
    assert len(diff_findings(prev, [], at=NOW, scanned_hosts=["10.0.0.2"])) == 1
    assert diff_findings(prev, prev, at=NOW) == []


def test_score_network_verdicts_and_clauses():
    b = load_zone_baseline("zone-egov-default")
    weak_ssh = SSHInfo(banner="SSH-2.0-OpenSSH_7.4", protocol="2.0", software="OpenSSH_7.4",
                       weak_kex=["diffie-hellman-group1-sha1"], weak_macs=["hmac-md5"])
    good_tls = TLSInfo(protocols=["TLSv1.2", "TLSv1.3"], not_after=NOW + timedelta(days=90),
                       not_before=NOW - timedelta(days=1), expired=False, self_signed=False, chain_valid=True)
    findings = [
        _f("10.1.1.5", 443, "https", tls=good_tls, http=HTTPInfo(status=200, login_form=True)),
        _f("10.1.1.5", 80, "http", http=HTTPInfo(status=200, login_form=True)),
        _f("10.1.1.5", 22, "ssh", ssh=weak_ssh),
        _f("10.1.1.5", 6379, "redis", exposure=Exposure(protocol="redis", unauthenticated=True, detail="PONG")),
    ]
    reach = Reachability(scanner_zone="internet", hosts=["10.1.1.5"], tcp_ports=list(range(1, 30000)))
    score = score_network(findings, b, zone="dmz", reach=reach)
    by = {(f.port): {r.check_id: r.status for r in f.results} for f in score.findings}
    assert by[443] == {"net-plaintext-transport": Status.PASS, "net-forbidden-port": Status.PASS,
                       "net-tls-protocol": Status.PASS, "net-tls-weak-cipher": Status.PASS,
                       "net-tls-certificate": Status.PASS, "net-plaintext-mgmt": Status.PASS}
    assert by[80] == {"net-plaintext-mgmt": Status.FAIL, "net-plaintext-transport": Status.FAIL,
                      "net-forbidden-port": Status.FAIL}
    assert by[22]["net-mgmt-source"] == Status.FAIL  # ssh reachable from the Internet zone
    assert by[22]["net-ssh-weak-crypto"] == Status.FAIL and by[22]["net-ssh-weak-mac"] == Status.FAIL
    assert by[22]["net-forbidden-port"] == Status.FAIL  # ssh is not allowed in the DMZ
    assert by[6379] == {"net-forbidden-port": Status.FAIL, "net-unauth-access": Status.FAIL}
    redis = next(f for f in score.findings if f.port == 6379)
    assert redis.forbidden and redis.high_risk == ["6.4.1.1", "6.4.3.1"]
    iso = [r for r in score.results if r.check_id == "net-isolation"]
    assert len(iso) == 1 and iso[0].status == Status.FAIL and iso[0].clause == "8.1.3.2"
    assert iso[0].reason == "10.1.1.5 (internet -> dmz): reachable: tcp/22, tcp/6379"
    verdicts = {(i.clause, i.item): i.verdict for i in score.items}
    # one host, one 测评对象: its unauthenticated Redis (6.4.1.1) makes 8.1.4.4 b 不符合 although 443 is allowed,
    # and the plaintext login on 80 (6.4.1.2) does the same for 8.1.4.1 c
    assert verdicts[("8.1.4.4", "b")] == Verdict.NONCONFORM
    assert verdicts[("8.1.4.1", "c")] == Verdict.NONCONFORM
    assert score.objects["10.1.1.5"] == score.items
    assert verdicts[("8.1.3.2", "a")] == Verdict.NONCONFORM
    assert score.summary.conclusion == "差"


def test_isolation_pass_needs_coverage_and_waiver_counts_nothing():
    b = load_zone_baseline("zone-egov-default")
    reach = Reachability(scanner_zone="internet", hosts=["10.3.0.9"], tcp_ports=[22, 443])
    score = score_network([], b, zone="database", reach=reach)
    (res,) = score.results
    assert res.status == Status.ERROR and "all TCP ports" in res.reason
    full = Reachability(scanner_zone="internet", hosts=["10.3.0.9"], tcp_ports=list(range(1, 65536)))
    (ok,) = score_network([], b, zone="database", reach=full).results
    assert ok.status == Status.PASS and ok.clause == "8.1.3.1"
    b2 = b.model_copy(update={"waive": {"net-unauth-access": "lab"}})
    f = _f("10.3.0.9", 6379, "redis", exposure=Exposure(protocol="redis", unauthenticated=True, detail="PONG"))
    scored = score_network([f], b2, zone="database").findings[0]
    unauth_r = next(r for r in scored.results if r.check_id == "net-unauth-access")
    assert unauth_r.status == Status.FAIL and unauth_r.waiver == "lab" and scored.high_risk == []


def test_probe_error_is_never_a_pass():
    b = load_zone_baseline("zone-egov-default")
    f = _f("10.3.0.9", 27017, "mongodb", errors=["mongodb: no answer"])
    r = next(r for r in score_network([f], b, zone="database").results if r.check_id == "net-unauth-access")
    assert r.status == Status.ERROR and "mongodb: no answer" in r.reason
    assert set(shipped_checks()) >= {"net-plaintext-mgmt", "net-isolation", "net-mgmt-source"}


# ---- CLI without a network ------------------------------------------------------------------------


def test_cli_without_nmap_says_so_and_sends_nothing(monkeypatch, tmp_path):
    import typer
    from typer.testing import CliRunner

    from sentinel import cli_scan_oneshot

    app = typer.Typer()
    cli_scan_oneshot.register(app)
    app.command("noop")(lambda: None)  # keep `scan` a sub-command, as under `sentinel`
    monkeypatch.setenv("PATH", str(tmp_path))  # no nmap here
    result = CliRunner().invoke(app, ["scan", "192.0.2.10", "--scope", "192.0.2.0/24", "--format", "json"])
    assert result.exit_code == 2
    assert "the nmap binary was not found on PATH; install it with `apt-get install -y nmap`" in result.output
    bad_zone = CliRunner().invoke(app, ["scan", "192.0.2.10", "--scope", "192.0.2.0/24", "--zone", "moon"])
    assert bad_zone.exit_code == 2 and "zone 'moon' is not in zone baseline zone-egov-default" in bad_zone.output


def test_scapy_is_not_imported_by_the_scan_command():
    import subprocess
    import sys

    code = ("import sys, sentinel.cli_scan_oneshot, sentinel.network.engine, sentinel.checks.network.probes; "
            "print('scapy' in sys.modules, 'nmap' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
