"""测评对象 through the collector (issue 15): a report names the object it judges, the collector refuses one
whose kind is not its baseline's, stores the object with the run, keeps each object's findings apart, and the
system assessment takes the latest run of every (host, baseline, object instance) into the roll-up.

Object reports are made by the real engine with the test-only Redis baseline on a fixture root
(tests/fixtures/objects), for two Redis instances on one host; the OS report is the collector tests' usual one.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from sentinel.baseline import load_baseline
from sentinel.discovery import discover
from sentinel.engine import run_baseline
from sentinel.hostview import RootHost
from sentinel.store.models import Finding, Run
from tests.collector_helpers import bearer, envelope, his_site, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
REDIS_BASELINE = OBJECTS / "sentinel-test-redis.yaml"
CHECK = "t-redis-protected-mode"


@pytest.fixture
def site(db, make_client, tmp_path):
    baselines = tmp_path / "state" / "baselines"
    baselines.mkdir(parents=True)
    shutil.copy(REDIS_BASELINE, baselines / REDIS_BASELINE.name)  # the collector's own copy judges the reports
    return his_site(db, make_client)


@pytest.fixture
def roots(tmp_path):
    """The fixture root as shipped (protected-mode yes) and a copy where Redis runs without protection."""
    good = OBJECTS / "debian12-objects"
    bad = tmp_path / "unprotected"
    shutil.copytree(good, bad, symlinks=True)
    conf = bad / "etc" / "redis" / "redis.conf"
    conf.write_text(conf.read_text(encoding="utf-8").replace("protected-mode yes", "protected-mode no"),
                    encoding="utf-8")
    return RootHost(str(good)), RootHost(str(bad))


def _redis(host: RootHost, instance: str) -> dict:
    found = {d.object.instance: d.object for d in discover(host, 3) if d.object.kind == "redis"}
    report = run_baseline(load_baseline(REDIS_BASELINE), host, target=found[instance])
    body = report.model_dump(mode="json")
    body["host"]["hostname"] = "web-1"  # the enrolled host's report (the fixture root calls itself db01)
    return body


def _post(site, body: dict):
    body["report_id"] = body.get("report_id") or str(uuid.uuid4())  # as an agent names its report
    raw, headers = sign(site.agent.key, envelope(site.agent.agent_id, body, report_id=body["report_id"]))
    return site.client.post("/api/v1/agent/reports", content=raw, headers=headers)


def test_each_object_is_its_own_report_and_record(site, roots, db):
    good, bad = roots
    os_report = make_report({"a": "pass", "b": "pass"})
    for body in (os_report, _redis(good, "6379"), _redis(bad, "6380")):
        r = _post(site, body)
        assert r.status_code == 202, r.text
    with db.read() as conn:
        runs = conn.execute(select(Run.object_kind, Run.object_instance, Run.object_name).order_by(Run.id)).all()
    assert [tuple(r) for r in runs] == [("os", "", "web-1"), ("redis", "6379", "db01 Redis 7.0 (6379)"),
                                        ("redis", "6380", "db01 Redis 7.0 (6380)")]

    system = site.world.systems["his"]
    a = site.client.get(f"/api/v1/systems/{system}/assessment", headers=bearer(site.admin)).json()
    parts = [(h["object_kind"], h["object_instance"], h["object_name"], h["baseline_id"]) for h in a["hosts"]]
    assert parts == [("os", "", "web-1", "sentinel-test"),
                     ("redis", "6379", "db01 Redis 7.0 (6379)", "sentinel-test-redis"),
                     ("redis", "6380", "db01 Redis 7.0 (6380)", "sentinel-test-redis")]
    # the unprotected instance's high-risk failure is the system's, its record is its own
    assert a["complete"] and a["summary"]["high_risk"] == 1 and a["summary"]["conclusion"] == "差"
    figures = {h["object_instance"]: h["figures"] for h in a["hosts"]}
    assert figures["6379"]["high_risk"] == 0 and figures["6380"]["high_risk"] == 1

    def open_findings():
        with db.read() as conn:
            return conn.execute(select(Finding.object_kind, Finding.object_instance, Finding.check_id)
                                .where(Finding.resolved_at.is_(None))).all()

    assert [tuple(f) for f in open_findings()] == [("redis", "6380", CHECK)]
    # the other instance passing the same check does not fix this one's finding ...
    assert _post(site, _redis(good, "6379")).json()["fixed"] == []
    assert [tuple(f) for f in open_findings()] == [("redis", "6380", CHECK)]
    # ... its own next report does, and a second run of an object replaces its first in the roll-up
    assert _post(site, _redis(good, "6380")).json()["fixed"] == [CHECK]
    assert open_findings() == []
    a = site.client.get(f"/api/v1/systems/{system}/assessment", headers=bearer(site.admin)).json()
    assert len(a["hosts"]) == 3 and a["summary"]["high_risk"] == 0
    runs = site.client.get("/api/v1/runs", headers=bearer(site.admin)).json()
    assert {(r["object_kind"], r["object_instance"]) for r in runs} == {("os", ""), ("redis", "6379"),
                                                                       ("redis", "6380")}


@pytest.mark.parametrize("change, loc", [
    ("os-under-redis", "body.object.kind"),  # a report made before objects is the OS: not a Redis baseline's
    ("redis-under-os", "body.object.kind"),
    ("os-instance", "body.object.instance"),
])
def test_object_kind_is_the_baselines(site, roots, change, loc):
    good, _ = roots
    if change == "os-under-redis":
        body = _redis(good, "6379")
        body.pop("object")
    elif change == "redis-under-os":
        body = make_report({"a": "pass"})
        body["object"] = {"kind": "redis", "instance": "6379", "name": "web-1 Redis"}
    else:
        body = make_report({"a": "pass"})
        body["object"] = {"kind": "os", "instance": "6379"}
    r = _post(site, body)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [loc]


def test_evidence_record_per_object(site, roots, db, tmp_path):
    """The evidence export has one 测评记录 per object, titled with its 测评对象 name; the asset list groups the
    objects by kind; the unprotected instance's finding and high-risk entry name that instance; the signed bundle
    verifies against the collector's key."""
    import io

    from openpyxl import load_workbook

    from sentinel import signing
    from sentinel.evidence.collect import collect
    from sentinel.evidence.verify import verify_bundle
    from sentinel.exporters.evidence.bundle import write_bundle
    from sentinel.exporters.evidence.html import render_html
    from sentinel.exporters.evidence.risk import high_risk_entries
    from sentinel.exporters.evidence.xlsx import export_xlsx
    from tests.evidence_seed import collector_identity

    good, bad = roots
    for body in (make_report({"a": "pass"}), _redis(good, "6379"), _redis(bad, "6380")):
        assert _post(site, body).status_code == 202
    key = signing.generate_key()
    with db.session() as session:
        ev = collect(session, "his", collector=collector_identity(key))
    assert [(o.kind, o.object, o.instance, o.name, o.hostname) for o in ev.objects] == [
        ("host", "redis", "6379", "db01 Redis 7.0 (6379)", "web-1"),
        ("host", "redis", "6380", "db01 Redis 7.0 (6380)", "web-1"),
        ("host", "os", "", "web-1", "web-1")]
    assert [(f.object, f.check_id) for f in ev.findings] == [("db01 Redis 7.0 (6380)", CHECK)]
    assert [(e.object, e.check_id) for e in high_risk_entries(ev)] == [("db01 Redis 7.0 (6380)", CHECK)]
    assert ev.summary.high_risk == 1 and {e.object for e in ev.chain.entries} == {o.name for o in ev.objects}

    book = load_workbook(io.BytesIO(export_xlsx(ev, "zh")))
    assert {"主机 web-1", "db01 Redis 7.0 (6379)", "db01 Redis 7.0 (6380)"} <= set(book.sheetnames)
    sheet = book["db01 Redis 7.0 (6380)"]
    # the 测评记录表 header block: labels over A:B and F, values over C:E and G:J
    assert [sheet["F2"].value, sheet["G2"].value, sheet["A3"].value, sheet["C3"].value, sheet["F3"].value,
            sheet["G3"].value, sheet["F4"].value] == [
        "测评对象", "db01 Redis 7.0 (6380)", "类别", "数据库", "所在主机", "web-1", "版本"]
    assert sheet["G4"].value.startswith("7.0")  # the version discovery found
    html = render_html(ev, "zh")
    assets = html.split('id="chapter-assets"')[1].split("</table>")[0]
    # the host's OS first, then its databases
    assert assets.index("<td>主机</td><td>web-1</td>") < assets.index("<td>数据库</td><td>db01 Redis 7.0 (6379)</td>")
    assert "1 个数据库" not in html and "2 个数据库、中间件或 Web 服务器" in html  # the scope names them

    out = tmp_path / "bundle.zip"
    write_bundle(ev, out, key)
    verdict = verify_bundle(out, pubkey=key.public_key())
    assert verdict.ok, verdict


