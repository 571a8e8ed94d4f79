"""`sentinel scan` against real daemons from Debian's packages in the namespace lab (tests/netlab.py).

h1 runs stock services an assessor flags: sshd offering password authentication (Debian's default MACs),
PostgreSQL with trust authentication and no TLS, memcached over TCP and UDP, snmpd that accepts only a
non-default community. h2 runs snmpd behind an nftables rule that drops all UDP: nmap sees open|filtered and
nothing ever answers. h3 runs vsftpd with anonymous logins and snmpd with the default community `private`,
found only by the opt-in credential probes. Traffic stays inside the lab's namespaces.
"""
from __future__ import annotations

import json

import pytest

from tests.netlab import Lab, drop_udp, need_lab, start_real

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory):
    need_lab(real_services=True)
    work = tmp_path_factory.mktemp("reallab")
    lab = Lab(work)
    try:
        lab.build()
        for kind in ("sshd", "postgresql", "memcached", "snmpd:n0t-default"):
            start_real(lab, "h1", kind, work)
        start_real(lab, "h2", "snmpd:public", work)
        drop_udp(lab, "h2")
        start_real(lab, "h3", "vsftpd", work)
        start_real(lab, "h3", "snmpd:private", work)
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def real_scan(real_lab):
    lab = real_lab
    proc = lab.sentinel(["scan", lab.hosts["h1"], lab.hosts["h2"], "--scope", lab.net, "--ports", "22,5432,11211",
                         "--udp-ports", "161,11211", "--format", "json", "--lang", "en"])
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    return report, {(f["host"], f["proto"], f["port"]): f for f in report["findings"]}


def _st(finding, check_id):
    return {r["check_id"]: r["status"] for r in finding["results"]}.get(check_id)


def test_postgresql_trust_and_no_tls(real_lab, real_scan):
    _, found = real_scan
    pg = found[(real_lab.hosts["h1"], "tcp", 5432)]
    assert pg["service"] == "postgresql" and pg["exposure"]["unauthenticated"] is True
    assert "AuthenticationOk (trust" in pg["exposure"]["detail"] and "N (no TLS)" in pg["exposure"]["detail"]
    assert _st(pg, "net-unauth-access") == "fail" and _st(pg, "net-plaintext-transport") == "fail"
    assert "6.4.1.1" in pg["high_risk"]


def test_memcached_tcp_and_udp(real_lab, real_scan):
    _, found = real_scan
    h1 = real_lab.hosts["h1"]
    tcp, udp = found[(h1, "tcp", 11211)], found[(h1, "udp", 11211)]
    assert _st(tcp, "net-unauth-access") == "fail"
    assert udp["state"] == "open" and udp["exposure"]["unauthenticated"] is True
    assert "over UDP" in udp["exposure"]["detail"] and "amplification" in udp["exposure"]["detail"]
    assert _st(udp, "net-unauth-access") == "fail" and udp["forbidden"] is True


def test_sshd_password_auth_and_stock_macs(real_lab, real_scan):
    _, found = real_scan
    s = found[(real_lab.hosts["h1"], "tcp", 22)]
    assert s["ssh"]["auth_methods"] == ["publickey", "password"]
    assert _st(s, "net-ssh-password-auth") == "fail" and _st(s, "net-ssh-no-auth") == "pass"
    # Debian's stock OpenSSH offers umac-64 and hmac-sha1: neither is a weak MAC (docs/network.md)
    assert "umac-64@openssh.com" in s["ssh"]["macs"] and "hmac-sha1" in s["ssh"]["macs"]
    assert _st(s, "net-ssh-weak-mac") == "pass"
    assert not s["errors"], s["errors"]


def test_snmp_refusing_public_is_a_pass_not_a_silent_one(real_lab, real_scan):
    _, found = real_scan
    snmp = found[(real_lab.hosts["h1"], "udp", 161)]
    assert snmp["state"] == "open" and snmp["exposure"]["unauthenticated"] is False
    assert "SNMPv3 discovery" in snmp["exposure"]["detail"]
    assert _st(snmp, "net-default-community") == "pass"


def test_firewalled_udp_is_undetermined_not_open(real_lab, real_scan):
    report, found = real_scan
    h2 = real_lab.hosts["h2"]
    phantom = found[(h2, "udp", 161)]
    assert phantom["state"] == "open|filtered" and phantom["exposure"] is None and not phantom["forbidden"]
    assert _st(phantom, "net-default-community") == "error"
    assert any("undetermined" in e for e in phantom["errors"])
    mc = found[(h2, "udp", 11211)]
    assert mc["state"] == "open|filtered" and _st(mc, "net-forbidden-port") == "error"
    assert _st(mc, "net-unauth-access") == "error"


