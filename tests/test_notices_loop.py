"""The 通报 loop end to end (issue 17 point 2): findings from real host reports through the collector's ingest,
a 通报 issued over the API with a deadline per grade, the DOCX read back with python-docx and the PDF's text with
pdftotext, the department's answer with a file, re-verification by the next report on a simulated clock, overdue
escalation as an event and the next 通报 carrying the problem with its first deadline; and the API's scoping."""
from __future__ import annotations

import io
import secrets
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from tests.collector_helpers import World, bearer, envelope, his_site, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing


@pytest.fixture
def clock(monkeypatch):
    """The notice routes' clock, moved by the test (the findings keep the ingest's real time)."""
    from sentinel.collector.routers import notices

    now = {"t": T0}
    monkeypatch.setattr(notices, "_now", lambda: now["t"])
    return now


def _report(site, statuses: dict[str, str]) -> None:
    env = envelope(site.agent.agent_id, make_report(statuses))
    r = site.client.post(REPORTS, content=sign(site.agent.key, env)[0], headers=sign(site.agent.key, env)[1])
    assert r.status_code == 202, r.text


def _pdftotext(data: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: tests/setup-machine.sh installs it", pytrace=False)
    out = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True)
    return "".join(out.stdout.decode("utf-8").split())  # table cells wrap their words over lines


