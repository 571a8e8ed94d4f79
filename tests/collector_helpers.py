"""Builders shared by the collector tests: reports, signed envelopes, a populated collector."""
from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from sentinel import signing
from sentinel.model import (
    BaselineRef,
    CheckResult,
    Evidence,
    HostInfo,
    HostReport,
    Severity,
    Status,
    Text,
)


def host_info(hostname: str = "web-1") -> HostInfo:
    return HostInfo(hostname=hostname, os_id="debian", os_version="12", os_name="Debian GNU/Linux 12",
                    family="debian", arch="x86_64", kernel="6.1.0")


# ---- the test baselines: what the collector judges make_report's reports by ---------------------------------------
# Check ids the collector tests use, with the letter of the item each sits on: a-d are 身份鉴别 a-d (8.1.4.1 at
# level 3), e-h 安全审计 a-d (8.1.4.3), and the manual item i is 恶意代码防范 a (8.1.4.5), all by catalogue key.
# l3-ssh-root is the one high-risk check (case L3-CES1-11, severity high); every other check is severity medium.
# adv.a is advisory (evidence only: it decides no verdict, opens no finding and counts in no metric).
TEST_BASELINE_ID, TEST_SITE_ID = "sentinel-test", "sentinel-test-site"
_TEST_CHECKS = {"a": "a", "b": "b", "c": "c", "telnet": "a", "ssh.root": "a", "pam.faillock": "b", "audit.rules": "c",
                "l3-ssh-root": "a", "l3-pass-age": "b", "adv.a": "a", "w.a": "a", "w.b": "b", "d.a": "a", "d.b": "b",
                **{f"check.{i:02d}": "abcdefgh"[i % 8] for i in range(60)}}
TEST_ITEMS = {"a": "ces.auth.identify", "b": "ces.auth.login-failure", "c": "ces.auth.remote-eavesdrop",
              "d": "ces.auth.multi-factor", "e": "ces.audit.enabled", "f": "ces.audit.record-fields",
              "g": "ces.audit.record-protection", "h": "ces.audit.process-protection", "i": "ces.malware.protection"}
HIGH_RISK_CHECK, HIGH_RISK_CASE = "l3-ssh-root", "L3-CES1-11"
ADVISORY_CHECK = "adv.a"


def _test_baseline_yaml() -> str:
    lines = [f"id: {TEST_BASELINE_ID}", 'version: "1.0.0"', "title: {zh: 测试基线, en: test baseline}", "level: 3",
             "os_families: [debian, rhel]", "covers: [ces.auth, ces.audit, ces.malware]", "items:"]
    for letter in "abcdefgh":
        lines += [f"  - ref: {TEST_ITEMS[letter]}", "    checks:"]
        for check_id, item in _TEST_CHECKS.items():
            if item != letter:
                continue
            high = check_id == HIGH_RISK_CHECK
            lines += [f"      - id: {check_id}", f"        title: {{zh: 检查 {check_id}, en: check {check_id}}}",
                      "        probe: config.value",
                      "        params: {paths: [/etc/login.defs], key: PASS_MAX_DAYS}",
                      "        expect: {le: 90}", f"        severity: {'high' if high else 'medium'}"]
            if high:
                lines.append(f"        high_risk: {HIGH_RISK_CASE}")
            if check_id == ADVISORY_CHECK:
                lines.append("        advisory: {zh: 测试参考项, en: advisory test check}")
            lines += ["        rationale: {zh: 理由, en: rationale}",
                      "        remediation: {zh: 修改配置, en: fix the setting}"]
    return "\n".join(lines) + "\n"  # item i (ces.malware.protection) is covered and has no checks: manual


_SITE_YAML = f"""id: {TEST_SITE_ID}
version: "1.0.0"
extends: {TEST_BASELINE_ID}.yaml
title: {{zh: 测试站点基线, en: test site baseline}}
waive:
  telnet: "accepted risk"
"""


TEST_L2_ID = "sentinel-test-l2"
_L2_YAML = f"""id: {TEST_L2_ID}
version: "1.0.0"
extends: {TEST_BASELINE_ID}.yaml
title: {{zh: 二级测试基线, en: level-2 test baseline}}
level: 2
"""


