"""The collector scores reports itself, by its own copy of the baseline (issue 20 item 2), through the HTTP API.

A rogue agent sends results that all fail, one of them high risk, under a summary (and item verdicts) claiming
优 / 100 / nothing failed: the run must be stored and shown as what the results give (差 / 0), the claim kept
beside it and audited. Results the named baseline does not define as sent (unknown checks, another clause,
item, severity, high-risk case or waiver) and baselines the collector does not have are refused with a 422
naming the field, and nothing is stored.
"""
from __future__ import annotations

import copy

import pytest

from sentinel.collector.baselines import BaselineRegistry, UnknownBaseline
from tests.collector_helpers import (
    HIGH_RISK_CASE,
    HIGH_RISK_CHECK,
    audit_rows,
    bearer,
    counts,
    envelope,
    his_site,
    install_test_baselines,
    make_report,
    sign,
)

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

REPORTS = "/api/v1/agent/reports"
ALL_FAIL = {HIGH_RISK_CHECK: "fail", "a": "fail", "b": "fail", "c": "fail"}


@pytest.fixture
def env(db, make_client):
    site = his_site(db, make_client)
    return site.world, site.client, site.agent, bearer(site.admin)


def _forged(body: dict) -> dict:
    """The agent's summary and item verdicts replaced by a perfect score."""
    body = copy.deepcopy(body)
    s = body["summary"]
    total = len(body["results"])
    s.update(score=100.0, conclusion="优", conclusion_en="excellent", pass_rate=1.0, high_risk=0,
             high_risk_findings=[], counts={"pass": total, "fail": 0, "error": 0, "not_applicable": 0},
             risk_counts={"high": 0, "medium": 0, "low": 0})
    for item in body["items"]:
        item["verdict"] = "符合"
    s["verdicts"] = {"符合": len(body["items"]), "部分符合": 0, "不符合": 0, "不适用": 0, "待核查": 0}
    return body


def test_forged_summary_is_stored_as_the_results_give_and_flagged(env, db):
    world, client, agent, admin = env
    honest = make_report(ALL_FAIL)
    assert honest["summary"]["conclusion"] == "差" and honest["summary"]["score"] == 0.0
    body = _forged(honest)
    e = envelope(agent.agent_id, body)
    r = client.post(REPORTS, content=(s := sign(agent.key, e))[0], headers=s[1])
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]

    run = client.get(f"/api/v1/runs/{run_id}", headers=admin).json()
    assert (run["score"], run["conclusion"], run["failed"], run["high_risk"]) == (0.0, "差", 4, 1)
    assert run["pass_rate"] == 0.0
    assert run["summary"]["conclusion"] == "差" and run["summary"]["risk_counts"]["high"] == 1
    assert run["summary"]["high_risk_findings"][0]["check_id"] == HIGH_RISK_CHECK
    claimed = run["summary"]["agent_claimed"]  # the flag, visible in the API
    assert claimed["score"] == 100.0 and claimed["conclusion"] == "优" and claimed["items_differing"] >= 3
    listed = client.get("/api/v1/runs", headers=admin).json()
    assert [(x["score"], x["conclusion"]) for x in listed] == [(0.0, "差")]

    [flag] = audit_rows(db, "report.summary_mismatch")
    assert flag.outcome == "flagged" and flag.target == f"report:{e['report_id']}"
    assert "score 100.0" in flag.detail and "'优'" in flag.detail and "(collector: '差')" in flag.detail

    # the forged summary changes nothing downstream: the high-risk finding and its alert are there
    findings = client.get("/api/v1/findings", headers=admin).json()
    assert sorted(f["check_id"] for f in findings) == sorted(ALL_FAIL)
    events = client.get("/api/v1/events", params={"kind": "high_risk_finding"}, headers=admin).json()
    assert [ev["check_id"] for ev in events] == [HIGH_RISK_CHECK]
    assessment = client.get(f"/api/v1/systems/{agent.system_id}/assessment", headers=admin).json()
    assert assessment["summary"]["conclusion"] == "差" and assessment["summary"]["score"] == 0.0
    verdicts = {(i["clause"], i["item"]): i["verdict"] for i in assessment["items"]}
    assert verdicts[("8.1.4.1", "a")] == verdicts[("8.1.4.1", "c")] == "不符合"
    assert assessment["hosts"][0]["conclusion"] == "差" and assessment["hosts"][0]["score"] == 0.0


