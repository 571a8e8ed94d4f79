"""Issue 11: zh output of a network scan carries Chinese reasons (`reason_zh`), as host checks do, and the
English ones stay as they were. Pure scoring: no packet is sent."""
from __future__ import annotations

import io
import re
from datetime import datetime, timezone

from sentinel.checks.network.findings import CredentialAttempt, Exposure, HTTPInfo, ServiceFinding, SSHInfo, TLSInfo
from sentinel.model import Status
from sentinel.network.scoring import Reachability, score_network
from sentinel.network.zones import load_zone_baseline

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
B = load_zone_baseline("zone-egov-default")
CJK = re.compile(r"[\u4e00-\u9fff]")
# English words of our own wording; probe output, service and algorithm names may stay as they are
ENGLISH = re.compile(r"\b(offers|accepts|without|reachable|forbidden|allowed|certificate|expired|self-signed|"
                     r"undetermined|could not|cannot|is not|probe gave|logged in|plaintext|high-risk port)\b")


def _f(host, port, service, proto="tcp", **kw) -> ServiceFinding:
    return ServiceFinding(host=host, port=port, proto=proto, service=service, first_seen=NOW, last_seen=NOW, **kw)


def _findings() -> list[ServiceFinding]:
    weak_tls = TLSInfo(protocols=["TLSv1.0", "TLSv1.2"], weak_ciphers=["TLS_RSA_WITH_RC4_128_SHA"], not_after=NOW,
                       expired=True, self_signed=True, chain_valid=False)
    untrusted = TLSInfo(protocols=["TLSv1.2"], untested={"TLSv1.1": "handshake timed out"}, chain_valid=False,
                        chain_error="X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY", expired=False, self_signed=False,
                        not_after=NOW)
    return [
        _f("10.9.0.5", 23, "telnet"),
        _f("10.9.0.5", 80, "http", http=HTTPInfo(status=200, login_form=True)),
        _f("10.9.0.5", 6379, "redis", exposure=Exposure(protocol="redis", unauthenticated=True,
                                                        detail="PING -> +PONG, no AUTH asked")),
        _f("10.9.0.5", 27017, "mongodb", errors=["mongodb: connection reset"]),
        _f("10.9.0.5", 3306, "mysql", credentials=[CredentialAttempt(protocol="mysql", user="root", accepted=True,
                                                                     detail="empty password accepted")]),
        _f("10.9.0.5", 443, "https", tls=weak_tls),
        _f("10.9.0.6", 443, "https", tls=untrusted),
        _f("10.9.0.6", 8443, "https", tls=TLSInfo(protocols=["TLSv1.2"])),
        _f("10.9.0.5", 22, "ssh", ssh=SSHInfo(banner="SSH-1.99-x", protocol="1.99", software="x",
                                              weak_kex=["diffie-hellman-group1-sha1"], weak_macs=["hmac-md5"],
                                              auth_methods=["password", "publickey"])),
        _f("10.9.0.7", 22, "ssh", ssh=SSHInfo(banner="SSH-2.0-x", protocol="2.0", software="x",
                                              auth_methods=["none"])),
        _f("10.9.0.8", 22, "ssh", ssh=SSHInfo(banner="SSH-2.0-x", protocol="2.0", software="x"),
           errors=["ssh-auth: connection closed"]),
        _f("10.9.0.9", 22, "ssh", errors=["ssh: banner timed out"]),
        _f("10.9.0.5", 161, "snmp", proto="udp", state="open|filtered", errors=["snmp: no answer"]),
    ]


def _not_passed():
    reach = Reachability(scanner_zone="internet", hosts=["10.1.1.5", "10.1.1.6"], tcp_ports=list(range(1, 65536)),
                         udp_ports=list(range(1, 65536)))
    score = score_network(_findings(), B)
    iso = score_network([_f("10.1.1.5", 22, "ssh"), _f("10.1.1.6", 161, "snmp", proto="udp", state="open|filtered")],
                        B, zone="database", reach=reach)
    results = [r for f in score.findings + iso.findings for r in f.results] + score.results + iso.results
    return [r for r in results if r.status != Status.PASS]


