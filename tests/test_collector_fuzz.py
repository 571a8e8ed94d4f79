"""Fuzz the collector's API from its own OpenAPI spec (schemathesis): no input may cause a 5xx, and every
answer must be one the published document describes (status code, content type, headers, body schema), for
generated valid (positive) and invalid (negative) requests; invalid ones must be refused.

Bounded for CI: EXAMPLES generated requests per operation, positive and negative.
The report endpoint is also fed signed envelopes whose body is generated from the HostReport schema,
so storage (PostgreSQL types, lengths, JSON) is exercised too, not only the refusals in front of it.
"""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sentinel.model import HostReport
from tests.collector_helpers import bearer, envelope, his_site, make_report, sign

pytest_plugins = ["tests.dbfixtures", "tests.collector_helpers"]

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))


def _unlimited() -> dict:
    """Rate limits off: the fuzzer sends hundreds of requests a second from one address, which the agent
    endpoints' limits rightly answer with (documented) 429s, tested in tests/test_collector_gate.py; here
    they would hide what is being fuzzed."""
    return {"source_rate": 0, "agent_rate": 0}


@pytest.fixture
def populated(db, make_client):
    site = his_site(db, make_client, max_body_bytes=512 * 1024, **_unlimited())
    w, client, agent, admin = site.world, site.client, site.agent, site.admin
    w.token("ops", "dept_operator", ["health"])  # the fuzz also calls as the department's operator
    raw, headers = sign(agent.key, envelope(agent.agent_id, make_report({"a": "fail", "b": "pass"})))
    assert client.post("/api/v1/agent/reports", content=raw, headers=headers).status_code == 202
    client.operator_token = w.tokens["ops"]
    return client, admin, agent


@pytest.fixture
def attached(populated):
    """A manual assessment with an attachment on the populated system, so the attachment routes are fuzzed
    past their 404s too (their path ids are often set to these)."""
    client, admin, agent = populated
    r = client.post(f"/api/v1/systems/{agent.system_id}/assessments", headers=bearer(admin),
                    json={"clause": "8.1.4.11", "item": "a", "verdict": "符合"})
    assessment = r.json()["id"]
    r = client.post(f"/api/v1/systems/{agent.system_id}/assessments/{assessment}/attachments", headers=bearer(admin),
                    files={"file": ("notes.txt", b"interview notes")})
    assert r.status_code == 201, r.text
    return {"system_id": agent.system_id, "assessment_id": assessment, "attachment_id": r.json()["id"]}


def _strategy(operation):
    return operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)


# The API's code paths are the same on both databases; PostgreSQL is the strict one (NUL bytes, integer
# and varchar widths), so the whole-API fuzz runs there. Stored reports are fuzzed on both below.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_no_server_errors(populated, attached):
    client, admin, _ = populated
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    # revoking may hit the fuzzer's own admin token (id 1): do that last
    operations.sort(key=lambda op: op.path == "/api/v1/tokens/{token_id}/revoke")
    failures = []
    answered: dict[str, set[int]] = {}

    def fuzz(operation) -> None:
        # a function of its own, so that `run` binds this operation (hypothesis's @given takes no defaults)
        @FUZZ_SETTINGS
        @given(case=_strategy(operation), token=st.sampled_from([admin, admin, client.operator_token, None]),
               real_ids=st.booleans())
        def run(case, token, real_ids):
            checks = CHECKS
            if real_ids and "/attachments" in operation.path:
                case.path_parameters = {**(case.path_parameters or {}),
                                        **{k: v for k, v in attached.items() if f"{{{k}}}" in operation.path}}
                # the ids were put right by hand: whether the case is still invalid is no longer known
                checks = [c for c in CHECKS if c is not negative_data_rejection]
            headers = dict(case.headers or {})
            if token:
                headers["Authorization"] = f"Bearer {token}"
            kwargs = case.as_transport_kwargs(headers=headers)
            files = _files(kwargs)
            response = client.request(kwargs["method"], kwargs["url"].replace("http://localhost", ""),
                                      params=kwargs.get("params"), headers=kwargs.get("headers"),
                                      content=None if files else _content(kwargs), files=files)
            answered.setdefault(f"{operation.method.upper()} {operation.path}", set()).add(response.status_code)
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (AssertionError, FailureGroup) as exc:  # schemathesis's Failure, or a FailureGroup
                failures.append(f"{operation.method.upper()} {operation.path} -> {response.status_code} "
                                f"{response.text[:200]!r} for {kwargs.get('url')} {kwargs.get('params')} "
                                f"{str(kwargs.get('json'))[:200]}: {str(exc)[:600]}")

        run()

    for operation in operations:
        fuzz(operation)
    # whatever the writes above stored, every listing still reads (a stored null once made them all 500)
    for operation in operations:
        if operation.method.upper() == "GET" and "{" not in operation.path:
            case = operation.Case(headers={"Authorization": f"Bearer {admin}"})
            response = client.get(operation.path, headers={"Authorization": f"Bearer {admin}"})
            if response.status_code != 200:
                failures.append(f"after the fuzz: GET {operation.path} -> {response.status_code} {response.text[:300]}")
            else:
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                except (AssertionError, FailureGroup) as exc:
                    failures.append(f"after the fuzz: GET {operation.path}: {str(exc)[:600]}")
    assert failures == [], "\n\n".join(failures[:20])
    # the checks saw real answers, not only refusals: stored rows (validated against their response
    # schemas) and the documented error bodies
    seen = set().union(*answered.values())
    assert {200, 201, 401, 404, 422} <= seen, sorted(seen)
    assert sum(1 for codes in answered.values() if codes & {200, 201, 202}) >= len(operations) // 3, answered