def test_a_claim_is_kept_small_whatever_the_agent_sends(env, db):
    _, client, agent, admin = env
    body = make_report({"a": "fail"})
    body["summary"]["counts"] = {f"k{i}": i for i in range(5000)}  # the schema allows any mapping
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])
    assert r.status_code == 202, r.text
    claimed = client.get(f"/api/v1/runs/{r.json()['run_id']}", headers=admin).json()["summary"]["agent_claimed"]
    assert len(claimed["counts"]) == 17 and claimed["counts"]["..."] == "4984 more keys"


def test_an_honest_report_is_not_flagged(env, db):
    _, client, agent, admin = env
    body = make_report({"a": "pass", "b": "fail"})
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])
    assert r.status_code == 202, r.text
    run = client.get(f"/api/v1/runs/{r.json()['run_id']}", headers=admin).json()
    assert run["summary"] == body["summary"] and "agent_claimed" not in run["summary"]
    assert audit_rows(db, "report.summary_mismatch") == []


def _refused(db, client, agent, body: dict, loc: str, words: list[str]):
    before = counts(db)
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])
    assert r.status_code == 422, r.text
    answer = r.json()
    for word in words:
        assert word in answer["detail"], answer["detail"]
    assert answer["errors"][0]["loc"] == loc
    assert counts(db) == before, "a refused report must store nothing"
    assert audit_rows(db, "report.ingest")[-1].status_code == 422
    return answer


def _with(body: dict, index: int, **changes) -> dict:
    body = copy.deepcopy(body)
    body["results"][index].update(changes)
    return body


@pytest.mark.parametrize("change, loc, words", [
    ({"high_risk": None}, "body.results.0.high_risk", [f"gives check {HIGH_RISK_CHECK} '{HIGH_RISK_CASE}'"]),
    ({"severity": "low"}, "body.results.0.severity", ["'low'", "'high'"]),
    ({"clause": "8.1.4.2"}, "body.results.0.clause", ["'8.1.4.2'", "'8.1.4.1'"]),
    ({"item": "h"}, "body.results.0.item", ["'h'", "'a'"]),
    # the roll-up merges by catalogue key: a result under another item's key would count there
    ({"key": "ces.audit.enable"}, "body.results.0.key", ["'ces.audit.enable'", "'ces.auth.identify'"]),
    ({"waiver": "not ours to waive"}, "body.results.0.waiver", ["'not ours to waive'", "None"]),
    # advisory results decide no verdict, so an agent may not mark a failing check advisory
    ({"advisory": {"zh": "超出", "en": "beyond the guide"}}, "body.results.0.advisory", ["beyond the guide", "None"]),
    ({"check_id": "made.up"}, "body.results.0.check_id", ["'made.up' is not a check of baseline sentinel-test"]),
])
def test_results_must_be_the_baselines_checks_as_it_defines_them(env, db, change, loc, words):
    _, client, agent, _ = env
    _refused(db, client, agent, _with(make_report(ALL_FAIL), 0, **change), loc, words)


def test_a_check_reported_twice_is_refused(env, db):
    _, client, agent, _ = env
    body = make_report({"a": "fail", "b": "pass"})
    body["results"].append(dict(body["results"][1]))  # the passing check again, to dilute the failure
    _refused(db, client, agent, body, "body.results.2.check_id", ["reported twice", "results.1"])


