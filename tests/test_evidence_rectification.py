"""Service findings of network scans in the rectification report (整改报告), on SQLite and PostgreSQL: each
service with first seen and closed at (the scan that no longer found it), open ones with remediation and
age, as of the export's range; carried in evidence.json of a bundle that verifies."""
from __future__ import annotations

import json
import zipfile
from datetime import timedelta

import pytest

from sentinel.checks.network.findings import ServiceFinding, TLSInfo
from sentinel.evidence.collect import collect
from sentinel.evidence.verify import verify_bundle
from sentinel.exporters.evidence.bundle import write_bundle
from sentinel.exporters.evidence.html import render_html, render_rectification_html
from sentinel.exporters.evidence.rectification import service_rectification_rows
from tests import evidence_seed as seed

pytest_plugins = ["tests.dbfixtures"]

SCAN2 = seed.T0 + timedelta(days=2)
END = seed.T0 + timedelta(days=3)


@pytest.fixture
def world(store_url, tmp_path):
    """seed_world, then a second scan: telnet closed, https still open, ftp and a TLS 1.0 service newly open."""
    s = seed.seed_world(tmp_path, url=store_url)
    second = seed.scan(s, [ServiceFinding(host="10.9.0.6", port=443, service="https"),
                           ServiceFinding(host="10.9.0.7", port=21, service="ftp", product="vsftpd", version="3.0.3"),
                           ServiceFinding(host="10.9.0.9", port=8443, service="https", tunnel="ssl",
                                          tls=TLSInfo(protocols=["TLSv1.0", "TLSv1.2"]))], SCAN2)
    yield s, second
    s.db.dispose()


def evidence(s, **kw):
    with s.db.session() as session:
        return collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key), **kw)


def test_closed_and_open_services(world):
    s, second = world
    ev = evidence(s, end=END)
    closed, still = service_rectification_rows(ev, "zh")

    [telnet] = closed
    assert (telnet.object, telnet.port, telnet.service) == ("10.9.0.5", "23/tcp", "telnet")
    assert telnet.state == "已关闭" and telnet.risk == "high" and telnet.case == "6.4.1.2, 6.4.3.1"
    assert telnet.first_seen == "2026-03-03 09:05:00 UTC" and telnet.closed_at == "2026-03-04 09:00:00 UTC"
    assert telnet.age_days == 1.0  # open from the first scan that saw it to the one that did not
    assert telnet.after == f"扫描 #{second} (2026-03-04 09:00:00 UTC) 未发现该端口开放"
    # the zh report says what was seen in Chinese (the network checks carry reason_zh)
    assert "telnet 以明文传输鉴别信息，未满足「远程管理不使用明文协议」的要求" in telnet.before
    assert "telnet carries credentials" not in telnet.before

    # open: failing ones by risk (high, then low), then the services where nothing failed
    assert [(r.port, r.risk, r.state) for r in still] == [("21/tcp", "high", "未整改"), ("8443/tcp", "low", "未整改"),
                                                          ("443/tcp", "", "开放，无不通过检查")]
    ftp, tls, https = still
    assert ftp.service == "ftp vsftpd 3.0.3" and ftp.first_seen == "2026-03-04 09:00:00 UTC"
    assert ftp.age_days == 1.0 and ftp.closed_at == "" and ftp.after == ""
    # 问题描述: each failing check's gap, not its title (the requirement as met)
    assert ftp.problem.startswith("8.1.4.1c 10.9.0.7:21/tcp：ftp 以明文传输鉴别信息，"
                                  "未满足「远程管理不使用明文协议」的要求; ")
    assert "停用 Telnet/FTP/rsh/rlogin/VNC 明文管理" in ftp.remediation
    assert "关闭该服务，或在主机防火墙/安全组中限制其访问来源" in ftp.remediation.splitlines()
    assert tls.remediation == "仅启用 TLS 1.2 及以上版本" and tls.risk_label == "低"
    # https was first seen by the first scan and kept its first_seen through the second
    assert https.first_seen == "2026-03-03 09:05:00 UTC" and https.age_days == 2.0  # 1 day 23:55 to END
    assert https.remediation == "—" and https.risk_label == "无" and https.problem == ""

    en_closed, en_still = service_rectification_rows(ev, "en")
    assert en_closed[0].after.startswith(f"scan #{second} ") and en_still[-1].state == "open, no failing check"


def test_the_range_decides_what_is_open(world):
    s, _ = world
    # before the second scan: telnet was still open then, and ftp not yet seen
    ev = evidence(s, end=SCAN2 - timedelta(hours=1))
    closed, still = service_rectification_rows(ev)
    assert closed == []
    assert [(r.port, r.state) for r in still] == [("23/tcp", "未整改"), ("443/tcp", "开放，无不通过检查")]
    telnet = next(f for f in ev.service_findings if f.port == 23)
    assert telnet.open and telnet.closed_scan_id is None and "关闭该服务" in still[0].remediation
    # from after telnet closed: it is not in the range any more
    ev = evidence(s, start=SCAN2 + timedelta(minutes=1), end=END)
    assert sorted(f.port for f in ev.service_findings) == [21, 443, 8443]


def test_rectification_report_and_bundle(world, tmp_path):
    s, second = world
    ev = evidence(s, end=END)
    page = render_rectification_html(ev, "zh")
    services = page[page.index("<h2>网络服务 (网络扫描发现)</h2>"):]
    assert "已关闭的服务 (1)" in services and "仍开放的服务 (3)" in services
    assert "10.9.0.5</td><td>23/tcp</td>" in services and f"扫描 #{second} (2026-03-04 09:00:00 UTC)" in services
    assert "<h2>主机检查问题</h2>" in page and page.index("主机检查问题") < page.index("网络服务 (网络扫描发现)")
    assert "Services still open (3)" in render_rectification_html(ev, "en")
    assert "网络服务: 已关闭 1 · 未整改 2 · 开放，无不通过检查 1" in render_html(ev, "zh")

    out = tmp_path / "bundle.zip"
    write_bundle(ev, out, s.key)
    report = verify_bundle(out, s.key.public_key())
    assert report.ok, [str(p) for p in report.problems]
    with zipfile.ZipFile(out) as zf:
        data = json.loads(zf.read("evidence.json"))
        assert "10.9.0.5</td><td>23/tcp</td>" in zf.read("rectification.html").decode()
    stored = {(f["host"], f["port"]): f for f in data["service_findings"]}
    assert set(stored) == {("10.9.0.5", 23), ("10.9.0.6", 443), ("10.9.0.7", 21), ("10.9.0.9", 8443)}
    assert stored["10.9.0.5", 23]["closed_scan_id"] == second and stored["10.9.0.5", 23]["risk"] == "high"
    assert {r["check_id"] for r in stored["10.9.0.7", 21]["problems"]} == {
        "net-plaintext-mgmt", "net-plaintext-transport", "net-forbidden-port"}