def install_test_baselines(state_dir) -> Path:
    """Put the test baselines where a collector with this state directory looks for site baselines."""
    directory = Path(state_dir) / "baselines"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{TEST_BASELINE_ID}.yaml").write_text(_test_baseline_yaml(), encoding="utf-8")
    (directory / f"{TEST_SITE_ID}.yaml").write_text(_SITE_YAML, encoding="utf-8")
    (directory / f"{TEST_L2_ID}.yaml").write_text(_L2_YAML, encoding="utf-8")
    return directory


@functools.cache
def _test_baselines_dir() -> str:
    import tempfile

    return str(install_test_baselines(tempfile.mkdtemp(prefix="sentinel-test-baselines-")))


def known_baselines():
    """A collector baseline registry that knows the shipped and the test baselines (for Ingestor(...))."""
    from sentinel.collector.baselines import BaselineRegistry

    return BaselineRegistry([Path(_test_baselines_dir())])


@functools.cache
def _baseline(baseline_id: str):
    from sentinel.baseline import BaselineError, load_baseline, shipped

    if baseline_id in shipped():
        return load_baseline(baseline_id)
    try:
        return load_baseline(Path(_test_baselines_dir()) / f"{baseline_id}.yaml")
    except BaselineError:
        return None


_CLAIMED = object()  # "not given": the summary is what scoring gives


def make_report(statuses: dict[str, str], *, high_risk: Optional[dict[str, str]] = None,
                waived: Optional[set[str]] = None, score: Any = _CLAIMED, conclusion: Any = _CLAIMED,
                baseline_id: str = TEST_BASELINE_ID, version: Optional[str] = None, hostname: str = "web-1",
                generated_at: Optional[datetime] = None) -> dict[str, Any]:
    """A HostReport as JSON with one result per check id, in the given statuses, as an honest agent makes it:
    each result's clause, item, severity, high-risk case and waiver as the baseline gives them, items and
    summary from sentinel/scoring.py. `high_risk`, `waived`, `score` and `conclusion` override what the
    baseline and scoring give (a forged report); a check id the baseline lacks gets clause 8.1.4.1."""
    from sentinel import scoring

    baseline = _baseline(baseline_id)
    specs = {}
    if baseline is not None:
        specs = {check.id: (control.clause, item.item, item.key, check)
                 for control, item, check in baseline.iter_checks()}
    results = []
    for i, (check_id, status) in enumerate(statuses.items()):
        clause, item, key, spec = specs.get(check_id, ("8.1.4.1", "abcdefgh"[i % 8], None, None))
        case = high_risk[check_id] if high_risk and check_id in high_risk else (spec.high_risk if spec else None)
        severity = spec.severity if spec else (Severity.HIGH if case else Severity.MEDIUM)
        if waived is not None:
            waiver = "accepted risk" if check_id in waived else None
        else:
            waiver = spec.waiver if spec else None
        results.append(CheckResult(
            check_id=check_id, clause=clause, item=item, key=key,
            title=spec.title if spec else Text(zh=f"检查 {check_id}", en=f"check {check_id}"), status=Status(status),
            severity=severity, high_risk=case,
            observed={"value": i, "lines": [f"line {i}"]}, expected="eq 1",
            reason=None if status == "pass" else f"{check_id} is {status}",
            evidence=[Evidence(source="/etc/login.defs", excerpt=f"PASS_MAX_DAYS {i}", line=i + 1)],
            remediation=spec.remediation if spec else Text(zh="修改配置", en="fix the setting"),
            waiver=waiver, advisory=spec.advisory if spec else None, duration_ms=1.5))
    if baseline is not None:
        items = scoring.item_results(baseline, results)
    else:
        items = []
    summary = scoring.summarize(items, results)
    if score is not _CLAIMED:
        summary.score = score
    if conclusion is not _CLAIMED:
        summary.conclusion = conclusion
    ref = BaselineRef(id=baseline_id, version=version or (baseline.version if baseline else "1.0.0"),
                      level=baseline.level if baseline else 3, title=Text(zh="三级", en="level 3"))
    report = HostReport(
        generated_at=generated_at or datetime.now(timezone.utc), duration_ms=1234.5, baseline=ref,
        host=host_info(hostname), summary=summary, items=items, results=results)
    return report.model_dump(mode="json")