def test_items_must_be_the_baselines_with_its_weights(env, db):
    """Item weights and lists are the baseline's: an agent cannot make a failing item weigh nothing or drop it."""
    _, client, agent, _ = env
    body = make_report(ALL_FAIL)
    light = copy.deepcopy(body)
    light["items"][0]["weight"] = 0.01
    _refused(db, client, agent, light, "body.items.0.weight", ["0.01", "weighs 8.1.4.1.a 0.7"])
    fewer = copy.deepcopy(body)
    del fewer["items"][0]
    _refused(db, client, agent, fewer, "body.items", ["lacks 1 item(s)", "8.1.4.1.a"])
    extra = copy.deepcopy(body)
    extra["items"].append(dict(extra["items"][0], clause="8.1.9.9"))
    _refused(db, client, agent, extra, f"body.items.{len(body['items'])}", ["8.1.9.9.a is not an item"])
    moved = copy.deepcopy(body)
    moved["items"][0]["checks"] = []
    _refused(db, client, agent, moved, "body.items.0.checks", ["[] but baseline"])
    # the system roll-up merges hosts' items by key and prints the unit: an agent cannot move an item
    rekeyed = copy.deepcopy(body)
    rekeyed["items"][0]["key"] = "ces.audit.enable"
    _refused(db, client, agent, rekeyed, "body.items.0.key", ["'ces.audit.enable'", "'ces.auth.identify'"])
    reunit = copy.deepcopy(body)
    reunit["items"][0]["unit"] = "L3-CES1-99"
    _refused(db, client, agent, reunit, "body.items.0.unit", ["'L3-CES1-99'", "'L3-CES1-01'"])


def test_a_report_without_catalogue_keys_is_judged_by_clause(env, db):
    """Reports made before keys carry none: they are accepted, judged by clause and item as before."""
    _, client, agent, admin = env
    body = make_report({"a": "fail"})
    for part in body["results"] + body["items"]:
        part.pop("key", None)
        part.pop("unit", None)
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])
    assert r.status_code == 202, r.text
    run = client.get(f"/api/v1/runs/{r.json()['run_id']}", headers=admin).json()
    assert (run["score"], run["conclusion"], run["failed"]) == (0.0, "差", 1)


def test_a_baseline_the_collector_does_not_have_is_refused(env, db):
    _, client, agent, _ = env
    unknown = make_report({"a": "fail"}, baseline_id="made-up-baseline")
    _refused(db, client, agent, unknown, "body.baseline", ["'made-up-baseline' is not known to this collector"])
    other_version = make_report({"a": "fail"}, version="9.9.9")
    _refused(db, client, agent, other_version, "body.baseline", ["version '9.9.9'", "it has version '1.0.0'"])
    wrong_level = make_report({"a": "fail"})
    wrong_level["baseline"]["level"] = 2
    _refused(db, client, agent, wrong_level, "body.baseline.level", ["is level 3"])


def test_the_systems_level_decides_the_baseline_not_the_agent(env, db):
    """A level-3 system is not judged by a laxer level-2 baseline, even one the collector has."""
    _, client, agent, _ = env
    lax = make_report({"a": "pass"}, baseline_id="sentinel-test-l2")
    _refused(db, client, agent, lax, "body.baseline", ["level-2 baseline", "system his is graded level 3"])


def test_stored_result_fields_come_from_the_baseline(env, db):
    """Titles and remediation too: what an operator reads is the baseline's wording, not the agent's."""
    _, client, agent, admin = env
    body = make_report({"a": "fail"})
    body["results"][0]["title"] = {"zh": "无关紧要", "en": "nothing to see"}
    body["results"][0]["remediation"] = {"zh": "忽略", "en": "ignore it"}
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, body)))[0], headers=s[1])
    assert r.status_code == 202, r.text
    [row] = client.get(f"/api/v1/runs/{r.json()['run_id']}/results", headers=admin).json()
    assert row["title"] == {"zh": "检查 a", "en": "check a"}
    assert (row["clause"], row["item"], row["severity"], row["high_risk"]) == ("8.1.4.1", "a", "medium", None)
    [finding] = client.get("/api/v1/findings", headers=admin).json()
    assert finding["title"]["en"] == "check a" and finding["remediation"]["en"] == "fix the setting"


