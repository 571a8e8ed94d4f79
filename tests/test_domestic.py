"""国产化 inventory and rates (issue 16 point 2): the rules as data (validation with file:line, a site file that
extends and overrides), recognition over the domestic fixture roots with /proc/cpuinfo and DMI files, 国密 TLS
from the live host's own openssl, and the rates through the real ingest path (signed inventories of enrolled
agents, an older agent among them) on SQLite and PostgreSQL: per system, department and cloud, by host and
by component, department-scoped, and their daily trend."""
from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sentinel import domestic as rules_mod
from sentinel.agent import domestic
from sentinel.collector.app import create_app
from sentinel.collector.settings import CollectorSettings
from sentinel.hostview import LiveHost, RootHost
from sentinel.wiring import exporters
from sentinel.yamldoc import DataFileError
from tests.collector_helpers import World, bearer, envelope, install_test_baselines, sign
from tests.fixtures.build import build_root

pytest_plugins = ["tests.dbfixtures"]

CPUINFO = Path(__file__).resolve().parent / "fixtures" / "domestic"
REPORTS = "/api/v1/agent/reports"


def _put(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def _by_category(components) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in components:
        out.setdefault(c.category, []).append(f"{c.product}:{c.origin}")
    return out


# ---- rules as data ------------------------------------------------------------------------------------------

def test_shipped_rules_load_and_cover_the_issue_s_products():
    rules = rules_mod.load()
    ids = {p.id for p in rules.products}
    for wanted in ("kylin", "uos", "openeuler", "anolis", "neokylin", "deepin", "kunpeng", "phytium", "hygon",
                   "zhaoxin", "loongson", "sunway", "dameng", "kingbase", "opengauss", "oceanbase", "tidb", "gbase",
                   "tongweb", "bes", "apusic", "inforsuite", "tongsuo", "gmssl"):
        assert wanted in ids
    assert all(p.origin == "domestic" for p in rules.products if p.id in ("kylin", "kunpeng", "dameng", "tongweb"))


def test_a_site_file_extends_and_overrides(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nproducts:\n"
                    "  - {id: acme-os, category: os, origin: domestic, vendor: 某厂, name: {zh: 某系统, en: Acme OS},\n"
                    "     match: {os_id: [acmeos]}}\n"
                    "  - {id: debian, category: os, origin: domestic, vendor: test, name: {zh: x, en: x},\n"
                    "     match: {os_id: [debian]}}\n", encoding="utf-8")
    rules = rules_mod.load(site)
    assert rules.sources[-1] == str(site)
    comps = rules_mod.recognise(rules_mod.Facts(os_id="acmeos", os_names=["Acme"]), rules, ("os",))
    assert [(c.product, c.origin) for c in comps] == [("acme-os", "domestic")]
    (deb,) = [p for p in rules.products if p.id == "debian"]
    assert deb.origin == "domestic" and deb.vendor == "test", "the site's product replaces the shipped one"
    # no rule: the fact is kept by name and counts against the rate
    (other,) = rules_mod.recognise(rules_mod.Facts(os_id="plan9", os_names=["Plan 9"]), rules, ("os",))
    assert (other.product, other.origin, other.name) == ("unrecognised", "unrecognised", "Plan 9")


@pytest.mark.parametrize("body, line, message", [
    ("  - {id: x, category: gpu, origin: domestic, vendor: v, name: {zh: a, en: a}, match: {os_id: [x]}}\n", 3,
     "category"),
    ("  - id: x\n    category: os\n    origin: domestic\n    vendor: v\n    name: {zh: a, en: a}\n"
     "    match: {os_id: [x], colour: [red]}\n", 8, "unknown key"),
    ("  - {id: x, category: os, origin: domestic, vendor: v, name: {zh: a, en: a}, match: {os_id: [x]}}\n"
     "  - {id: x, category: os, origin: foreign, vendor: v, name: {zh: a, en: a}, match: {os_id: [y]}}\n", 4,
     "defined twice"),
    ("  - id: x\n    category: database\n    origin: domestic\n    vendor: v\n    name: {zh: a, en: a}\n"
     "    match:\n      paths: [opt/dm]\n", 9, "absolute"),
    ("  - {id: x, category: os, origin: domestic, vendor: v, name: {zh: a, en: a}, match: {}}\n", 3, "no pattern"),
])
def test_a_bad_rule_file_is_refused_with_its_line(tmp_path, body, line, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nproducts:\n" + body, encoding="utf-8")
    with pytest.raises(DataFileError) as exc:
        rules_mod.load(bad)
    text = str(exc.value)
    assert text.startswith(f"{bad}:{line}:") and message in text, text


# ---- recognition -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sample, product", [
    ("kunpeng920", "kunpeng"), ("phytium-ft2000", "phytium"), ("hygon-c86", "hygon"), ("zhaoxin-kx6000", "zhaoxin"),
    ("loongson-3a5000", "loongson"), ("sunway-sw3231", "sunway"), ("intel-xeon", "intel")])
