"""A seeded system for the evidence tests: real host reports from `run_baseline` over small roots, stored
through the collector's real enrollment and ingest code on SQLite (or assembled without a store)."""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from sentinel import __version__, signing
from sentinel.baseline import load_baseline
from sentinel.engine import run_baseline
from sentinel.evidence.digest import canonical_bytes, chain_hash, sha256_hex
from sentinel.evidence.model import ZERO_HASH, ChainEntry, CollectorIdentity, RunChain
from sentinel.hostview import RootHost
from sentinel.model import HostReport

SYSTEM = "egov-portal"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

BASELINE = """\
id: evidence-seed
version: "1.2"
title: {zh: 证据测试基线, en: evidence seed baseline}
level: 3
os_families: [debian, rhel]
# five items of 安全计算环境 (8.1.4.1 a, 8.1.4.2 b, 8.1.4.4 b, 8.1.4.9 a, 8.1.4.11 a at level 3), two of them manual
covers: [ces.auth.identify, ces.access.default-accounts, ces.intrusion.services-ports, ces.backup.local,
         ces.personal.minimal-collection]
items:
  - ref: ces.auth.identify
    checks:
      - id: login.pass-max-days
        title: {zh: 口令最长使用期限, en: password maximum age}
        probe: config.value
        params: {paths: [/etc/login.defs], key: PASS_MAX_DAYS}
        expect: {le: 90}
        severity: medium
        rationale: {zh: 定期更换口令, en: passwords are changed regularly}
        remediation: {zh: 在 /etc/login.defs 设置 PASS_MAX_DAYS 90, en: set PASS_MAX_DAYS 90 in /etc/login.defs}
      - id: login.pass-min-len
        title: {zh: 口令最小长度, en: password minimum length}
        probe: config.value
        params: {paths: [/etc/login.defs], key: PASS_MIN_LEN}
        expect: {ge: 8}
        severity: low
        rationale: {zh: 口令复杂度, en: password complexity}
        remediation: {zh: 设置 PASS_MIN_LEN 8, en: set PASS_MIN_LEN 8}
  - ref: ces.access.default-accounts
    checks:
      - id: accounts.no-empty-password
        title: {zh: 不存在空口令账户, en: no account with an empty password}
        probe: accounts.empty_password
        expect: {empty: true}
        severity: high
        high_risk: "6.4.1.1"
        rationale: {zh: 空口令可被直接登录, en: an empty password lets anyone log in}
        remediation: {zh: 为账户设置口令或锁定账户, en: set a password or lock the account}
  - ref: ces.intrusion.services-ports
    checks:
      - id: files.no-hosts-equiv
        title: {zh: 不存在 hosts.equiv 信任文件, en: no hosts.equiv trust file}
        probe: file.exists
        params: {paths: [/etc/hosts.equiv]}
        expect: {empty: true}
        severity: high
        rationale: {zh: 信任关系绕过鉴别, en: trust files bypass authentication}
        remediation: {zh: 删除 /etc/hosts.equiv, en: remove /etc/hosts.equiv}
"""

PASSWD = "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/bash\n"


def write_baseline(tmp: Path):
    path = tmp / "evidence-seed.yaml"
    path.write_text(BASELINE, encoding="utf-8")
    return load_baseline(path)


def make_root(base: Path, *, max_days: int = 90, min_len: int = 8, empty_password: bool = False,
              hosts_equiv: bool = False) -> Path:
    files = {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12"\n',
        "etc/login.defs": f"PASS_MAX_DAYS {max_days}\nPASS_MIN_LEN {min_len}\n",
        "etc/passwd": PASSWD,
        "etc/shadow": ("root:$6$abc$def:19000:0:90:7:::\n"
                       "app:" + ("" if empty_password else "$6$x$y") + ":19000:0:90:7:::\n"),
    }
    if hosts_equiv:
        files["etc/hosts.equiv"] = "+ +\n"
    for rel, text in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return base


def report(baseline, root: Path, hostname: str) -> HostReport:
    rep = run_baseline(baseline, RootHost(str(root)))
    # An offline root has no hostname of its own; name the 测评对象 as an agent would.
    return rep.model_copy(update={"host": rep.host.model_copy(update={"hostname": hostname})})