def test_the_site_baseline_waiver_is_the_collectors(env, db):
    """A waiver counts only where the collector's (site) baseline gives it."""
    _, client, agent, admin = env
    site = make_report({"telnet": "fail", "a": "pass"}, baseline_id="sentinel-test-site")
    r = client.post(REPORTS, content=(s := sign(agent.key, envelope(agent.agent_id, site)))[0], headers=s[1])
    assert r.status_code == 202, r.text
    run = client.get(f"/api/v1/runs/{r.json()['run_id']}", headers=admin).json()
    assert run["summary"]["waived"] == 1 and run["conclusion"] == "优" and run["score"] == 100.0
    assert run["failed"] == 0  # the waived failure is evidence, not a failure of the run (summary.counts keeps it)
    claimed_waiver = make_report({"telnet": "fail", "a": "pass"}, waived={"telnet"})  # on the shipped-like base
    _refused(db, client, agent, claimed_waiver, "body.results.0.waiver", ["'accepted risk'", "gives check telnet None"])


# ---- the registry itself -------------------------------------------------------------------------------------------


def test_registry_finds_a_site_baseline_added_later_and_refuses_shadowing(tmp_path):
    now = [0.0]
    registry = BaselineRegistry([tmp_path / "baselines"], rescan_seconds=10, clock=lambda: now[0])
    with pytest.raises(UnknownBaseline, match="'sentinel-test' is not known"):
        registry.get("sentinel-test", "1.0.0")
    install_test_baselines(tmp_path)
    with pytest.raises(UnknownBaseline):  # within the rescan interval the directory is not read again
        registry.get("sentinel-test", "1.0.0")
    now[0] = 11.0
    assert registry.get("sentinel-test", "1.0.0").checks[HIGH_RISK_CHECK].high_risk == HIGH_RISK_CASE
    assert registry.get("sentinel-test-site", "1.0.0").checks["telnet"].waiver == "accepted risk"
    shipped = registry.get("dengbao-l3-linux", _shipped_version("dengbao-l3-linux"))
    assert shipped.origin == "shipped" and len(shipped.checks) > 30
    with pytest.raises(UnknownBaseline, match="it has version"):
        registry.get("dengbao-l3-linux", "0.0.0-forged")
    # a site file claiming a shipped id is not used: the shipped baseline is always the one judged by
    (tmp_path / "baselines" / "shadow.yaml").write_text(
        (tmp_path / "baselines" / "sentinel-test.yaml").read_text()
        .replace("id: sentinel-test", "id: dengbao-l2-linux").replace('version: "1.0.0"', 'version: "7.7.7"'))
    now[0] = 30.0
    with pytest.raises(UnknownBaseline):
        registry.get("no-such", "1")  # a miss rescans: shadow.yaml is read, and not used
    assert any(key is None for _, key in registry._site_files.values())
    with pytest.raises(UnknownBaseline, match="it has version"):
        registry.get("dengbao-l2-linux", "7.7.7")


def _shipped_version(baseline_id: str) -> str:
    from sentinel.baseline import load_baseline

    return load_baseline(baseline_id).version


def test_the_shipped_baselines_are_loaded_as_the_collector_starts(db, make_client):
    """The first report pays no loading of the catalogue and baselines (nor a broken install's first error)."""
    from sentinel.baseline import shipped

    client = make_client(db)
    registry = client.app.state.ingestor.baselines
    assert registry._shipped_loaded == set(shipped())
    loaded = {ref.baseline.id for (scope, _, _), ref in registry._refs.items() if scope is None}
    assert set(shipped()) <= loaded
    # a second registry (another worker's app) shares the indexed shipped baselines rather than reading them again
    other = BaselineRegistry()
    other.preload()
    mine = {k: ref for k, ref in registry._refs.items() if ref.origin == "shipped"}
    assert len(mine) == len(shipped()) and all(other._refs[k] is ref for k, ref in mine.items())