def sixty_results(fail_every: int = 7) -> dict[str, str]:
    return {f"check.{i:02d}": ("fail" if i % fail_every == 0 else "pass") for i in range(60)}


def enroll_body(client, token: str, key, hostname: str = "web-1", *, collector_key: Optional[str] = None) -> dict:
    """An enrollment request as `sentinel enroll` makes it: with the proof of possession, signed by `key`
    over the challenge for the collector's public key (asked of `client` with GET /api/v1/agent/enroll)."""
    if collector_key is None:
        info = client.get("/api/v1/agent/enroll")
        assert info.status_code == 200, info.text
        collector_key = info.json()["collector_public_key"]
    public_key = signing.public_key_b64(key)
    proof = signing.sign(key, signing.enrollment_challenge(token, collector_key, hostname, public_key))
    return {"token": token, "public_key": public_key, "hostname": hostname,
            "os": host_info(hostname).model_dump(mode="json"), "proof": proof}


def envelope(agent_id: str, body: dict, *, kind: str = "host_report", report_id: Optional[str] = None,
             sent_at: Optional[datetime] = None) -> dict:
    sent_at = sent_at or datetime.now(timezone.utc)
    return {"report_id": report_id or str(uuid.uuid4()), "agent_id": agent_id,
            "sent_at": sent_at.isoformat().replace("+00:00", "Z"), "kind": kind, "body": body}


