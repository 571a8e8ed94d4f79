"""The websites API (issue 17) on SQLite and PostgreSQL, with a real nginx site on loopback: declaring is an
admin's, departments see only their own websites and findings, a round runs only where the collector has
website monitoring on, a triggered round stores its verdicts and findings, baselines are approved from what
a round read."""
from __future__ import annotations

import time

import pytest

from sentinel.store.snapshot import build_snapshot, store_marker
from tests.collector_helpers import World, audit_rows, bearer
from tests.website_lab import NginxSites, need_nginx

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]
pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def site():
    need_nginx()
    lab = NginxSites()
    s = lab.site("portal")
    s.write("index.html", "<html><head><title>门户</title></head><body><a href=\"/news/\">要闻</a>"
                          "<a href=\"/nowhere.html\">失效</a><p>2026-01-01</p></body></html>")
    s.write("news/index.html", "<html><body><ul class=\"list\"></ul></body></html>")
    lab.start()
    yield s
    lab.stop()


@pytest.fixture
def world(db, make_client):
    w = World(db)
    w.department("health")
    w.department("edu")
    w.system("his", "health")
    w.token("admin", "admin")
    w.token("op", "dept_operator", ["health"])
    w.token("edu-op", "dept_operator", ["edu"])
    w.token("ro", "readonly", ["health"])
    return w


def _declaration(site) -> dict:
    return {"urls": [site.url], "columns": [{"name": "要闻", "url": site.url + "news/", "kind": "news"}],
            "crawl": {"rate": 50}}


def _wait(client, wid: int, rid: int, token: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = client.get(f"/api/v1/websites/{wid}/rounds/{rid}", headers=bearer(token))
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running":
            return r.json()
        time.sleep(0.2)
    raise AssertionError("round did not finish")


def test_websites_api(world, db, make_client, site):
    w = world
    client = make_client(db, websites={"enabled": True, "schedules": False})
    body = {"system_id": w.systems["his"], "name": "his-portal", "title": "门户网站", "declaration": _declaration(site)}
    # declaring is an admin's: the department's operator and a read-only token are refused
    for who in ("op", "ro"):
        assert client.post("/api/v1/websites", json=body, headers=bearer(w.tokens[who])).status_code == 403
    r = client.post("/api/v1/websites", json=body, headers=bearer(w.tokens["admin"]))
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.json()["declaration"]["urls"] == [site.url]
    assert audit_rows(db, "website.create")[-1].outcome == "ok"
    # a URL off the declared site for a column is refused before anything is stored
    bad = {**body, "name": "bad", "declaration": {**_declaration(site), "columns": [
        {"name": "x", "url": "http://192.0.2.1/x/"}]}}
    r = client.post("/api/v1/websites", json=bad, headers=bearer(w.tokens["admin"]))
    assert r.status_code == 422 and "not on the declared site" in r.text

    # another department sees nothing, exactly as if missing
    assert client.get(f"/api/v1/websites/{wid}", headers=bearer(w.tokens["edu-op"])).status_code == 404
    assert client.get("/api/v1/websites", headers=bearer(w.tokens["edu-op"])).json() == []
    assert client.post(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["edu-op"])).status_code == 404
    assert client.post(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["ro"])).status_code == 403

    before = store_marker(db)
    # the department's operator triggers a round
    r = client.post(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["op"]))
    assert r.status_code == 202, r.text
    done = _wait(client, wid, r.json()["id"], w.tokens["op"])
    audited = audit_rows(db, "website.round")[-1]
    assert audited.outcome == "ok" and audited.actor.endswith(":op") and f"round {done['id']}" in audited.detail
    assert done["status"] == "succeeded", done
    verdicts = {(v["rule"], v["subject"]): v for v in done["results"]}
    assert verdicts[("links.broken_home", site.url + "nowhere.html")]["status"] == "fail"
    assert verdicts[("column.blank", f"要闻 <{site.url}news/>")]["status"] == "fail"
    assert "columns.blank" not in done["vetoed"]  # one blank column of the five that veto
    assert "home.stale" in done["vetoed"]  # its newest date is 2026-01-01

    # the metrics read the round, the findings and the visits from the store (and notice the change)
    assert store_marker(db) != before
    (his,) = [m for m in build_snapshot(db).systems if m.name == "his"]
    (web,) = his.websites
    assert web.name == "his-portal" and web.url == site.url and web.vetoed is True
    assert web.last_round is not None and web.availability_ratio is None  # no visit yet: not known
    assert web.open_findings["veto"] >= 1 and web.open_findings["deduct"] >= 2

    findings = client.get("/api/v1/website-findings", params={"department_id": w.departments["health"]},
                          headers=bearer(w.tokens["op"])).json()
    rules = {f["rule"] for f in findings}
    assert {"links.broken_home", "column.blank", "home.stale"} <= rules
    assert all(f["remediation"]["zh"] and f["source"] for f in findings)
    assert client.get("/api/v1/website-findings", headers=bearer(w.tokens["edu-op"])).json() == []
    assert client.get(f"/api/v1/websites/{wid}/findings", headers=bearer(w.tokens["ro"])).json() == findings

    # a baseline is approved from what the round read; an undeclared page is refused
    r = client.post(f"/api/v1/websites/{wid}/baselines", json={"url": site.url}, headers=bearer(w.tokens["op"]))
    assert r.status_code == 201, r.text
    assert r.json()["reviewed_by"].endswith(":op") and "失效" in "\n".join(r.json()["lines"])
    r = client.post(f"/api/v1/websites/{wid}/baselines", json={"url": site.url + "other.html"},
                    headers=bearer(w.tokens["op"]))
    assert r.status_code == 422 and "not a declared page" in r.json()["detail"]


