"""The 通报 loop end to end (issue 17 point 2): findings from real host reports through the collector's ingest,
a 通报 issued over the API with a deadline per grade, the DOCX read back with python-docx and the PDF's text with
pdftotext, the department's answer with a file, re-verification by the next report on a simulated clock, overdue
escalation as an event and the next 通报 carrying the problem with its first deadline; and the API's scoping.
Website and service problems are closed by a real re-check: a real nginx site fixed and monitored again, a real
service stopped on a namespace test host and scanned again."""
from __future__ import annotations

import io
import secrets
import shutil
import subprocess
import time
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


@pytest.fixture(scope="module")
def portal():
    """The department's website: a real nginx site on loopback (tests/website_lab.py)."""
    from tests.website_lab import NginxSites, need_nginx

    need_nginx()
    lab = NginxSites()
    site = lab.site("portal")
    lab.start()
    yield site
    lab.stop()


@pytest.fixture(scope="module")
def netlab(tmp_path_factory):
    """A namespace test host (tests/netlab.py) serving telnet (forbidden in the system's zone) and rsync."""
    from tests.netlab import Lab, need_lab

    need_lab()
    lab = Lab(tmp_path_factory.mktemp("notice-lab"))
    try:
        lab.build()
        lab.serve("h1", "rsync", 7000)
        yield lab
    finally:
        lab.close()


HOME = """<html><head><title>卫健委门户</title></head><body><h1>卫健委</h1><p>更新日期 2026-01-05</p>
<a href="/">首页</a>{hidden}</body></html>"""
HIDDEN = ('<div style="position:absolute;left:-9999px;top:-9999px">'
          '<a href="http://www.example-bet.test/">澳门新葡京娱乐城</a></div>')


def _round(client, token: str, wid: int) -> dict:
    """A monitoring round through the collector's own path (the API trigger, the round in its worker)."""
    r = client.post(f"/api/v1/websites/{wid}/rounds", headers=bearer(token))
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = client.get(f"/api/v1/websites/{wid}/rounds/{r.json()['id']}", headers=bearer(token)).json()
        if done["status"] != "running":
            assert done["status"] == "succeeded", done
            return done
        time.sleep(0.1)
    raise AssertionError("the round did not finish in 60 s")


def _scan(client, token: str, sid: int, target: str) -> dict:
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": [target], "tcp_ports": "23,7000"},
                    headers=bearer(token))
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = {x["id"]: x for x in client.get(f"/api/v1/systems/{sid}/scans", headers=bearer(token)).json()}
        run = runs.get(r.json()["id"])
        if run and run["status"] != "running":
            assert run["status"] == "succeeded", run
            return run
        time.sleep(0.2)
    raise AssertionError("the scan did not finish in 60 s")