def test_the_whole_loop(db, make_client, clock):
    from docx import Document

    from sentinel.exporters.prometheus import make_registry, render
    from sentinel.store.models import Event, Finding
    from sentinel.store.snapshot import build_snapshot

    site = his_site(db, make_client)
    world: World = site.world
    world.department("tax")
    operator = world.token("operator", "dept_operator", ["health"])
    reader = world.token("reader", "readonly", ["health"])
    stranger = world.token("tax-operator", "dept_operator", ["tax"])
    admin = bearer(site.admin)
    client = site.client
    dept = world.departments["health"]

    # the finding: two checks fail on web-1 (l3-ssh-root is high-risk L3-CES1-11, l3-pass-age is not)
    _report(site, {"l3-ssh-root": "fail", "l3-pass-age": "fail", "telnet": "pass"})
    r = client.post("/api/v1/notices", json={"department_id": dept, "period_start": "2026-02-01T00:00:00Z",
                                             "period_end": "2026-03-01T00:00:00Z"}, headers=admin)
    assert r.status_code == 201, r.text
    notice = r.json()
    assert notice["number"] == "网安通报〔2026〕1号" and notice["kind"] == "periodic"
    items = {i["title"]["en"]: i for i in notice["items"]}
    assert set(items) == {"check l3-ssh-root", "check l3-pass-age"}
    high, low = items["check l3-ssh-root"], items["check l3-pass-age"]
    # level-3 system: a high-risk weakness is an exposure (较大, 7 days), the other a degradation (一般, 15 days)
    assert (high["grade"], low["grade"]) == ("较大", "一般")
    assert datetime.fromisoformat(high["deadline"]) == T0 + timedelta(days=7)
    assert datetime.fromisoformat(low["deadline"]) == T0 + timedelta(days=15)
    assert {high["state"], low["state"]} == {"open"} and "L3-CES1-11" in high["basis"]
    nid = notice["id"]

    # scoping: another department's operator sees nothing of it; health's reader reads but may not answer
    assert client.get(f"/api/v1/notices/{nid}", headers=bearer(stranger)).status_code == 404
    assert client.get("/api/v1/notices", headers=bearer(stranger)).json() == []
    assert client.get(f"/api/v1/notices/{nid}/document", headers=bearer(stranger)).status_code == 404
    assert client.post("/api/v1/notices", json={"department_id": dept}, headers=bearer(operator)).status_code == 403
    assert [n["id"] for n in client.get("/api/v1/notices", headers=bearer(reader)).json()] == [nid]
    answers = f"/api/v1/notices/{nid}/items/{high['id']}/answers"
    assert client.post(answers, data={"text": "x"}, headers=bearer(reader)).status_code == 403
    assert client.post(answers, data={"text": "x"}, headers=bearer(stranger)).status_code == 404

    # the documents: DOCX read back with python-docx, PDF through pdftotext
    r = client.get(f"/api/v1/notices/{nid}/document?format=docx", headers=bearer(reader))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    docx = Document(io.BytesIO(r.content))
    paragraphs = [p.text for p in docx.paragraphs]
    assert paragraphs[0] == "网络安全和信息化委员会办公室" and paragraphs[1] == "网安通报〔2026〕1号"
    assert paragraphs[2] == "关于health title网络安全问题整改的通报" and paragraphs[3] == "health title："
    assert "2026年2月1日至2026年3月1日" in paragraphs[4] and "共有2项" in paragraphs[4]
    assert paragraphs[-1] == "2026年3月2日"
    table = docx.tables[0]
    rows = [[c.text for c in row.cells] for row in table.rows]
    assert rows[0] == ["序号", "系统", "问题", "位置", "依据", "等级", "整改期限", "状态"]
    by_title = {row[2]: row for row in rows[1:]}
    assert by_title["检查 l3-ssh-root"][5:] == ["较大", "2026年3月9日", "未整改"]
    assert by_title["检查 l3-pass-age"][5:] == ["一般", "2026年3月17日", "未整改"]
    assert by_title["检查 l3-ssh-root"][3] == "主机 web-1"
    r = client.get(f"/api/v1/notices/{nid}/document?format=pdf", headers=bearer(reader))
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    text = _pdftotext(r.content)
    for words in ("网络安全和信息化委员会办公室", "网安通报〔2026〕1号", "主机web-1", "较大2026年3月9日未整改",
                  "一般2026年3月17日未整改", "2026年3月2日", "逾期未整改的问题将予以升级通报"):
        assert words in text, words

    # the department answers, with a file; the answer alone changes nothing
    evidence = secrets.token_bytes(2048)
    r = client.post(answers, data={"text": "已禁止 root 远程登录"}, files=[("files", ("sshd_config.txt", evidence))],
                    headers=bearer(operator))
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["attachments"][0]["size"] == 2048 and answer["answered_by"].endswith(":operator")
    f = client.get(f"{answers}/{answer['id']}/files/{answer['attachments'][0]['id']}", headers=bearer(reader))
    assert f.content == evidence
    assert client.get(f"/api/v1/notices/{nid}", headers=admin).json()["items"][0]["state"] == "open"

    # a day later the next report shows l3-ssh-root fixed: verification marks that item fixed, the other open
    clock["t"] = T0 + timedelta(days=1)
    _report(site, {"l3-ssh-root": "pass", "l3-pass-age": "fail", "telnet": "pass"})
    r = client.post("/api/v1/notices/verify", headers=admin)
    assert r.json() == {"fixed": 1, "open": 1, "overdue": 0, "escalated": 0}
    states = {i["title"]["en"]: i["state"] for i in client.get(f"/api/v1/notices/{nid}", headers=admin).json()["items"]}
    assert states == {"check l3-ssh-root": "fixed", "check l3-pass-age": "open"}

    # past the 15 days: the other is overdue and escalates once, as an event through the event path
    clock["t"] = T0 + timedelta(days=16)
    assert client.post("/api/v1/notices/verify", headers=admin).json() == {"fixed": 0, "open": 0, "overdue": 1,
                                                                          "escalated": 1}
    assert client.post("/api/v1/notices/verify", headers=admin).json()["escalated"] == 0
    with db.session() as s:
        events = s.exec(select(Event).where(Event.kind == "notice_overdue")).all()
        still = s.exec(select(Finding).where(Finding.check_id == "l3-pass-age")).one()
    assert len(events) == 1 and events[0].payload["notice"] == "网安通报〔2026〕1号"
    assert events[0].department_id == dept and "逾期未整改" in events[0].summary
    listed = client.get("/api/v1/events?kind=notice_overdue", headers=bearer(reader)).json()
    assert [e["id"] for e in listed] == [events[0].id]

    # the metrics: one fixed and one overdue problem for the system (each problem once), promtool-clean
    body, _ = render(make_registry(lambda: build_snapshot(db)))
    text = body.decode()
    for state, n in (("open", 0), ("fixed", 1), ("overdue", 1)):
        assert f'sentinel_system_notice_problems{{department="health",state="{state}",system="his"}} {n}.0' in text
    if shutil.which("promtool"):
        assert subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True).returncode == 0

    # the next 通报 lists only the open problem, overdue, with the deadline it was first given
    r = client.post("/api/v1/notices", json={"department_id": dept}, headers=admin)
    second = r.json()
    assert second["number"] == "网安通报〔2026〕2号"
    [item] = second["items"]
    assert item["source"] == "finding" and item["source_id"] == still.id and item["state"] == "overdue"
    assert item["carried_from"] == low["id"] and item["deadline"] == low["deadline"]
    r = client.get(f"/api/v1/notices/{second['id']}/document?format=docx", headers=admin)
    row = [c.text for c in Document(io.BytesIO(r.content)).tables[0].rows[1].cells]
    assert row[5:] == ["一般", "2026年3月17日", "逾期未整改"]


def test_policy_is_the_sites(db, make_client, clock):
    """A site's deadlines (collector setting `notices`) decide the deadline; a grade left out keeps its default."""
    site = his_site(db, make_client, notices={"authority": "某市委网信办", "number_prefix": "某网通",
                                              "deadline_days": {"较大": 2}})
    _report(site, {"l3-ssh-root": "fail", "l3-pass-age": "fail"})
    r = site.client.post("/api/v1/notices", json={"department_id": site.world.departments["health"],
                                                  "kind": "event", "reason": "发现网页被篡改"},
                         headers=bearer(site.admin))
    notice = r.json()
    assert notice["number"] == "某网通〔2026〕1号" and notice["authority"] == "某市委网信办"
    days = sorted((datetime.fromisoformat(i["deadline"]) - T0).days for i in notice["items"])
    assert days == [2, 15]