def test_processors_from_cpuinfo(sample, product):
    facts = rules_mod.Facts(**domestic.cpu_facts((CPUINFO / f"cpuinfo-{sample}.txt").read_text()))
    (cpu,) = rules_mod.recognise(facts, rules_mod.load(), ("cpu",))
    assert cpu.product == product
    assert cpu.origin == ("foreign" if product == "intel" else "domestic")
    assert cpu.found_by


def test_x86_model_number_is_not_the_model_name():
    facts = domestic.cpu_facts((CPUINFO / "cpuinfo-hygon-c86.txt").read_text())
    assert facts == {"cpu_vendor": "HygonGenuine", "cpu_family": "24",
                     "cpu_model": "Hygon C86 7285 32-core Processor"}


@pytest.mark.parametrize("name, os_product, cpu_sample, cpu_product", [
    ("kylinv10-default", "kylin", "kunpeng920", "kunpeng"),
    ("uos20-default", "uos", "phytium-ft2000", "phytium"),
    ("openeuler2203-default", "openeuler", "hygon-c86", "hygon"),
])
def test_domestic_fixture_roots(tmp_path, name, os_product, cpu_sample, cpu_product):
    root = build_root(name, tmp_path)
    _put(root, "/proc/cpuinfo", (CPUINFO / f"cpuinfo-{cpu_sample}.txt").read_text())
    _put(root, "/sys/class/dmi/id/sys_vendor", "Huawei\n" if cpu_product == "kunpeng" else "Great Wall\n")
    _put(root, "/sys/class/dmi/id/product_name", "TaiShan 200 (Model 2280)\n" if cpu_product == "kunpeng"
         else "To be filled by O.E.M.\n")
    # DM and TongWeb installed by their vendors' installers (no package), KingbaseES's default path on UOS
    _put(root, "/opt/dmdbms/bin/dmserver", "")
    _put(root, "/opt/TongWeb7.0/bin/startserver.sh", "#!/bin/sh\n")
    if name.startswith("uos"):
        _put(root, "/opt/Kingbase/ES/V8/Server/bin/kingbase", "")
    # an nginx built with Tongsuo, serving TLCP (NTLS) with SM suites
    _put(root, "/etc/nginx/conf.d/gm.conf", "server {\n  listen 443 ssl;\n  enable_ntls on;\n"
         "  # ssl_ciphers HIGH;\n"
         "  ssl_ciphers ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3:ECDHE-RSA-AES128-GCM-SHA256;\n}\n")
    host = RootHost(str(root))
    sent = domestic.collect(host)
    cats = _by_category(sent.components)
    rel = host.os_release()
    assert cats["os"] == [f"{os_product}:domestic"], rel
    assert cats["cpu"] == [f"{cpu_product}:domestic"]
    assert "dameng:domestic" in cats["database"] and ("kingbase:domestic" in cats["database"]) == name.startswith("uos")
    assert cats["middleware"] == ["tongweb:domestic"]
    assert "openssl:foreign" in cats["crypto"], "the fixture roots carry their distribution's OpenSSL"
    (os_comp,) = [c for c in sent.components if c.category == "os"]
    assert f"os_id={rel['ID']}" in os_comp.found_by[0]
    (cpu_comp,) = [c for c in sent.components if c.category == "cpu"]
    if cpu_product == "kunpeng":
        assert any(f.startswith("dmi=TaiShan 200") for f in cpu_comp.found_by)
    assert domestic.dmi_facts(host).get("product_name") != "To be filled by O.E.M."
    gm = sent.gm_tls
    assert gm.state == "configured"
    assert gm.configured == ["/etc/nginx/conf.d/gm.conf:3: enable_ntls on;",
                             "/etc/nginx/conf.d/gm.conf:5: ssl_ciphers ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3:"
                             "ECDHE-RSA-AES128-GCM-SHA256;"]