def test_each_host_is_its_own_object(real_lab, real_scan):
    report, _ = real_scan
    h1, h2 = real_lab.hosts["h1"], real_lab.hosts["h2"]
    per = {h: {(i["clause"], i["item"]): i["verdict"] for i in items} for h, items in report["objects"].items()}
    assert per[h1][("8.1.4.4", "b")] == "不符合"  # trust PostgreSQL, memcached TCP+UDP on one host
    assert per[h2][("8.1.4.4", "b")] == "待核查"  # only undetermined UDP there
    assert report["coverage"]["udp_ports"] == "161,11211"


def test_credential_probes_are_off_by_default(real_lab, real_scan):
    report, found = real_scan
    assert report["options"]["credential_probes"] is False
    assert all(f["credentials"] == [] for f in found.values())


def test_opt_in_credential_probes_find_anonymous_ftp_and_private(real_lab):
    lab = real_lab
    h1, h3 = lab.hosts["h1"], lab.hosts["h3"]
    code = ("import json, logging, sys\n"
            "logging.basicConfig(stream=sys.stderr, format='AUDIT %(message)s')\n"
            "from sentinel.network.engine import run_scan\n"
            "from sentinel.checks.network.discovery import ScanOptions\n"
            "from sentinel.checks.network.scope import Scope, parse_ports\n"
            f"r = run_scan(['{h1}', '{h3}'], Scope.from_cli(['{lab.net}']), ScanOptions(tcp_ports=parse_ports('21'),"
            " udp=True, udp_ports=parse_ports('161'), version_detection=False, credential_probes=True))\n"
            "print(r.model_dump_json())\n")
    proc = lab.python("scan", ["-c", code], timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    found = {(f["host"], f["proto"], f["port"]): f for f in report["findings"]}
    ftp = found[(h3, "tcp", 21)]
    tried = [(c["protocol"], c["user"], c["accepted"]) for c in ftp["credentials"]]
    assert tried == [("ftp", "anonymous", True)], ftp["credentials"]
    assert _st(ftp, "net-anonymous-ftp") == "fail"
    private = found[(h3, "udp", 161)]
    assert private["exposure"]["unauthenticated"] is False  # `public` refused...
    assert [(c["user"], c["accepted"]) for c in private["credentials"]] == [("private", True)]  # ...`private` not
    statuses = [r["status"] for r in private["results"] if r["check_id"] == "net-default-community"]
    assert statuses == ["pass", "fail"] and "6.4.2.1" in private["high_risk"]
    other = found[(h1, "udp", 161)]  # community n0t-default: private refused too
    assert [(c["user"], c["accepted"]) for c in other["credentials"]] == [("private", False)]
    # every attempt is in the audit log, after the announcement of the list
    audit = [ln for ln in proc.stderr.splitlines() if ln.startswith("AUDIT ")]
    assert audit[0].startswith("AUDIT credential probes enabled for") and "ftp: anonymous" in audit[0]
    assert any(f"{h3}:21 ftp user 'anonymous': ACCEPTED" in ln for ln in audit)
    assert any(f"{h1}:161 snmp user 'private': refused" in ln for ln in audit)
    assert len([ln for ln in audit if "credential probe " in ln]) == 3  # one attempt per port, no more


def test_cli_credential_probes_option_says_what_it_tried(real_lab):
    """`sentinel scan --credential-probes` (issue 19 item 4): the table says the probes ran, which, and each
    attempt's outcome; the JSON report's coverage lists them (test_credential_probes_switch.py)."""
    lab = real_lab
    h3 = lab.hosts["h3"]
    proc = lab.sentinel(["scan", h3, "--scope", lab.net, "--ports", "21", "--no-version", "--credential-probes",
                         "--lang", "en"], timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]  # anonymous FTP fails its check
    text = " ".join(proc.stdout.split())
    assert "credential probes ON (one attempt each: ftp: anonymous; mysql: root (empty password); snmp: community " \
           "private; http-basic: / (admin/admin, admin/(empty password)), /manager/html (tomcat/tomcat, " \
           "admin/admin)" in text, proc.stdout
    assert "anonymous" in text and "ACCEPTED" in text
