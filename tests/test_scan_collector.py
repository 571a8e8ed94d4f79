"""Network scans through the collector.

In-process (TestClient, on SQLite and PostgreSQL, no packet sent anywhere): the schedule API and its checks, scope
refusals, the 409 when a scan is already running, and the system assessment combining two hosts' signed reports,
a manual verdict and a stored scan.

In the namespace lab (tests/netlab.py): the real `sentinel collector` runs inside the lab's scanner namespace (its
only interfaces are the lab's) and is driven over HTTP on that namespace's loopback: a scheduled scan, a triggered
scan with a second trigger refused while it runs, the diff after a listener stops, and scope refusals that are
audited and send no packet (the lab's counters).
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from sentinel import scoring
from sentinel.checks.network.findings import ServiceFinding
from sentinel.collector.scan_ingest import begin_scan, finish_scan
from sentinel.model import CheckResult, ItemResult, Verdict
from sentinel.store.models import ScanSchedule
from tests.collector_helpers import World, audit_rows, bearer, envelope, make_report, sign
from tests.netlab import REPO, lab  # noqa: F401  (module-scoped fixture)
from tests.scan_helpers import scan_report

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

@pytest.fixture
def his(db, make_client):
    """Departments health and edu; system `his` (scope 10.0.0.0/24) of health; tokens; a client with scans on
    but no scheduled scans. Nothing in-process may send a packet: every trigger below is refused before a scan."""
    w = World(db)
    w.department("health")
    w.department("edu")
    w.system("his", "health")
    w.token("admin", "admin")
    w.token("op", "dept_operator", ["health"])
    w.token("edu-op", "dept_operator", ["edu"])
    w.token("ro", "readonly", ["health"])
    return w, make_client(db, scans=True, scan_schedules=False), w.systems["his"]


# ---- schedule API -------------------------------------------------------------------------------------------


def test_schedule_api(his, db):
    w, client, sid = his
    path = f"/api/v1/systems/{sid}/scan-schedule"
    r = client.get(path, headers=bearer(w.tokens["ro"]))
    assert r.status_code == 200, r.text
    assert r.json() | {"scope": None} == {
        "system_id": sid, "configured": False, "enabled": False, "interval_seconds": None, "jitter_seconds": 0,
        "zone_baseline": "zone-egov-default", "zone": None, "scanner_zone": None, "tcp_ports": None,
        "udp_ports": None, "version_detection": True, "last_claimed_at": None, "next_run_at": None, "scope": None}
    good = {"interval_seconds": 3600, "jitter_seconds": 300, "zone": "dmz", "scanner_zone": "internet",
            "tcp_ports": "22,80,443,8000-8100", "udp_ports": "161"}
    for body, words in (({**good, "zone": "moon"}, "zone 'moon' is not in zone baseline zone-egov-default"),
                        ({**good, "zone_baseline": "nope"}, "zone baseline 'nope' is neither shipped"),
                        ({**good, "interval_seconds": None}, "an enabled schedule needs interval_seconds"),
                        ({**good, "jitter_seconds": 7200}, "jitter_seconds must not exceed interval_seconds"),
                        ({**good, "interval_seconds": 10}, "greater than or equal to 60"),
                        ({**good, "tcp_ports": "22,70000"}, "tcp_ports: bad port '70000'"),
                        ({**good, "zone_baseline": "../../etc/passwd"}, "String should match pattern")):
        r = client.put(path, json=body, headers=bearer(w.tokens["admin"]))
        assert r.status_code == 422 and words in r.text, (body, r.text)
    assert client.put(path, json=good, headers=bearer(w.tokens["ro"])).status_code == 403
    assert client.put(path, json=good, headers=bearer(w.tokens["edu-op"])).status_code == 404
    assert client.get(path, headers=bearer(w.tokens["edu-op"])).status_code == 404
    r = client.put(path, json=good, headers=bearer(w.tokens["admin"]))
    assert r.status_code == 200, r.text
    got = client.get(path, headers=bearer(w.tokens["admin"])).json()
    assert {k: got[k] for k in good} == good and got["configured"] and got["enabled"]
    assert got["scope"] == ["10.0.0.0/24"] and got["next_run_at"] is None, "this client runs no schedules"
    entry = audit_rows(db, "scan_schedule.update")[-1]
    assert entry.actor.endswith(":admin") and entry.detail.startswith("every 3600 s (+0-300 s), zone baseline "
                                                                   "zone-egov-default, zone dmz")


def test_a_schedule_firing_is_claimed_once(his, db, tmp_path):
    """Collector processes sharing a database (workers, replicas) run a firing once: the first claims it."""
    from sentinel.collector.scanner import ScanService
    from sentinel.collector.settings import CollectorSettings

    w, client, sid = his
    r = client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"interval_seconds": 600},
                   headers=bearer(w.tokens["admin"]))
    assert r.status_code == 200, r.text
    settings = CollectorSettings(state_dir=tmp_path / "s", scan_schedules=False)
    one, two = ScanService(db, settings), ScanService(db, settings)  # never started: nothing is scanned here
    now = datetime.now(timezone.utc)
    assert one._claim_schedule(sid, now) is not None
    assert two._claim_schedule(sid, now + timedelta(seconds=5)) is None, "the same firing, seen by another process"
    assert two._claim_schedule(sid, now + timedelta(seconds=301)) is not None, "half an interval later: the next one"
    client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"enabled": False, "interval_seconds": 600},
               headers=bearer(w.tokens["admin"]))
    assert one._claim_schedule(sid, now + timedelta(days=1)) is None, "a disabled schedule is never claimed"


def test_a_scheduled_scan_runs_credential_probes_only_while_the_system_has_them_on(his, db, tmp_path):
    """A schedule has no say in the credential probes: each firing reads the system's switch (issue 19 item 4),
    and its scan run records who enabled them. The scan itself is not run here (nothing is sent)."""
    from sentinel.collector.scan_ingest import fail_scan
    from sentinel.collector.scanner import ScanService
    from sentinel.collector.settings import CollectorSettings

    w, client, sid = his
    assert client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"interval_seconds": 600},
                      headers=bearer(w.tokens["admin"])).status_code == 200
    service = ScanService(db, CollectorSettings(state_dir=tmp_path / "s", scan_schedules=False))
    planned = []

    def execute(claim, plan, actor):  # instead of nmap: what the firing would scan with, then end the run
        planned.append(plan)
        fail_scan(db, claim.run_id, "not run in this test")

    service.execute = execute
    service.run_scheduled(sid)
    r = client.patch(f"/api/v1/systems/{sid}", json={"credential_probes": True}, headers=bearer(w.tokens["admin"]))
    assert r.status_code == 200, r.text
    with db.write() as conn:  # the next firing is due
        conn.execute(ScanSchedule.__table__.update().values(claimed_at=None))
    service.run_scheduled(sid)
    assert [p.options.credential_probes for p in planned] == [False, True]
    runs = client.get(f"/api/v1/systems/{sid}/scans", headers=bearer(w.tokens["admin"])).json()
    newest, oldest = runs[0], runs[-1]
    assert "credential_probes" not in oldest["args"] and oldest["args"]["options"]["credential_probes"] is False
    grant = newest["args"]["credential_probes"]
    assert grant["enabled_by"] == r.json()["credential_probes_by"] and grant["enabled_by"].endswith(":admin")
    assert grant["credentials"]["mysql"] == ["root (empty password)"]


# ---- trigger refusals (no scan is started, so nothing is sent) ----------------------------------------------------


def test_trigger_refusals(his, db):
    w, client, sid = his
    path = f"/api/v1/systems/{sid}/scans"
    op = bearer(w.tokens["admin"])  # scans are an admin's (tests/test_collector_writes.py)
    r = client.post(path, json={"targets": ["10.0.1.5"]}, headers=op)
    assert r.status_code == 422
    assert r.json()["detail"] == ("refused, outside scope 'his' (no packet was sent): 10.0.1.5 is not inside scope "
                                  "'his' [10.0.0.0/24]")
    r = client.post(path, json={"targets": ["10.0.0.0/16", "10.0.0.7"]}, headers=op)
    assert r.status_code == 422 and "10.0.0.0/16 is not inside scope" in r.json()["detail"]
    r = client.post(path, json={"targets": ["db.example.org"]}, headers=op)
    assert r.status_code == 422 and "not an IP address or CIDR block" in r.text
    assert client.post(path, json={}, headers=bearer(w.tokens["ro"])).status_code == 403
    assert client.post(path, json={}, headers=bearer(w.tokens["edu-op"])).status_code == 404
    refused = [a for a in audit_rows(db) if a.action == f"POST /api/v1/systems/{sid}/scans"]
    assert [(a.outcome, a.status_code) for a in refused] == [("rejected", 422)] * 3 + [("denied", 403),
                                                                                       ("rejected", 404)]
    assert "10.0.1.5 is not inside scope" in refused[0].detail
    # a system without a registered scope is never scanned
    client.patch(f"/api/v1/systems/{sid}", json={"scan_scope": []}, headers=op)
    r = client.post(path, json={}, headers=op)
    assert r.status_code == 422 and "has no scan_scope registered" in r.json()["detail"]
    assert client.get(path, headers=op).json() == [], "no scan run was created"


def test_scans_are_off_unless_the_operator_turns_them_on(db, make_client):
    w = World(db)
    w.department("health")
    sid = w.system("his", "health")
    op = bearer(w.token("admin", "admin"))  # scans and schedules are an admin's
    client = make_client(db)  # default settings
    r = client.put(f"/api/v1/systems/{sid}/scan-schedule", json={"interval_seconds": 60}, headers=op)
    assert r.status_code == 200 and r.json()["next_run_at"] is None, "stored, but not run by this collector"
    assert client.app.state.scans.next_run(sid) is None
    r = client.post(f"/api/v1/systems/{sid}/scans", json={"targets": ["10.0.1.1"]}, headers=op)
    assert r.status_code == 422, "the scope is checked first, and the refusal audited"
    r = client.post(f"/api/v1/systems/{sid}/scans", json={}, headers=op)
    assert r.status_code == 403 and "network scans are off on this collector" in r.json()["detail"]
    assert client.get(f"/api/v1/systems/{sid}/scans", headers=op).json() == []
    assert audit_rows(db)[-1].outcome == "denied"


def test_trigger_while_running_is_409(his, db):
    w, client, sid = his
    claim = begin_scan(db, system_id=sid, triggered_by="schedule", actor="scheduler", targets=["10.0.0.0/24"],
                       full_scope=True, scope={}, args={}, zone_baseline="zone-egov-default", zone=None,
                       scanner_zone=None, stale_after=timedelta(hours=3))
    r = client.post(f"/api/v1/systems/{sid}/scans", json={}, headers=bearer(w.tokens["admin"]))
    assert r.status_code == 409
    assert f"a scan of system his is already running (scan {claim.run_id}, started" in r.json()["detail"]
    assert audit_rows(db)[-1].status_code == 409
    runs = client.get(f"/api/v1/systems/{sid}/scans", headers=bearer(w.tokens["ro"])).json()
    assert [(x["id"], x["status"], x["triggered_by"]) for x in runs] == [(claim.run_id, "running", "schedule")]
    for status, listed in (("running", [claim.run_id]), ("failed", []), ("succeeded", [])):  # ?status= filters
        r = client.get(f"/api/v1/systems/{sid}/scans", params={"status": status}, headers=bearer(w.tokens["ro"]))
        assert [x["id"] for x in r.json()] == listed, (status, r.text)


# ---- the system assessment: two hosts' signed reports, a manual verdict and a scan --------------------------------


def _send(client, agent, statuses: dict, hostname: str) -> dict:
    body = make_report(statuses, hostname=hostname)
    raw, headers = sign(agent.key, envelope(agent.agent_id, body))
    r = client.post("/api/v1/agent/reports", content=raw, headers=headers)
    assert r.status_code == 202, r.text
    return body


def test_system_assessment_combines_hosts_manual_verdicts_and_scan(his, db):
    w, client, sid = his
    web, dbh = w.enroll(client, "his", "web-1"), w.enroll(client, "his", "db-1")
    # the test baseline (tests/collector_helpers.py) puts w.a/d.a on 8.1.4.1.a, w.b/d.b on 8.1.4.1.b; its other
    # items (8.1.4.1 c-d, 8.1.4.3 a-d) have checks these hosts did not report (不适用), 8.1.4.5.a is manual (待核查)
    r1 = _send(client, web, {"w.a": "pass", "w.b": "fail"}, "web-1")
    r2 = _send(client, dbh, {"d.a": "fail", "d.b": "error"}, "db-1")
    # a person decides the manual item; a verdict on an item the checks decided does not change it
    for clause, item, verdict in (("8.1.4.5", "a", "符合"), ("8.1.4.1", "b", "符合")):
        r = client.post(f"/api/v1/systems/{sid}/assessments", headers=bearer(w.tokens["admin"]),
                        json={"clause": clause, "item": item, "verdict": verdict})
        assert r.status_code == 201, r.text
    # a stored scan of the whole scope: telnet open on a host
    claim = begin_scan(db, system_id=sid, triggered_by="api", actor="test", targets=["10.0.0.0/24"], full_scope=True,
                       scope={}, args={}, zone_baseline="zone-egov-default", zone=None, scanner_zone=None,
                       stale_after=timedelta(hours=1))
    report = scan_report([ServiceFinding(host="10.0.0.5", port=23, service="telnet")], ["10.0.0.0/24"],
                         datetime.now(timezone.utc), scope="10.0.0.0/24")
    finish_scan(db, claim.run_id, report)

    r = client.get(f"/api/v1/systems/{sid}/assessment", headers=bearer(w.tokens["ro"]))
    assert r.status_code == 200, r.text
    a = r.json()
    verdicts = {(i["clause"], i["item"]): (i["verdict"], i["automated"], i["source"]) for i in a["items"]}
    assert verdicts == {
        ("8.1.4.1", "a"): ("部分符合", "部分符合", "automated"),  # 符合 on web-1, 不符合 on db-1
        ("8.1.4.1", "b"): ("不符合", "不符合", "automated"),  # 不符合 + 待核查: the failure decides; manual ignored
        ("8.1.4.1", "c"): ("不符合", "不符合", "automated"),  # the scan: telnet is plaintext management
        ("8.1.4.4", "b"): ("不符合", "不符合", "automated"),  # the scan: tcp/23 is a high-risk port
        ("8.1.4.8", "a"): ("不符合", "不符合", "automated"),
        ("8.1.4.1", "d"): ("不适用", "不适用", "automated"),
        **{("8.1.4.3", x): ("不适用", "不适用", "automated") for x in "abcd"},
        ("8.1.4.5", "a"): ("符合", "待核查", "manual"),
    }
    # the same figures sentinel.scoring gives for these inputs (the formula is only there)
    items = scoring.system_items([[ItemResult.model_validate(i) for i in r1["items"]],
                                  [ItemResult.model_validate(i) for i in r2["items"]], report.items])
    items = [i.model_copy(update={"verdict": Verdict.CONFORM}) if (i.clause, i.item) == ("8.1.4.5", "a") else i
             for i in items]
    results = [CheckResult.model_validate(x) for x in r1["results"] + r2["results"]] + report.results
    expected = scoring.summarize(items, results)
    assert a["summary"]["score"] == expected.score and a["summary"]["conclusion"] == expected.conclusion == "差"
    assert a["summary"]["pass_rate"] == expected.pass_rate and a["summary"]["high_risk"] == expected.high_risk > 0
    assert [(h["hostname"], h["included"]) for h in a["hosts"]] == [("db-1", True), ("web-1", True)]
    assert a["network"]["scan_run_id"] == claim.run_id and a["errors"] == [] and a["complete"] is True
    assert client.get(f"/api/v1/systems/{sid}/assessment", headers=bearer(w.tokens["edu-op"])).status_code == 404


# ---- the real collector in the namespace lab ---------------------------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def _enter_netns(name: str) -> None:
    """Move the calling thread (only it) into network namespace `name`."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