def collector_identity(key) -> CollectorIdentity:
    pub = signing.public_key_b64(key)
    return CollectorIdentity(name="collector.test", public_key=pub,
                             fingerprint=sha256_hex(base64.b64decode(pub)), software=f"sentinel {__version__}")


def direct_chain(runs) -> tuple[RunChain, dict[str, bytes]]:
    """What the collector would chain for `runs` (HostRun list, in arrival order), without a store."""
    prev, entries, raw = ZERO_HASH, [], {}
    for run in runs:
        body = canonical_bytes(run.report.model_dump(mode="json"))
        digest = sha256_hex(body)
        link = chain_hash(prev, digest)
        path = f"reports/{run.run_id}.json"
        entries.append(ChainEntry(run_id=run.run_id, report_id=run.report.report_id, object=run.object,
                                  received_at=run.received_at, digest=digest, prev_chain_hash=prev, chain_hash=link,
                                  body=path))
        raw[path] = body
        prev = link
    return (RunChain(anchor=ZERO_HASH, head=prev, entries=entries) if entries else RunChain()), raw


# ---- through the real store ------------------------------------------------------------------------


@dataclass
class Seeded:
    db: object
    url: str
    key: object  # the collector's signing key
    key_file: Path
    agents: dict = field(default_factory=dict)  # hostname -> (agent_id, key)
    clock: list = field(default_factory=lambda: [T0])
    baselines: object = None  # the collector's baselines: shipped + the seed baseline file (write_baseline)


def new_store(tmp: Path, url: Optional[str] = None) -> Seeded:
    """A migrated store: a new SQLite file in `tmp`, or the (already migrated, empty) database at `url`."""
    from sentinel.store.db import Database, upgrade

    if url is None:
        url = f"sqlite:///{tmp / 'sentinel.db'}"
        db = Database(url, sqlite_synchronous="NORMAL")
        upgrade(db)
    else:
        db = Database(url)
    key = signing.generate_key()
    key_file = tmp / "state" / "collector.key"
    signing.save_private_key(key, key_file)
    from sentinel.collector.baselines import BaselineRegistry

    return Seeded(db=db, url=url, key=key, key_file=key_file, baselines=BaselineRegistry([tmp]))


def create_system(s: Seeded, name: str = SYSTEM, level: int = 3, sg: int = 3, ag: int = 2) -> None:
    from sentinel.collector import operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.schemas import SystemIn

    with s.db.session(write=True) as session:
        ctx = operations.Ctx(session, cli_principal("seed"))
        dept = operations.create_department(ctx, "hrss", "市人社局")
        operations.create_system(ctx, SystemIn(name=name, department_id=dept.id, level=level, s_grade=sg, a_grade=ag,
                                          title="政务服务门户", owner="信息中心"))


def enroll(s: Seeded, hostname: str, system: str = SYSTEM) -> str:
    from sentinel.collector import enrollment, operations
    from sentinel.collector.auth import cli_principal
    from sentinel.collector.schemas import EnrollmentTokenIn
    from sentinel.collector.wire import EnrollRequest
    from sentinel.model import HostInfo

    with s.db.session(write=True) as session:
        ctx = operations.Ctx(session, cli_principal("seed"))
        sysrow = operations.system_by_name(session, system)
        _, secret = operations.create_enrollment_token(ctx, EnrollmentTokenIn(system_id=sysrow.id, ttl_seconds=3600))
    key = signing.generate_key()
    info = HostInfo(hostname=hostname, os_id="debian", os_version="12", os_name="Debian GNU/Linux 12",
                    family="debian", arch="x86_64")
    collector_key, public_key = signing.public_key_b64(s.key), signing.public_key_b64(key)
    proof = signing.sign(key, signing.enrollment_challenge(secret, collector_key, hostname, public_key))
    resp = enrollment.enroll(s.db, EnrollRequest(token=secret, public_key=public_key, hostname=hostname, os=info,
                                                 proof=proof), "127.0.0.1", collector_key)
    s.agents[hostname] = (resp.agent_id, key)
    return resp.agent_id


def ingest(s: Seeded, hostname: str, rep: HostReport, at: datetime) -> dict:
    """Deliver `rep` as the agent would, signed, with the collector's clock at `at`."""
    return ingest_body(s, hostname, fresh_body(rep, at), at)