def test_an_offline_root_without_sm_configuration_is_unknown_not_none(tmp_path):
    root = build_root("kylinv10-default", tmp_path)
    gm = domestic.collect(RootHost(str(root))).gm_tls
    assert gm.state == "unknown" and "offline root" in (gm.reason or "")


def test_gm_tls_of_the_live_host_as_its_openssl_reports_it():
    from tests.obs_support import need

    need("openssl")  # tests/setup-machine.sh installs it
    gm = domestic.gm_tls(LiveHost(), [])
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True).stdout.strip()
    listed = "".join(subprocess.run(["openssl", "list", what], capture_output=True, text=True, check=True).stdout
                     for what in ("-public-key-algorithms", "-digest-algorithms", "-cipher-algorithms"))
    ciphers = subprocess.run(["openssl", "ciphers", "-v", "ALL"], capture_output=True, text=True).stdout
    expect = [a for a in ("SM2", "SM3", "SM4") if re.search(rf"\b{a}", listed)]
    assert gm.library == version and gm.algorithms == expect
    assert gm.tls_suites == sorted({w for w in ciphers.split() if "SM2" in w or w.startswith("TLS_SM4")})
    if not gm.configured:
        assert gm.state == ("capable" if len(expect) == 3 else "none")


# ---- rates through the real ingest path ------------------------------------------------------------------------

def _inventory(hostname: str, os_id: str, os_name: str, cpu_model, components=None, gm="none") -> dict:
    body = {"os": {"hostname": hostname, "os_id": os_id, "os_version": "1", "os_name": os_name, "family": "rhel",
                   "arch": "aarch64", "kernel": "4.19"},
            "arch": "aarch64", "cpu_model": cpu_model, "cpu_count": 8, "memory_bytes": 8 << 30, "packages_count": 500,
            "addresses": []}
    if components is not None:
        body["domestic"] = {"components": components, "gm_tls": {"state": gm}, "rules": ["shipped"]}
    return body


def _comp(category, product, origin):
    return {"category": category, "product": product, "origin": origin, "name": product, "name_en": product,
            "found_by": [f"test={product}"]}


def _agent_inventory(tmp_path, name, os_root, cpu_sample, extra=None) -> dict:
    """An inventory's domestic key as the agent's own code makes it from a fixture root."""
    root = build_root(os_root, tmp_path / name)
    _put(root, "/proc/cpuinfo", (CPUINFO / f"cpuinfo-{cpu_sample}.txt").read_text())
    for path in extra or ():
        _put(root, path, "")
    host = RootHost(str(root))
    info = host.os_release()
    body = _inventory(name, info["ID"], info["NAME"], None)
    body["domestic"] = domestic.collect(host).model_dump(mode="json")
    return body


