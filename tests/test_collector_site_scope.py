"""Site baselines are scoped by where the admin put them (issue 20: a waiver in a site file is a privilege).

A file directly in `<state>/baselines/` applies to every department; a file in `<state>/baselines/<dept>/`
only to that department's systems. Through the real HTTP API, on SQLite and PostgreSQL: an agent of another
department naming a department's site baseline (to have its failures waived) is refused with a 422 naming
body.baseline, and nothing is stored; the department's own agent is judged by it.
"""
from __future__ import annotations

import copy

import pytest

from sentinel.collector.baselines import BaselineRegistry, UnknownBaseline
from tests.collector_helpers import (
    TEST_BASELINE_ID,
    TEST_SITE_ID,
    World,
    audit_rows,
    bearer,
    counts,
    envelope,
    install_test_baselines,
    make_report,
    sign,
)

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"
FINANCE_SITE = "site-finance"


def _finance_site_yaml(version: str = "1.0.0", waiver: str = "finance accepts this risk") -> str:
    return (f"id: {FINANCE_SITE}\nversion: \"{version}\"\nextends: ../{TEST_BASELINE_ID}.yaml\n"
            f"title: {{zh: 财务站点基线, en: finance site baseline}}\nwaive:\n  telnet: \"{waiver}\"\n")


def _as(body: dict, baseline_id: str, waiver: str) -> dict:
    """make_report's report on the shared site baseline (telnet waived), renamed to another site file with
    the same content, as an agent running that file makes it."""
    body = copy.deepcopy(body)
    body["baseline"]["id"] = baseline_id
    for result in body["results"]:
        if result["waiver"]:
            result["waiver"] = waiver
    return body


@pytest.fixture
def env(db, make_client, tmp_path):
    world = World(db)
    world.department("health")
    world.department("finance")
    world.system("his", "health")
    world.system("erp", "finance")
    admin = world.token("root", "admin")
    client = make_client(db)  # installs the shared test baselines in tmp_path/state/baselines
    scoped = tmp_path / "state" / "baselines" / "finance"
    scoped.mkdir()
    (scoped / f"{FINANCE_SITE}.yaml").write_text(_finance_site_yaml(), encoding="utf-8")
    health = world.enroll(client, "his", "web-1")
    finance = world.enroll(client, "erp", "app-1")
    return world, client, health, finance, bearer(admin)


def _post(client, agent, body):
    return client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])


def test_another_departments_site_baseline_is_refused(env, db):
    _, client, health, finance, admin = env
    borrowed = _as(make_report({"telnet": "fail", "a": "pass"}, baseline_id=TEST_SITE_ID, hostname="web-1"),
                   FINANCE_SITE, "finance accepts this risk")
    before = counts(db)
    r = _post(client, health, borrowed)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["errors"][0]["loc"] == "body.baseline"
    assert f"'{FINANCE_SITE}' is not known to this collector for department 'health'" in answer["detail"]
    assert "finance" not in answer["detail"].replace(f"'{FINANCE_SITE}'", ""), "another department's files unnamed"
    assert counts(db) == before, "a refused report must store nothing"
    assert audit_rows(db, "report.ingest")[-1].status_code == 422

    # the department the file was put for is judged by it: telnet's failure is waived
    own = _as(make_report({"telnet": "fail", "a": "pass"}, baseline_id=TEST_SITE_ID, hostname="app-1"),
              FINANCE_SITE, "finance accepts this risk")
    r = _post(client, finance, own)
    assert r.status_code == 202, r.text
    run = client.get(f"/api/v1/runs/{r.json()['run_id']}", headers=admin).json()
    assert run["baseline_id"] == FINANCE_SITE
    assert run["summary"]["waived"] == 1 and run["conclusion"] == "优"

    # a site file directly in baselines/ is every department's
    shared = make_report({"telnet": "fail", "a": "pass"}, baseline_id=TEST_SITE_ID, hostname="web-1")
    assert _post(client, health, shared).status_code == 202


# ---- the registry ---------------------------------------------------------------------------------------------------


def test_registry_scopes_site_files_by_directory(tmp_path):
    now = [0.0]
    root = install_test_baselines(tmp_path)
    (root / "finance").mkdir()
    (root / "finance" / f"{FINANCE_SITE}.yaml").write_text(_finance_site_yaml(), encoding="utf-8")
    registry = BaselineRegistry([root], clock=lambda: now[0])

    assert registry.get(FINANCE_SITE, "1.0.0", "finance").scope == "finance"
    for department in ("health", None, "finance/..", ".."):
        with pytest.raises(UnknownBaseline, match=f"'{FINANCE_SITE}' is not known"):
            registry.get(FINANCE_SITE, "1.0.0", department)
    # the shared files are every department's, and without a department only those are used
    assert registry.get(TEST_SITE_ID, "1.0.0", "health").scope is None
    assert registry.get(TEST_SITE_ID, "1.0.0").scope is None

    # a version another department has is not named to this one
    (root / "health").mkdir()
    (root / "health" / f"{FINANCE_SITE}.yaml").write_text(_finance_site_yaml("2.0.0", "health's own"),
                                                            encoding="utf-8")
    now[0] = 60.0
    with pytest.raises(UnknownBaseline) as err:
        registry.get(FINANCE_SITE, "1.0.0", "health")
    assert str(err.value).endswith("(it has version '2.0.0')")
    assert registry.get(FINANCE_SITE, "2.0.0", "health").checks["telnet"].waiver == "health's own"
    assert registry.get(FINANCE_SITE, "1.0.0", "finance").checks["telnet"].waiver == "finance accepts this risk"

    # a department's own file with the shared file's id and version is the one its systems are judged by
    (root / "health" / "override.yaml").write_text(
        (root / f"{TEST_SITE_ID}.yaml").read_text().replace("extends: ", "extends: ../")
        .replace("accepted risk", "health overrides"), encoding="utf-8")
    now[0] = 120.0
    with pytest.raises(UnknownBaseline):
        registry.get("no-such", "1", "health")  # a miss rescans
    assert registry.get(TEST_SITE_ID, "1.0.0", "health").checks["telnet"].waiver == "health overrides"
    assert registry.get(TEST_SITE_ID, "1.0.0", "finance").checks["telnet"].waiver == "accepted risk"

    # a removed department file stops applying once the directory is read again (on a miss, as for shared files)
    (root / "finance" / f"{FINANCE_SITE}.yaml").unlink()
    now[0] = 180.0
    with pytest.raises(UnknownBaseline):
        registry.get("no-such", "1", "finance")
    with pytest.raises(UnknownBaseline):
        registry.get(FINANCE_SITE, "1.0.0", "finance")
