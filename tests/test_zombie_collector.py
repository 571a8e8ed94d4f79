"""Zombie-system detection end to end, on SQLite and PostgreSQL: five weeks of utilisation and daily inventories of a
cloud of three departments, simulated through the real ingest path (signed envelopes from enrolled agents, the
collector's clock walking with them; each inventory's upkeep facts made by the agent's own probes from a host
root holding what dpkg, the kernel and wtmp would hold), then each rule, verdict and roll-up asserted through the
API, the reviews (审) and the decommission list (清) with their scoping and audit, and the figures in /metrics."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from sentinel.agent import upkeep
from sentinel.collector.app import create_app
from sentinel.collector.settings import CollectorSettings
from sentinel.hostview import RootHost
from sentinel.store.models import UtilisationDay, UtilisationSample
from sentinel.wiring import exporters
from sentinel.zombie import ZombieSettings
from tests.collector_helpers import World, audit_rows, bearer, envelope, install_test_baselines, sign
from tests.obs_support import need
from tests.test_zombie_agent import make_wtmp

pytest_plugins = ["tests.dbfixtures"]

REPORTS = "/api/v1/agent/reports"
MB = 1024 * 1024
NOW = datetime.now(timezone.utc)
TODAY = NOW.date()
START = TODAY - timedelta(days=35)  # five weeks of history, the last 14 whole days judged
STEP = timedelta(minutes=10)


def _day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


@dataclass
class Use:
    """What a host's samples show on a day: None for a day the agent did not run."""

    cpu: float
    net_bytes: int  # per day, sent + received
    inbound: Optional[int] = 0
    sessions: int = 0
    hours: int = 24  # the first N hours of the day have samples


@dataclass
class HostSpec:
    name: str
    system: str
    use: Callable[[int], Optional[Use]]  # day offset (-35..-1) -> the day's use
    packages: Optional[int] = None  # days before today of the last package change; None: no package database
    config: int = 30
    kernel: int = 30
    logins_per_week: int = 0  # distinct users, each logging in once a week
    sessions_days: tuple[int, ...] = ()
    old_agent: bool = False  # an agent from before upkeep facts and inbound connections
    samples: bool = True
    enrolled: object = field(default=None)


def _busy(_d: int) -> Use:
    return Use(cpu=35.0, net_bytes=3000 * MB, inbound=20, sessions=1)


def _idle(_d: int) -> Use:
    return Use(cpu=0.8, net_bytes=1 * MB, inbound=0)


def _web2(d: int) -> Use:  # idle 5 of the last 14 days: AWS's floor flags it, sentinel's default does not
    return Use(cpu=2.0, net_bytes=1 * MB) if -14 <= d <= -10 else Use(cpu=40.0, net_bytes=2000 * MB, inbound=9)


def _lab1(d: int) -> Optional[Use]:  # the agent was off for 5 days and ran 10 hours on 2 more
    if -14 <= d <= -10:
        return None
    return Use(cpu=0.5, net_bytes=MB, inbound=None, hours=10 if d in (-9, -8) else 24)


def _lab2(_d: int) -> Use:  # idle machine, but other hosts keep connecting to its service
    return Use(cpu=1.0, net_bytes=2 * MB, inbound=30)


HOSTS = [
    HostSpec("web-1", "his", _busy, packages=3, config=10, kernel=40, logins_per_week=3),
    HostSpec("web-2", "his", _web2, packages=3, config=10, kernel=40, logins_per_week=2),
    HostSpec("portal-1", "old-portal", _idle, packages=400, config=300, kernel=500),
    HostSpec("arch-1", "archive", _idle, packages=2, config=200, kernel=400),
    HostSpec("lab-1", "lab", _lab1, old_agent=True),
    HostSpec("lab-2", "lab", _lab2, packages=400, config=400, kernel=600),
    HostSpec("tax-1", "etax", _idle, packages=300, config=300, kernel=400, sessions_days=(-5,)),
    HostSpec("tax-2", "etax", _idle, packages=5, config=5, kernel=100, samples=False),
]
SYSTEMS = {"his": "health", "old-portal": "health", "archive": "edu", "lab": "edu", "etax": "tax"}


class SimClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _host_root(base: Path, spec: HostSpec) -> Path:
    """What the host's disk holds: dpkg's database and a package's file list dated at the last change, /etc dated
    at the last configuration change, the kernel's modules at its install, and wtmp with the host's logins."""
    root = base / spec.name
    def stamp(path: Path, days: int) -> None:
        t = (NOW - timedelta(days=days)).timestamp()
        os.utime(path, (t, t))
    if spec.packages is not None:
        (root / "var/lib/dpkg/info").mkdir(parents=True)
        (root / "var/lib/dpkg/status").write_text("")
        listing = root / "var/lib/dpkg/info/base-files.list"
        listing.write_text("/etc\n")
        stamp(listing, spec.packages)
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text(spec.name + "\n")
    stamp(root / "etc/hostname", spec.config)
    stamp(root / "etc", spec.config)
    modules = root / "lib/modules/6.1.0-28-amd64"
    modules.mkdir(parents=True)
    stamp(modules, spec.kernel)
    logins = []
    for week in range(11):
        for user in range(spec.logins_per_week):
            logins.append((NOW - timedelta(days=7 * week + 1, hours=user), f"user{user}"))
    if spec.name == "portal-1":
        logins.append((NOW - timedelta(days=70), "admin"))
    make_wtmp(root / "var/log/wtmp", logins, boot=NOW - timedelta(days=80))
    return root