@pytest.fixture
def cloud(db, tmp_path):
    w = World(db)
    for dept in ("health", "edu", "idle"):
        w.department(dept)
    w.system("his", "health")
    w.system("portal", "health")
    w.system("school", "edu")
    w.token("admin", "admin")
    w.token("edu-ro", "readonly", ["edu"])
    install_test_baselines(tmp_path / "state")
    settings = CollectorSettings(state_dir=tmp_path / "state", metrics_cache_seconds=0, agent_rate=0, source_rate=0)
    app = create_app(settings, exporters=exporters(), db=db)
    now = datetime.now(timezone.utc)
    with TestClient(app) as client:
        agents = {h: w.enroll(client, s, h) for h, s in
                  (("his-1", "his"), ("his-2", "his"), ("portal-1", "portal"), ("school-1", "school"),
                   ("school-2", "school"))}

        def post(host, body, at):
            raw, headers = sign(agents[host].key, envelope(agents[host].agent_id, body, kind="inventory", sent_at=at))
            r = client.post(REPORTS, content=raw, headers=headers)
            assert r.status_code == 202, r.text

        # his-1: Kylin on Kunpeng with DM, made by the agent's code from the Kylin fixture root
        his1 = _agent_inventory(tmp_path, "his-1", "kylinv10-default", "kunpeng920", ["/opt/dmdbms/bin/dmserver"])
        # his-2: Debian on Intel until 3 days ago, then migrated to openEuler on Hygon with MySQL kept
        his2_old = _inventory("his-2", "debian", "Debian GNU/Linux", "Intel Xeon",
                              [_comp("os", "debian", "foreign"), _comp("cpu", "intel", "foreign"),
                               _comp("database", "mysql", "foreign")])
        his2_new = _inventory("his-2", "openEuler", "openEuler", "Hygon C86",
                              [_comp("os", "openeuler", "domestic"), _comp("cpu", "hygon", "domestic"),
                               _comp("database", "mysql", "foreign"), _comp("database", "dameng", "domestic")],
                              gm="configured")
        post("his-1", his1, now - timedelta(days=6))
        post("his-2", his2_old, now - timedelta(days=6))
        post("his-2", his2_new, now - timedelta(days=3))
        # portal-1: an agent older than the domestic key: OS and CPU recognised by the collector
        post("portal-1", _inventory("portal-1", "uos", "UnionTech OS Server 20", "Phytium FT-2000+/64"),
             now - timedelta(days=1))
        # school-1: UOS on Intel with TongWeb, gm capable
        school = [_comp("os", "uos", "domestic"), _comp("cpu", "intel", "foreign"),
                  _comp("middleware", "tongweb", "domestic")]
        post("school-1", _inventory("school-1", "uos", "UOS", "Intel", school, gm="capable"), now - timedelta(hours=1))
        yield client, {name: bearer(secret) for name, secret in w.tokens.items()}


def _cat(rates: dict, category: str) -> dict:
    (c,) = [c for c in rates["categories"] if c["category"] == category]
    return c


def test_rates_per_system_department_and_cloud(cloud):
    client, auth = cloud
    r = client.get("/api/v1/domestic/cloud", headers=auth["admin"])
    assert r.status_code == 200, r.text
    cloud_ = r.json()["rates"]
    assert cloud_["hosts"] == 5 and cloud_["inventoried"] == 4, "school-2 has sent no inventory yet"
    os_ = _cat(cloud_, "os")
    assert (os_["hosts"], os_["hosts_domestic"], os_["host_rate"]) == (4, 4, 1.0)
    cpu = _cat(cloud_, "cpu")
    assert (cpu["hosts"], cpu["hosts_domestic"], cpu["host_rate"]) == (4, 3, 0.75)  # school-1 runs on Intel
    db = _cat(cloud_, "database")
    # his-1: DM; his-2: MySQL + DM (not all domestic); portal-1 old agent and school-1: no database known
    assert (db["hosts"], db["hosts_domestic"], db["components"], db["components_domestic"]) == (2, 1, 3, 2)
    assert db["host_rate"] == 0.5 and db["component_rate"] == round(2 / 3, 4)
    mw = _cat(cloud_, "middleware")
    assert (mw["hosts"], mw["host_rate"]) == (1, 1.0)
    gm = cloud_["gm_tls"]
    # his-1's offline-root facts and portal-1's old agent leave their 国密 unknown: not counted as none
    assert gm["states"] == {"configured": 1, "capable": 1, "none": 0, "unknown": 2}
    assert gm["hosts"] == 2 and gm["rate"] == 0.5
    depts = {d["department"]: d for d in client.get("/api/v1/domestic", headers=auth["admin"]).json()}
    assert list(depts) == ["edu", "health", "idle"], "a department without hosts is listed too"
    assert depts["health"]["hosts"] == 3 and _cat(depts["edu"], "cpu")["host_rate"] == 0.0
    assert depts["idle"]["hosts"] == 0 and _cat(depts["idle"], "os")["host_rate"] is None
    systems = {s["system"]: s for s in client.get("/api/v1/domestic/systems", headers=auth["admin"]).json()}
    assert systems["his"]["department"] == "health"
    assert systems["his"]["department_id"] == depts["health"]["department_id"]
    assert _cat(systems["his"], "database")["component_rate"] == round(2 / 3, 4)
    assert _cat(systems["portal"], "cpu")["host_rate"] == 1.0, "an older agent's CPU model recognised (Phytium)"

    hosts = {h["host"]: h for h in client.get("/api/v1/domestic/hosts", headers=auth["admin"]).json()}
    portal = _by_category(rules_mod.Component(**c) for c in hosts["portal-1"]["components"])
    assert portal == {"os": ["uos:domestic"], "cpu": ["phytium:domestic"]}
    assert "older agent" in hosts["portal-1"]["gm_tls"]["reason"]
    his1 = {c["product"]: c for c in hosts["his-1"]["components"]}
    assert his1["dameng"]["found_by"] == ["path=/opt/dmdbms/bin/dmserver (/opt/dmdbms/bin/dmserver)"]
    assert his1["kunpeng"]["found_by"] == ["cpu_implementer=0x48 (0x48)"]
    assert hosts["school-2"]["components"] == [] and hosts["school-2"]["inventory_at"] is None