def test_every_network_reason_has_its_chinese_wording():
    bad = _not_passed()
    kinds = {r.check_id for r in bad}
    assert {"net-plaintext-mgmt", "net-plaintext-transport", "net-forbidden-port", "net-unauth-access",
            "net-empty-password", "net-tls-protocol", "net-tls-weak-cipher", "net-tls-certificate",
            "net-ssh-protocol", "net-ssh-weak-crypto", "net-ssh-weak-mac", "net-ssh-password-auth",
            "net-ssh-no-auth", "net-default-community", "net-isolation"} <= kinds, kinds
    for r in bad:
        assert r.reason and r.reason_zh, r
        assert CJK.search(r.reason_zh), (r.check_id, r.reason_zh)
        assert not ENGLISH.search(r.reason_zh), (r.check_id, r.reason_zh)
        assert r.reason_zh.split("：")[0] == r.reason.split(": ")[0]  # the same finding label in front


def test_the_english_reasons_are_unchanged():
    results = _not_passed()
    at_443 = {r.check_id: r for r in results if r.reason.startswith("10.9.0.5:443/tcp: ")}
    assert at_443["net-tls-protocol"].reason == "10.9.0.5:443/tcp: offers TLSv1.0"
    assert at_443["net-tls-certificate"].reason.endswith(": certificate expired 2026-01-05; self-signed certificate")
    assert at_443["net-tls-protocol"].reason_zh == "10.9.0.5:443/tcp：支持 TLSv1.0"
    assert at_443["net-tls-certificate"].reason_zh.endswith("：证书已于 2026-01-05 过期；自签名证书")
    telnet = next(r for r in results if r.check_id == "net-forbidden-port" and ":23/" in r.reason)
    assert telnet.reason.endswith(": tcp/23 (telnet) is a high-risk port")
    assert B.judge_port("dmz", "tcp", 6379, "redis") == (True, "tcp/6379 (redis) is forbidden in zone dmz", True)
    forbidden, why, high = B.port_verdict("dmz", "tcp", 6379, "redis")
    assert (forbidden, high, why.zh) == (True, True, "tcp/6379 (redis) 在区域 dmz 中禁止开放")


def test_scan_table_in_chinese_gives_the_chinese_reason():
    from sentinel.cli_scan_oneshot import _print_table
    from tests.scan_helpers import NET, scan_report

    report = scan_report([_f("10.9.0.9", 22, "ssh", errors=["ssh: banner timed out"])], [NET], NOW)
    zh, en = io.StringIO(), io.StringIO()
    _print_table(report, "zh", file=zh)
    _print_table(report, "en", file=en)
    assert "探测未得出结果" in zh.getvalue() and "ssh: banner timed out" in zh.getvalue()
    assert "探测未得出结果" not in en.getvalue() and "ssh: banner timed out" in en.getvalue()


def test_zh_evidence_of_a_stored_scan_gives_the_chinese_reason(tmp_path):
    """Through the collector's scan ingest and the evidence collection the exports are made from."""
    from datetime import timedelta

    from sentinel.evidence.collect import collect
    from sentinel.exporters.evidence import wording
    from tests import evidence_seed as seed

    s = seed.new_store(tmp_path)
    try:
        seed.create_system(s)
        seed.scan(s, [_f("10.9.0.5", 23, "telnet")], seed.T0 + timedelta(minutes=5))
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
    finally:
        s.db.dispose()
    results = [r for o in ev.objects if o.kind == "zone" for rep in o.reports for r in rep.results
               if r.status == Status.FAIL]
    telnet = next(r for r in results if r.check_id == "net-plaintext-mgmt")
    assert wording.gap(telnet, "zh").startswith("10.9.0.5:23/tcp：telnet 以明文传输鉴别信息")
    assert "carries credentials" not in wording.seen(telnet, "zh")
    assert "telnet carries credentials in plaintext" in wording.seen(telnet, "en")