def test_metrics_object_series(site, roots, db):
    """/metrics: the host's own series stay its OS's record; each other object has its object series (kind and
    instance as labels, bounded per host), and its failing checks count in the system's."""
    from prometheus_client.parser import text_string_to_metric_families

    from sentinel.exporters.prometheus import make_registry, render
    from sentinel.store.snapshot import build_snapshot

    good, bad = roots
    for body in (make_report({"a": "pass", "b": "fail"}), _redis(good, "6379"), _redis(bad, "6380")):
        assert _post(site, body).status_code == 202
    snap = build_snapshot(db)
    (system,) = snap.systems
    (host,) = system.hosts
    assert host.baseline == "sentinel-test" and host.high_risk_findings == 0  # the OS's record
    assert [(o.kind, o.instance, o.name, o.high_risk_findings, o.conclusion) for o in host.objects] == [
        ("redis", "6379", "db01 Redis 7.0 (6379)", 0, "excellent"),
        ("redis", "6380", "db01 Redis 7.0 (6380)", 1, "poor")]
    failing = {sev.value: n for sev, n in system.failing_checks.items() if n}
    assert failing == {"medium": 1, "high": 1}  # the OS's check b and the unprotected instance's
    body, _ = render(make_registry(lambda: snap))
    samples = {(s.name, s.labels.get("object_instance")): s for f in text_string_to_metric_families(body.decode())
               for s in f.samples if s.name.startswith("sentinel_object_")}
    assert samples[("sentinel_object_high_risk_findings", "6380")].value == 1
    assert samples[("sentinel_object_high_risk_findings", "6380")].labels == {
        "department": "health", "system": "his", "host": "web-1", "object": "redis", "object_instance": "6380"}
    assert samples[("sentinel_object_info", "6379")].labels["name"] == "db01 Redis 7.0 (6379)"
    assert samples[("sentinel_object_score", "6379")].value == 100.0


def test_object_events_name_their_object(site, roots, db):
    """Events of an object other than the OS carry it (payload and fingerprint), so two Redis instances' drift
    on one host are two alerts (their `subject` label), and the OS keeps the host's fingerprints."""
    from sentinel.events.model import AlertEvent, GradeMap, event_labels
    from sentinel.store.models import Event

    good, bad = roots
    for body in (make_report({"a": "fail"}), _redis(bad, "6379"), _redis(bad, "6380")):
        assert _post(site, body).status_code == 202
    T = Event.__table__
    with db.read() as conn:
        rows = conn.execute(select(T).where(T.c.kind == "drift").order_by(T.c.id)).all()
    assert [(r.payload["object"], r.payload["object_instance"], r.payload.get("subject")) for r in rows] == [
        ("os", "", None), ("redis", "6379", "redis:6379"), ("redis", "6380", "redis:6380")]
    assert len({r.fingerprint for r in rows}) == 3
    grades = GradeMap()
    labels = [event_labels(AlertEvent.from_row(r), grades) for r in rows]
    assert len({tuple(sorted(x.items())) for x in labels}) == 3 and labels[2]["subject"] == "redis:6380"
    assert "db01 Redis 7.0 (6380)" in rows[2].summary