def test_department_scope(cloud):
    client, auth = cloud
    token = auth["edu-ro"]
    cloud_ = client.get("/api/v1/domestic/cloud?days=3", headers=token).json()
    assert cloud_["rates"]["hosts"] == 2 and cloud_["trend"][-1]["hosts"] == 1, "the cloud over edu's hosts only"
    assert [d["department"] for d in client.get("/api/v1/domestic", headers=token).json()] == ["edu"]
    assert [s["system"] for s in client.get("/api/v1/domestic/systems", headers=token).json()] == ["school"]
    assert [h["host"] for h in client.get("/api/v1/domestic/hosts", headers=token).json()] == ["school-1", "school-2"]
    admin = {d["department"]: d["department_id"] for d in client.get("/api/v1/domestic", headers=auth["admin"]).json()}
    for path in ("/api/v1/domestic", "/api/v1/domestic/systems", "/api/v1/domestic/hosts", "/api/v1/domestic/trend"):
        assert client.get(f"{path}?department_id={admin['health']}", headers=token).json() == [], path
    trend = client.get("/api/v1/domestic/trend?days=3", headers=token).json()
    assert [t["department"] for t in trend] == ["edu"] and trend[0]["points"][-1]["hosts"] == 1
    assert client.get("/api/v1/domestic/cloud").status_code == 401


def test_trend_follows_each_day_s_latest_inventory(cloud):
    client, auth = cloud
    trend = client.get("/api/v1/domestic/trend?days=8", headers=auth["admin"]).json()
    health = next(t for t in trend if t["department"] == "health")
    points = {p["day"]: p for p in health["points"]}
    today = datetime.now(timezone.utc).date()
    day = lambda n: (today - timedelta(days=n)).isoformat()  # noqa: E731
    assert points[day(7)]["hosts"] == 0, "no inventory yet"
    # 6 days ago: his-1 Kylin/Kunpeng, his-2 Debian/Intel
    assert points[day(6)]["hosts"] == 2 and points[day(6)]["categories"]["os"] == 0.5
    assert points[day(4)]["categories"]["cpu"] == 0.5
    # 3 days ago his-2 moved to openEuler on Hygon; yesterday portal-1 joined (UOS, Phytium)
    assert points[day(3)]["categories"]["os"] == 1.0 and points[day(3)]["categories"]["cpu"] == 1.0
    assert points[day(3)]["component_rates"]["database"] == round(2 / 3, 4)
    assert points[day(1)]["hosts"] == 3 and points[day(0)]["hosts"] == 3
    assert len(health["points"]) == 8
    whole = client.get("/api/v1/domestic/cloud?days=8", headers=auth["admin"]).json()["trend"]
    assert [p["hosts"] for p in whole] == [0, 2, 2, 2, 2, 2, 3, 4]


