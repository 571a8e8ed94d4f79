"""Issue 19: a probe without an answer is never a pass, open|filtered is its own state, each host is its own
测评对象, severities and lists an assessor signs. Pure scoring plus `run_scan` with nmap and the probes replaced
(no packet is sent by these tests)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from sentinel.checks.network import ssh
from sentinel.checks.network.discovery import NmapRun, PortHit, ScanOptions
from sentinel.checks.network.findings import Exposure, ServiceFinding, TLSInfo
from sentinel.checks.network.probes import PortProbe
from sentinel.checks.network.scope import Scope, parse_ports
from sentinel.model import Severity, Status, Verdict
from sentinel.network import engine
from sentinel.network.diff import diff_findings
from sentinel.network.scoring import Reachability, score_network
from sentinel.network.zones import load_zone_baseline

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
B = load_zone_baseline("zone-egov-default")


def _f(host, port, service, proto="tcp", **kw) -> ServiceFinding:
    return ServiceFinding(host=host, port=port, proto=proto, service=service, first_seen=NOW, last_seen=NOW, **kw)


def _status(finding, check_id):
    return next(r.status for r in finding.results if r.check_id == check_id)


# ---- open|filtered is undetermined ---------------------------------------------------------------------

def test_open_filtered_snmp_is_neither_open_nor_a_pass():
    phantom = _f("10.9.0.5", 161, "snmp", proto="udp", state="open|filtered",
                 errors=["snmp: no answer from 10.9.0.5:161 ... undetermined"])
    score = score_network([phantom], B, zone="dmz")  # snmp is forbidden in the DMZ
    (f,) = score.findings
    assert not f.forbidden and f.high_risk == []
    assert _status(f, "net-forbidden-port") == Status.ERROR
    assert _status(f, "net-default-community") == Status.ERROR
    reason = next(r.reason for r in f.results if r.check_id == "net-forbidden-port")
    assert "open|filtered" in reason and "cannot be told" in reason
    assert {i.verdict for i in score.items} == {Verdict.PENDING}  # undetermined, not 符合 and not 不符合
    # the same port answered: open, forbidden, a finding
    answered = _f("10.9.0.5", 161, "snmp", proto="udp",
                  exposure=Exposure(protocol="snmp", unauthenticated=True, detail="community 'public' accepted"))
    (g,) = score_network([answered], B, zone="dmz").findings
    assert g.forbidden and _status(g, "net-forbidden-port") == Status.FAIL


def test_open_filtered_does_not_break_the_isolation_matrix():
    reach = Reachability(scanner_zone="internet", hosts=["10.1.1.5"], tcp_ports=list(range(1, 65536)),
                         udp_ports=list(range(1, 65536)))
    phantom = _f("10.1.1.5", 161, "snmp", proto="udp", state="open|filtered")
    (iso,) = [r for r in score_network([phantom], B, zone="database", reach=reach).results
              if r.check_id == "net-isolation"]
    assert iso.status == Status.ERROR and "udp/161 open|filtered" in iso.reason
    real = _f("10.1.1.5", 22, "ssh")
    (iso2,) = [r for r in score_network([phantom, real], B, zone="database", reach=reach).results
               if r.check_id == "net-isolation"]
    assert iso2.status == Status.FAIL and iso2.reason.endswith("reachable: tcp/22")


def test_open_filtered_neither_opens_nor_closes_in_the_diff():
    phantom = _f("10.9.0.5", 161, "snmp", proto="udp", state="open|filtered", forbidden=False)
    assert diff_findings([], [phantom], at=NOW) == []
    was_open = _f("10.9.0.5", 161, "snmp", proto="udp")
    assert diff_findings([was_open], [phantom], at=NOW) == []  # silent now: not "closed" either
    assert [e.kind for e in diff_findings([phantom], [was_open], at=NOW)] == ["new_open_port"]


# ---- per 测评对象 ---------------------------------------------------------------------------------

def test_each_host_is_judged_then_rolled_up():
    bad = [_f("10.9.0.7", 6379, "redis", exposure=Exposure(protocol="redis", unauthenticated=True, detail="PONG")),
           _f("10.9.0.7", 11211, "memcached",
              exposure=Exposure(protocol="memcached", unauthenticated=True, detail="stats")),
           _f("10.9.0.7", 443, "https", tls=TLSInfo(protocols=["TLSv1.3"], not_after=NOW, expired=False,
                                                    self_signed=False, chain_valid=True))]
    good = [_f("10.9.0.8", 443, "https", tls=TLSInfo(protocols=["TLSv1.3"], not_after=NOW, expired=False,
                                                     self_signed=False, chain_valid=True))]
    score = score_network(bad + good, B)
    per = {h: {(i.clause, i.item): i.verdict for i in items} for h, items in score.objects.items()}
    # pooled, 4 passing and 4 failing results made 部分符合 on the host with the critical services
    assert per["10.9.0.7"][("8.1.4.4", "b")] == Verdict.NONCONFORM
    assert per["10.9.0.8"][("8.1.4.4", "b")] == Verdict.CONFORM
    rolled = {(i.clause, i.item): i.verdict for i in score.items}
    assert rolled[("8.1.4.4", "b")] == Verdict.PARTIAL  # one object 不符合, one 符合
    assert score.summary.conclusion == "差"
    # without a high-risk case the usual mix stands: an allowed port and a forbidden low-risk one
    dmz = score_network([_f("10.9.0.9", 443, "https"), _f("10.9.0.9", 8080, "http")], B, zone="dmz")
    assert {(i.clause, i.item): i.verdict for i in dmz.objects["10.9.0.9"]}[("8.1.4.4", "b")] == Verdict.PARTIAL


# ---- severities and lists ----------------------------------------------------------------------------

def test_null_and_anonymous_tls_suites_are_high():
    def weak(*suites):
        f = _f("10.9.0.5", 443, "https", tls=TLSInfo(protocols=["TLSv1.2"], weak_ciphers=list(suites),
                                                     not_after=NOW, expired=False, self_signed=False,
                                                     chain_valid=True))
        return next(r for r in score_network([f], B).results if r.check_id == "net-tls-weak-cipher")

    assert weak("TLS_RSA_WITH_NULL_SHA").severity == Severity.HIGH
    assert weak("TLS_ECDH_anon_WITH_AES_128_CBC_SHA").severity == Severity.HIGH
    assert weak("TLS_RSA_WITH_3DES_EDE_CBC_SHA").severity == Severity.MEDIUM
    assert weak().status == Status.PASS


def test_stock_debian_openssh_macs_pass_and_weak_ones_fail():
    debian = ["umac-64-etm@openssh.com", "umac-128-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
              "hmac-sha2-512-etm@openssh.com", "hmac-sha1-etm@openssh.com", "umac-64@openssh.com",
              "umac-128@openssh.com", "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1"]  # `ssh -Q mac` defaults
    assert [m for m in debian if m in ssh.WEAK_MACS] == []
    assert {"hmac-md5", "hmac-sha1-96", "hmac-md5-96", "umac-32@openssh.com"} <= ssh.WEAK_MACS


# ---- run_scan: UDP probes after nmap, open|filtered kept, coverage said ----------------------------------

def _fake_nmap(monkeypatch, hits: list[PortHit], version_seconds: float = 0.3):
    spans: dict[str, list[float]] = {}

    def discover(resolved, options, progress=None):
        return [NmapRun(command=["nmap", "pass1"], elapsed=0.1, hosts_up=sorted({h.host for h in hits}), ports=hits)]

    def detect_versions(wanted, options, progress=None, per_port=False):
        spans["wanted"] = [(h.host, h.port) for h in wanted]
        spans["per_port"] = per_port
        spans["versions"] = [time.monotonic()]
        time.sleep(version_seconds)
        spans["versions"].append(time.monotonic())
        return []

    started: dict[tuple, float] = {}
    lock = threading.Lock()

    def run_all(self):
        with lock:
            started.setdefault((self.proto, self.port), time.monotonic())
        if self.proto == "udp" and self.port == 161 and self.host.endswith(".5"):
            self.f.errors.append("snmp: no answer ... undetermined")  # the silent firewall

    monkeypatch.setattr(engine, "discover", discover)
    monkeypatch.setattr(engine, "detect_versions", detect_versions)
    monkeypatch.setattr(PortProbe, "run_all", run_all)
    return spans, started


def test_udp_probes_never_overlap_an_nmap_pass(monkeypatch):
    hits = [PortHit(host="10.9.0.5", proto="tcp", port=22, state="open"),
            PortHit(host="10.9.0.5", proto="udp", port=161, state="open|filtered")]
    spans, started = _fake_nmap(monkeypatch, hits)
    report = engine.run_scan(["10.9.0.5"], Scope.from_cli(["10.9.0.0/24"]),
                             ScanOptions(tcp_ports=parse_ports("22"), udp=True, udp_ports=parse_ports("161")))
    assert started[("udp", 161)] >= spans["versions"][1], "the SNMP probe ran while nmap was still probing"
    assert started[("tcp", 22)] < spans["versions"][0]  # our TCP probes first: they decide where -sV is needed
    assert spans["wanted"] == [("10.9.0.5", 22)] and spans["per_port"] is True
    snmp = next(f for f in report.findings if f.proto == "udp")
    assert snmp.state == "open|filtered" and not snmp.forbidden  # kept, as undetermined
    assert _status(snmp, "net-default-community") == Status.ERROR


def test_default_scan_says_udp_was_not_scanned(monkeypatch):
    hits = [PortHit(host="10.9.0.6", proto="tcp", port=22, state="open")]
    _fake_nmap(monkeypatch, hits, version_seconds=0)
    report = engine.run_scan(["10.9.0.6"], Scope.from_cli(["10.9.0.0/24"]), ScanOptions(tcp_ports=parse_ports("22")))
    assert report.coverage.udp_ports is None and report.coverage.udp_count == 0
    assert "UDP not scanned" in report.coverage.note and "未扫描 UDP" in report.coverage.note_zh
    # ...and so does the evidence of every verdict
    assert report.results and all(any(e.source == "scan coverage" and "UDP not scanned" in (e.excerpt or "")
                                       for e in r.evidence) for r in report.results)
    with_udp = engine.coverage_of(ScanOptions(tcp_ports=parse_ports("22"), udp=True, udp_ports=parse_ports("161")))
    assert with_udp.udp_ports == "161" and "UDP 1 port(s) 161" in with_udp.note


def test_version_detection_only_where_our_probes_could_not_identify(monkeypatch):
    hits = [PortHit(host="10.9.0.5", proto="tcp", port=22, state="open"),
            PortHit(host="10.9.0.5", proto="tcp", port=9999, state="open")]
    spans, _ = _fake_nmap(monkeypatch, hits, version_seconds=0)

    def run_all(self):  # our probes read an SSH banner on 22; 9999 stays silent
        if self.port == 22:
            self.banner_service = "ssh"
            self.f.service = "ssh"

    monkeypatch.setattr(PortProbe, "run_all", run_all)
    report = engine.run_scan(["10.9.0.5"], Scope.from_cli(["10.9.0.0/24"]),
                             ScanOptions(tcp_ports=parse_ports("22,9999")))
    assert spans["wanted"] == [("10.9.0.5", 9999)] and spans["per_port"] is True
    assert report.errors == ["version detection on 10.9.0.5:9999/tcp gave no answer within 12s"]
    engine.run_scan(["10.9.0.5"], Scope.from_cli(["10.9.0.0/24"]),
                    ScanOptions(tcp_ports=parse_ports("22,9999"), version_all=True))
    assert spans["wanted"] == [("10.9.0.5", 22), ("10.9.0.5", 9999)] and spans["per_port"] is False


def test_per_port_version_runs_are_each_bounded(monkeypatch):
    from sentinel.checks.network import discovery

    calls = []

    def run_nmap(targets, ports, args, phase, progress=None, timeout=None):
        calls.append((targets, ports, args))
        return NmapRun(command=["nmap"], elapsed=0.0)

    monkeypatch.setattr(discovery, "run_nmap", run_nmap)
    hits = [PortHit(host="10.9.0.5", proto="tcp", port=p, state="open") for p in (8000, 8001)]
    opts = ScanOptions(version_port_timeout=7, host_timeout=300)
    discovery.detect_versions(hits + [PortHit(host="10.9.0.5", proto="udp", port=161, state="open")], opts,
                              per_port=True)
    assert sorted((t, p) for t, p, _ in calls) == [(["10.9.0.5"], "T:8000"), (["10.9.0.5"], "T:8001")]
    for _, _, args in calls:
        assert "-sV" in args and args[args.index("--host-timeout") + 1] == "7s"
        assert args.count("--host-timeout") == 1 and "-sU" not in args


def test_credential_attempts_are_scored_only_when_present():
    from sentinel.checks.network.findings import CredentialAttempt

    plain = _f("10.9.0.5", 3306, "mysql")
    assert not [r for r in score_network([plain], B).results if r.check_id == "net-empty-password"]
    root = _f("10.9.0.5", 3306, "mysql", credentials=[CredentialAttempt(protocol="mysql", user="root", accepted=True,
                                                                        detail="empty password accepted")])
    (r,) = [r for r in score_network([root], B).results if r.check_id == "net-empty-password"]
    assert (r.status, r.severity, r.high_risk, r.clause, r.item) == (Status.FAIL, Severity.CRITICAL, "6.4.1.1",
                                                                     "8.1.4.1", "a")
    ftp = _f("10.9.0.5", 21, "ftp", credentials=[CredentialAttempt(protocol="ftp", user="anonymous", accepted=False,
                                                                   detail="530")])
    (a,) = [r for r in score_network([ftp], B).results if r.check_id == "net-anonymous-ftp"]
    assert a.status == Status.PASS and (a.clause, a.item) == ("8.1.4.2", "a")


def test_basic_auth_console_attempts_score_on_default_accounts_and_undecided_is_an_error():
    """The Basic-auth console probe (credentials.http_basic; against real nginx in test_http_basic_real.py):
    an accepted default pair fails 8.1.4.2 b as high-risk 6.4.2.1; an answer neither 401 nor 2xx/3xx is an
    error, not a pass; a web port without such a console gets no result at all."""
    from sentinel.checks.network.findings import CredentialAttempt, HTTPInfo

    def console(*attempts, errors=()):
        return _f("10.9.0.5", 8080, "http", http=HTTPInfo(status=401, basic_auth=True), credentials=list(attempts),
                  errors=list(errors))

    def results(f):
        return [r for r in score_network([f], B).results if r.check_id == "net-default-console-password"]

    accepted = CredentialAttempt(protocol="http-basic", user="tomcat/tomcat", accepted=True,
                                 detail="GET /manager/html with Basic tomcat/tomcat -> 200: accepted")
    (r,) = results(console(accepted))
    assert (r.status, r.severity, r.high_risk, r.clause, r.item) == (Status.FAIL, Severity.CRITICAL, "6.4.2.1",
                                                                     "8.1.4.2", "b")
    assert "tomcat/tomcat" in r.reason and "默认凭据被接受" in r.reason_zh
    refused = CredentialAttempt(protocol="http-basic", user="admin/admin", accepted=False, detail="-> 401: refused")
    assert [r.status for r in results(console(refused, refused))] == [Status.PASS, Status.PASS]
    undecided = "credentials http-basic: GET / with Basic admin/admin (console) -> HTTP 403: undetermined"
    assert [r.status for r in results(console(refused, errors=[undecided]))] == [Status.PASS, Status.ERROR]
    assert [r.status for r in results(console(accepted, errors=[undecided]))] == [Status.FAIL]  # found is found
    assert results(_f("10.9.0.5", 80, "http", http=HTTPInfo(status=200))) == []
