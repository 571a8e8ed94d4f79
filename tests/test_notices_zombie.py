"""Zombie-system verdicts as a 通报 source (issue 17, docs/notices.md), on SQLite and PostgreSQL: weeks of
utilisation and inventories through the real ingest path (signed envelopes, the collector's clock walking with
them; upkeep facts made by the agent's own probes from host roots, as tests/test_zombie_collector.py does), a
notice listing each suspect or zombie system with its grade and the site's deadline, and re-verification from the
latest verdict: an authority's dismissal, a decommission after confirmation and a system in use again close
their problems; a department's own dismissal, a confirmation alone and a system still idle do not, and the last
turns overdue and escalates once. And migration 0013, which lets notice_items hold them, both ways."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tests.collector_helpers import World, bearer, envelope, sign
from tests.test_zombie_collector import NOW, HostSpec, Use, _host_root, _inventory

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"
MB = 1024 * 1024
T0 = NOW.replace(microsecond=0)
TODAY = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=timezone.utc)
IDLE = Use(cpu=0.8, net_bytes=MB, inbound=0)
BUSY = Use(cpu=35.0, net_bytes=3000 * MB, inbound=20, sessions=1)

HOSTS = [  # zombie (idle, unmaintained, unused) and three suspects (idle and unused, maintained)
    HostSpec("portal-1", "old-portal", lambda _d: IDLE, packages=400, config=300, kernel=500),
    HostSpec("arch-1", "archive", lambda _d: IDLE, packages=2, config=200, kernel=400),
    HostSpec("lab-1", "lab", lambda d: BUSY if d >= 0 else IDLE, packages=2, config=200, kernel=400),
    HostSpec("tax-1", "etax", lambda _d: IDLE, packages=2, config=200, kernel=400),
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _day_samples(use: Use, day: datetime) -> list[dict]:
    """One sample an hour (every hour of the day covered), the day's bytes spread over them."""
    return [{"at": (day + timedelta(hours=h, minutes=30)).isoformat().replace("+00:00", "Z"),
             "cpu_percent": use.cpu, "memory_percent": 30.0, "net_bytes_sent": use.net_bytes // 48,
             "net_bytes_recv": use.net_bytes // 48, "logins": use.sessions, "inbound_connections": use.inbound}
            for h in range(24)]


@pytest.fixture
def site(db, make_client, tmp_path, monkeypatch):
    from sentinel.collector.routers import notices

    w = World(db)
    w.department("edu")
    for spec in HOSTS:
        w.system(spec.system, "edu")
    w.token("admin", "admin")
    w.token("edu-op", "dept_operator", ["edu"])
    client = make_client(db, agent_rate=0, source_rate=0, notices={"zombie_days": 20, "verify_seconds": 0})
    ingest = client.app.state.ingestor
    clock = Clock(TODAY - timedelta(days=15))
    ingest.clock = ingest.verifier.clock = clock
    agents = {spec.name: w.enroll(client, spec.system, spec.name) for spec in HOSTS}
    roots = {spec.name: _host_root(tmp_path / "roots", spec) for spec in HOSTS}
    notice_now = {"t": T0}
    monkeypatch.setattr(notices, "_now", lambda: notice_now["t"])

    def post(spec: HostSpec, kind: str, body: dict, at: datetime) -> None:
        clock.now = at
        agent = agents[spec.name]
        raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind=kind, sent_at=at))
        r = client.post(REPORTS, content=raw, headers=headers)
        assert r.status_code == 202, r.text

    def days(first: int, last: int, names: tuple[str, ...]) -> None:
        """Simulated days first..last (offsets from today): each host's inventory and its day of samples."""
        for offset in range(first, last + 1):
            day = TODAY + timedelta(days=offset)
            for spec in HOSTS:
                if spec.name in names:
                    post(spec, "inventory", _inventory(spec, roots[spec.name], day + timedelta(hours=2)),
                         day + timedelta(hours=2))
                    post(spec, "utilisation", {"samples": _day_samples(spec.use(offset), day)},
                         day + timedelta(days=1))

    days(-15, -1, tuple(h.name for h in HOSTS))
    clock.now = datetime.now(timezone.utc)
    return w, client, agents, days, notice_now