def test_the_evidence_export_carries_the_system_s_figures(cloud, db):
    from sentinel import signing
    from sentinel.cli_evidence import collector_identity
    from sentinel.evidence.collect import collect
    from sentinel.exporters.evidence.html import render_html
    from sentinel.exporters.evidence.jsonexport import export_json, load_json

    client, auth = cloud
    ident = collector_identity(signing.generate_key())
    with db.session() as session:
        ev = collect(session, "his", collector=ident)
        past = collect(session, "his", collector=ident, end=datetime.now(timezone.utc) - timedelta(days=2))
    assert ev.domestic is not None
    api = next(s for s in client.get("/api/v1/domestic/systems", headers=auth["admin"]).json() if s["system"] == "his")
    assert ev.domestic.rates.model_dump(mode="json") == api, "the export's figures are the API's"
    assert [h.host for h in ev.domestic.hosts] == ["his-1", "his-2"]
    assert load_json(export_json(ev)).domestic == ev.domestic
    zh, en = render_html(ev, "zh"), render_html(ev, "en")
    assert "国产化情况" in zh and "银河麒麟" in zh and "鲲鹏" in zh and "1 / 2" in zh
    assert "Domestic products" in en and "Kylin" in en and "Kunpeng" in en
    assert past.domestic is None and any("国产化" in n for n in past.notes)


def test_keys_a_newer_agent_adds_are_ignored():
    from sentinel.collector.wire import InventoryBody

    body = _inventory("h", "kylin", "Kylin", None, [{**_comp("os", "kylin", "domestic"), "confidence": 0.9}])
    body["domestic"]["banners"] = []
    inv = InventoryBody.model_validate(body)
    assert inv.domestic is not None and inv.domestic.components[0].product == "kylin"
    with pytest.raises(ValueError):  # what this collector reads is still checked
        InventoryBody.model_validate(_inventory("h", "kylin", "Kylin", None, [_comp("gpu", "x", "domestic")]))


def test_metrics_sum_to_the_api_s_rates(cloud, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from tests.obs_support import need

    client, auth = cloud
    token = (tmp_path / "state" / "metrics-token").read_text().strip()
    r = client.get("/metrics", headers=bearer(token))
    assert r.status_code == 200, r.text
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=r.content, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    samples = [s for f in text_string_to_metric_families(r.text) for s in f.samples]

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    depts = {d["department"]: d for d in client.get("/api/v1/domestic", headers=auth["admin"]).json()}
    for dept, rates in depts.items():
        for c in rates["categories"]:
            cat = c["category"]
            assert total("sentinel_system_domestic_counted_hosts", department=dept, category=cat) == c["hosts"]
            assert total("sentinel_system_domestic_hosts", department=dept, category=cat) == c["hosts_domestic"]
            assert total("sentinel_system_domestic_components", department=dept, category=cat) == c["components"]
            assert total("sentinel_system_domestic_components", department=dept, category=cat,
                         origin="domestic") == c["components_domestic"]
        for state, n in rates["gm_tls"]["states"].items():
            assert total("sentinel_system_gm_tls_hosts", department=dept, state=state) == n
    assert total("sentinel_system_domestic_components", category="database", origin="foreign") == 1  # his-2 MySQL
    # bounded: per system, 5 categories x (2 + 3 origins) + 4 国密 states, no host label
    per_system = [s for s in samples if s.name.startswith(("sentinel_system_domestic", "sentinel_system_gm_tls"))]
    assert len(per_system) == 3 * (5 * 5 + 4) and not any("host" in s.labels for s in per_system)


def test_a_running_server_recognised_by_its_process_and_listening_socket(tmp_path):
    """A server the test starts on a loopback port under DM's process name: the live host's process and listening
    facts (as `ss -ltnp` shows them) recognise it, with no package or install path."""
    import os
    import sys

    from tests.obs_support import need

    exe = tmp_path / "dmserver"
    os.symlink(os.path.realpath(sys.executable), exe)  # the process is named after the file it was started as
    code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); time.sleep(60)")
    proc = subprocess.Popen([str(exe), "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        ss = subprocess.run([need("ss"), "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True)
        assert '"dmserver"' in ss.stdout, ss.stdout
        rules = rules_mod.load()
        f = domestic.facts(LiveHost(), rules)
        assert f"{port}/dmserver" in f.listening and "dmserver" in f.processes
        dm = [c for c in rules_mod.recognise(f, rules, ("database",)) if c.product == "dameng"]
        assert dm and f"listening={port}/dmserver (*/dmserver)" in dm[0].found_by
        assert "process=dmserver (dmserver)" in dm[0].found_by
    finally:
        proc.kill()
        proc.wait()