def _samples(spec: HostSpec, day: int) -> list[dict]:
    use = spec.use(day)
    if use is None or not spec.samples:
        return []
    start = datetime.combine(_day(day), datetime.min.time(), tzinfo=timezone.utc)
    n = use.hours * 6
    out = []
    for i in range(n):
        at = start + i * STEP + timedelta(minutes=3)
        s = {"at": at.isoformat().replace("+00:00", "Z"), "cpu_percent": use.cpu, "memory_percent": 30.0,
             "net_bytes_sent": use.net_bytes // n // 2, "net_bytes_recv": use.net_bytes // n // 2,
             "logins": 1 if day in spec.sessions_days and i == 60 else use.sessions}
        if not spec.old_agent:
            s["inbound_connections"] = use.inbound
        out.append(s)
    return out


def _inventory(spec: HostSpec, root: Path, at: datetime) -> dict:
    body = {"os": {"hostname": spec.name, "os_id": "debian", "os_version": "12", "os_name": "Debian GNU/Linux 12",
                   "family": "debian", "arch": "x86_64", "kernel": "6.1.0-28-amd64"},
            "arch": "x86_64", "cpu_model": None, "cpu_count": 2, "memory_bytes": 4 << 30, "packages_count": 300,
            "addresses": []}
    if not spec.old_agent:
        body["upkeep"] = upkeep.collect(RootHost(str(root)), now=at)
    return body


@pytest.fixture
def cloud(db, tmp_path):
    w = World(db)
    for dept in ("health", "edu", "tax"):
        w.department(dept)
    for name, dept in SYSTEMS.items():
        w.system(name, dept)
    w.token("admin", "admin")
    w.token("health-op", "dept_operator", ["health"])
    w.token("edu-op", "dept_operator", ["edu"])
    w.token("health-ro", "readonly", ["health"])
    install_test_baselines(tmp_path / "state")
    settings = CollectorSettings(state_dir=tmp_path / "state", metrics_cache_seconds=0, agent_rate=0, source_rate=0)
    app = create_app(settings, exporters=exporters(), db=db)
    clock = SimClock(datetime.combine(START, datetime.min.time(), tzinfo=timezone.utc))
    with TestClient(app) as client:
        ingestor = app.state.ingestor
        ingestor.clock = ingestor.verifier.clock = clock
        agents = {spec.name: w.enroll(client, spec.system, spec.name) for spec in HOSTS}
        w.agents = agents  # the Done-when test signs host reports as these hosts
        roots = {spec.name: _host_root(tmp_path / "roots", spec) for spec in HOSTS}

        def post(agent, kind: str, body: dict, at: datetime) -> None:
            clock.now = at
            raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind=kind, sent_at=at))
            r = client.post(REPORTS, content=raw, headers=headers)
            assert r.status_code == 202, r.text

        for offset in range(-35, 0):  # each simulated day: the inventory at 02:00, samples twice a day
            midnight = datetime.combine(_day(offset), datetime.min.time(), tzinfo=timezone.utc)
            for spec in HOSTS:
                agent = agents[spec.name]
                post(agent, "inventory", _inventory(spec, roots[spec.name], midnight + timedelta(hours=2)),
                     midnight + timedelta(hours=2))
                samples = _samples(spec, offset)
                for half in (samples[:72], samples[72:]):
                    if half:
                        post(agent, "utilisation", {"samples": half}, midnight + timedelta(hours=12 if half is
                                                                                           samples[:72] else 24))
        for spec in HOSTS:  # today's inventory, a minute ago
            post(agents[spec.name], "inventory", _inventory(spec, roots[spec.name], NOW - timedelta(minutes=1)),
                 NOW - timedelta(minutes=1))
        clock.now = datetime.now(timezone.utc)
        yield w, client, app, {name: bearer(secret) for name, secret in w.tokens.items()}


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["system"]: r for r in rows}


def _host(system: dict, name: str) -> dict:
    (h,) = [h for h in system["hosts"] if h["host"] == name]
    return h


def _signals(host: dict) -> dict[str, dict]:
    return {s["name"]: s for s in host["signals"]}


