"""Report ids are unique per agent, not globally (issue 20 item 7), through the HTTP API on SQLite and
PostgreSQL: one agent's id never finds, answers from or blocks another agent's report."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from sentinel.store.models import Report, Run
from tests.collector_helpers import bearer, envelope, his_site, make_report, sign, sixty_results

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"


@pytest.fixture
def setup(db, make_client):
    site = his_site(db, make_client)  # agent a on web-1
    b = site.world.enroll(site.client, "his", "web-2")
    return site.world, site.client, site.agent, b, site.admin


def test_same_report_id_from_another_agent_is_its_own_report(setup, db):
    world, client, a, b, admin = setup
    rid = "shared-id-1"
    ra = client.post(REPORTS, **_signed(a, make_report(sixty_results(), hostname="web-1"), rid))
    assert ra.status_code == 202, ra.text
    # B reuses A's id, with exactly A's body: before, B was answered 200 with A's run
    rb = client.post(REPORTS, **_signed(b, make_report(sixty_results(), hostname="web-1"), rid))
    assert rb.status_code == 202, rb.text
    assert rb.json()["run_id"] != ra.json()["run_id"]
    # and with a body of its own: before, 409 "already stored"
    rc = client.post(REPORTS, **_signed(b, make_report({"check.01": "pass"}, hostname="web-2"), "shared-id-2"))
    ra2 = client.post(REPORTS, **_signed(a, make_report({"check.01": "fail"}, hostname="web-1"), "shared-id-2"))
    assert rc.status_code == 202 and ra2.status_code == 202, (rc.text, ra2.text)
    with db.read() as conn:
        runs = conn.execute(select(Run.__table__.c.agent_id, Run.__table__.c.report_id)).all()
        reports = conn.execute(select(Report.__table__.c.agent_id, Report.__table__.c.report_id)).all()
    pairs = {(a.agent_id, rid), (b.agent_id, rid), (a.agent_id, "shared-id-2"), (b.agent_id, "shared-id-2")}
    assert set(runs) == pairs and set(reports) == pairs
    listed = client.get("/api/v1/runs", headers=bearer(admin)).json()
    assert sorted(r["report_id"] for r in listed) == sorted([rid, rid, "shared-id-2", "shared-id-2"])


def test_idempotency_and_conflicts_stay_per_agent(setup, db):
    world, client, a, b, admin = setup
    body_a = make_report(sixty_results(), hostname="web-1")
    first = client.post(REPORTS, **_signed(a, body_a, "r-1"))
    assert first.status_code == 202
    body_b = make_report({"check.01": "pass"}, hostname="web-2")
    assert client.post(REPORTS, **_signed(b, body_b, "r-1")).status_code == 202
    # A's own resend is still answered from A's report, and A's different body under its id is still 409
    again = client.post(REPORTS, **_signed(a, body_a, "r-1"))
    assert again.status_code == 200 and again.json() == first.json()
    other = client.post(REPORTS, **_signed(a, make_report({"check.09": "fail"}, hostname="web-1"), "r-1"))
    assert other.status_code == 409


def test_inventory_ids_are_per_agent_too(setup, db):
    world, client, a, b, admin = setup
    inv = {"os": {"hostname": "x", "os_id": "debian", "os_version": "12", "os_name": "Debian", "family": "debian",
                  "arch": "x86_64"}, "arch": "x86_64"}
    ra = client.post(REPORTS, **_signed(a, inv, "inv-1", kind="inventory"))
    rb = client.post(REPORTS, **_signed(b, inv, "inv-1", kind="inventory"))
    assert ra.status_code == 202 and rb.status_code == 202, (ra.text, rb.text)
    with db.read() as conn:
        owners = conn.execute(select(Report.__table__.c.agent_id).where(Report.__table__.c.report_id == "inv-1")).all()
    assert sorted(o.agent_id for o in owners) == sorted([a.agent_id, b.agent_id])


def _signed(agent, body: dict, report_id: str, kind: str = "host_report") -> dict:
    raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind=kind, report_id=report_id))
    return {"content": raw, "headers": headers}