def _files(kwargs) -> list | None:
    """Multipart parts as httpx takes them: values to bytes, and part names httpx can encode (the server
    sees generated junk, not a client-side encoding error)."""
    out = []
    for name, (filename, value) in kwargs.get("files") or []:
        try:
            name.encode("utf-8")
            if filename is not None:
                filename.encode("utf-8")
        except UnicodeEncodeError:
            continue
        if not isinstance(value, bytes):
            value = (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "surrogatepass")
        out.append((name, (filename, value)))
    return out or None


def _content(kwargs) -> bytes | None:
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data") or kwargs.get("content")
    if isinstance(data, str):
        return data.encode()
    return data


def _host_report_strategy():
    """HostReport bodies generated from the model's JSON schema, through schemathesis's generator."""
    schema = HostReport.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    spec = {"openapi": "3.0.3", "info": {"title": "host report", "version": "1"},
            "paths": {"/r": {"post": {"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HostReport"}}}},
                "responses": {"202": {"description": "ok"}}}}},
            "components": {"schemas": {**defs, "HostReport": schema}}}
    [operation] = [r.ok() for r in schemathesis.openapi.from_dict(spec).get_all_operations()]
    return operation.as_strategy(GenerationMode.POSITIVE).map(lambda case: case.body)


def _anchored(body: dict) -> dict:
    """The generated body on the collector's test baseline: the collector judges reports by its own copy of the
    baseline they name (sentinel/collector/judge.py), so generated results keep their generated statuses,
    observations and evidence but take check ids (and the fields the baseline fixes) from it, and the items
    are the baseline's. Summaries stay as generated: a claim the collector compares, never stores as its score."""
    honest = make_report({check_id: "pass" for check_id in BASELINE_CHECKS})
    body = dict(body, baseline=honest["baseline"], items=honest["items"], report_id=None)
    fixed = {r["check_id"]: r for r in honest["results"]}
    results = []
    # strict=False: results beyond the baseline's checks are dropped
    for result, check_id in zip(body.get("results") or [], BASELINE_CHECKS, strict=False):
        results.append({**result, **{k: fixed[check_id][k] for k in ("check_id", "clause", "item", "severity",
                                                                      "high_risk", "waiver")}})
    body["results"] = results
    return body


BASELINE_CHECKS = ["a", "b", "c", "l3-ssh-root", "check.00", "check.01", "check.02", "check.03"]


def test_generated_host_reports_are_stored_or_refused_cleanly(populated):
    client, admin, agent = populated
    statuses = []

    @settings(FUZZ_SETTINGS, max_examples=12)
    @given(body=_host_report_strategy())
    def run(body):
        body = _anchored(body)
        raw, headers = sign(agent.key, envelope(agent.agent_id, body))
        response = client.post("/api/v1/agent/reports", content=raw, headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            run_id = response.json()["run_id"]
            stored = client.get(f"/api/v1/runs/{run_id}/results", headers=bearer(admin))
            assert stored.status_code == 200 and len(stored.json()) == len(body["results"])

    run()
    assert 202 in statuses, f"no generated report was accepted: {sorted(set(statuses))}"


def _body_strategy(model):
    """Bodies generated from a wire model's JSON schema, through schemathesis's generator."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    name = model.__name__
    spec = {"openapi": "3.0.3", "info": {"title": name, "version": "1"},
            "paths": {"/r": {"post": {"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}"}}}},
                "responses": {"202": {"description": "ok"}}}}},
            "components": {"schemas": {**defs, name: schema}}}
    [operation] = [r.ok() for r in schemathesis.openapi.from_dict(spec).get_all_operations()]
    return operation.as_strategy(GenerationMode.POSITIVE).map(lambda case: case.body)


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_generated_inventory_and_utilisation_keep_the_host_readable(populated):
    """What an agent's inventory and utilisation reports store is read back by GET /hosts and
    .../utilisation: whatever passes validation must not break those reads (a 5xx is a bug)."""
    from sentinel.collector.wire import InventoryBody, UtilisationBody

    client, admin, agent = populated
    statuses = []

    @settings(FUZZ_SETTINGS, max_examples=10)
    @given(kind_body=st.one_of(_body_strategy(InventoryBody).map(lambda b: ("inventory", b)),
                               _body_strategy(UtilisationBody).map(lambda b: ("utilisation", b))))
    def run(kind_body):
        kind, body = kind_body
        raw, headers = sign(agent.key, envelope(agent.agent_id, body, kind=kind))
        response = client.post("/api/v1/agent/reports", content=raw, headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text
        hosts = client.get("/api/v1/hosts", headers=bearer(admin))
        assert hosts.status_code == 200, hosts.text
        for host in hosts.json():
            r = client.get(f"/api/v1/hosts/{host['id']}/utilisation", headers=bearer(admin))
            assert r.status_code == 200, r.text

    run()
    assert 202 in statuses, f"no generated report was accepted: {sorted(set(statuses))}"