def _items(client, nid: int, token: str) -> dict[str, dict]:
    r = client.get(f"/api/v1/notices/{nid}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return {i["title"]["en"].split(" (")[0]: i for i in r.json()["items"]}


def _verify(client, w, at: datetime, clock: dict) -> dict:
    clock["t"] = at
    r = client.post("/api/v1/notices/verify", headers=bearer(w.tokens["admin"]))
    assert r.status_code == 200, r.text
    return r.json()


def test_zombie_verdicts_are_notified_and_re_verified(site, db):
    from docx import Document

    from sentinel.store.models import Event

    w, client, agents, days, clock = site
    admin, op = w.tokens["admin"], w.tokens["edu-op"]
    ids, edu = w.systems, w.departments["edu"]
    verdicts = {v["system"]: v["verdict"] for v in client.get("/api/v1/zombie", headers=bearer(admin)).json()}
    assert verdicts == {"old-portal": "zombie", "archive": "suspect", "lab": "suspect", "etax": "suspect"}

    # the department dismisses its own archive system before the notice: its word is an answer, not the review
    # that closes a problem, so the system is listed all the same
    r = client.post(f"/api/v1/systems/{ids['archive']}/zombie/reviews",
                    json={"decision": "dismiss", "reason": "季节性业务，每年三月使用"}, headers=bearer(op))
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/notices", json={"department_id": edu}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    nid = r.json()["id"]
    items = _items(client, nid, op)
    assert set(items) == {"zombie system old-portal", "suspected zombie system archive",
                          "suspected zombie system lab", "suspected zombie system etax"}
    portal = items["zombie system old-portal"]
    assert (portal["source"], portal["source_id"], portal["grade"]) == ("zombie", ids["old-portal"], "一般")
    # the site's zombie_days (20) decides, not the grade's 15 days
    assert {datetime.fromisoformat(i["deadline"]) - T0 for i in items.values()} == {timedelta(days=20)}
    assert "国办发〔2017〕39号" in portal["basis"] and "判定窗口" in portal["basis"]
    assert "portal-1（僵尸：资源长期闲置、运维更新停止、少人使用）" in portal["location"]
    assert "arch-1（疑似僵尸：资源长期闲置、少人使用）" in items["suspected zombie system archive"]["location"]
    r = client.get(f"/api/v1/notices/{nid}/document?format=docx", headers=bearer(op))
    table = Document(io.BytesIO(r.content)).tables[0]
    rows = {row.cells[2].text: [c.text for c in row.cells] for row in table.rows[1:]}
    assert rows["僵尸信息系统：old-portal"][1] == "old-portal" and rows["僵尸信息系统：old-portal"][5] == "一般"

    # a day on: the authority reviews the department's reasons and dismisses the archive verdict (fixed, at the
    # dismissal); the department confirms old-portal (the decommission list), which alone fixes nothing
    r = client.post(f"/api/v1/systems/{ids['archive']}/zombie/reviews",
                    json={"decision": "dismiss", "reason": "已核实：三月报税期使用，附使用记录"}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    dismissed_at = datetime.fromisoformat(r.json()["at"])
    r = client.post(f"/api/v1/systems/{ids['old-portal']}/zombie/reviews",
                    json={"decision": "confirm", "reason": "门户已迁入集约化平台"}, headers=bearer(op))
    assert r.status_code == 201, r.text
    assert _verify(client, w, T0 + timedelta(days=1), clock) == {"fixed": 1, "open": 3, "overdue": 0, "escalated": 0}
    items = _items(client, nid, op)
    archive = items["suspected zombie system archive"]
    assert archive["state"] == "fixed" and datetime.fromisoformat(archive["fixed_at"]) == dismissed_at
    assert items["zombie system old-portal"]["state"] == "open"

    # 清: portal-1's agent revoked (the host taken down): decommissioned after the confirmation, fixed then
    r = client.post(f"/api/v1/agents/{agents['portal-1'].agent_id}/revoke", json={"reason": "主机已下线"},
                    headers=bearer(admin))
    assert r.status_code == 200, r.text
    revoked_at = datetime.fromisoformat(r.json()["revoked_at"])
    assert _verify(client, w, T0 + timedelta(days=2), clock) == {"fixed": 1, "open": 2, "overdue": 0, "escalated": 0}
    portal = _items(client, nid, op)["zombie system old-portal"]
    assert portal["state"] == "fixed" and datetime.fromisoformat(portal["fixed_at"]) == revoked_at

    # two weeks of use on lab-1 (busy, served): in use again, fixed when verified; tax-1 stays idle
    days(0, 15, ("lab-1", "tax-1"))
    at = TODAY + timedelta(days=16, hours=1)
    assert _verify(client, w, at, clock) == {"fixed": 1, "open": 1, "overdue": 0, "escalated": 0}
    items = _items(client, nid, op)
    assert items["suspected zombie system lab"]["state"] == "fixed"
    assert datetime.fromisoformat(items["suspected zombie system lab"]["fixed_at"]) == at
    assert items["suspected zombie system etax"]["state"] == "open"

    # past the deadline: etax is overdue and escalates once; the next notice carries it with its first deadline
    days(16, 20, ("tax-1",))
    late = TODAY + timedelta(days=21, hours=1)
    assert _verify(client, w, late, clock) == {"fixed": 0, "open": 0, "overdue": 1, "escalated": 1}
    assert _verify(client, w, late, clock)["escalated"] == 0
    with db.session() as s:
        events = s.exec(select(Event).where(Event.kind == "notice_overdue")).all()
    assert [(e.payload["source"], e.payload["system"], e.severity) for e in events] == [("zombie", "etax", "warning")]
    r = client.post("/api/v1/notices", json={"department_id": edu}, headers=bearer(admin))
    [item] = r.json()["items"]
    first = _items(client, nid, op)["suspected zombie system etax"]
    assert (item["source"], item["state"], item["carried_from"], item["deadline"]) == (
        "zombie", "overdue", first["id"], first["deadline"])


def test_a_new_episode_gets_a_new_deadline_and_escalates_again(db):
    """One system's zombie problem keeps the system's id: after it was fixed, a later suspect verdict is a new
    problem (a new deadline, escalating once more when overdue)."""
    from sentinel.notices import loop
    from sentinel.notices.policy import NoticePolicy
    from sentinel.store.models import Event, NoticeItem
    from sentinel.zombie import ZombieSettings

    w = World(db)
    w.department("edu")
    sid = w.system("lab", "edu")
    dept = w.departments["edu"]
    with db.session(write=True) as s:
        notice = loop.issue(s, dept, NoticePolicy(), ZombieSettings(), T0, "test")
        # a system with no hosts is 未知: nothing to list
        assert s.exec(select(NoticeItem).where(NoticeItem.notice_id == notice.id)).all() == []
        for n, (state, escalated) in enumerate((("fixed", T0), ("overdue", None))):
            s.add(NoticeItem(notice_id=notice.id or 0, department_id=dept, system_id=sid, seq=n + 1, source="zombie",
                             source_id=sid, grade="一般", title={"zh": "x", "en": "x"}, location="", basis="",
                             remediation={}, first_seen=T0, deadline=T0 - timedelta(days=1), state=state,
                             escalated_at=escalated, fixed_at=T0 if state == "fixed" else None))
        s.flush()
        assert not loop._was_escalated(s, "zombie", sid), "the earlier episode's escalation is not this one's"
        counts = loop.verify(s, T0 + timedelta(days=1), ZombieSettings(), dept)
        assert counts == {"fixed": 0, "open": 0, "overdue": 1, "escalated": 1}
        assert len(s.exec(select(Event).where(Event.kind == "notice_overdue")).all()) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    from tests.dbfixtures import pg_url

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return pg_url(request.getfixturevalue("pg_schemas").create("sentinel_migr"))


def test_0013_both_ways(empty_url):
    """0013 lets notice_items hold zombie problems and keeps every notice, item, answer and file stored before (on
    SQLite too, where a table copy would have dropped the answers with the old table); back down it refuses while
    a zombie item exists, then narrows the check again."""
    from sentinel.store.db import Database, current_revision, downgrade, head_revision, upgrade
    from sentinel.store.models import Department, Notice, NoticeAnswer, NoticeAttachment, NoticeItem, System

    db = Database(empty_url)
    try:
        assert upgrade(db, "0012") == "0012"
        now = datetime.now(timezone.utc)
        with db.write() as conn:
            d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)
                             ).inserted_primary_key[0]
            s = conn.execute(insert(System.__table__).values(
                name="s", department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="", zones=[],
                scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now)).inserted_primary_key[0]
            n = conn.execute(insert(Notice.__table__).values(
                department_id=d, year=2026, seq=1, number="网安通报〔2026〕1号", kind="periodic", authority="a",
                reason="", policy={}, issued_at=now, issued_by="t")).inserted_primary_key[0]

        def item(conn, source: str, carried_from=None) -> int:
            return conn.execute(insert(NoticeItem.__table__).values(
                notice_id=n, department_id=d, system_id=s, seq=1, source=source, source_id=s, grade="一般",
                title={"zh": "问题"}, location="", basis="", remediation={}, first_seen=now, deadline=now,
                state="open", carried_from=carried_from)).inserted_primary_key[0]

        with db.write() as conn:
            first = item(conn, "finding")
            carried = item(conn, "website", carried_from=first)
            a = conn.execute(insert(NoticeAnswer.__table__).values(
                item_id=first, department_id=d, text="已整改", answered_by="x", at=now)).inserted_primary_key[0]
            conn.execute(insert(NoticeAttachment.__table__).values(
                answer_id=a, name="f.txt", sha256="0" * 64, size=3, content=b"abc", created_at=now))
        with pytest.raises(IntegrityError):  # 0012 knows three sources
            with db.write() as conn:
                item(conn, "zombie")

        def kept(conn) -> tuple:
            return (conn.execute(select(NoticeItem.id, NoticeItem.carried_from).order_by(NoticeItem.id)).all(),
                    conn.execute(select(NoticeAnswer.id, NoticeAnswer.text)).all(),
                    conn.execute(select(NoticeAttachment.content)).scalars().all())

        with db.read() as conn:
            before = kept(conn)
        assert before == ([(first, None), (carried, first)], [(a, "已整改")], [b"abc"])
        assert upgrade(db) == head_revision()
        checks = {c["name"]: c["sqltext"] for c in inspect(db.engine).get_check_constraints("notice_items")}
        assert "'zombie'" in checks["ck_notice_items_source"], checks  # one constraint of the models' name
        with db.read() as conn:
            assert kept(conn) == before
        with db.write() as conn:
            zombie = item(conn, "zombie")
        with pytest.raises(IntegrityError):  # still a closed list
            with db.write() as conn:
                item(conn, "backup")
        with pytest.raises(RuntimeError, match="1 zombie-system item"):
            downgrade(db, "0012")
        assert current_revision(db) == head_revision()
        with db.write() as conn:
            conn.execute(NoticeItem.__table__.delete().where(NoticeItem.__table__.c.id == zombie))
        assert downgrade(db, "0012") == "0012"
        with pytest.raises(IntegrityError):
            with db.write() as conn:
                item(conn, "zombie")
        with db.read() as conn:
            assert kept(conn) == before
        assert "notice_items" in inspect(db.engine).get_table_names()
        assert upgrade(db) == head_revision()
    finally:
        db.dispose()


def _migration(name: str):
    """A migration module by its file name (they start with a digit, so no plain import)."""
    import importlib.util
    from pathlib import Path

    import sentinel.store.migrations.versions as versions

    path = Path(versions.__file__).parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_whose_review_it_was_is_kept_from_when_it_was_made(site, db):
    """The reviewer's role is recorded with the review: an admin's dismissal closes its problem after the admin's
    token is deleted; a department operator's never does, neither after its token is deleted and an admin token
    takes its id (SQLite reuses the highest freed rowid) nor after its role is edited to admin in the database
    (the API has no role change). The rule that read the reviewer string would have judged all three otherwise."""
    from sentinel.store.models import ApiToken

    w, client, _agents, _days, clock = site
    admin, ids, edu = w.tokens["admin"], w.systems, w.departments["edu"]
    auditor = w.token("auditor", "admin")
    w.token("edu-op-2", "dept_operator", ["edu"])  # the highest token id so far
    r = client.post("/api/v1/notices", json={"department_id": edu}, headers=bearer(admin))
    assert r.status_code == 201, r.text
    nid = r.json()["id"]

    def review(system: str, token: str) -> dict:
        r = client.post(f"/api/v1/systems/{ids[system]}/zombie/reviews",
                        json={"decision": "dismiss", "reason": "在用，附使用记录"}, headers=bearer(w.tokens[token]))
        assert r.status_code == 201, r.text
        return r.json()

    by_admin = review("archive", "auditor")
    by_op2 = review("etax", "edu-op-2")
    by_op = review("lab", "edu-op")
    assert [x["reviewer_role"] for x in (by_admin, by_op2, by_op)] == ["admin", "dept_operator", "dept_operator"]

    with db.session(write=True) as s:
        tokens = {t.name: t for t in s.exec(select(ApiToken))}
        op2_id = tokens["edu-op-2"].id
        s.delete(tokens["edu-op-2"])
        tokens["edu-op"].role = "admin"
        s.add(tokens["edu-op"])
    w.token("new-admin", "admin")
    with db.session(write=True) as s:
        new_id = s.exec(select(ApiToken.id).where(ApiToken.name == "new-admin")).one()
        s.delete(s.exec(select(ApiToken).where(ApiToken.name == "auditor")).one())
    if db.is_sqlite:
        assert new_id == op2_id, "SQLite hands the freed highest id to the next token"
    # what the read-time rule (kept as 0014's backfill rule) makes of the three reviews now
    with db.session() as s:
        token_roles = {t.id: t.role for t in s.exec(select(ApiToken))}
    rule = _migration("0014_zombie_reviewer_role").backfill_role
    assert rule(by_admin["reviewer"], token_roles) == "dept_operator"
    assert rule(by_op["reviewer"], token_roles) == "admin"
    assert rule(by_op2["reviewer"], token_roles) == ("admin" if db.is_sqlite else "dept_operator")

    # only the admin's dismissal closes its problem, at its time
    assert _verify(client, w, T0 + timedelta(days=1), clock) == {"fixed": 1, "open": 3, "overdue": 0, "escalated": 0}
    items = _items(client, nid, admin)
    assert {k: v["state"] for k, v in items.items()} == {
        "zombie system old-portal": "open", "suspected zombie system archive": "fixed",
        "suspected zombie system lab": "open", "suspected zombie system etax": "open"}
    assert datetime.fromisoformat(items["suspected zombie system archive"]["fixed_at"]) == datetime.fromisoformat(
        by_admin["at"])
    # the next notice lists the department-dismissed systems again, not the authority-dismissed one
    r = client.post("/api/v1/notices", json={"department_id": edu}, headers=bearer(admin))
    assert {i["title"]["en"] for i in r.json()["items"]} == {
        "zombie system old-portal", "suspected zombie system lab", "suspected zombie system etax"}
    # the answers show the recorded role: the review list, and the verdict's review
    listed = client.get(f"/api/v1/systems/{ids['lab']}/zombie/reviews", headers=bearer(admin)).json()
    assert [(x["reviewer"], x["reviewer_role"]) for x in listed] == [(by_op["reviewer"], "dept_operator")]
    verdict = client.get(f"/api/v1/systems/{ids['archive']}/zombie", headers=bearer(admin)).json()
    assert (verdict["review"]["reviewer_role"], verdict["review"]["current"]) == ("admin", True)
    # the deleted admin token's secret no longer authenticates
    assert client.get("/api/v1/zombie", headers=bearer(auditor)).status_code == 401


def test_0014_records_the_reviewer_role_both_ways(empty_url):
    """0014 adds zombie_reviews.reviewer_role, filled for the stored reviews by the read-time rule (cli: admin; a
    token that exists with role admin: admin; the rest dept_operator), NOT NULL and one of the two roles after;
    back down the column goes and every review stays."""
    from sentinel.store.db import Database, downgrade, head_revision, upgrade
    from sentinel.store.models import ApiToken, Department, System, ZombieReview

    db = Database(empty_url)
    try:
        assert upgrade(db, "0013") == "0013"
        now = datetime.now(timezone.utc)
        R = ZombieReview.__table__
        # the table as 0013 left it (the model has one column more)
        before_0014 = sa.table("zombie_reviews", *(sa.column(c.name, c.type) for c in R.columns
                                                   if c.name not in ("id", "reviewer_role")))
        with db.write() as conn:
            d = conn.execute(insert(Department.__table__).values(name="d", title="", created_at=now)
                             ).inserted_primary_key[0]
            s = conn.execute(insert(System.__table__).values(
                name="s", department_id=d, title="", level=3, s_grade=3, a_grade=2, label="S3A2", owner="", zones=[],
                scan_scope=[], chain_head="0" * 64, created_at=now, updated_at=now)).inserted_primary_key[0]

            def token(name: str, role: str) -> int:
                return conn.execute(insert(ApiToken.__table__).values(
                    name=name, token_hash=name.ljust(64, "0"), role=role, all_departments=role == "admin",
                    created_by="cli:test", created_at=now)).inserted_primary_key[0]

            a, op = token("a", "admin"), token("op", "dept_operator")
            reviewers = ["cli:root", f"token:{a}:a", f"token:{op}:op", "token:999:gone", "token:x:odd", "someone"]
            for n, reviewer in enumerate(reviewers):
                conn.execute(before_0014.insert().values(
                    system_id=s, department_id=d, decision="dismiss" if n % 2 else "confirm", verdict="suspect",
                    reason=f"r{n}", evidence={"n": n}, reviewer=reviewer, at=now + timedelta(minutes=n)))
        assert "reviewer_role" not in {c["name"] for c in inspect(db.engine).get_columns("zombie_reviews")}

        assert upgrade(db) == head_revision()
        with db.read() as conn:
            got = conn.execute(select(R.c.reviewer, R.c.reviewer_role, R.c.reason).order_by(R.c.id)).all()
        assert [(g.reviewer, g.reviewer_role) for g in got] == list(zip(reviewers, [
            "admin", "admin", "dept_operator", "dept_operator", "dept_operator", "dept_operator"], strict=True))
        assert [g.reason for g in got] == [f"r{n}" for n in range(len(reviewers))]
        checks = {c["name"] for c in inspect(db.engine).get_check_constraints("zombie_reviews")}
        assert {"ck_zombie_reviews_decision", "ck_zombie_reviews_reviewer_role"} <= checks, checks
        assert "ck_zombie_reviews_ck_zombie_reviews_decision" not in checks  # 0010's name, the models' now
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("zombie_reviews")}
        assert {"ix_zombie_reviews_system", "ix_zombie_reviews_department_id"} <= indexes, indexes
        row = dict(system_id=s, department_id=d, decision="dismiss", verdict="zombie", reason="x", evidence={},
                   reviewer="token:1:a", at=now)
        for bad in ({}, {"reviewer_role": "assessor"}):  # NOT NULL, and only the roles that may review
            with pytest.raises(IntegrityError):
                with db.write() as conn:
                    conn.execute(R.insert().values(**row, **bad))
        with db.write() as conn:
            conn.execute(R.insert().values(**row, reviewer_role="admin"))

        assert downgrade(db, "0013") == "0013"
        assert "reviewer_role" not in {c["name"] for c in inspect(db.engine).get_columns("zombie_reviews")}
        assert "ck_zombie_reviews_decision" in {c["name"] for c in
                                                inspect(db.engine).get_check_constraints("zombie_reviews")}
        with db.read() as conn:
            kept = conn.exec_driver_sql("SELECT reviewer FROM zombie_reviews ORDER BY id").scalars().all()
        assert kept == reviewers + ["token:1:a"]
        assert upgrade(db) == head_revision()
    finally:
        db.dispose()