def test_unknown_grade_in_policy_is_refused():
    from pydantic import ValidationError

    from sentinel.notices.policy import NoticePolicy

    with pytest.raises(ValidationError, match="unknown grade"):
        NoticePolicy(deadline_days={"严重": 3})


def test_website_and_service_sources_and_the_timer(db):
    """Website findings (a 挂马 one, a 单项否决 one) and a forbidden service are listed with their grades; an open port
    that breaks no rule is not. The collector's timer re-verifies with no one asking: what the round and the scan
    resolved is fixed, the rest is overdue and escalates."""
    import time

    from sqlalchemy import insert, update

    from sentinel.notices import loop
    from sentinel.notices.policy import NoticePolicy
    from sentinel.notices.verifier import Verifier
    from sentinel.store.models import Event, NoticeItem, ScanRun, ServiceFindingRow, WebsiteFinding
    from sentinel.websites import monitor
    from sentinel.websites.sites import SiteDeclaration
    from sentinel.zombie import ZombieSettings

    w = World(db)
    w.department("health")
    sid = w.system("his", "health")
    dept = w.departments["health"]
    decl = SiteDeclaration.model_validate({"urls": ["http://192.0.2.1/"]})
    wid = monitor.declare(db, department_id=dept, system_id=sid, name="portal", decl=decl, actor="test")
    rid = monitor.begin(db, wid, "test", "test")
    monitor.fail_round(db, rid, "not run: this test fetches nothing")
    with db.write() as conn:
        for rule, kind in (("security.malicious_code", "veto"), ("home.stale", "veto")):
            conn.execute(insert(WebsiteFinding.__table__).values(
                website_id=wid, system_id=sid, department_id=dept, rule=rule, subject=decl.home,
                subject_sha256=monitor.sha(rule), kind=kind, severity="critical", title={"zh": rule, "en": rule},
                source="政府网站与政务新媒体检查指标", remediation={"zh": "整改", "en": "fix"}, evidence=[],
                first_seen=T0, last_seen=T0, first_round_id=rid, last_round_id=rid))
        scan = conn.execute(insert(ScanRun.__table__).values(
            system_id=sid, department_id=dept, triggered_by="cli", requested_by="test", status="succeeded",
            runner="test", started_at=T0, finished_at=T0, targets=[], full_scope=True, scope={}, args={},
            warnings=[], hosts_up=1, services_open=2, services_forbidden=1, high_risk=0, events=0, items=[],
            results=[])).inserted_primary_key[0]
        for port, forbidden in ((23, True), (443, False)):
            conn.execute(insert(ServiceFindingRow.__table__).values(
                system_id=sid, department_id=dept, host="10.0.0.5", port=port, proto="tcp", service="telnet"
                if port == 23 else "https", forbidden=forbidden, plaintext_management=False, high_risk=[],
                check_results=[], errors=[], evidence=[], first_seen=T0, last_seen=T0, first_scan_id=scan,
                last_scan_id=scan))
    with db.session(write=True) as s:
        notice = loop.issue(s, dept, NoticePolicy(), ZombieSettings(), T0, "test")
        items = {i.title["en"]: i for i in s.exec(select(NoticeItem).where(NoticeItem.notice_id == notice.id))}
        assert set(items) == {"security.malicious_code", "home.stale", "forbidden service 23/tcp telnet"}
        grades = {k: (i.source, i.grade, (i.deadline - T0).days) for k, i in items.items()}
    assert grades == {"security.malicious_code": ("website", "较大", 7), "home.stale": ("website", "一般", 15),
                      "forbidden service 23/tcp telnet": ("service", "较大", 7)}

    # the next round resolves the 挂马 finding, the next scan sees telnet closed; weeks pass (the real clock is
    # past every deadline of T0)
    with db.write() as conn:
        conn.execute(update(WebsiteFinding.__table__).where(WebsiteFinding.rule == "security.malicious_code")
                     .values(resolved_at=T0 + timedelta(days=2), resolved_round_id=rid))
        conn.execute(update(ServiceFindingRow.__table__).where(ServiceFindingRow.port == 23)
                     .values(closed_at=T0 + timedelta(days=3), closed_scan_id=scan))
    verifier = Verifier(db, 0.1, ZombieSettings())
    verifier.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.session() as s:
                states = {i.title["en"]: i.state for i in s.exec(select(NoticeItem))}
            if "open" not in states.values():
                break
            time.sleep(0.1)
    finally:
        verifier.stop()
    assert states == {"security.malicious_code": "fixed", "home.stale": "overdue",
                      "forbidden service 23/tcp telnet": "fixed"}
    with db.session() as s:
        events = s.exec(select(Event).where(Event.kind == "notice_overdue")).all()
        fixed_at = {i.title["en"]: i.fixed_at for i in s.exec(select(NoticeItem))}
    assert [e.payload["source"] for e in events] == ["website"] and events[0].severity == "warning"
    assert fixed_at["security.malicious_code"] == T0 + timedelta(days=2)
