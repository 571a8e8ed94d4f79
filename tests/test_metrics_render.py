"""The /metrics renderer: promtool-clean output of a realistic snapshot, names and values, opt-in per-check
series, failure reporting, content negotiation, the snapshot model's input checks, and the agent exporter."""
from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from pydantic import ValidationError

from sentinel.exporters.prometheus import (
    LIVE_FAMILIES,
    METRICS,
    make_registry,
    render,
    render_stored,
    report_file_source,
    snapshot_families,
    snapshot_from_report,
    start_agent_exporter,
)
from sentinel.metrics_model import (
    CONCLUSION_VALUES,
    CheckSeries,
    HostMetrics,
    MetricsSnapshot,
    ProbeDurations,
    SystemMetrics,
)
from tests.obs_support import NOW, SYSTEMS, free_port, need, realistic_snapshot

NAMES = {m.name for m in METRICS}


def _samples(body: bytes) -> list:
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples]


def _value(body: bytes, name: str, **labels) -> float:
    found = [s.value for s in _samples(body) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


@pytest.mark.parametrize("per_check", [False, True])
def test_promtool_check_metrics_accepts_the_output(per_check):
    promtool = need("promtool")
    body, ctype = render(make_registry(lambda: realistic_snapshot(), per_check=per_check))
    assert ctype.startswith("text/plain; version=0.0.4")
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        (proc.stdout + proc.stderr).decode()


def test_promtool_flags_a_broken_exposition():
    """The check above can fail: promtool rejects what breaks the naming rules."""
    bad = (b"# HELP sentinel_things_count a counter without _total\n# TYPE sentinel_things_count counter\n"
           b"sentinel_things_count 1\n")
    proc = subprocess.run([need("promtool"), "check", "metrics"], input=bad, capture_output=True, timeout=30)
    assert proc.returncode != 0


def test_every_declared_metric_is_exposed_and_nothing_else():
    body, _ = render(make_registry(lambda: realistic_snapshot(), per_check=True))
    families = list(text_string_to_metric_families(body.decode()))
    exposed = set()
    for fam in families:
        assert fam.name.startswith("sentinel_"), fam.name
        for s in fam.samples:
            base = s.name
            for suffix in ("_bucket", "_count", "_sum"):
                if fam.type == "histogram" and base.endswith(suffix):
                    base = base[: -len(suffix)]
            exposed.add(base)
            assert base in NAMES, f"{s.name} is not declared in exporters.prometheus.METRICS"
    assert exposed == NAMES, f"declared but without samples: {sorted(NAMES - exposed)}"
    for m in METRICS:  # naming conventions
        if m.type == "counter":
            assert m.name.endswith("_total")
        else:
            assert not m.name.endswith("_total")
        if m.type == "info":
            assert m.name.endswith("_info")
        assert "timestamp" not in m.name or m.name.endswith("_timestamp_seconds")


def test_values_follow_the_snapshot():
    body, _ = render(make_registry(lambda: realistic_snapshot()))
    assert _value(body, "sentinel_system_score", department="财政局", system="非税收入管理系统") == 82.5
    assert _value(body, "sentinel_system_pass_ratio", system="预算一体化平台") == 0.64
    assert _value(body, "sentinel_system_info", department="公安局", system="视频监控联网平台",
                  level="4", label="S4A4") == 1
    assert _value(body, "sentinel_system_high_risk_findings", system="预算一体化平台") == 2
    assert _value(body, "sentinel_system_failing_checks", system="互联网医院", severity="high") == 5
    assert _value(body, "sentinel_system_control_failing_checks", system="互联网医院", clause="8.1.4.2") == 3
    assert _value(body, "sentinel_system_findings", system="互联网医院", state="fixed") == 30
    assert _value(body, "sentinel_system_forbidden_services", system="预算一体化平台") == 1
    assert _value(body, "sentinel_forbidden_service_open", system="预算一体化平台", port="23", service="telnet") == 1
    assert _value(body, "sentinel_scan_last_run_success", system="互联网医院") == 0
    assert _value(body, "sentinel_scan_failures_total", system="互联网医院") == 3
    assert _value(body, "sentinel_tls_certificate_expiry_timestamp_seconds", system="非税收入管理系统") == \
        (NOW + timedelta(days=20)).timestamp()
    assert _value(body, "sentinel_host_up", system="预算一体化平台", host="web-02.sys1") == 0
    assert _value(body, "sentinel_host_last_report_timestamp_seconds", host="app-00.sys0") == \
        (NOW - timedelta(minutes=5)).timestamp()
    assert _value(body, "sentinel_check_duration_seconds_bucket", probe="command", le="1.0") == 2
    assert _value(body, "sentinel_check_duration_seconds_count", probe="command") == 4
    assert _value(body, "sentinel_ingest_errors_total", reason="stale") == 2
    assert _value(body, "sentinel_up") == 1
    # exactly one conclusion per system is 1; an unscored system has no score sample but a conclusion
    for _dept, name, *_ in SYSTEMS:
        states = [s for s in _samples(body) if s.name == "sentinel_system_conclusion" and s.labels["system"] == name]
        assert sorted(s.labels["conclusion"] for s in states) == sorted(CONCLUSION_VALUES)
        assert sum(s.value for s in states) == 1
    assert _value(body, "sentinel_system_conclusion", system="政务外网门户", conclusion="undetermined") == 1
    assert not [s for s in _samples(body) if s.name == "sentinel_system_score" and s.labels["system"] == "政务外网门户"]


def test_per_check_series_are_opt_in_and_cardinality_is_bounded():
    snap = realistic_snapshot()
    default, _ = render(make_registry(lambda: snap))
    assert not [s for s in _samples(default) if s.name.startswith("sentinel_check_result")]
    opted, _ = render(make_registry(lambda: snap, per_check=True))
    results = [s for s in _samples(opted) if s.name == "sentinel_check_result"]
    nhosts = sum(len(s.hosts) for s in snap.systems)
    assert len(results) == nhosts * 5
    assert {s.labels["status"] for s in results} == {"pass", "fail"}
    # the advisory mark is a bounded label: an advisory check's fail is told apart from a failure
    assert {(s.labels["check"], s.labels["advisory"]) for s in results if s.labels["advisory"] == "true"} == {
        ("l3.8.1.4.1.advisory", "true")}
    assert {s.labels["advisory"] for s in results} == {"true", "false"}
    # default series do not grow with the number of checks per host
    extra = [CheckSeries(check_id=f"extra.{n}", clause="8.1.4.5", severity="low", status="fail") for n in range(50)]
    more_checks = snap.model_copy(update={"systems": [
        s.model_copy(update={"hosts": [h.model_copy(update={"checks": h.checks + extra}) for h in s.hosts]})
        for s in snap.systems]})
    assert len(_samples(render(make_registry(lambda: more_checks))[0])) == len(_samples(default))
    assert len(_samples(render(make_registry(lambda: more_checks, per_check=True))[0])) > len(_samples(opted))
    per_system = len(_samples(default)) / len(snap.systems)
    # (about 10 of them per declared website: the realistic snapshot gives each system one; 29 国产化 counts)
    assert per_system < 200, f"{per_system:.0f} series per system by default"


def test_a_failing_store_shows_as_sentinel_up_0_not_as_an_error(caplog):
    calls = {"n": 0}

    def broken() -> MetricsSnapshot:
        calls["n"] += 1
        raise RuntimeError("database is locked")

    registry = make_registry(broken)
    with caplog.at_level(logging.ERROR, logger="sentinel.exporters.prometheus"):
        body, _ = render(registry)
        body2, _ = render(registry)
    assert calls["n"] == 2
    assert _value(body2, "sentinel_up") == 0
    assert _value(body2, "sentinel_snapshot_errors_total") == 2
    assert [s for s in _samples(body2) if s.name == "sentinel_build_info"]
    assert not [s for s in _samples(body2) if s.name == "sentinel_system_score"]
    assert "database is locked" in caplog.text
    # a source returning the wrong type is a failure too, not a crash
    body3, _ = render(make_registry(lambda: {"systems": []}))
    assert _value(body3, "sentinel_up") == 0


def test_registering_reads_nothing_and_each_scrape_reads_once():
    """A registry (the agent exporter's) reads its source once a scrape, never when registered. (The collector
    answers scrapes from its background rendering: tests/test_metrics_stored.py.)"""
    calls = {"n": 0}

    def source() -> MetricsSnapshot:
        calls["n"] += 1
        return realistic_snapshot(with_checks=False)

    registry = make_registry(source)
    assert calls["n"] == 0
    render(registry)
    render(registry)
    assert calls["n"] == 2


def test_openmetrics_on_request():
    body, ctype = render(make_registry(lambda: realistic_snapshot()),
                         "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert ctype.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.rstrip().endswith("# EOF")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["sentinel_build"].type == "info"
    assert families["sentinel_scan_failures"].type == "counter"
    assert families["sentinel_host_last_report_timestamp_seconds"].unit == "seconds"


@pytest.mark.parametrize("bad, needle", [
    (dict(label="S9A3"), "label must look like S3A3"),
    (dict(conclusion="很好"), "conclusion must be one of"),
    (dict(failing_checks_by_clause={"ssh": 1}), "not a clause number"),
    (dict(services_open=1, services_forbidden=2), "exceeds services_open"),
    (dict(score=120), "less than or equal to 100"),
    (dict(department=""), "department must not be empty"),
    (dict(hosts=[HostMetrics(name="a"), HostMetrics(name="a")]), "host 'a' listed twice"),
])
def test_snapshot_model_rejects_bad_input_naming_it(bad, needle):
    with pytest.raises(ValidationError) as exc:
        SystemMetrics(**{"department": "财政局", "name": "OA", **bad})
    assert needle in str(exc.value)


def test_snapshot_model_rejects_naive_times_and_broken_histograms():
    with pytest.raises(ValidationError, match="timezone-aware"):
        MetricsSnapshot(generated_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="cumulative"):
        ProbeDurations(probe="file", buckets=(0.1, 1.0), bucket_counts=(3, 2), count=3, sum_seconds=1)
    with pytest.raises(ValidationError, match="listed twice"):
        MetricsSnapshot(generated_at=NOW, systems=[SystemMetrics(department="d", name="s")] * 2)


def _real_report():
    from sentinel.baseline import load_baseline
    from sentinel.engine import run_baseline
    from sentinel.hostview import RootHost

    return run_baseline, load_baseline, RootHost


def test_agent_exporter_serves_its_hosts_latest_report(tmp_path: Path):
    run_baseline, load_baseline, RootHost = _real_report()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n')
    report = run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(root)))
    path = tmp_path / "last-report.json"
    source = report_file_source(path, department="财政局", system="非税收入管理系统")
    port = free_port()
    server, thread = start_agent_exporter(source, addr="127.0.0.1", port=port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        missing = httpx.get(url, timeout=5, trust_env=False)
        assert missing.status_code == 200 and _value(missing.content, "sentinel_up") == 0
        path.write_text(report.model_dump_json())
        body = httpx.get(url, timeout=5, trust_env=False).content
        host = report.host.hostname
        assert _value(body, "sentinel_up") == 1
        assert _value(body, "sentinel_host_score", host=host, system="非税收入管理系统") == report.summary.score
        assert _value(body, "sentinel_host_pass_ratio", host=host) == report.summary.pass_rate
        failing = sum(1 for r in report.results if r.status.value == "fail" and not r.waiver and not r.advisory)
        assert failing and sum(s.value for s in _samples(body) if s.name == "sentinel_host_failing_checks") == failing
        assert _value(body, "sentinel_host_conclusion", host=host, conclusion=report.summary.conclusion_en) == 1
        # one host cannot speak for its system: no system-wide figures from an agent
        assert not [s for s in _samples(body)
                    if s.name.startswith("sentinel_system_") and s.name != "sentinel_system_info"]
        proc = subprocess.run([need("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stdout.decode()
    finally:
        server.shutdown()
        server.server_close()


def test_snapshot_from_report_wire_envelope(tmp_path: Path):
    run_baseline, load_baseline, RootHost = _real_report()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    report = run_baseline(load_baseline("dengbao-l3-linux"), RootHost(str(root)))
    envelope = {"report_id": "x", "agent_id": "a", "sent_at": "2026-11-23T10:00:00Z", "kind": "host_report",
                "body": report.model_dump(mode="json")}
    import json

    path = tmp_path / "envelope.json"
    path.write_text(json.dumps(envelope))
    snap = report_file_source(path, department="d", system="s")()
    direct = snapshot_from_report(report, department="d", system="s")
    assert snap.systems[0].hosts == direct.systems[0].hosts
    assert snap.systems[0].system_wide is False
    assert datetime.now(timezone.utc) - snap.generated_at < timedelta(minutes=1)


def test_docs_list_every_metric_and_the_port():
    from sentinel.exporters.prometheus import DEFAULT_AGENT_EXPORTER_PORT

    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines() if line.startswith("| `sentinel_")}
    assert set(rows) == NAMES
    for m in METRICS:
        cells = [c.strip() for c in rows[m.name].split("|")]
        assert cells[2] == m.type, m.name
        assert [lbl.strip(" `") for lbl in cells[3].split(",") if lbl.strip(" `–")] == list(m.labels), m.name
    assert DEFAULT_AGENT_EXPORTER_PORT == 22239 and "**port 22239**" in doc
    assert not 9100 <= DEFAULT_AGENT_EXPORTER_PORT <= 9999


class _Replay:
    """A collector answering every scrape with the same families, so that two encoders see one collection (two
    scrapes of a registry differ in sentinel_snapshot_duration_seconds)."""

    def __init__(self, metrics) -> None:
        self.metrics = list(metrics)

    def collect(self):
        return iter(self.metrics)


def _replay(metrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Replay(metrics))
    return registry


def _stored_families(snap: MetricsSnapshot, per_check: bool) -> CollectorRegistry:
    """The families the collector renders in the background (render_stored), as a registry."""
    return _replay(snapshot_families(snap, per_check).only(lambda name: name not in LIVE_FAMILIES))


@pytest.mark.parametrize("per_check", [False, True])
def test_the_fast_text_format_is_generate_latest_byte_for_byte(per_check):
    """render()'s own text encoder (for speed at 10,000 hosts) writes exactly what prometheus-client does,
    including label values that need escaping: through a registry (the agent exporter) and as the collector
    renders its stored part."""
    from prometheus_client.exposition import generate_latest

    from sentinel.exporters.prometheus import text_format

    snap = realistic_snapshot()
    odd = snap.systems[0].model_copy(update={"name": 'a "quoted"\\back\nslash 系统', "department": "d\\"})
    snap = snap.model_copy(update={"systems": snap.systems + [odd]})
    registry = _replay(make_registry(lambda: snap, per_check=per_check).collect())  # one scrape for both
    fast = text_format(registry)
    assert fast == generate_latest(registry)
    assert b'system="a \\"quoted\\"\\\\back\\nslash' in fast
    body, ctype = render(registry)
    assert body == fast and ctype.startswith("text/plain; version=0.0.4")
    stored = render_stored(snap, ["text"], per_check=per_check)["text"]
    assert stored == generate_latest(_stored_families(snap, per_check))
    assert b'system="a \\"quoted\\"\\\\back\\nslash' in stored


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.42 sends


@pytest.mark.parametrize("per_check", [False, True])
def test_the_fast_openmetrics_is_the_librarys_byte_for_byte(per_check):
    from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

    from sentinel.exporters.prometheus import openmetrics_format

    snap = realistic_snapshot()
    odd = snap.systems[0].model_copy(update={"name": 'a "quoted"\\back\nslash 系统'})
    snap = snap.model_copy(update={"systems": snap.systems + [odd]})
    registry = _replay(make_registry(lambda: snap, per_check=per_check).collect())
    fast = openmetrics_format(registry)
    assert fast == om_generate_latest(registry)
    body, ctype = render(registry, PROMETHEUS_ACCEPT)
    assert body == fast and ctype.startswith("application/openmetrics-text; version=1.0.0")
    # the collector's stored part leaves the end mark to the live part it is served with
    stored = render_stored(snap, ["openmetrics"], per_check=per_check)["openmetrics"]
    assert stored + b"# EOF\n" == om_generate_latest(_stored_families(snap, per_check))