def test_a_simulated_cloud_judged_rule_by_rule(cloud, db):
    w, client, app, auth = cloud
    r = client.get("/api/v1/zombie", headers=auth["admin"])
    assert r.status_code == 200, r.text
    systems = _by_name(r.json())
    assert {name: s["verdict"] for name, s in systems.items()} == {
        "his": "in_use", "old-portal": "zombie", "archive": "suspect", "lab": "suspect", "etax": "suspect"}
    assert systems["old-portal"]["verdict_zh"] == "僵尸" and systems["archive"]["verdict_zh"] == "疑似僵尸"
    his = systems["his"]
    assert his["window_start"] == (TODAY - timedelta(days=14)).isoformat() and his["window_end"] == TODAY.isoformat()

    # idle: daily CPU and network over the whole days the samples cover (the 10-minute samples cover 24 hours)
    web1, web2 = _signals(_host(his, "web-1")), _signals(_host(his, "web-2"))
    assert web1["idle"]["state"] == "no" and web1["idle"]["facts"]["covered_days"] == 14
    assert web1["idle"]["facts"]["idle_days"] == 0
    assert web1["idle"]["facts"]["aws_trusted_advisor_low_utilisation"] is False
    day = web1["idle"]["facts"]["days"][0]
    assert day["day"] == _day(-14).isoformat() and day["samples"] == 144 and day["hours"] == 24
    assert day["cpu_avg"] == 35.0 and day["net_bytes"] == 144 * 2 * (3000 * MB // 144 // 2)  # what was sent
    assert web2["idle"]["state"] == "no" and web2["idle"]["facts"]["idle_days"] == 5
    assert web2["idle"]["facts"]["aws_trusted_advisor_low_utilisation"] is True, "AWS's floor flags 5 of 14 days"
    assert _host(his, "web-2")["verdict"] == "in_use" and _host(his, "web-2")["idle_days"] == 5

    portal = _signals(_host(systems["old-portal"], "portal-1"))
    assert portal["idle"]["state"] == "yes" and portal["idle"]["facts"]["idle_days"] == 14
    assert portal["idle"]["facts"]["first_idle_day"] == _day(-14).isoformat()
    # stale: package, configuration and kernel ages as the agent's probes read them from the host's disk
    stale = portal["stale"]
    assert stale["state"] == "yes"
    assert stale["facts"]["packages"]["age_days"] == 400 and stale["facts"]["config"]["age_days"] == 300
    assert stale["facts"]["kernel"]["age_days"] == 500
    assert stale["facts"]["package_source"] == "/var/lib/dpkg/info/base-files.list"
    assert web1["stale"]["state"] == "no" and "3 days ago" in web1["stale"]["reason_en"]
    # unused: whole weeks of login records, and the inbound connections the samples saw
    assert portal["unused"]["state"] == "yes" and len(portal["unused"]["facts"]["weeks"]) == 4
    assert portal["unused"]["facts"]["last_login"].startswith((NOW - timedelta(days=70)).date().isoformat())
    assert web1["unused"]["state"] == "no"  # 20 inbound connections a day
    arch = _signals(_host(systems["archive"], "arch-1"))
    assert (arch["idle"]["state"], arch["stale"]["state"], arch["unused"]["state"]) == ("yes", "no", "yes")
    assert "2 days ago" in arch["stale"]["reason_en"], "unattended upgrades keep an idle host maintained"

    # missing data is never idle: an old agent off for 5 days and on for 10 hours on 2
    lab = systems["lab"]
    lab1 = _host(lab, "lab-1")
    s1 = _signals(lab1)
    assert s1["idle"]["state"] == "unknown" and s1["idle"]["facts"]["covered_days"] == 7
    assert s1["idle"]["facts"]["idle_days"] == 7 and s1["idle"]["facts"]["uncovered_days"] == 7
    assert [d["hours"] for d in s1["idle"]["facts"]["days"] if d["hours"] < 24] == [10, 10]
    assert s1["stale"]["state"] == "unknown" and s1["unused"]["state"] == "unknown"
    assert lab1["verdict"] == "unknown"
    lab2 = _signals(_host(lab, "lab-2"))
    assert lab2["unused"]["state"] == "no" and lab2["unused"]["facts"]["inbound_max"] == 30
    assert _host(lab, "lab-2")["verdict"] == "suspect"  # idle and stale, but served: a suspect, not a zombie

    etax = systems["etax"]
    tax1 = _signals(_host(etax, "tax-1"))
    assert tax1["unused"]["state"] == "unknown", "sessions the samples saw contradict empty login records"
    assert tax1["unused"]["facts"]["contradiction"]["sessions_day"] == _day(-5).isoformat()
    assert _host(etax, "tax-1")["verdict"] == "suspect"
    tax2 = _host(etax, "tax-2")  # no samples ever: its idleness is unknown, and it says so
    assert _signals(tax2)["idle"]["state"] == "unknown" and tax2["idle_days"] is None
    assert _signals(tax2)["idle"]["facts"]["uncovered_days"] == 14 and tax2["verdict"] == "unknown"

    _reviews_and_lists(w, client, db, auth)
    _metrics(client, app, db)
    _evidence(db)


def _reviews_and_lists(w, client, db, auth):
    ids = w.systems
    r = client.get("/api/v1/zombie", headers=auth["edu-op"])
    assert sorted(s["system"] for s in r.json()) == ["archive", "lab"], "a department sees its own systems"
    r = client.get("/api/v1/zombie", params={"verdict": "zombie"}, headers=auth["health-ro"])
    assert [s["system"] for s in r.json()] == ["old-portal"]
    # in department and system name order, paged; the filter before the page
    r = client.get("/api/v1/zombie", params={"limit": 2, "offset": 1}, headers=auth["admin"])
    assert [s["system"] for s in r.json()] == ["lab", "his"] and all(s["hosts"][0]["signals"] for s in r.json())
    r = client.get("/api/v1/zombie", params={"verdict": "suspect", "offset": 1}, headers=auth["admin"])
    assert [s["system"] for s in r.json()] == ["lab", "etax"]
    assert client.get(f"/api/v1/systems/{ids['archive']}/zombie", headers=auth["health-op"]).status_code == 404
    # narrowed to a department: one's own, or nothing for another's
    edu, health = w.departments["edu"], w.departments["health"]
    r = client.get("/api/v1/zombie", params={"department_id": edu}, headers=auth["admin"])
    assert sorted(s["system"] for s in r.json()) == ["archive", "lab"]
    assert client.get("/api/v1/zombie", params={"department_id": health}, headers=auth["edu-op"]).json() == []

    url = f"/api/v1/systems/{ids['archive']}/zombie/reviews"
    body = {"decision": "confirm", "reason": "档案系统已迁移至新平台，停用"}
    assert client.post(url, json=body, headers=auth["health-op"]).status_code == 404
    r = client.post(f"/api/v1/systems/{ids['old-portal']}/zombie/reviews", json=body, headers=auth["health-ro"])
    assert r.status_code == 403
    r = client.post(f"/api/v1/systems/{ids['his']}/zombie/reviews", json=body, headers=auth["health-op"])
    assert r.status_code == 409 and "in_use" in r.json()["detail"]
    assert client.post(url, json={"decision": "confirm", "reason": ""}, headers=auth["edu-op"]).status_code == 422
    r = client.post(url, json=body, headers=auth["edu-op"])
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "suspect" and r.json()["reviewer"].endswith(":edu-op")

    edu = w.departments["edu"]
    r = client.get(f"/api/v1/departments/{edu}/decommission", headers=auth["edu-op"])
    assert r.status_code == 200, r.text
    (item,) = r.json()
    assert item["system"] == "archive" and item["reason"] == body["reason"] and item["verdict"] == "suspect"
    assert item["hosts"] == [{"host": "arch-1", "verdict": "suspect", "idle_days": 14,
                              "signals": {"idle": "yes", "stale": "no", "unused": "yes"}}]
    assert client.get(f"/api/v1/departments/{edu}/decommission", headers=auth["health-op"]).status_code == 404
    assert client.get(f"/api/v1/departments/{w.departments['health']}/decommission",
                      headers=auth["health-op"]).json() == []

    r = client.post(f"/api/v1/systems/{ids['old-portal']}/zombie/reviews",
                    json={"decision": "dismiss", "reason": "年度报表系统，每年一月使用"}, headers=auth["admin"])
    assert r.status_code == 201, r.text
    portal = client.get(f"/api/v1/systems/{ids['old-portal']}/zombie", headers=auth["health-ro"]).json()
    assert portal["review"]["decision"] == "dismiss" and portal["review"]["current"] is True
    history = client.get(f"/api/v1/systems/{ids['old-portal']}/zombie/reviews", headers=auth["health-ro"]).json()
    assert [h["decision"] for h in history] == ["dismiss"]

    rows = audit_rows(db, "zombie.review")
    assert [(row.outcome, row.target.split(":")[-1]) for row in rows] == [("ok", "archive"), ("ok", "old-portal")]
    assert "confirm suspect" in rows[0].detail
    refused = [row for row in audit_rows(db) if row.target.endswith("/zombie/reviews") and row.outcome != "ok"]
    assert sorted(row.status_code for row in refused) == [403, 404, 409, 422]


def _metrics(client, app, db):
    token = (Path(app.state.settings.state_dir) / "metrics-token").read_text().strip()
    r = client.get("/metrics", headers=bearer(token))
    assert r.status_code == 200, r.text
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=r.content, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    samples = [s for f in text_string_to_metric_families(r.text) for s in f.samples]
    verdicts = {s.labels["system"]: s.labels["verdict"] for s in samples
                if s.name == "sentinel_system_zombie_verdict" and s.value == 1}
    assert verdicts == {"his": "in_use", "old-portal": "zombie", "archive": "suspect", "lab": "suspect",
                        "etax": "suspect"}
    assert len([s for s in samples if s.name == "sentinel_system_zombie_verdict"]) == 4 * len(SYSTEMS)
    reviewed = {(s.labels["system"], s.labels["decision"]) for s in samples
                if s.name == "sentinel_system_zombie_reviewed" and s.value == 1}
    assert reviewed == {("archive", "confirmed"), ("old-portal", "dismissed")}
    hosts = {s.labels["host"]: s.labels["verdict"] for s in samples
             if s.name == "sentinel_host_zombie_verdict" and s.value == 1}
    assert hosts["portal-1"] == "zombie" and hosts["lab-1"] == "unknown" and hosts["web-2"] == "in_use"
    idle = {s.labels["host"]: s.value / 86400 for s in samples if s.name == "sentinel_host_idle_seconds"}
    assert idle["web-2"] == 5 and idle["portal-1"] == 14 and "tax-2" not in idle, "no samples: no figure, not 0"


def _evidence(db):
    """The evidence export carries the verdict, its hosts' signals and the review; HTML shows them in both
    languages; an export ending in the past says why it has none."""
    from sentinel import signing
    from sentinel.cli_evidence import collector_identity
    from sentinel.evidence.collect import collect
    from sentinel.exporters.evidence.html import render_html
    from sentinel.exporters.evidence.jsonexport import export_json, load_json

    ident = collector_identity(signing.generate_key())
    with db.session() as session:
        ev = collect(session, "old-portal", collector=ident)
        past = collect(session, "old-portal", collector=ident, end=NOW - timedelta(days=3))
    assert ev.zombie is not None and ev.zombie.verdict.value == "zombie"
    assert ev.zombie.review is not None and ev.zombie.review.decision == "dismiss"
    (host,) = ev.zombie.hosts
    assert [s.state for s in host.signals] == ["yes", "yes", "yes"]
    again = load_json(export_json(ev))
    assert again.zombie == ev.zombie, "evidence.json keeps the verdict as judged"
    zh, en = render_html(ev, "zh"), render_html(ev, "en")
    assert "僵尸信息系统判定" in zh and "年度报表系统，每年一月使用" in zh and "运维更新已停止" in zh
    assert "Zombie-system verdict" in en and "maintenance has stopped" in en
    assert past.zombie is None and any("not included" in n for n in past.notes)


def test_the_days_roll_up_is_the_samples_stored_and_migration_0010_fills_it(store_url, tmp_path):
    """0010 rolls up the samples stored before it, and ingest keeps each day's row equal to its samples' own
    figures as more arrive (recomputed here from utilisation_samples)."""
    from sentinel.store.db import Database, downgrade, upgrade
    from sentinel.store.models import Host

    db = Database(store_url)
    try:
        downgrade(db, "0009")
        w = World(db)
        w.department("d")
        w.system("s", "d")
        install_test_baselines(tmp_path / "state")
        at0 = datetime(2026, 10, 1, 22, 30, tzinfo=timezone.utc)
        with TestClient(create_app(CollectorSettings(state_dir=tmp_path / "state"), exporters=exporters(), db=db,
                                   check_schema=False)) as client:
            agent = w.enroll(client, "s", "h")
        with db.write() as conn:
            host_id = conn.execute(select(Host.__table__.c.id)).scalar_one()
            conn.execute(insert(UtilisationSample.__table__), [
                {"host_id": host_id, "department_id": agent.department_id, "report_id": "r",
                 "at": at0 + timedelta(hours=i), "cpu_percent": float(i), "memory_percent": 10.0,
                 "net_bytes_sent": 100 * i, "net_bytes_recv": 1, "logins": i % 3} for i in range(4)])
        upgrade(db)
        days = _days(db)
        assert sorted(days) == [date(2026, 10, 1), date(2026, 10, 2)]
        first, second = days[date(2026, 10, 1)], days[date(2026, 10, 2)]
        assert (first.samples, first.hours_mask, first.cpu_sum, first.net_bytes, first.logins_max) == (
            2, (1 << 22) | (1 << 23), 1.0, 100 + 2, 1)
        assert (second.samples, second.hours_mask, second.cpu_sum, second.net_bytes, second.logins_max) == (
            2, 1 | 2, 5.0, 500 + 2, 2)
        assert first.inbound_max is None and second.inbound_max is None

        more = [{"at": (at0 + timedelta(hours=h)).isoformat(), "cpu_percent": 50.0, "memory_percent": 1.0,
                 "net_bytes_sent": 7, "net_bytes_recv": 3, "logins": 4, **({"inbound_connections": n} if n is not None
                                                                           else {})}
                for h, n in ((5, 3), (6, None), (7, 9), (8, 1))]
        with TestClient(create_app(CollectorSettings(state_dir=tmp_path / "state"), exporters=exporters(),
                                   db=db)) as client:
            raw, headers = sign(agent.key, envelope(agent.agent_id, {"samples": more}, kind="utilisation"))
            assert client.post(REPORTS, content=raw, headers=headers).status_code == 202
            assert client.post(REPORTS, content=raw, headers=headers).status_code == 200, "a resend is not stored"
        days = _days(db)
        second = days[date(2026, 10, 2)]
        with db.read() as conn:
            stored = [r for r in conn.execute(select(UtilisationSample.__table__))
                      if r.at.astimezone(timezone.utc).date() == date(2026, 10, 2)]
        assert second.samples == len(stored) == 6
        assert second.hours_mask == sum({1 << r.at.astimezone(timezone.utc).hour for r in stored})
        assert second.cpu_sum == sum(r.cpu_percent for r in stored)
        assert second.net_bytes == sum(r.net_bytes_sent + r.net_bytes_recv for r in stored)
        assert second.logins_max == max(r.logins for r in stored) == 4
        assert second.inbound_max == 9 and days[date(2026, 10, 1)].samples == 2
    finally:
        db.dispose()


def _days(db) -> dict:
    with db.read() as conn:
        return {r.day: r for r in conn.execute(select(UtilisationDay.__table__))}


def test_site_thresholds_never_go_past_the_cloud_providers_floor():
    ZombieSettings(idle_min_days=4, idle_cpu_percent=10, idle_net_bytes=5 * MB)  # AWS Trusted Advisor's own rule
    for loose in ({"idle_cpu_percent": 10.5}, {"idle_net_bytes": 6 * MB}, {"idle_min_days": 3},
                  {"window_days": 30, "idle_min_days": 8}, {"suspect_signals": 3, "zombie_signals": 2}):
        with pytest.raises(ValueError):
            ZombieSettings(**loose)
    assert ZombieSettings(window_days=28, idle_min_days=8).idle_min_days == 8
    with pytest.raises(ValueError):
        CollectorSettings(zombie={"idle_cpu_percent": 50})


# ---- the cloud as the operator is asked for it (issue 16's Done when) ---------------------------------------------

def _dr_baseline(name: str, backups: list[dict], rpo_hours: float) -> str:
    """A site baseline of the three 数据备份恢复 checks with the copies this host declares (docs/backups.md)."""
    copies = {"backups": backups, "site": "dc-a", "rpo_hours": rpo_hours}

    def check(cid: str, judge: Optional[str], field_: str, severity: str = "high") -> dict:
        params = {**copies, "judge": judge} if judge else {"databases": []}
        return {"id": cid, "title": {"zh": cid, "en": cid}, "probe": "backup.copies" if judge else "backup.replication",
                "params": params, "expect": {"fields": {field_: {"eq": True} if judge else {"ge": 1}}},
                "severity": severity, "rationale": {"zh": "数据备份恢复", "en": "disaster recovery"},
                "remediation": {"zh": "按 RPO 备份", "en": "back up within the RPO"}}

    doc = {"id": name, "version": "1", "title": {"zh": name, "en": name}, "standard": "GB/T 22239-2019", "level": 3,
           "os_families": ["debian", "rhel"], "covers": ["ces.backup"],
           "items": [{"ref": "ces.backup.local", "checks": [check("l3-br-backup-rpo", "local", "local_within_rpo")]},
                     {"ref": "ces.backup.offsite",
                      "checks": [check("l3-br-offsite-rpo", "offsite", "offsite_within_rpo")]},
                     {"ref": "ces.backup.hot-redundancy",
                      "checks": [check("l3-br-db-replica", None, "streaming", "medium")]}]}
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True)


