"""Writes through the real HTTP API (issue 20, items 3 and 4), on SQLite and PostgreSQL: every write is
validated against the model the reads use (never a 5xx, never a row that breaks a listing); scope, grades and
scans are an admin's; every scope lies inside the site's address plan; changes are audited before/after."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from sentinel.store.models import ScanRun, System
from tests.collector_helpers import World, audit_rows, bearer

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]


@pytest.fixture
def site(db, make_client):
    """health (plan 10.0.0.0/24, system his) and edu (plan 10.1.0.0/24, system school); tokens."""
    w = World(db)
    w.health_and_edu()
    w.token("admin", "admin")
    w.token("op", "dept_operator", ["health"])
    w.token("ro", "readonly", ["health"])
    w.token("assessor", "assessor", ["health"])
    client = make_client(db, scans=True, scan_schedules=False)
    return w, client, w.systems["his"]


def _h(w, who: str) -> dict:
    return bearer(w.tokens[who])


# ---- item 3: no write breaks a read ---------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [({"zones": None}, "zones"), ({"scan_scope": None}, "scan_scope"),
                                         ({"title": None}, "title"), ({"owner": None}, "owner"),
                                         ({"level": None}, "level"), ({"s_grade": None, "a_grade": None}, "a_grade")])
def test_null_in_a_patch_is_refused_and_every_listing_stays_up(site, db, body, field):
    w, client, sid = site
    r = client.patch(f"/api/v1/systems/{sid}", json=body, headers=_h(w, "admin"))
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"] and "null is not a value" in r.json()["detail"]
    for who in ("admin", "op", "ro"):
        r = client.get("/api/v1/systems", headers=_h(w, who))
        assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/systems/{sid}", headers=_h(w, "admin")).json()["zones"] == ["dmz"]
    assert audit_rows(db)[-1].status_code == 422, "the refusal is audited"


def test_a_patch_is_validated_whole_like_a_new_system(site):
    w, client, sid = site
    admin = _h(w, "admin")
    for body, words in (({"zones": [" dmz"]}, "zones[0]"), ({"scan_scope": ["10.0.0.1/24"]}, "scan_scope[0]"),
                        ({"level": 4}, "level 4 does not match S3A2"), ({"title": "x" * 201}, "title"),
                        ({"zones": ["a"] * 65}, "zones")):
        r = client.patch(f"/api/v1/systems/{sid}", json=body, headers=admin)
        assert r.status_code == 422 and words in r.json()["detail"], (body, r.text)
    assert client.get("/api/v1/systems", headers=admin).status_code == 200


def test_an_assessment_clause_over_the_column_width_is_a_clean_audited_422(site, db):
    w, client, sid = site
    clause = "8." + ".".join(["1"] * 6) + "9" * 30  # matches the clause pattern, 43 characters
    r = client.post(f"/api/v1/systems/{sid}/assessments", json={"clause": clause, "item": "a", "verdict": "符合"},
                    headers=_h(w, "assessor"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body.clause: String should have at most 32 characters")
    entry = audit_rows(db)[-1]
    assert (entry.outcome, entry.status_code) == ("rejected", 422) and "clause" in entry.detail
    r = client.post(f"/api/v1/systems/{sid}/assessments", json={"clause": "8.1.4.11", "item": "a", "verdict": "符合"},
                    headers=_h(w, "assessor"))
    assert r.status_code == 201


# ---- item 4: who may change what ------------------------------------------------------------------------------


def test_an_operator_may_not_change_scope_or_grading(site, db):
    w, client, sid = site
    op = _h(w, "op")
    for body in ({"scan_scope": ["10.0.0.0/8"]},  # widen onto everything
                 {"scan_scope": ["10.0.0.0/24", "10.1.0.0/24"]},  # onto edu's network
                 {"scan_scope": ["10.0.0.0/25"]},  # narrow: takes addresses out of the scans
                 {"scan_scope": []},
                 {"level": 2, "s_grade": 2},  # lower the protection level (another baseline)
                 {"a_grade": 1}):
        r = client.patch(f"/api/v1/systems/{sid}", json=body, headers=op)
        assert r.status_code == 403 and "only an admin" in r.json()["detail"], (body, r.text)
    system = client.get(f"/api/v1/systems/{sid}", headers=op).json()
    assert (system["scan_scope"], system["level"], system["label"]) == (["10.0.0.0/24"], 3, "S3A2")
    denied = [a for a in audit_rows(db) if a.action == f"PATCH /api/v1/systems/{sid}"]
    # each refusal is audited (repeated identical ones may be folded into one entry with a count)
    assert denied and {(a.outcome, a.status_code) for a in denied} == {("denied", 403)}
    # the department's own fields, and values that do not change, stay the operator's
    r = client.patch(f"/api/v1/systems/{sid}", json={"owner": "信息科", "zones": ["dmz", "core"], "level": 3},
                     headers=op)
    assert r.status_code == 200 and r.json()["owner"] == "信息科", r.text


def test_an_admin_changes_scope_and_level_audited_before_and_after(site, db):
    w, client, sid = site
    admin = _h(w, "admin")
    r = client.patch(f"/api/v1/systems/{sid}", json={"scan_scope": ["10.0.0.0/8"]}, headers=admin)
    assert r.status_code == 422 and "10.0.0.0/8 is outside the address plan of department health" in r.text
    r = client.patch(f"/api/v1/systems/{sid}", json={"scan_scope": ["10.1.0.0/24"]}, headers=admin)
    assert r.status_code == 422 and "its blocks: 10.0.0.0/24" in r.text, "edu's network is not health's"
    r = client.patch(f"/api/v1/systems/{sid}", json={"scan_scope": ["10.0.0.0/25"], "level": 2, "s_grade": 2},
                     headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["scan_scope"], r.json()["level"], r.json()["label"]) == (["10.0.0.0/25"], 2, "S2A2")
    entry = audit_rows(db, "system.update")[-1]
    assert entry.actor.endswith(":admin")
    assert json.loads(entry.detail) == {"before": {"level": 3, "s_grade": 3, "scan_scope": ["10.0.0.0/24"]},
                                        "after": {"level": 2, "s_grade": 2, "scan_scope": ["10.0.0.0/25"]}}


def test_a_new_systems_scope_must_lie_in_its_departments_plan(site):
    w, client, _ = site
    spec = {"name": "lab", "department_id": w.departments["health"], "level": 3, "s_grade": 3, "a_grade": 1}
    for who in ("op", "admin"):
        r = client.post("/api/v1/systems", json={**spec, "scan_scope": ["10.1.0.0/28"]}, headers=_h(w, who))
        assert r.status_code == 422 and "outside the address plan of department health" in r.text, r.text
    r = client.post("/api/v1/systems", json={**spec, "scan_scope": ["10.0.0.16/28"]}, headers=_h(w, "op"))
    assert r.status_code == 201, r.text


def test_scans_and_schedules_are_an_admins(site, db):
    w, client, sid = site
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": ["10.0.0.5"]}, headers=_h(w, "op"))
    assert r.status_code == 403 and "needs admin" in r.json()["detail"]
    r = client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"enabled": False}, headers=_h(w, "op"))
    assert r.status_code == 403
    r = client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"enabled": False}, headers=_h(w, "admin"))
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/systems/{sid}/scan-schedule", headers=_h(w, "op")).status_code == 200
    # an admin's trigger still stops at the scope (before any packet)
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": ["10.9.0.5"]}, headers=_h(w, "admin"))
    assert r.status_code == 422 and "outside scope" in r.json()["detail"]


def _legacy_scope(db, sid: int, scope: list[str]) -> None:
    """A scope stored before the address plan existed (migration 0005 keeps it as it was)."""
    with db.write() as conn:
        conn.execute(update(System.__table__).where(System.__table__.c.id == sid).values(scan_scope=scope))


def test_a_stored_scope_outside_the_plan_is_never_scanned(site, db, tmp_path):
    from sentinel.collector.scanner import ScanService
    from sentinel.collector.settings import CollectorSettings

    w, client, sid = site
    _legacy_scope(db, sid, ["10.0.0.0/24", "172.16.0.0/16"])
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": ["10.0.0.5"]}, headers=_h(w, "admin"))
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == ("system his is not scanned: its scan_scope 172.16.0.0/16 is outside the address "
                                  "plan of department health (its blocks: 10.0.0.0/24); an admin assigns blocks "
                                  "with `sentinel address-plan add` or POST /api/v1/address-plan")
    assert audit_rows(db)[-1].status_code == 409
    assert client.get(f"/api/v1/systems/{sid}/scans", headers=_h(w, "admin")).json() == []
    # the schedule refuses it the same way, and says so on a failed scan run
    r = client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"interval_seconds": 600}, headers=_h(w, "admin"))
    assert r.status_code == 200, r.text
    service = ScanService(db, CollectorSettings(state_dir=tmp_path / "s", scans=True, scan_schedules=False))
    service.run_scheduled(sid)  # never reaches nmap: refused before planning
    with db.read() as conn:
        runs = conn.execute(select(ScanRun.__table__).where(ScanRun.__table__.c.system_id == sid)).all()
    assert [(run.status, run.triggered_by) for run in runs] == [("failed", "schedule")]
    assert "172.16.0.0/16 is outside the address plan" in runs[0].error
    assert [a for a in audit_rows(db, "scan.refused") if "172.16.0.0/16" in a.detail]
    # once the admin assigns the block, the plan no longer stands in the way (the scope check comes next)
    r = client.post("/api/v1/address-plan", json={"department_id": w.departments["health"],
                                                  "cidr": "172.16.0.0/16"}, headers=_h(w, "admin"))
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": ["192.0.2.1"]}, headers=_h(w, "admin"))
    assert r.status_code == 422 and "outside scope" in r.json()["detail"]


# ---- the address plan ------------------------------------------------------------------------------------------


def test_address_plan_api(site, db):
    w, client, sid = site
    admin, op = _h(w, "admin"), _h(w, "op")
    health, edu = w.departments["health"], w.departments["edu"]
    r = client.post("/api/v1/address-plan", json={"department_id": health, "cidr": "10.20.0.0/16"}, headers=op)
    assert r.status_code == 403
    r = client.post("/api/v1/address-plan", json={"department_id": health, "cidr": "10.1.0.128/25"}, headers=admin)
    assert r.status_code == 409 and "overlaps block 10.1.0.0/24 of department edu" in r.text
    r = client.post("/api/v1/address-plan", json={"department_id": edu, "cidr": "10.0.0.0/8"}, headers=admin)
    assert r.status_code == 409, "a block over another department's is refused too"
    r = client.post("/api/v1/address-plan", json={"department_id": health, "cidr": "10.20.0.1/16"}, headers=admin)
    assert r.status_code == 422 and "cidr" in r.json()["detail"]
    r = client.post("/api/v1/address-plan", json={"department_id": 999, "cidr": "10.20.0.0/16"}, headers=admin)
    assert r.status_code == 404
    r = client.post("/api/v1/address-plan", json={"department_id": health, "cidr": "10.20.0.0/16",
                                                  "note": "云平台工单 42"}, headers=admin)
    assert r.status_code == 201, r.text
    block = r.json()
    assert (block["cidr"], block["note"], block["created_by"].endswith(":admin")) == \
        ("10.20.0.0/16", "云平台工单 42", True)
    assert audit_rows(db, "address_plan.add")[-1].target == f"address_block:{block['id']}:10.20.0.0/16"
    # a department's readers see its own blocks, an admin the whole plan
    assert {b["cidr"] for b in client.get("/api/v1/address-plan", headers=op).json()} == {"10.0.0.0/24",
                                                                                            "10.20.0.0/16"}
    assert len(client.get("/api/v1/address-plan", headers=admin).json()) == 3
    # a block a system's scope lies in stays until the scope is narrowed
    [his_block] = [b for b in client.get("/api/v1/address-plan", headers=admin).json() if b["cidr"] == "10.0.0.0/24"]
    r = client.delete(f"/api/v1/address-plan/{his_block['id']}", headers=admin)
    assert r.status_code == 409 and "system(s) his" in r.text
    assert client.delete(f"/api/v1/address-plan/{block['id']}", headers=op).status_code == 403
    r = client.delete(f"/api/v1/address-plan/{block['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["cidr"] == "10.20.0.0/16"
    assert client.delete(f"/api/v1/address-plan/{block['id']}", headers=admin).status_code == 404
    assert audit_rows(db, "address_plan.remove")[-1].detail == "department health"


def test_address_plan_cli(tmp_path, capsys):
    from sentinel.cli import main

    common = ["--state-dir", str(tmp_path / "state")]
    assert main(["db", "upgrade", *common]) == 0
    assert main(["department", "add", "health", *common]) == 0
    assert main(["department", "add", "edu", *common]) == 0
    capsys.readouterr()
    system = ["system", "add", "his", "--department", "health", "--level", "3", "--s-grade", "3", "--a-grade", "2",
              "--scope", "10.8.1.0/24", *common]
    assert main(system) == 2
    assert "outside the address plan of department health (its blocks: none)" in capsys.readouterr().err
    assert main(["address-plan", "add", "10.8.0.0/16", "--department", "health", "--note", "ticket 7", *common]) == 0
    assert "10.8.0.0/16 assigned to department health" in capsys.readouterr().out
    assert main(["address-plan", "add", "10.8.4.0/24", "--department", "edu", *common]) == 2
    assert "overlaps block 10.8.0.0/16 of department health" in capsys.readouterr().err
    assert main(["address-plan", "add", "10.8.0.1/16", "--department", "edu", *common]) == 2
    assert "cidr" in capsys.readouterr().err
    assert main(system) == 0
    assert main(["address-plan", "list", *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1\thealth\t10.8.0.0/16\tticket 7"
    assert main(["address-plan", "remove", "1", *common]) == 2
    assert "still in the scan_scope of system(s) his" in capsys.readouterr().err
    assert main(["address-plan", "check", *common]) == 0
    assert "every system's scan scope is inside" in capsys.readouterr().out
    # a scope stored before the plan existed (as after an upgrade to migration 0005) is found
    from sentinel.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'state' / 'sentinel.db'}")
    try:
        with db.write() as conn:
            conn.execute(update(System.__table__).values(scan_scope=["10.8.1.0/24", "192.168.9.0/24"]))
    finally:
        db.dispose()
    assert main(["address-plan", "check", *common]) == 1
    assert capsys.readouterr().out == "system his: not scanned, outside the address plan: 192.168.9.0/24\n"


# ---- the published OpenAPI document tells the truth about errors ---------------------------------------------


def test_error_answers_are_documented_as_sent(site):
    w, client, sid = site
    spec = client.get("/api/v1/openapi.json").json()
    patch = spec["paths"]["/api/v1/systems/{system_id}"]["patch"]["responses"]
    assert {"400", "401", "403", "404", "413", "422"} <= set(patch)
    assert patch["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ValidationProblem")
    assert spec["components"]["schemas"]["ValidationProblem"]["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in spec["components"]["schemas"], "FastAPI's 422 shape is not what we send"
    assert "403" in spec["paths"]["/api/v1/audit"]["get"]["responses"]
    assert "409" in spec["paths"]["/api/v1/systems"]["post"]["responses"]
    # the bodies really are so
    r = client.patch(f"/api/v1/systems/{sid}", json={"zones": "dmz"}, headers=_h(w, "admin"))
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    assert r.json()["errors"][0]["loc"] == "body.zones"
    r = client.get("/api/v1/systems")
    assert r.status_code == 401 and set(r.json()) == {"detail"}


def test_an_unknown_query_parameter_is_refused_not_ignored(site):
    """A misspelt filter would otherwise answer everything the filter was meant to narrow."""
    w, client, sid = site
    r = client.get("/api/v1/findings", params={"sytem_id": sid}, headers=_h(w, "admin"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("query.sytem_id: unknown query parameter (this route takes: check_id, ")
    assert client.get("/api/v1/findings", params={"system_id": sid}, headers=_h(w, "admin")).status_code == 200


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite writers take turns already
def test_two_admins_cannot_both_assign_overlapping_blocks(site, db):
    """The overlap check and the insert are one step: while one transaction assigns 10.50.0.0/16 to health,
    another assigning 10.50.1.0/24 to edu waits for it, then sees it and is refused."""
    import threading

    from sentinel.collector import address_plan
    from sentinel.collector.errors import ApiError
    from tests.waits import until

    w, client, sid = site
    added, outcome = threading.Event(), {}

    def second_waits_for_the_plan() -> bool:
        # the server's own view: a lock on this schema's address_blocks requested and not granted
        with db.read() as conn:
            return conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT l.granted AND c.relname = 'address_blocks' AND n.nspname = current_schema()").scalar_one()

    def first():
        with db.session(write=True) as s:
            address_plan.add_block(w.ctx(s), w.departments["health"], "10.50.0.0/16")
            added.set()
            try:  # still uncommitted until the second one is seen waiting for the plan
                until(second_waits_for_the_plan, "the second assignment to wait for the address plan's lock")
            except AssertionError as exc:
                outcome["first"] = str(exc)

    def second():
        added.wait(5)
        try:
            with db.session(write=True) as s:
                address_plan.add_block(w.ctx(s), w.departments["edu"], "10.50.1.0/24")
            outcome["second"] = 201
        except ApiError as exc:
            outcome["second"] = (exc.status, exc.detail)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert "first" not in outcome, outcome["first"]
    assert outcome["second"] != 201, "both overlapping blocks were assigned"
    assert outcome["second"][0] == 409 and "overlaps block 10.50.0.0/16 of department health" in outcome["second"][1]
    cidrs = [b["cidr"] for b in client.get("/api/v1/address-plan", headers=_h(w, "admin")).json()]
    assert "10.50.0.0/16" in cidrs and "10.50.1.0/24" not in cidrs


def test_a_schedule_change_is_audited_before_and_after(site, db):
    w, client, sid = site
    path = f"/api/v1/systems/{sid}/scan-schedule"
    assert client.put(path, json={"interval_seconds": 3600}, headers=_h(w, "admin")).status_code == 200
    first = audit_rows(db, "scan_schedule.update")[-1].detail
    assert json.loads(first.split("; ", 1)[1])["before"] is None, "a new schedule has no before"
    assert client.put(path, json={"enabled": False}, headers=_h(w, "admin")).status_code == 200
    entry = audit_rows(db, "scan_schedule.update")[-1]
    assert entry.detail.startswith("disabled, zone baseline zone-egov-default")
    assert json.loads(entry.detail.split("; ", 1)[1]) == {"before": {"enabled": True, "interval_seconds": 3600},
                                                          "after": {"enabled": False, "interval_seconds": None}}


def test_the_document_has_one_problem_model(site):
    w, client, _ = site
    names = set(client.get("/api/v1/openapi.json").json()["components"]["schemas"])
    assert {"Problem", "ValidationProblem"} <= names
    assert not [n for n in names if n.startswith("sentinel__")], sorted(names)  # a name clash, prefixed