def test_rounds_are_off_unless_the_operator_turns_them_on(world, db, make_client, site):
    w = world
    client = make_client(db)  # default settings: website monitoring off
    body = {"system_id": w.systems["his"], "name": "his-portal", "declaration": _declaration(site)}
    wid = client.post("/api/v1/websites", json=body, headers=bearer(w.tokens["admin"])).json()["id"]
    r = client.post(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["admin"]))
    assert r.status_code == 403 and "website monitoring is off" in r.json()["detail"]
    assert client.get(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["admin"])).json() == []
    assert client.app.state.websites.next_run(wid) is None


def test_scheduled_rounds_and_visits_run_and_are_claimed(world, db, make_client, site):
    """With schedules on, a new website's first round and visit run at once, by the scheduler, once."""
    w = world
    client = make_client(db, websites={"enabled": True, "schedules": True})
    body = {"system_id": w.systems["his"], "name": "his-portal", "declaration": _declaration(site),
            "interval_seconds": 3600, "visit_seconds": 600}
    wid = client.post("/api/v1/websites", json=body, headers=bearer(w.tokens["admin"])).json()["id"]
    deadline = time.monotonic() + 60
    rounds: list = []
    while time.monotonic() < deadline:
        rounds = client.get(f"/api/v1/websites/{wid}/rounds", headers=bearer(w.tokens["ro"])).json()
        if rounds and rounds[0]["status"] != "running":
            break
        time.sleep(0.2)
    assert len(rounds) == 1 and rounds[0]["triggered_by"] == "schedule" and rounds[0]["status"] == "succeeded"
    from sqlalchemy import func, select

    from sentinel.store.models import Website, WebsiteVisit

    visits = 0
    while time.monotonic() < deadline and not visits:  # the visit job runs beside the round
        with db.read() as conn:
            visits = conn.execute(select(func.count()).select_from(WebsiteVisit.__table__)).scalar_one()
        time.sleep(0.1)
    with db.read() as conn:
        claimed = conn.execute(select(Website.__table__.c.claimed_at, Website.__table__.c.visit_claimed_at)).one()
    assert visits == 1 and claimed.claimed_at is not None and claimed.visit_claimed_at is not None
    assert client.app.state.websites.next_run(wid) is not None