def _backups(tmp: Path) -> dict:
    """Real repositories: restic at this site with a snapshot 3 h old, borg at the DR site (dc-b) with an archive
    30 h old, and a mysqldump file 50 h old; what the tools print is the truth the API is held to."""
    import json as json_
    import secrets
    import shutil

    for tool in ("restic", "borg"):
        if shutil.which(tool) is None:  # tests/setup-machine.sh installs them
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{tool} missing (tests/setup-machine.sh)")
    data = tmp / "dr-data"
    data.mkdir()
    (data / "records.csv").write_text("1,张三\n", encoding="utf-8")
    pw = {"nightly": secrets.token_urlsafe(18), "dr": secrets.token_urlsafe(18)}
    env = {**os.environ, "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / ".cache"), "BORG_BASE_DIR": str(tmp / "bb"),
           "TZ": "UTC", "RESTIC_PASSWORD": pw["nightly"], "BORG_PASSPHRASE": pw["dr"]}
    restic, borg, dumps = tmp / "restic", tmp / "borg", tmp / "dumps"
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def run(*argv: str) -> str:
        return subprocess.run(argv, env=env, check=True, capture_output=True, text=True, timeout=120).stdout

    run("restic", "init", "-r", str(restic))
    run("restic", "-r", str(restic), "backup", "--time",
        (now - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S"), str(data))
    run("borg", "init", "-e", "repokey", str(borg))
    run("borg", "create", "--timestamp", (now - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S"),
        f"{borg}::dr-30h", str(data))
    dumps.mkdir()
    dump = dumps / "etax-2026.sql.gz"
    dump.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    old = (now - timedelta(hours=50)).timestamp()
    os.utime(dump, (old, old))
    truth = {"restic": json_.loads(run("restic", "-r", str(restic), "snapshots", "--json", "--no-lock"))[0]["time"],
             "borg": json_.loads(run("borg", "list", "--json", str(borg)))["archives"][0]["time"] + "+00:00"}
    return {"restic": str(restic), "borg": str(borg), "dumps": str(dumps / "*.sql.gz"), "pw": pw, "truth": truth}


def test_the_operator_s_three_questions_through_the_api(cloud, db, tmp_path, monkeypatch):
    """Issue 16's Done when, on one seeded cloud of three departments (five weeks of utilisation and inventories
    through the real ingest path, above): which systems are suspected zombies and why, the 国产化 rates by
    department, and which systems miss their recovery point objective, each with the evidence a person can check.
    The DR facts are real: restic and borg repositories and a dump file made here, read by the shipped probes in
    host reports signed by the hosts' agents."""
    import time as time_

    import yaml

    from sentinel.baseline import load_baseline
    from sentinel.engine import run_baseline
    from sentinel.hostview import open_host
    from tests.collector_helpers import host_info as report_host

    w, client, app, auth = cloud
    clock = app.state.ingestor.clock
    state = Path(app.state.settings.state_dir)
    real = _backups(tmp_path)
    creds = tmp_path / "objects.yaml"
    creds.write_text(yaml.safe_dump({"backup": {"instances": {"nightly": {"password": real["pw"]["nightly"]},
                                                              "dr": {"password": real["pw"]["dr"]}}}}))
    creds.chmod(0o600)
    monkeypatch.setenv("SENTINEL_OBJECT_CREDENTIALS", str(creds))
    monkeypatch.setenv("TZ", "UTC")  # borg 1.2 prints naive local times; the probe reads them in the host's zone
    time_.tzset()
    nightly = {"name": "nightly", "tool": "restic", "repository": real["restic"], "site": "dc-a"}
    dr_copy = {"name": "dr", "tool": "borg", "repository": real["borg"], "site": "dc-b"}
    dump = {"name": "dump", "tool": "files", "paths": [real["dumps"]], "site": "dc-a"}
    # his: fresh local and a 30 h off-site copy against a 36 h RPO (meets); etax: its dump is 50 h old against 24 h
    # (misses); archive: nothing declared (unknown, and says where to declare); lab-2's off-site repository cannot
    # be opened with the passphrase it has (unknown); old-portal has sent no host report (unknown)
    plans = {"web-1": ("dr-his", [nightly, dr_copy], 36), "web-2": ("dr-his", [nightly, dr_copy], 36),
             "tax-1": ("dr-etax", [dump, dr_copy], 24), "arch-1": ("dr-archive", [], 24),
             "lab-1": ("dr-his", [nightly, dr_copy], 36),
             "lab-2": ("dr-lab2", [nightly, {**dr_copy, "name": "dr-lab"}], 36)}
    for name, backups, rpo in {p[0]: p for p in plans.values()}.values():
        (state / "baselines" / f"{name}.yaml").write_text(_dr_baseline(name, backups, rpo), encoding="utf-8")
    try:
        for host, (name, _, _) in plans.items():
            report = run_baseline(load_baseline(state / "baselines" / f"{name}.yaml"), open_host(None))
            body = report.model_copy(update={"host": report_host(host)}).model_dump(mode="json")
            agent = w.agents[host]
            clock.now = datetime.now(timezone.utc)
            raw, headers = sign(agent.key, envelope(agent.agent_id, body, report_id=body["report_id"],
                                                    sent_at=clock.now))
            r = client.post(REPORTS, content=raw, headers=headers)
            assert r.status_code == 202, r.text
    finally:
        monkeypatch.delenv("TZ")
        time_.tzset()

    # 国产化: today's inventories of three hosts name their OS and processor (what an agent's os-release and
    # /proc/cpuinfo give), recognised by the collector's shipped rules; the upkeep facts stay the hosts' own
    clock.now = datetime.now(timezone.utc)
    for spec, os_id, os_name, cpu in ((HOSTS[0], "kylin", "Kylin Linux Advanced Server V10", "HUAWEI Kunpeng 920"),
                                      (HOSTS[3], "openEuler", "openEuler 22.03 LTS", "Hygon C86 7285 32-core"),
                                      (HOSTS[6], "debian", "Debian GNU/Linux 12", "Intel(R) Xeon(R) Gold 6330")):
        body = _inventory(spec, tmp_path / "roots" / spec.name, clock.now)
        body["os"].update(os_id=os_id, os_name=os_name)
        body["cpu_model"] = cpu
        agent = w.agents[spec.name]
        raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind="inventory", sent_at=clock.now))
        assert client.post(REPORTS, content=raw, headers=headers).status_code == 202

    # 1. suspected zombies and why: the verdicts with each host's signals, their reasons and facts
    zombies = _by_name(client.get("/api/v1/zombie", headers=auth["admin"]).json())
    assert {n: s["verdict"] for n, s in zombies.items() if s["verdict"] in ("suspect", "zombie")} == {
        "old-portal": "zombie", "archive": "suspect", "lab": "suspect", "etax": "suspect"}
    arch = _signals(_host(zombies["archive"], "arch-1"))
    assert arch["idle"]["state"] == "yes" and arch["idle"]["facts"]["idle_days"] == 14 and arch["idle"]["reason_en"]
    assert arch["unused"]["state"] == "yes" and arch["unused"]["reason_zh"]

    # 2. 国产化 rates by department, by host: one domestic OS of three hosts in health and edu, none in tax
    rates = {d["department"]: d for d in client.get("/api/v1/domestic", headers=auth["admin"]).json()}
    assert [(d, _cat_rate(rates[d], "os")) for d in ("edu", "health", "tax")] == [
        ("edu", (3, 1)), ("health", (3, 1)), ("tax", (2, 0))]
    assert _cat_rate(rates["health"], "cpu") == (1, 1) and _cat_rate(rates["tax"], "cpu") == (1, 0)
    hosts = {h["host"]: h for h in client.get("/api/v1/domestic/hosts", headers=auth["admin"]).json()}
    assert {c["product"] for c in hosts["web-1"]["components"]} == {"kylin", "kunpeng"}
    assert {c["product"] for c in hosts["arch-1"]["components"]} == {"openeuler", "hygon"}

    # 3. which systems miss their RPO, with the copies, ages and stored results they are judged from
    r = client.get("/api/v1/dr", headers=auth["admin"])
    assert r.status_code == 200, r.text
    dr = _by_name(r.json())
    assert {n: s["verdict"] for n, s in dr.items()} == {
        "his": "meets", "old-portal": "unknown", "archive": "unknown", "lab": "unknown", "etax": "misses"}
    assert dr["etax"]["verdict_zh"] == "未满足恢复点目标" and dr["etax"]["rpo_hours"] == 24
    tax1 = _host(dr["etax"], "tax-1")
    assert tax1["verdict"] == "misses" and tax1["rpo_hours"] == 24
    assert any(x.startswith("l3-br-backup-rpo: failed at") and "local_within_rpo" in x for x in tax1["reasons"])
    dumped = {c["name"]: c for c in tax1["copies"]}
    assert dumped["dump"]["where"] == real["dumps"] and dumped["dump"]["backups"] == 1
    assert 49.9 < dumped["dump"]["age_hours"] < 50.5 and dumped["dump"]["within_rpo_at_check"] is False
    assert dumped["dr"]["offsite"] and dumped["dr"]["site"] == "dc-b"
    assert _host(dr["etax"], "tax-2")["verdict"] == "unknown", "no host report yet: unknown, never meets"
    assert "tax-1: l3-br-backup-rpo: failed" in " ".join(dr["etax"]["reasons"])
    web1 = _host(dr["his"], "web-1")
    copies = {c["name"]: c for c in web1["copies"]}
    assert copies["nightly"]["newest"] == _iso(real["truth"]["restic"]), "as restic snapshots prints it"
    assert copies["dr"]["newest"] == _iso(real["truth"]["borg"]) and copies["dr"]["offsite"], "as borg list prints it"
    assert 2.9 < copies["nightly"]["age_hours"] < 3.5 and 29.9 < copies["dr"]["age_hours"] < 30.5
    assert web1["copy_count"] == 2 and web1["offsite_count"] == 1 and web1["rpo_hours"] == 36
    local = next(c for c in web1["checks"] if c["check_id"] == "l3-br-backup-rpo")
    assert local["status"] == "pass" and local["run_id"] and local["checked_at"]
    assert any(e["source"].startswith(f"cmd: restic -r {real['restic']} snapshots") for e in local["evidence"])
    assert web1["replication"] == "none", "no database declared: not judged, and no error counted"
    arch1 = _host(dr["archive"], "arch-1")
    assert arch1["verdict"] == "unknown" and arch1["copies"] == []
    assert any("no backup declared for this host" in x and "override of l3-br-backup-rpo" in x
               for x in arch1["reasons"])
    lab2 = _host(dr["lab"], "lab-2")
    assert lab2["verdict"] == "unknown" and _host(dr["lab"], "lab-1")["verdict"] == "meets"
    assert any(x.startswith("l3-br-offsite-rpo: error:") and "dr-lab" in x for x in lab2["reasons"])
    assert _host(dr["old-portal"], "portal-1")["reasons"][0].startswith("l3-br-backup-rpo: no result")
    assert all(pw not in r.text for pw in real["pw"].values())
    # department scoping, as for /zombie and /domestic; the verdict filter
    assert sorted(_by_name(client.get("/api/v1/dr", headers=auth["edu-op"]).json())) == ["archive", "lab"]
    edu, health = w.departments["edu"], w.departments["health"]
    r = client.get("/api/v1/dr", params={"department_id": edu}, headers=auth["admin"])
    assert sorted(_by_name(r.json())) == ["archive", "lab"]
    assert client.get("/api/v1/dr", params={"department_id": health}, headers=auth["edu-op"]).json() == []
    missing = client.get("/api/v1/dr", params={"verdict": "misses"}, headers=auth["admin"]).json()
    assert [s["system"] for s in missing] == ["etax"]
    assert client.get(f"/api/v1/systems/{w.systems['etax']}/dr", headers=auth["health-op"]).status_code == 404
    one = client.get(f"/api/v1/systems/{w.systems['his']}/dr", headers=auth["health-ro"])
    assert one.status_code == 200 and one.json()["verdict"] == "meets"

    # the same in /metrics (promtool-clean): the verdicts, the RPO and the stalest newest backups
    token = (state / "metrics-token").read_text().strip()
    m = client.get("/metrics", headers=bearer(token))
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=m.content, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    samples = [s for f in text_string_to_metric_families(m.text) for s in f.samples]
    assert {s.labels["system"]: s.labels["verdict"] for s in samples
            if s.name == "sentinel_system_backup_rpo_verdict" and s.value == 1} == \
        {n: s["verdict"] for n, s in dr.items()}
    newest = {(s.labels["system"], s.labels["scope"]): s.value for s in samples
              if s.name == "sentinel_system_backup_newest_timestamp_seconds"}
    assert newest[("his", "local")] == datetime.fromisoformat(_iso(real["truth"]["restic"])).timestamp()
    assert newest[("etax", "offsite")] == datetime.fromisoformat(_iso(real["truth"]["borg"])).timestamp()
    rpo = {s.labels["system"]: s.value for s in samples if s.name == "sentinel_system_backup_rpo_seconds"}
    assert rpo["his"] == 36 * 3600 and rpo["etax"] == 24 * 3600 and "old-portal" not in rpo

    # and in the evidence export: the system's DR section, as judged at export time
    from sentinel import signing
    from sentinel.cli_evidence import collector_identity
    from sentinel.evidence.collect import collect
    from sentinel.exporters.evidence.html import render_html
    from sentinel.exporters.evidence.jsonexport import export_json, load_json

    with db.session() as session:
        ev = collect(session, "etax", collector=collector_identity(signing.generate_key()))
        past = collect(session, "etax", collector=collector_identity(signing.generate_key()),
                       end=datetime.now(timezone.utc) - timedelta(days=3))
    assert ev.dr is not None and ev.dr.verdict == "misses" and [h.host for h in ev.dr.hosts] == ["tax-1", "tax-2"]
    assert load_json(export_json(ev)).dr == ev.dr
    zh, en = render_html(ev, "zh"), render_html(ev, "en")
    assert "数据备份恢复" in zh and "未满足恢复点目标" in zh and real["dumps"] in zh
    assert "Disaster recovery" in en and "misses" in en
    assert past.dr is None and any("disaster-recovery verdict" in n for n in past.notes)


def _cat_rate(rates: dict, category: str) -> tuple[int, int]:
    (c,) = [c for c in rates["categories"] if c["category"] == category]
    return c["hosts"], c["hosts_domestic"]


def _iso(text: str) -> str:
    """A tool's time as the API writes it: UTC, whole seconds, with its offset."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