class NsClient:
    """An HTTP client whose sockets live in the lab's scanner namespace (its own loopback)."""

    def __init__(self, ns: str, base_url: str) -> None:
        self.pool = ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(ns,))
        self.http = self.pool.submit(httpx.Client, base_url=base_url, timeout=30).result()

    def __call__(self, method: str, path: str, token: str, **kw) -> httpx.Response:
        return self.pool.submit(self.http.request, method, path, headers=bearer(token), **kw).result()

    def close(self) -> None:
        self.pool.submit(self.http.close).result()
        self.pool.shutdown()


LAB_PORTS = "21-23,80,443,3306,6379,8443"


def _pg_socket_url(request) -> str:
    """The test PostgreSQL through its Unix socket: sockets on the filesystem reach it from inside a namespace."""
    from sqlalchemy.engine import make_url

    from tests.dbfixtures import PG_ADMIN_URL

    admin_url = make_url(PG_ADMIN_URL)
    socket_dir = "/var/run/postgresql"
    if admin_url.host not in ("127.0.0.1", "localhost") or not os.path.exists(
            f"{socket_dir}/.s.PGSQL.{admin_url.port or 5432}"):
        pytest.skip(f"PostgreSQL {admin_url.host} has no Unix socket here to reach it from the lab namespace")
    schema = request.getfixturevalue("pg_schemas").create("sentinel_scanlab")
    return (f"postgresql+psycopg://{admin_url.username}@/{admin_url.database}?host={socket_dir}"
            f"&port={admin_url.port or 5432}&options=-csearch_path%3D{schema}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lab_collector(request, lab, tmp_path_factory):  # noqa: F811
    """`sentinel collector` inside the scanner namespace, on each store, with a system whose scope is the lab."""
    from sentinel.collector import operations
    from sentinel.collector.schemas import SystemIn
    from sentinel.store.db import Database, upgrade

    work = tmp_path_factory.mktemp("scan-collector")
    url = f"sqlite:///{work / 'sentinel.db'}" if request.param == "sqlite" else _pg_socket_url(request)
    db = Database(url)
    upgrade(db)
    w = World(db)
    w.department("health")
    w.department("edu")
    w.block("health", lab.net)  # the lab's network is health's in the site's address plan
    with db.session(write=True) as s:
        sid = operations.create_system(w.ctx(s), SystemIn(name="his", department_id=w.departments["health"], level=3,
                                                     s_grade=3, a_grade=3, scan_scope=[lab.net])).id
    tokens = {"admin": w.token("admin", "admin"), "op": w.token("op", "dept_operator", ["health"]),
              "edu": w.token("edu", "dept_operator", ["edu"])}
    env = {**os.environ, "PYTHONPATH": str(REPO), "SENTINEL_COLLECTOR_SCANS": "true",
           "SENTINEL_COLLECTOR_SCAN_SYNC_SECONDS": "1"}
    log = (work / "collector.log").open("w")
    proc = subprocess.Popen(["ip", "netns", "exec", lab.ns["scan"], sys.executable, "-m", "sentinel.cli", "collector",
                             "--state-dir", str(work / "state"), "--database-url", url, "--port", "18443"],
                            cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
    client = NsClient(lab.ns["scan"], "http://127.0.0.1:18443")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client("GET", "/api/v1/health", tokens["admin"]).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start: {(work / 'collector.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield {"client": client, "db": db, "sid": sid, "tokens": tokens, "log": work / "collector.log", "lab": lab}
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        db.dispose()


def _wait(lc, run_id: int, timeout: float = 60) -> dict:
    client, sid, admin = lc["client"], lc["sid"], lc["tokens"]["admin"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = {r["id"]: r for r in client("GET", f"/api/v1/systems/{sid}/scans", admin).json()}
        if run_id in runs and runs[run_id]["status"] != "running":
            return runs[run_id]
        time.sleep(0.3)
    raise AssertionError(f"scan {run_id} still running after {timeout} s; log:\n{lc['log'].read_text()[-3000:]}")


def _services(lc, state: str = "open") -> dict:
    rows = lc["client"]("GET", f"/api/v1/systems/{lc['sid']}/services", lc["tokens"]["admin"],
                        params={"state": state, "limit": 1000}).json()
    return {(r["host"], r["proto"], r["port"]): r for r in rows}


def _counters(lab) -> dict:  # noqa: F811
    return {name: lab.counters(name) for name in lab.ns}


pytestmark_lab = pytest.mark.timeout(180)


@pytestmark_lab
def test_lab_scheduled_scan(lab_collector):
    lc = lab_collector
    client, sid, tokens, lab = lc["client"], lc["sid"], lc["tokens"], lc["lab"]  # noqa: F811
    r = client("PUT", f"/api/v1/systems/{sid}/scan-schedule", tokens["admin"],
               json={"interval_seconds": 60, "tcp_ports": LAB_PORTS, "udp_ports": "161", "version_detection": False})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while not (runs := client("GET", f"/api/v1/systems/{sid}/scans", tokens["admin"]).json()):
        assert time.monotonic() < deadline, "the schedule did not start a scan"
        time.sleep(0.2)
    # stop the schedule before the next firing can overlap the other tests (60 s)
    client("PUT", f"/api/v1/systems/{sid}/scan-schedule", tokens["admin"],
           json={"enabled": False, "interval_seconds": 60, "tcp_ports": LAB_PORTS, "udp_ports": "161",
                 "version_detection": False})
    run = _wait(lc, runs[0]["id"])
    assert (run["status"], run["triggered_by"], run["requested_by"], run["full_scope"]) == (
        "succeeded", "schedule", "scheduler", True), run
    command = run["args"]["nmap"][0]["command"]  # the rate limits of the settings (defaults here)
    assert run["targets"] == [lab.net] and command[command.index("--max-rate") + 1] == "1000"
    assert command[command.index("--max-hostgroup") + 1] == "16"
    h1, h2, h3 = lab.hosts["h1"], lab.hosts["h2"], lab.hosts["h3"]
    expected = {(h1, "tcp", 21), (h1, "tcp", 22), (h1, "tcp", 23), (h1, "tcp", 80), (h2, "tcp", 3306),
                (h2, "tcp", 6379), (h2, "udp", 161), (h3, "tcp", 443)}
    if lab.tls10_skip is None:
        expected.add((h3, "tcp", 8443))
    found = _services(lc)
    assert set(found) == expected
    assert {k[2]: f["service"] for k, f in found.items() if k[2] in (21, 22, 23, 6379, 161)} == {
        21: "ftp", 22: "ssh", 23: "telnet", 6379: "redis", 161: "snmp"}
    assert {k[2] for k, f in found.items() if f["forbidden"]} == {21, 23, 3306, 6379}
    assert found[(h2, "tcp", 6379)]["exposure"]["unauthenticated"] is True
    assert run["services_open"] == len(expected) and run["services_forbidden"] == 4 and run["conclusion"] == "差"
    events = client("GET", "/api/v1/events", tokens["admin"], params={"system_id": sid, "limit": 1000}).json()
    kinds = sorted((e["kind"], e["severity"], e["payload"]["subject"]) for e in events)
    assert [k for k in kinds if k[0] == "new_forbidden_port"] == sorted(
        ("new_forbidden_port", "critical", f"{h}:{p}/tcp") for h, p in ((h1, 21), (h1, 23), (h2, 3306), (h2, 6379)))
    opened = [e for e in events if e["kind"] == "new_open_port"]  # the first scan: one notice, every port in it
    assert len(opened) == 1 and opened[0]["payload"]["count"] == len(expected)
    assert {(p["host"], p["proto"], p["port"]) for p in opened[0]["payload"]["ports"]} == expected
    schedule = client("GET", f"/api/v1/systems/{sid}/scan-schedule", tokens["admin"]).json()
    assert schedule["last_claimed_at"] is not None and schedule["enabled"] is False


@pytestmark_lab
def test_lab_trigger_twice_one_runs_the_other_is_refused(lab_collector):
    lc = lab_collector
    client, sid, tokens = lc["client"], lc["sid"], lc["tokens"]
    lab = lc["lab"]  # noqa: F811
    before = _counters(lab)
    first = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"], json={})
    second = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"], json={})
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "running" and first.json()["triggered_by"] == "api"
    assert second.status_code == 409
    assert f"already running (scan {first.json()['id']}" in second.json()["detail"]
    run = _wait(lc, first.json()["id"])
    assert run["status"] == "succeeded" and run["requested_by"].endswith(":admin")
    after = _counters(lab)
    assert after["decoy"] == before["decoy"] and after["scan"]["out0"] == before["scan"]["out0"], \
        "the scan stayed inside the scope: the out-of-scope decoy saw nothing"
    assert sum(after["scan"][p]["tx_packets"] - before["scan"][p]["tx_packets"] for p in ("p1", "p2", "p3")) > 20
    runs = client("GET", f"/api/v1/systems/{sid}/scans", tokens["admin"]).json()
    assert len(runs) == 2, "the refused trigger made no scan run"
    audit = client("GET", "/api/v1/audit", tokens["admin"], params={"limit": 1000}).json()
    assert any(a["status_code"] == 409 and a["action"] == f"POST /api/v1/systems/{sid}/scans" for a in audit)
    assert sum(1 for a in audit if a["action"] == "scan.start") == 2


@pytestmark_lab
def test_lab_diff_after_a_listener_stops(lab_collector):
    lc = lab_collector
    client, sid, tokens, lab = lc["client"], lc["sid"], lc["tokens"], lc["lab"]  # noqa: F811
    h1, h2 = lab.hosts["h1"], lab.hosts["h2"]
    before = _services(lc)
    lab.stop("h2", "redis", 6379)
    try:
        r = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"], json={"targets": [h2]})
        assert r.status_code == 202, r.text
        run = _wait(lc, r.json()["id"])
    finally:
        lab.serve("h2", "redis", 6379)
    assert run["status"] == "succeeded" and run["full_scope"] is False and run["targets"] == [h2]
    after = _services(lc, "all")
    redis = after[(h2, "tcp", 6379)]
    assert (redis["closed_at"], redis["closed_scan_id"]) == (run["finished_at"], run["id"])
    assert redis["first_seen"] == before[(h2, "tcp", 6379)]["first_seen"]
    mysql = after[(h2, "tcp", 3306)]
    assert mysql["closed_at"] is None and mysql["last_scan_id"] == run["id"]
    assert mysql["first_seen"] == before[(h2, "tcp", 3306)]["first_seen"] < mysql["last_seen"]
    telnet = after[(h1, "tcp", 23)]  # h1 was not scanned: untouched, still open
    assert telnet["closed_at"] is None and telnet["last_scan_id"] == before[(h1, "tcp", 23)]["last_scan_id"]
    events = client("GET", "/api/v1/events", tokens["admin"], params={"system_id": sid}).json()
    mine = [(e["kind"], e["severity"], e["payload"]["subject"], e["payload"].get("resolved", False))
            for e in events if e["payload"].get("scan_run_id") == run["id"]]
    assert sorted(mine) == [("closed_port", "info", f"{h2}:6379/tcp", False),
                            ("new_forbidden_port", "critical", f"{h2}:6379/tcp", True)]


@pytestmark_lab
def test_lab_scope_refusal_is_audited_and_sends_nothing(lab_collector):
    lc = lab_collector
    client, sid, tokens, lab = lc["client"], lc["sid"], lc["tokens"], lc["lab"]  # noqa: F811
    runs_before = len(client("GET", f"/api/v1/systems/{sid}/scans", tokens["admin"]).json())
    before = _counters(lab)
    outside = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"], json={"targets": [lab.decoy_ip]})
    wider = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"],
                   json={"targets": [lab.hosts["h1"], f"{lab.prefix}.0/23"]})
    other_dept = client("POST", f"/api/v1/systems/{sid}/scans", tokens["edu"], json={})
    after = _counters(lab)
    assert after == before, "not one packet, anywhere in the lab"
    assert outside.status_code == 422 and outside.json()["detail"] == (
        f"refused, outside scope 'his' (no packet was sent): {lab.decoy_ip} is not inside scope 'his' [{lab.net}]")
    assert wider.status_code == 422 and f"{lab.prefix}.0/23 is not inside scope" in wider.json()["detail"]
    assert other_dept.status_code == 404
    assert len(client("GET", f"/api/v1/systems/{sid}/scans", tokens["admin"]).json()) == runs_before
    audit = client("GET", "/api/v1/audit", tokens["admin"], params={"outcome": "rejected", "limit": 1000}).json()
    details = [a["detail"] for a in audit if a["action"] == f"POST /api/v1/systems/{sid}/scans"]
    assert any(f"{lab.decoy_ip} is not inside scope" in d for d in details)
    assert any(f"{lab.prefix}.0/23 is not inside scope" in d for d in details)


@pytestmark_lab
def test_lab_assessment_uses_the_latest_full_scan(lab_collector):
    lc = lab_collector
    client, sid, tokens = lc["client"], lc["sid"], lc["tokens"]
    runs = client("GET", f"/api/v1/systems/{sid}/scans", tokens["admin"]).json()
    full = max(r["id"] for r in runs if r["full_scope"] and r["status"] == "succeeded")
    a = client("GET", f"/api/v1/systems/{sid}/assessment", tokens["op"]).json()
    assert a["network"]["scan_run_id"] == full, "the later partial scan does not stand for the whole network"
    assert a["hosts"] == [] and a["summary"]["conclusion"] == "差" and a["summary"]["high_risk"] > 0
    verdicts = {(i["clause"], i["item"]): i["verdict"] for i in a["items"]}
    # h1 is the only host with remote management: its telnet/ftp/http login fail high-risk case 6.4.1.2, so that
    # 测评对象 is 不符合 although its ssh passes, and so is the item
    assert verdicts[("8.1.4.1", "c")] == "不符合"
    assert verdicts[("8.1.4.4", "b")] in ("部分符合", "不符合")


@pytestmark_lab
def test_lab_credential_probes_only_while_an_admin_has_them_on(lab_collector, tmp_path):
    """Issue 19 item 4 through the real API: an operator may not switch the credential probes on (403 naming the
    field); a scan with them off tries no login (the counting FTP server on h3 logs every USER); an admin turns
    them on (audited: before/after, who), and the next scan finds the anonymous FTP and says who enabled it."""
    lc = lab_collector
    client, sid, tokens, lab = lc["client"], lc["sid"], lc["tokens"], lc["lab"]  # noqa: F811
    h3, logins = lab.hosts["h3"], tmp_path / "ftp-logins.txt"
    logins.write_text("")
    lab.serve("h3", "ftp-anon", 21, str(logins))
    try:
        refused = client("PATCH", f"/api/v1/systems/{sid}", tokens["op"], json={"credential_probes": True})
        assert refused.status_code == 403 and refused.json()["detail"].startswith("credential_probes: only an admin")
        assert client("GET", f"/api/v1/systems/{sid}", tokens["admin"]).json()["credential_probes"] is False

        def scan() -> tuple[dict, dict]:
            r = client("POST", f"/api/v1/systems/{sid}/scans", tokens["admin"], json={"targets": [h3],
                                                                                      "tcp_ports": "21"})
            assert r.status_code == 202, r.text
            run = _wait(lc, r.json()["id"])
            assert run["status"] == "succeeded", run
            return run, _services(lc)[(h3, "tcp", 21)]

        run, ftp = scan()
        assert logins.read_text() == "", "credential probes off: not one login tried"
        assert run["args"]["options"]["credential_probes"] is False and "credential_probes" not in run["args"]
        assert "net-anonymous-ftp" not in {c["check_id"] for c in ftp["check_results"]}

        on = client("PATCH", f"/api/v1/systems/{sid}", tokens["admin"], json={"credential_probes": True})
        assert on.status_code == 200, on.text
        body = on.json()
        assert body["credential_probes"] is True and body["credential_probes_by"] and body["credential_probes_at"]
        entry = [a for a in audit_rows(lc["db"], "system.update")][-1]
        assert entry.actor == body["credential_probes_by"]
        assert '"before": {"credential_probes": false}' in entry.detail
        assert '"after": {"credential_probes": true}' in entry.detail

        run, ftp = scan()
        assert logins.read_text() == "USER anonymous\n", "one documented attempt, no more"
        grant = run["args"]["credential_probes"]
        assert (grant["enabled_by"], grant["enabled_at"][:19]) == (body["credential_probes_by"],
                                                                    body["credential_probes_at"][:19])
        assert grant["credentials"]["ftp"] == ["anonymous"]
        anon = [c for c in ftp["check_results"] if c["check_id"] == "net-anonymous-ftp"]
        assert [c["status"] for c in anon] == ["fail"], ftp["check_results"]
        evidence = " ".join(e.get("excerpt") or "" for c in anon for e in c["evidence"])
        assert f"enabled for this system by {body['credential_probes_by']}" in evidence
    finally:
        client("PATCH", f"/api/v1/systems/{sid}", tokens["admin"], json={"credential_probes": False})
        lab.stop("h3", "ftp-anon", 21)


def test_cli_scan_schedule(tmp_path, capsys):
    from sentinel.cli import main

    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["db", "upgrade", *state]) == 0
    assert main(["department", "add", "health", *state]) == 0
    assert main(["address-plan", "add", "10.77.0.0/16", "--department", "health", *state]) == 0
    assert main(["system", "add", "his", "--department", "health", "--level", "3", "--s-grade", "3", "--a-grade", "2",
                 "--scope", "10.77.0.0/24", *state]) == 0
    capsys.readouterr()
    assert main(["system", "scan-schedule", "his", "--interval", "3600", "--jitter", "120", "--zone", "dmz",
                 "--ports", "22,443", *state]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "system his: every 3600 s (+ up to 120 s); scope 10.77.0.0/24",
        "  zone baseline zone-egov-default, zone dmz, scanner zone -; tcp 22,443, udp none, version detection on"]
    assert main(["system", "scan-schedule", "his", "--zone", "moon", *state]) == 2
    assert "zone 'moon' is not in zone baseline zone-egov-default" in capsys.readouterr().err
    assert main(["system", "scan-schedule", "his", "--disable", "--zone", "", *state]) == 0
    assert capsys.readouterr().out.startswith("system his: not scheduled (scans only on request)")
    assert main(["system", "scans", "his", *state]) == 1
    assert "no scans yet" in capsys.readouterr().err
    from sentinel.store.db import Database
    from sentinel.store.models import AuditEntry
    db = Database(f"sqlite:///{tmp_path / 'state' / 'sentinel.db'}")
    try:
        with db.read() as c:
            rows = c.execute(AuditEntry.__table__.select().where(AuditEntry.__table__.c.action ==
                                                                 "scan_schedule.update")).all()
    finally:
        db.dispose()
    assert [r.actor.startswith("cli:") for r in rows] == [True, True]
