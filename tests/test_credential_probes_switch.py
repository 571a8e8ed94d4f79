"""The switch for the opt-in credential probes (issue 19 item 4), without the lab: what a scan plan asks for
with the system's setting on or off, the evidence export's note, and the one-shot CLI's table. The lab tests
(a real scan through the collector's API, and `sentinel scan --credential-probes` against real vsftpd) are in
test_scan_collector.py and test_network_real.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from sentinel.checks.network.discovery import ScanOptions
from sentinel.checks.network.findings import CredentialAttempt, ServiceFinding
from sentinel.collector.scanner import ScheduleSpec, credential_grant, plan_scan
from sentinel.collector.settings import CollectorSettings
from sentinel.network.engine import CredentialGrant, coverage_of
from tests import evidence_seed as seed
from tests.scan_helpers import NET, scan_report

AT = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
# Basic-auth consoles: per path (the first one asking for Basic auth is the port's) the pairs tried there
HTTP_BASIC = ["/ (admin/admin, admin/(empty password))", "/manager/html (tomcat/tomcat, admin/admin)",
              "/host-manager/html (tomcat/tomcat, admin/admin)"]


def test_a_plan_asks_for_credential_probes_only_with_a_grant(tmp_path):
    settings = CollectorSettings(state_dir=tmp_path)
    off = plan_scan(1, "his", [NET], ScheduleSpec(), settings)
    assert off.options.credential_probes is False and "credential_probes" not in off.args()
    row = SimpleNamespace(credential_probes=True, credential_probes_by="token:admin", credential_probes_at=AT)
    on = plan_scan(1, "his", [NET], ScheduleSpec(), settings, credentials=credential_grant(row))
    assert on.options.credential_probes is True
    assert on.args()["credential_probes"] == {
        "enabled_by": "token:admin", "enabled_at": "2026-03-02T09:30:00Z",
        "credentials": {"ftp": ["anonymous"], "mysql": ["root (empty password)"], "snmp": ["community private"],
                        "http-basic": HTTP_BASIC}}
    assert credential_grant(SimpleNamespace(credential_probes=False, credential_probes_by="token:admin",
                                            credential_probes_at=AT)) is None
    by_hand = credential_grant(SimpleNamespace(credential_probes=True, credential_probes_by=None,
                                               credential_probes_at=None))  # set in the database, not the API
    assert (by_hand.enabled_by, by_hand.enabled_at, by_hand.when) == (
        "unrecorded (set outside the API)", None, "an unrecorded time")


def test_coverage_says_whether_logins_were_tried():
    off = coverage_of(ScanOptions())
    assert off.credential_probes == {} and "credential probes off (no login attempted)" in off.note
    on = coverage_of(ScanOptions(credential_probes=True))
    assert on.credential_probes["ftp"] == ["anonymous"] and "credential probes ON" in on.note
    assert "已启用弱口令/默认口令探测" in on.note_zh


def test_evidence_export_names_who_enabled_the_probes(tmp_path):
    from sentinel.collector import operations
    from sentinel.collector.scan_ingest import begin_scan, finish_scan
    from sentinel.evidence.collect import collect

    s = seed.new_store(tmp_path)
    try:
        seed.create_system(s)
        with s.db.session() as session:
            system_id = operations.system_by_name(session, seed.SYSTEM).id
        plan = plan_scan(system_id, seed.SYSTEM, [NET], ScheduleSpec(), CollectorSettings(state_dir=tmp_path),
                         credentials=CredentialGrant(enabled_by="token:alice", enabled_at=AT))
        for args in ({}, plan.args()):  # one scan with the probes off, one with them on
            claim = begin_scan(s.db, system_id=system_id, triggered_by="api", actor="token:alice", targets=[NET],
                               full_scope=True, scope={"networks": [NET]}, args=args, zone_baseline="zone-egov-default",
                               zone=None, scanner_zone=None, stale_after=timedelta(hours=3), now=AT)
            finish_scan(s.db, claim.run_id, scan_report([], [NET], AT + timedelta(minutes=1)),
                        now=AT + timedelta(minutes=1))
        with s.db.session() as session:
            ev = collect(session, seed.SYSTEM, collector=seed.collector_identity(s.key))
        notes = [n for n in ev.notes if "credential probes" in n]
        assert notes == [f"scan {claim.run_id} ran the credential probes (ftp: anonymous; mysql: root (empty "
                         f"password); snmp: community private; http-basic: {', '.join(HTTP_BASIC)}), enabled for "
                         "this system by token:alice at 2026-03-02T09:30:00Z"]
    finally:
        s.db.dispose()


def test_cli_table_lists_every_attempt(tmp_path):
    from sentinel.cli_scan_oneshot import _print_table

    ftp = ServiceFinding(host="10.0.0.5", port=21, proto="tcp", service="ftp", banner="220 (vsFTPd 3.0.3)",
                         credentials=[CredentialAttempt(protocol="ftp", user="anonymous", accepted=True,
                                                        detail="USER anonymous -> 230")])
    on = ScanOptions(credential_probes=True)
    report = scan_report([ftp], [NET], AT, options=on)
    out = tmp_path / "table.txt"
    with out.open("w", encoding="utf-8") as fh:
        _print_table(report, "en", file=fh)
    text = out.read_text(encoding="utf-8")
    assert "credential probes ON" in text and "ACCEPTED" in text and "anonymous" in text
    with out.open("w", encoding="utf-8") as fh:
        _print_table(scan_report([], [NET], AT), "en", file=fh)
    assert "credential probes off (no login attempted)" in out.read_text(encoding="utf-8")