@pytest.mark.root
@pytest.mark.timeout(300)
def test_website_and_service_problems_close_by_a_real_recheck(db, make_client, clock, portal, netlab, monkeypatch):
    """A real nginx site with a hidden gambling link (暗链) and a stale home page, and a namespace host serving
    telnet (forbidden) and rsync (breaks no rule): a real monitoring round and a real scan through the collector's
    own paths make the problems; the 通报 lists the hidden link, the stale page and telnet (not rsync) with their
    grades; the department answers; then the page is really fixed and telnet really stopped, and the next round and
    scan resolve them, so the collector's timer marks those fixed (at the round's and the scan's times) with no one
    asking, while the stale page, still stale, turns overdue with simulated time and escalates once."""
    import concurrent.futures as cf

    from sentinel.network import engine
    from sentinel.store.models import Event, NoticeItem, WebsiteFinding
    from tests.test_scan_collector import _enter_netns

    now = datetime.now(timezone.utc).replace(microsecond=0)
    clock["t"] = now
    w = World(db)
    w.department("health")
    sid = w.system("his", "health", scope=[netlab.net])
    admin, operator = w.token("admin", "admin"), w.token("operator", "dept_operator", ["health"])
    dept = w.departments["health"]
    client = make_client(db, websites={"enabled": True, "schedules": False}, scans=True, scan_schedules=False,
                         notices={"verify_seconds": 1})
    # the collector's scan runs its network engine (nmap and the probes' sockets) in the lab's scanner namespace,
    # as a collector on the lab's network would; everything else of the scan path runs as it does in production
    real_scan = engine.run_scan
    pool = cf.ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(netlab.ns["scan"],))
    monkeypatch.setattr(engine, "run_scan", lambda *a, **kw: pool.submit(real_scan, *a, **kw).result())
    h1 = netlab.hosts["h1"]
    netlab.serve("h1", "telnet", 23)
    portal.write("index.html", HOME.format(hidden=HIDDEN))
    try:
        r = client.post("/api/v1/websites", json={"system_id": sid, "name": "health-portal", "declaration": {
            "urls": [portal.url], "crawl": {"rate": 50}}}, headers=bearer(admin))
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        _round(client, operator, wid)
        started = time.monotonic()
        scan = _scan(client, admin, sid, h1)
        assert time.monotonic() - started < 20, "the real scan is meant to stay fast"
        services = {(x["port"], x["forbidden"]) for x in client.get(
            f"/api/v1/systems/{sid}/services", headers=bearer(admin)).json()}
        assert services == {(23, True), (7000, False)}, services

        r = client.post("/api/v1/notices", json={"department_id": dept}, headers=bearer(admin))
        assert r.status_code == 201, r.text
        notice = r.json()
        with db.session() as s:
            rules = {f.id: f.rule for f in s.exec(select(WebsiteFinding))}
        items = {(i["source"], rules.get(i["source_id"]) if i["source"] == "website" else i["title"]["en"]): i
                 for i in notice["items"]}
        hidden = items[("website", "security.hidden_links")]
        stale = items[("website", "home.stale")]
        telnet = items[("service", "forbidden service 23/tcp telnet")]
        assert not any("7000" in i["title"]["en"] for i in notice["items"]), "an open port breaking no rule"
        # level 3: 暗链 and a forbidden service are exposures (较大, 7 days), a stale home page a degradation (一般)
        assert (hidden["grade"], telnet["grade"], stale["grade"]) == ("较大", "较大", "一般")
        assert datetime.fromisoformat(stale["deadline"]) == now + timedelta(days=15)

        # the department answers; nothing is closed by that
        nid = notice["id"]
        for item, text in ((hidden, "已删除首页暗链并排查网页篡改途径"), (telnet, "已停止 telnet 服务")):
            r = client.post(f"/api/v1/notices/{nid}/items/{item['id']}/answers", data={"text": text},
                            files=[("files", ("record.txt", text.encode()))], headers=bearer(operator))
            assert r.status_code == 201, r.text
        time.sleep(1.5)  # a timer round passes
        states = {i["id"]: i["state"] for i in client.get(f"/api/v1/notices/{nid}", headers=bearer(admin)).json()[
            "items"]}
        assert states[hidden["id"]] == states[telnet["id"]] == "open"

        # fixed for real: the page without the hidden link (still stale), telnet stopped; a round and a scan
        portal.write("index.html", HOME.format(hidden=""))
        netlab.stop("h1", "telnet", 23)
        fixed_round = _round(client, operator, wid)
        fixed_scan = _scan(client, admin, sid, h1)
        assert fixed_scan["id"] != scan["id"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = {i["id"]: i for i in client.get(f"/api/v1/notices/{nid}", headers=bearer(admin)).json()["items"]}
            if got[hidden["id"]]["state"] == got[telnet["id"]]["state"] == "fixed":
                break
            time.sleep(0.2)
        assert got[hidden["id"]]["state"] == got[telnet["id"]]["state"] == "fixed", got
        with db.session() as s:
            resolved = s.get(WebsiteFinding, hidden["source_id"])
        # fixed when (and by) the round that judged the page again
        assert resolved.resolved_round_id == fixed_round["id"]
        assert datetime.fromisoformat(got[hidden["id"]]["fixed_at"]) == resolved.resolved_at
        assert datetime.fromisoformat(got[telnet["id"]]["fixed_at"]) == datetime.fromisoformat(
            fixed_scan["finished_at"])
        assert got[stale["id"]]["state"] == "open"

        # the stale page is still stale: 16 simulated days on, it and what else stayed open are overdue and
        # escalate once each
        unfixed = [i for i in got.values() if i["state"] != "fixed"]
        clock["t"] = now + timedelta(days=16)
        counts = client.post("/api/v1/notices/verify", headers=bearer(admin)).json()
        assert counts == {"fixed": 0, "open": 0, "overdue": len(unfixed), "escalated": len(unfixed)}
        with db.session() as s:
            events = s.exec(select(Event).where(Event.kind == "notice_overdue")).all()
            overdue = {i.id for i in s.exec(select(NoticeItem).where(NoticeItem.state == "overdue"))}
        assert overdue == {i["id"] for i in unfixed} and stale["id"] in overdue
        assert sorted(e.payload["item_id"] for e in events) == sorted(overdue)
    finally:
        pool.shutdown()
        if "h1:telnet:23" in netlab.procs:
            netlab.stop("h1", "telnet", 23)