def sign(key, env: dict, *, agent_id: Optional[str] = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(env, ensure_ascii=False).encode("utf-8")
    return raw, {"Content-Type": "application/json", "X-Sentinel-Agent": agent_id or env["agent_id"],
                 "X-Sentinel-Signature": signing.sign(key, raw)}


@dataclass
class Enrolled:
    agent_id: str
    key: Any
    system_id: int
    department_id: int


@dataclass
class World:
    """A collector with departments, systems and tokens made through the admin service layer."""

    db: Any
    departments: dict[str, int] = field(default_factory=dict)
    systems: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def ctx(self, session):
        from sentinel.collector.auth import cli_principal
        from sentinel.collector.operations import Ctx

        return Ctx(session, cli_principal("test"))

    def department(self, name: str) -> int:
        from sentinel.collector import operations

        with self.db.session(write=True) as s:
            self.departments[name] = operations.create_department(self.ctx(s), name, f"{name} title").id
        return self.departments[name]

    def block(self, department: str, cidr: str) -> None:
        """Assign `cidr` to the department in the site's address plan (once)."""
        from sentinel.collector import address_plan

        with self.db.session(write=True) as s:
            dept = self.departments[department]
            if cidr not in [b.cidr for b in address_plan.list_blocks(s, dept)]:
                address_plan.add_block(self.ctx(s), dept, cidr)

    def system(self, name: str, department: str, level: int = 3, s: int = 3, a: int = 2,
               scope: Optional[list[str]] = None) -> int:
        """A system with scope `scope`, by default 10.N.0.0/24 for the Nth department made (the first:
        10.0.0.0/24), each assigned to its department in the address plan as the scope needs."""
        from sentinel.collector import operations
        from sentinel.collector.schemas import SystemIn

        if scope is None:
            scope = [f"10.{list(self.departments).index(department)}.0.0/24"]
        for cidr in scope:
            self.block(department, cidr)
        spec = SystemIn(name=name, department_id=self.departments[department], level=level, s_grade=s, a_grade=a,
                        zones=["dmz"], scan_scope=scope)
        with self.db.session(write=True) as session:
            self.systems[name] = operations.create_system(self.ctx(session), spec).id
        return self.systems[name]

    def health_and_edu(self, school_level: int = 3, school_s: int = 3, school_a: int = 2) -> None:
        """The two-department site of the scope tests: health with system his (10.0.0.0/24) and edu with
        system school (10.1.0.0/24), school graded as given."""
        self.department("health")
        self.department("edu")
        self.system("his", "health")
        self.system("school", "edu", level=school_level, s=school_s, a=school_a)

    def token(self, label: str, role: str, departments: Optional[list[str]] = None,
              all_departments: bool = False) -> str:
        from sentinel.collector import operations
        from sentinel.collector.schemas import ApiTokenIn

        spec = ApiTokenIn(name=label, role=role, department_ids=[self.departments[d] for d in departments or []],
                          all_departments=all_departments)
        with self.db.session(write=True) as s:
            _, _, secret = operations.create_api_token(self.ctx(s), spec)
        self.tokens[label] = secret
        return secret

    def enrollment_token(self, system: str, ttl: int = 3600, reenroll: Optional[str] = None) -> str:
        from sentinel.collector import operations
        from sentinel.collector.schemas import EnrollmentTokenIn

        with self.db.session(write=True) as s:
            _, secret = operations.create_enrollment_token(self.ctx(s), EnrollmentTokenIn(
                system_id=self.systems[system], ttl_seconds=ttl, reenroll_hostname=reenroll))
        return secret

    def enroll(self, client, system: str, hostname: str = "web-1", reenroll: bool = False) -> Enrolled:
        key = signing.generate_key()
        token = self.enrollment_token(system, reenroll=hostname if reenroll else None)
        response = client.post("/api/v1/agent/enroll", json=enroll_body(client, token, key, hostname))
        assert response.status_code == 201, response.text
        system_id = self.systems[system]
        with self.db.session() as s:
            from sentinel.store.models import System

            dept = s.get(System, system_id).department_id
        return Enrolled(agent_id=response.json()["agent_id"], key=key, system_id=system_id, department_id=dept)


def assessment_world(db) -> World:
    """The site of the assessment-record tests (attachments, report sections): health with system his and
    tax with system etax; an assessor in each (tokens "assessor", "tax-assessor"), and health's "reader"
    (readonly) and "operator" (dept_operator), who may read but not record."""
    w = World(db)
    for dept in ("health", "tax"):
        w.department(dept)
    w.system("his", "health")
    w.system("etax", "tax")
    w.token("assessor", "assessor", ["health"])
    w.token("tax-assessor", "assessor", ["tax"])
    w.token("reader", "readonly", ["health"])
    w.token("operator", "dept_operator", ["health"])
    return w


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Site:
    """The collector tests' usual start: department health with system his, an admin token "root", a client
    on the collector, and one enrolled agent of his on host web-1."""

    world: World
    client: Any
    agent: Enrolled
    admin: str  # the admin token's secret (bearer(site.admin) for its header)


def his_site(db, make_client, **settings) -> Site:
    """A Site on `db` (make_client is the fixture; `settings` are the collector's, as make_client takes them)."""
    world = World(db)
    world.department("health")
    world.system("his", "health")
    admin = world.token("root", "admin")
    client = make_client(db, **settings)
    return Site(world=world, client=client, agent=world.enroll(client, "his", "web-1"), admin=admin)


def counts(db) -> dict[str, int]:
    """Rows in the tables an accepted report writes to."""
    from sqlalchemy import func, select

    from sentinel.store.models import CheckResultRow, Event, Finding, InventorySnapshot, Report, Run, UtilisationSample

    out = {}
    with db.read() as conn:
        for model in (Report, Run, CheckResultRow, Finding, Event, InventorySnapshot, UtilisationSample):
            out[model.__tablename__] = conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()
    return out


def audit_rows(db, action: Optional[str] = None) -> list:
    from sqlalchemy import select

    from sentinel.store.models import AuditEntry

    stmt = select(AuditEntry.__table__).order_by(AuditEntry.id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    with db.read() as conn:
        return conn.execute(stmt).all()


@pytest.fixture
def make_client(tmp_path):
    """Factory of TestClients on a collector app over a given Database. Each client is entered as a
    context manager (one event-loop portal for all its requests, not one per request) and closed
    at the end of the test."""
    from fastapi.testclient import TestClient

    from sentinel.collector.app import create_app
    from sentinel.collector.settings import CollectorSettings
    from sentinel.wiring import exporters

    clients = []

    def factory(db, **settings):
        install_test_baselines(tmp_path / "state")
        app = create_app(CollectorSettings(state_dir=tmp_path / "state", **settings), exporters=exporters(), db=db)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def expired(minutes: int = 10) -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)