def fresh_body(rep: HostReport, at: datetime) -> dict:
    """`rep` as a report body made just before `at`, with a new report id."""
    return rep.model_copy(update={"report_id": str(uuid.uuid4()),
                                  "generated_at": at - timedelta(seconds=5)}).model_dump(mode="json")


def ingest_body(s: Seeded, hostname: str, body: dict, at: datetime) -> dict:
    """Deliver a report body (as JSON, e.g. with optional fields left out) signed by `hostname`'s agent."""
    from sentinel.collector.ingest import Ingestor

    agent_id, key = s.agents[hostname]
    env = {"report_id": body["report_id"], "agent_id": agent_id, "sent_at": at.isoformat(), "kind": "host_report",
           "body": body}
    raw = json.dumps(env, ensure_ascii=False).encode("utf-8")
    ingestor = Ingestor(s.db, max_body_bytes=8 << 20, skew_seconds=300, clock=lambda: at, baselines=s.baselines)
    status, answer = ingestor.handle(raw, agent_id, signing.sign(key, raw), "127.0.0.1")
    assert status == 202, (status, answer)
    return answer


def assess(s: Seeded, item: str, verdict: str, note: str, assessor: str, attach: Optional[list[Path]] = None,
           system: str = SYSTEM) -> int:
    """Record a manual assessment the way `sentinel assess` does (sentinel.cli_evidence.record_assessment)."""
    from sentinel.cli_evidence import record_assessment

    return record_assessment(s.db, system, item, verdict, note, assessor, attach or [])


def scan(s: Seeded, findings: list, at: datetime, system: str = SYSTEM) -> int:
    """A network scan of the system's scope that found `findings` (ServiceFindings), scored by the real network
    scorer and stored through the collector's scan ingest; no packet is sent."""
    from sentinel.collector import operations
    from sentinel.collector.scan_ingest import begin_scan, finish_scan
    from tests.scan_helpers import NET, scan_report

    with s.db.session() as session:
        system_id = operations.system_by_name(session, system).id
    claim = begin_scan(s.db, system_id=system_id, triggered_by="cli", actor="cli:seed", targets=[NET],
                       full_scope=True, scope={"networks": [NET]}, args={}, zone_baseline="zone-egov-default",
                       zone=None, scanner_zone=None, stale_after=timedelta(hours=3), now=at - timedelta(seconds=20))
    finish_scan(s.db, claim.run_id, scan_report(findings, [NET], at), now=at)
    return claim.run_id


def seed_world(tmp: Path, url: Optional[str] = None) -> Seeded:
    """Two hosts over two days: web-1 fails then is fixed; db-1 keeps a high-risk empty password; one network
    scan finds telnet open (high risk) and https."""
    baseline = write_baseline(tmp)
    bad = make_root(tmp / "bad", max_days=99999, min_len=8, empty_password=True, hosts_equiv=True)
    good = make_root(tmp / "good")
    half = make_root(tmp / "half", max_days=99999, empty_password=True)
    s = new_store(tmp, url)
    create_system(s)
    enroll(s, "web-1")
    enroll(s, "db-1")
    ingest(s, "web-1", report(baseline, bad, "web-1"), T0)
    ingest(s, "db-1", report(baseline, half, "db-1"), T0 + timedelta(minutes=1))
    ingest(s, "web-1", report(baseline, good, "web-1"), T0 + timedelta(days=1))
    ingest(s, "db-1", report(baseline, half, "db-1"), T0 + timedelta(days=1, minutes=1))
    from sentinel.checks.network.findings import ServiceFinding

    scan(s, [ServiceFinding(host="10.9.0.5", port=23, service="telnet"),
             ServiceFinding(host="10.9.0.6", port=443, service="https")], T0 + timedelta(days=1, minutes=5))
    note = tmp / "访谈记录.txt"
    note.write_text("2026-03-03 与系统管理员访谈：仅采集业务必需的个人信息。\n", encoding="utf-8")
    assess(s, "8.1.4.11.a", "符合", "访谈系统管理员并查阅隐私政策", "张三", [note])
    assess(s, "8.1.4.9.a", "不符合", "未见本地备份策略文档", "李四")
    return s

