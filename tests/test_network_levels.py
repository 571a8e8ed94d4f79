"""Network checks as data, scored at a level: clauses, texts and weights from the catalogue, what a level lacks
not scored (and said), zone baselines by key, and the system roll-up by key at the system's level."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from sentinel import catalogue
from sentinel.baseline import BaselineError
from sentinel.checks.network.discovery import ScanOptions
from sentinel.checks.network.findings import ServiceFinding, SSHInfo, TLSInfo
from sentinel.checks.network.scope import Scope
from sentinel.collector.scanner import ScheduleSpec, plan_scan
from sentinel.collector.settings import CollectorSettings
from sentinel.levels import at_level
from sentinel.model import ItemResult, Status, Text, Verdict
from sentinel.network.checks import CHECKS_FILE, load_checks, shipped_checks
from sentinel.network.engine import run_scan
from sentinel.network.scoring import Reachability, score_network
from sentinel.network.zones import load_zone_baseline
from sentinel.scoring import system_items
from sentinel.yamldoc import DataFileError

CAT = catalogue.load()
BASE = load_zone_baseline("zone-egov-default")
NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _findings() -> list[ServiceFinding]:
    weak_ssh = SSHInfo(banner="SSH-2.0-OpenSSH_7.4", protocol="2.0", software="OpenSSH_7.4",
                       weak_ciphers=["aes128-cbc"], auth_methods=["publickey", "password"])
    old_tls = TLSInfo(protocols=["TLSv1.0", "TLSv1.2"], weak_ciphers=["TLS_RSA_WITH_RC4_128_SHA"],
                      not_after=NOW, expired=False, self_signed=False, chain_valid=True)
    return [ServiceFinding(host="10.9.0.5", port=23, service="telnet"),
            ServiceFinding(host="10.9.0.5", port=21, service="ftp"),
            ServiceFinding(host="10.9.0.5", port=22, service="ssh", ssh=weak_ssh),
            ServiceFinding(host="10.9.0.6", port=443, service="https", tls=old_tls, tunnel="ssl")]


def test_every_shipped_check_names_a_catalogue_item():
    checks = shipped_checks()
    assert len(checks) == 18  # docs/network.md lists them
    for check in checks.values():
        assert CAT.levels_of(check.item), check.id
        assert check.title.zh and check.rationale.en and check.remediation.zh
    assert checks["net-plaintext-mgmt"].high_risk == "6.4.1.2" and checks["net-plaintext-mgmt"].refs.guide == ["N1"]


def test_check_file_errors_name_file_and_line(tmp_path: Path):
    text = CHECKS_FILE.read_text(encoding="utf-8")
    bad = tmp_path / "checks.yaml"
    bad.write_text(text.replace("item: ces.auth.remote-eavesdrop", "item: ces.auth.no-such-item", 1)
                   .replace("severity: critical", "severity: dire", 1), encoding="utf-8")
    with pytest.raises(DataFileError) as err:
        load_checks(bad)
    lines = text.splitlines()
    dire = next(i for i, ln in enumerate(lines, 1) if "severity: critical" in ln)
    assert err.value.problems == [f"{bad}:{dire}: checks[3].severity: Input should be 'low', 'medium', 'high' or "
                                  f"'critical'"]
    bad.write_text(text.replace("item: ces.auth.remote-eavesdrop", "item: ces.auth.no-such-item", 1),
                   encoding="utf-8")
    item = next(i for i, ln in enumerate(lines, 1) if "item: ces.auth.remote-eavesdrop" in ln)
    with pytest.raises(DataFileError) as err:
        load_checks(bad)
    assert err.value.problems == [f"{bad}:{item}: checks[0].item: ces.auth.no-such-item: no such item in the "
                                  f"catalogue of GB/T 22239-2019"]


@pytest.mark.parametrize("level", [2, 3, 4])
def test_results_and_items_carry_the_levels_numbers(level):
    score = score_network(_findings(), BASE, level=level)
    assert score.level == level and score.results and score.items
    for r in score.results + [r for f in score.findings for r in f.results]:
        want = CAT.item(r.key, level)
        assert (r.clause, r.item) == (want.clause, want.letter), r.check_id
    for i in score.items + [i for items in score.objects.values() for i in items]:
        want = CAT.item(i.key, level)
        assert (i.clause, i.item, i.text, i.weight, i.control, i.unit) == (
            want.clause, want.letter, want.text, want.weight, want.control_name, want.unit)
    assert all(h.clause.startswith(f"{level + 5}.") for h in score.summary.high_risk_findings)


def test_level_2_does_not_score_what_it_does_not_require():
    l2, l3 = score_network(_findings(), BASE, level=2), score_network(_findings(), BASE, level=3)
    lacking = {"net-plaintext-transport", "net-tls-protocol", "net-tls-weak-cipher", "net-ssh-weak-crypto",
               "net-ssh-password-auth"}
    assert {n.check_id for n in l2.not_scored} == lacking
    assert lacking <= {r.check_id for r in l3.results} and l3.not_scored == []
    assert not lacking & {r.check_id for r in l2.results}
    assert not lacking & {r.check_id for f in l2.findings for r in f.results}
    ftp = next(n for n in l2.not_scored if n.check_id == "net-plaintext-transport" and n.target.endswith(":21/tcp"))
    assert ftp.status == Status.FAIL and ftp.key == "ces.confidentiality.transit" and ftp.levels == [3, 4]
    assert ftp.reason == "10.9.0.5:21/tcp: ftp without TLS"
    assert ftp.why.en == ("level 2 has no such requirement: Data confidentiality (ces.confidentiality.transit) is in "
                          "level(s) 3, 4; this result counts for no item, score or conclusion")
    assert ftp.why.zh.startswith("第二级无此测评项：数据保密性（ces.confidentiality.transit）")
    # the plaintext service still fails what level 2 does require
    verdicts = {i.key: i.verdict for i in l2.items}
    assert verdicts["ces.auth.remote-eavesdrop"] == Verdict.NONCONFORM
    assert "ces.confidentiality.transit" not in verdicts and "cns.transmission.confidentiality" not in verdicts


def test_zone_baseline_level_and_isolation_items(tmp_path: Path):
    assert BASE.level == 3
    refs = {(r.from_, r.to): r.ref for r in BASE.isolation}
    assert refs[("internet", "database")] == "abs.boundary.controlled-interface"
    assert refs[("dmz", "database")] is None  # the check's own item, abs.access.default-deny
    old = tmp_path / "old.yaml"
    old.write_text("id: old\nversion: '1'\nextends: zone-egov-default\nlevel: 2\n"
                   "isolation:\n  - {from: office, to: dmz, ports: [ssh], clause: '8.1.3.1'}\n", encoding="utf-8")
    b = load_zone_baseline(str(old))
    assert b.level == 2 and b.isolation[-1].ref == "abs.boundary.controlled-interface"
    iso = score_network([ServiceFinding(host="10.1.1.5", port=22, service="ssh")], b, zone="dmz",
                        reach=Reachability(scanner_zone="office", hosts=["10.1.1.5"], tcp_ports=[22]))
    (r,) = [r for r in iso.results if r.check_id == "net-isolation"]
    assert (r.key, r.clause, r.item, r.status) == ("abs.boundary.controlled-interface", "7.1.3.1", "a", Status.FAIL)
    five = tmp_path / "five.yaml"
    five.write_text("id: five\nversion: '1'\nextends: zone-egov-default\nlevel: 5\n", encoding="utf-8")
    with pytest.raises(BaselineError, match=r"five.yaml:\d+: level: Input should be 2, 3 or 4"):
        load_zone_baseline(str(five))
    lacks = tmp_path / "lacks.yaml"
    lacks.write_text("id: lacks\nversion: '1'\nextends: zone-egov-default\nlevel: 2\n"
                     "isolation:\n  - {from: office, to: dmz, ports: [ssh], ref: abs.access.application-content}\n",
                     encoding="utf-8")
    with pytest.raises(BaselineError, match=r"isolation\[9\]: ref abs.access.application-content: level 2 has no "
                                            r"such item \(it is in level 3"):
        load_zone_baseline(str(lacks))


def test_a_level_outside_the_catalogue_is_refused_before_any_packet():
    with pytest.raises(ValueError, match="level 5"):
        run_scan(["10.9.0.5"], Scope.from_cli(["10.9.0.0/24"]), ScanOptions(), zone_baseline=BASE, level=5)


def test_the_collector_plans_a_scan_at_the_systems_level(tmp_path: Path):
    plan = plan_scan(1, "sys", ["10.9.0.0/24"], ScheduleSpec(), CollectorSettings(state_dir=str(tmp_path)), level=2)
    assert plan.level == 2 and plan.args()["level"] == 2


def _item(key: str, level: int, verdict: Verdict, check: str) -> ItemResult:
    c = CAT.item(key, level)
    return ItemResult(clause=c.clause, item=c.letter, key=key, control=c.control_name, text=c.text,
                      weight=c.weight, verdict=verdict, checks=[check])


def test_rollup_lists_each_requirement_once_by_key_at_the_systems_level():
    host = [_item("ces.auth.remote-eavesdrop", 2, Verdict.CONFORM, "ssh-telnet-off")]
    network = score_network(_findings(), BASE, level=2).items
    rolled = system_items([host, network])
    keys = [i.key for i in rolled]
    assert len(keys) == len(set(keys))
    (eaves,) = [i for i in rolled if i.key == "ces.auth.remote-eavesdrop"]
    assert (eaves.clause, eaves.item, eaves.verdict) == ("7.1.4.1", "c", Verdict.PARTIAL)
    assert "ssh-telnet-off" in eaves.checks and "net-plaintext-mgmt" in eaves.checks


def test_a_scan_stored_before_keys_reads_as_level_3_and_renumbers():
    old = [ItemResult(clause="8.1.4.1", item="c", control=Text(zh="身份鉴别", en="x"), text=Text(zh="t", en="t"),
                      weight=1.0, verdict=Verdict.NONCONFORM, checks=["net-plaintext-mgmt"]),
           ItemResult(clause="8.1.4.8", item="a", control=Text(zh="数据保密性", en="x"), text=Text(zh="t", en="t"),
                      weight=1.0, verdict=Verdict.NONCONFORM, checks=["net-plaintext-transport"])]
    leveled = at_level(old, [], 2, "network scan 7", legacy_level=3)
    (item,) = leveled.items
    assert (item.key, item.clause, item.item) == ("ces.auth.remote-eavesdrop", "7.1.4.1", "c")
    assert item.text == CAT.item("ces.auth.remote-eavesdrop", 2).text
    (gone,) = leveled.outside
    assert (gone.key, gone.levels, gone.source) == ("ces.confidentiality.transit", [3, 4], "network scan 7")
    # without a legacy level, items without keys are left as they are
    assert at_level(old, [], 2, "x").items == old


def test_the_collectors_scan_runs_at_the_planned_level(tmp_path: Path, monkeypatch):
    from sentinel.collector import scanner
    from sentinel.collector.scan_ingest import Claim
    from sentinel.network import engine

    asked, failed = {}, []

    def fake_run_scan(*args, **kw):  # stands in for nmap: only the level it is asked to score at matters here
        asked.update(kw)
        raise ValueError("not scanning in a unit test")

    monkeypatch.setattr(engine, "run_scan", fake_run_scan)
    monkeypatch.setattr(scanner, "fail_scan", lambda db, run_id, why: failed.append((run_id, why)))
    settings = CollectorSettings(state_dir=str(tmp_path))
    plan = plan_scan(1, "sys", ["10.9.0.0/24"], ScheduleSpec(), settings, level=4)
    service = scanner.ScanService.__new__(scanner.ScanService)  # no database, no scheduler: execute() alone
    service.db, service.settings = None, settings
    service.execute(Claim(run_id=7, system_id=1, department_id=1, started_at=NOW), plan, "cli:test")
    assert asked["level"] == 4 and failed == [(7, "ValueError: not scanning in a unit test")]
