"""Prometheus exposition of sentinel's stored state (the collector's `/metrics`, and the optional agent exporter).

A custom prometheus-client Collector renders a `MetricsSnapshot` read from stored state: a scrape never runs a
check (checks take seconds to minutes; a scrape times out after 10 s by default). Names, types and labels are
listed in docs/metrics.md; `METRICS` below is the single source that the docs test and the dashboard test use.

    registry = make_registry(source)                                       # the agent exporter, once
    body, content_type = render(registry, request.headers.get("accept"))   # per GET /metrics

The collector renders in two parts instead (sentinel/collector/metrics_stored.py): `render_stored` the stored
state's families in the background, `render_live` this process's own families at each scrape.

Labels are bounded: departments, systems, hosts, the few 测评对象 of a host (object kind and instance, at most
MAX_OBJECTS_PER_HOST), severities, clause numbers of the standard, probe types. The
per-check series (host x check) multiply that by the size of a baseline, so they are opt-in (`per_check=True`).
"""
from __future__ import annotations

import json
import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Optional, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, generate_latest, start_http_server
from prometheus_client.openmetrics import exposition as om
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from sentinel import __version__
from sentinel.metrics_model import (
    CONCLUSION_VALUES,
    DR_VERDICTS,
    NOTICE_STATES,
    REPLICATION_STATES,
    WEBSITE_FINDING_KINDS,
    ZOMBIE_REVIEWS,
    ZOMBIE_VERDICTS,
    CheckSeries,
    DRMetrics,
    HostMetrics,
    MetricsSnapshot,
    ObjectMetrics,
    SystemMetrics,
    WebsiteMetrics,
)
from sentinel.model import HostReport, Severity, Status

log = logging.getLogger(__name__)

#: Default port of the standalone agent-side exporter. The Prometheus "default port allocations" range
#: 9100-9999 is fully taken, and internal exporters are asked to stay outside it; 22239 is unallocated there
#: and echoes the standard's number (GB/T 22239). The collector serves /metrics on its own API port.
DEFAULT_AGENT_EXPORTER_PORT = 22239

SnapshotSource = Callable[[], MetricsSnapshot]

SYSTEM = ("department", "system")
HOST = ("department", "system", "host")
SITE = SYSTEM + ("website",)  # a declared website of the system (sentinel/websites)
OBJECT = HOST + ("object", "object_instance")  # a 测评对象: its kind and instance (not `instance`: the scrape target)


@dataclass(frozen=True)
class MetricDef:
    name: str  # the exposed sample name (counters with _total, info with _info)
    type: str  # gauge | counter | histogram | info
    labels: tuple[str, ...]
    help: str
    opt_in: bool = False


def _defs() -> list[MetricDef]:
    g, c = "gauge", "counter"
    return [
        MetricDef("sentinel_build_info", "info", ("version", "python"), "Build of the running sentinel; value is 1."),
        MetricDef("sentinel_up", g, (),
                  "1 if the last read of the stored state worked, 0 if not (figures are the last read; see the log)."),
        MetricDef("sentinel_snapshot_timestamp_seconds", g, (), "When the stored state shown was read, Unix seconds."),
        MetricDef("sentinel_snapshot_duration_seconds", g, (),
                  "Seconds the read and rendering of the stored state shown took."),
        MetricDef("sentinel_snapshot_errors_total", c, (), "Reads of the stored state that failed."),
        # systems
        MetricDef("sentinel_system_info", "info", SYSTEM + ("level", "label"),
                  "A system under 等保 protection: its department, level and S/A grade label; value is 1."),
        MetricDef("sentinel_system_score", g, SYSTEM,
                  "Composite compliance score of the system (0-100): hosts' latest reports and the latest full scan, "
                  "rolled up item by item."),
        MetricDef("sentinel_system_pass_ratio", g, SYSTEM,
                  "Passing checks / (pass + fail + error) over the system's latest runs (0-1)."),
        MetricDef("sentinel_system_conclusion", g, SYSTEM + ("conclusion",),
                  "1 for the system's current conclusion (excellent=优 good=良 fair=中 poor=差 "
                  "undetermined=待定), 0 for the others."),
        MetricDef("sentinel_system_failing_checks", g, SYSTEM + ("severity",),
                  "Failing checks across the system's hosts, by check severity."),
        MetricDef("sentinel_system_control_failing_checks", g, SYSTEM + ("clause",),
                  "Failing checks by control point (GB/T 22239 clause) across the system's hosts."),
        MetricDef("sentinel_system_high_risk_findings", g, SYSTEM,
                  "Unresolved high-risk findings (高风险判定指引 cases) of the system."),
        MetricDef("sentinel_system_findings", g, SYSTEM + ("state",),
                  "Findings of the rectification trail by state: open (not yet fixed) or fixed (resolved)."),
        MetricDef("sentinel_system_open_services", g, SYSTEM, "Listening services found by the latest network scans."),
        MetricDef("sentinel_system_forbidden_services", g, SYSTEM,
                  "Listening services that the system's policy forbids (subset of open services)."),
        MetricDef("sentinel_forbidden_service_open", g, SYSTEM + ("host", "port", "protocol", "service"),
                  "1 for each open service that the system's policy forbids."),
        MetricDef("sentinel_tls_certificate_expiry_timestamp_seconds", g, SYSTEM + ("host", "port"),
                  "notAfter of the TLS certificate served on an endpoint in the system's scope, Unix seconds."),
        MetricDef("sentinel_scan_last_duration_seconds", g, SYSTEM, "Duration of the system's latest network scan."),
        MetricDef("sentinel_scan_last_run_timestamp_seconds", g, SYSTEM, "When the system's latest network scan ran."),
        MetricDef("sentinel_scan_last_success_timestamp_seconds", g, SYSTEM,
                  "When a network scan of the system last succeeded."),
        MetricDef("sentinel_scan_last_run_success", g, SYSTEM,
                  "1 if the system's latest network scan succeeded, 0 if it failed."),
        MetricDef("sentinel_scan_failures_total", c, SYSTEM, "Failed network scans of the system (stored scan runs)."),
        # 国产化 (docs/domestic.md): counts, so that department and cloud rates are sums (sum by (department))
        MetricDef("sentinel_system_domestic_hosts", g, SYSTEM + ("category",),
                  "Hosts of the system whose components of the category (os, cpu, database, middleware, crypto) are "
                  "all domestic (国产)."),
        MetricDef("sentinel_system_domestic_counted_hosts", g, SYSTEM + ("category",),
                  "Hosts of the system whose facts show the category: the denominator of the by-host rate."),
        MetricDef("sentinel_system_domestic_components", g, SYSTEM + ("category", "origin"),
                  "Components of the system's hosts by category and origin (domestic, foreign, unrecognised)."),
        MetricDef("sentinel_system_gm_tls_hosts", g, SYSTEM + ("state",),
                  "Hosts of the system by 国密 (SM2/SM3/SM4) TLS state: configured, capable, none, unknown."),
        MetricDef("sentinel_system_zombie_verdict", g, SYSTEM + ("verdict",),
                  "1 for the system's zombie-system verdict (in_use=在用 suspect=疑似僵尸 zombie=僵尸 unknown=未知: "
                  "too little data), 0 for the others."),
        MetricDef("sentinel_system_zombie_reviewed", g, SYSTEM + ("decision",),
                  "1 when a person's review stands on the system's current zombie verdict (confirmed: to be "
                  "decommissioned; dismissed: in use after all), 0 for the other decision."),
        # disaster recovery (docs/backups.md): a dozen per system; ages are time() - the timestamps
        MetricDef("sentinel_system_backup_rpo_verdict", g, SYSTEM + ("verdict",),
                  "1 for the system's verdict against its recovery point objective (meets, misses, unknown: a host's "
                  "backup check errored, was not declared or has not run), 0 for the others."),
        MetricDef("sentinel_system_backup_rpo_seconds", g, SYSTEM,
                  "The recovery point objective the system's hosts are judged against (the smallest declared)."),
        MetricDef("sentinel_system_backup_newest_timestamp_seconds", g, SYSTEM + ("scope",),
                  "The stalest host's newest backup, local or offsite (copies declared at another site), Unix "
                  "seconds, as its latest run read it."),
        MetricDef("sentinel_system_backup_copies", g, SYSTEM,
                  "Backup copies holding a backup, on the system's host that has fewest."),
        MetricDef("sentinel_system_backup_offsite_copies", g, SYSTEM,
                  "Off-site backup copies holding a backup, on the system's host that has fewest."),
        MetricDef("sentinel_system_replication_hosts", g, SYSTEM + ("state",),
                  "Hosts of the system by database replication state: streaming, broken (a declared database "
                  "has no streaming replica), unknown (the check could not determine it)."),
        MetricDef("sentinel_system_replication_lag_seconds", g, SYSTEM,
                  "The largest replay lag of the system's streaming replicas, as their latest runs read it."),
        # the 通报 loop (docs/notices.md): three per system
        MetricDef("sentinel_system_notice_problems", g, SYSTEM + ("state",),
                  "Problems of the system notified in a 通报, by state: open (within its deadline), fixed (verified "
                  "by a later run, scan or round), overdue (past its deadline, escalated)."),
        # websites (网站群监测): a few per system
        MetricDef("sentinel_website_info", "info", SITE + ("url",),
                  "A declared website of the system and its home page URL; value is 1."),
        MetricDef("sentinel_website_vetoed", g, SITE,
                  "1 if the website's latest round failed a 单项否决 rule of the national inspection, 0 if not."),
        MetricDef("sentinel_website_open_findings", g, SITE + ("kind",),
                  "Open website findings by the rule's kind (veto, deduct, security, practice)."),
        MetricDef("sentinel_website_availability_ratio", g, SITE,
                  "Share of the availability visits of the last 7 days that opened within the timeout (0-1)."),
        MetricDef("sentinel_website_last_round_timestamp_seconds", g, SITE,
                  "When the website's latest succeeded monitoring round finished, Unix seconds."),
        MetricDef("sentinel_website_last_round_duration_seconds", g, SITE,
                  "Duration of the website's latest succeeded monitoring round."),
        MetricDef("sentinel_website_certificate_expiry_timestamp_seconds", g, SITE + ("origin",),
                  "notAfter of the certificate of each HTTPS origin of the website (its latest round), Unix seconds."),
        # hosts
        MetricDef("sentinel_host_info", "info", HOST + ("os", "baseline", "agent_version"),
                  "A host of a system: its OS, baseline and agent version; value is 1."),
        MetricDef("sentinel_host_score", g, HOST, "Composite compliance score of the host's latest run (0-100)."),
        MetricDef("sentinel_host_pass_ratio", g, HOST, "Pass ratio of the host's latest run (0-1)."),
        MetricDef("sentinel_host_conclusion", g, HOST + ("conclusion",),
                  "1 for the host's current conclusion, 0 for the others (values as sentinel_system_conclusion)."),
        MetricDef("sentinel_host_failing_checks", g, HOST + ("severity",),
                  "Failing checks of the host's latest run, by severity."),
        MetricDef("sentinel_host_high_risk_findings", g, HOST, "High-risk findings in the host's latest run."),
        MetricDef("sentinel_host_last_report_timestamp_seconds", g, HOST,
                  "When the host's agent last reported, Unix seconds."),
        MetricDef("sentinel_host_zombie_verdict", g, HOST + ("verdict",),
                  "1 for the host's zombie-system verdict, 0 for the others (values as "
                  "sentinel_system_zombie_verdict)."),
        MetricDef("sentinel_host_idle_seconds", g, HOST,
                  "Idle time of the host in the zombie rules' window: its idle days x 86400 (days without enough "
                  "samples are not idle; absent: no covered day)."),
        MetricDef("sentinel_host_up", g, HOST,
                  "1 if the host's agent reported within its expected interval, 0 if it is silent."),
        MetricDef("sentinel_host_run_duration_seconds", g, HOST, "Duration of the host's latest check run."),
        # a host's other 测评对象 (databases, middleware, web servers): a few per host (metrics_model bounds them)
        MetricDef("sentinel_object_info", "info", OBJECT + ("name", "baseline"),
                  "A 测评对象 on a host besides its OS: its name and the baseline of its latest run; value is 1."),
        MetricDef("sentinel_object_score", g, OBJECT,
                  "Composite compliance score of the object's record: its latest run (0-100)."),
        MetricDef("sentinel_object_pass_ratio", g, OBJECT, "Pass ratio of the object's latest run (0-1)."),
        MetricDef("sentinel_object_conclusion", g, OBJECT + ("conclusion",),
                  "1 for the object's current conclusion, 0 for the others (values as sentinel_system_conclusion)."),
        MetricDef("sentinel_object_failing_checks", g, OBJECT + ("severity",),
                  "Failing checks of the object's latest run, by severity."),
        MetricDef("sentinel_object_high_risk_findings", g, OBJECT, "High-risk findings in the object's latest run."),
        MetricDef("sentinel_object_run_duration_seconds", g, OBJECT, "Duration of the object's latest check run."),
        # checks and ingest
        MetricDef("sentinel_check_duration_seconds", "histogram", ("probe",),
                  "Durations of stored check results by probe type (cumulative)."),
        MetricDef("sentinel_check_result", g, HOST + ("check", "clause", "severity", "status", "advisory"),
                  "1 for each check's latest status on a host; advisory=\"true\" for an advisory check, whose "
                  "fail is no failure (opt-in: per-check series).", opt_in=True),
        MetricDef("sentinel_check_last_duration_seconds", g, HOST + ("check",),
                  "Duration of each check's latest run on a host (opt-in: per-check series).", opt_in=True),
        MetricDef("sentinel_ingest_reports_total", c, ("kind",), "Agent reports accepted by the collector, by kind."),
        MetricDef("sentinel_ingest_errors_total", c, ("reason",),
                  "Agent reports rejected by the collector, by reason."),
    ]


METRICS: tuple[MetricDef, ...] = tuple(_defs())
_BY_NAME = {m.name: m for m in METRICS}
# info families: labels fixed per sample vs the info dict (InfoMetricFamily keeps them apart)
_INFO_FIXED = {"sentinel_build_info": (), "sentinel_system_info": SYSTEM, "sentinel_host_info": HOST,
               "sentinel_website_info": SITE,
               "sentinel_object_info": OBJECT}


def _family(name: str) -> Metric:
    d = _BY_NAME[name]
    if d.type == "gauge":
        unit = "seconds" if name.endswith("_seconds") else ("ratio" if name.endswith("_ratio") else "")
        return GaugeMetricFamily(name, d.help, labels=d.labels, unit=unit)
    if d.type == "counter":
        return CounterMetricFamily(name, d.help, labels=d.labels)
    if d.type == "histogram":
        return HistogramMetricFamily(name, d.help, labels=d.labels, unit="seconds")
    if d.type == "info":
        base = name[: -len("_info")]
        return InfoMetricFamily(base, d.help, labels=_INFO_FIXED[name])
    raise AssertionError(d.type)



def _ts(dt: Optional[datetime]) -> Optional[float]:
    return dt.timestamp() if dt is not None else None


_F = TypeVar("_F", bound=Metric)


class _Families:
    """Families created on first use, yielded in METRICS order; empty ones are still yielded (HELP/TYPE only)."""

    def __init__(self, per_check: bool) -> None:
        self._fams: dict[str, Metric] = {}
        self._per_check = per_check

    def __getitem__(self, name: str) -> Metric:
        if name not in self._fams:
            self._fams[name] = _family(name)
        return self._fams[name]

    def _kind(self, name: str, kind: type[_F]) -> _F:
        fam = self[name]
        assert isinstance(fam, kind), name  # _family makes the class its MetricDef's type names
        return fam

    def info(self, name: str) -> InfoMetricFamily:
        return self._kind(name, InfoMetricFamily)

    def counter(self, name: str) -> CounterMetricFamily:
        return self._kind(name, CounterMetricFamily)

    def histogram(self, name: str) -> HistogramMetricFamily:
        return self._kind(name, HistogramMetricFamily)

    def gauge(self, name: str, labels: Iterable[str], value: Optional[float]) -> None:
        if value is not None:
            self._kind(name, GaugeMetricFamily).add_metric(list(labels), float(value))

    def __iter__(self) -> Iterator[Metric]:
        return self.only(lambda name: True)

    def only(self, keep: Callable[[str], bool]) -> Iterator[Metric]:
        for d in METRICS:
            if (d.opt_in and not self._per_check) or not keep(d.name):
                continue
            yield self[d.name]


def _system(f: _Families, s: SystemMetrics, per_check: bool) -> None:
    sl = (s.department, s.name)
    f.info("sentinel_system_info").add_metric(list(sl), {"level": str(s.level) if s.level else "", "label": s.label})
    if s.system_wide:
        f.gauge("sentinel_system_score", sl, s.score)
        f.gauge("sentinel_system_pass_ratio", sl, s.pass_ratio)
        if s.conclusion:
            for value in CONCLUSION_VALUES:
                f.gauge("sentinel_system_conclusion", sl + (value,), 1 if value == s.conclusion else 0)
        for sev, n in s.failing_checks.items():
            f.gauge("sentinel_system_failing_checks", sl + (sev.value,), n)
        for clause, n in sorted(s.failing_checks_by_clause.items()):
            f.gauge("sentinel_system_control_failing_checks", sl + (clause,), n)
        f.gauge("sentinel_system_high_risk_findings", sl, s.high_risk_findings)
        f.gauge("sentinel_system_findings", sl + ("open",), s.findings_open)
        f.gauge("sentinel_system_findings", sl + ("fixed",), s.findings_fixed)
        f.gauge("sentinel_system_open_services", sl, s.services_open)
        f.gauge("sentinel_system_forbidden_services", sl, s.services_forbidden)
        for svc in s.forbidden_services:
            f.gauge("sentinel_forbidden_service_open", sl + (svc.host, str(svc.port), svc.protocol, svc.service), 1)
        for cert in s.certificates:
            f.gauge("sentinel_tls_certificate_expiry_timestamp_seconds", sl + (cert.host, str(cert.port)),
                    cert.not_after.timestamp())
        if s.scan is not None:
            f.gauge("sentinel_scan_last_duration_seconds", sl, s.scan.last_duration_seconds)
            f.gauge("sentinel_scan_last_run_timestamp_seconds", sl, _ts(s.scan.last_run))
            f.gauge("sentinel_scan_last_success_timestamp_seconds", sl, _ts(s.scan.last_success))
            if s.scan.last_run_success is not None:
                f.gauge("sentinel_scan_last_run_success", sl, 1 if s.scan.last_run_success else 0)
            f.counter("sentinel_scan_failures_total").add_metric(list(sl), s.scan.failures_total)
        if s.domestic is not None:
            for category, n in s.domestic.hosts.items():
                f.gauge("sentinel_system_domestic_counted_hosts", sl + (category,), n)
                f.gauge("sentinel_system_domestic_hosts", sl + (category,), s.domestic.domestic_hosts.get(category, 0))
            for category, origins in s.domestic.components.items():
                for origin, n in origins.items():
                    f.gauge("sentinel_system_domestic_components", sl + (category, origin), n)
            for state, n in s.domestic.gm_tls.items():
                f.gauge("sentinel_system_gm_tls_hosts", sl + (state,), n)
        if s.zombie is not None:
            for value in ZOMBIE_VERDICTS:
                f.gauge("sentinel_system_zombie_verdict", sl + (value,), 1 if value == s.zombie.verdict else 0)
            for value in ZOMBIE_REVIEWS:
                f.gauge("sentinel_system_zombie_reviewed", sl + (value,), 1 if value == s.zombie.review else 0)
        if s.dr is not None:
            _dr(f, sl, s.dr)
        if s.notice_problems is not None:
            for state in NOTICE_STATES:
                f.gauge("sentinel_system_notice_problems", sl + (state,), s.notice_problems.get(state, 0))
        for w in s.websites:
            _website(f, sl, w)
    for h in s.hosts:
        _host(f, sl, h, per_check)


def _dr(f: _Families, sl: tuple[str, str], d: DRMetrics) -> None:
    for value in DR_VERDICTS:
        f.gauge("sentinel_system_backup_rpo_verdict", sl + (value,), 1 if value == d.verdict else 0)
    f.gauge("sentinel_system_backup_rpo_seconds", sl, d.rpo_seconds)
    f.gauge("sentinel_system_backup_newest_timestamp_seconds", sl + ("local",), _ts(d.newest_local))
    f.gauge("sentinel_system_backup_newest_timestamp_seconds", sl + ("offsite",), _ts(d.newest_offsite))
    f.gauge("sentinel_system_backup_copies", sl, d.copies)
    f.gauge("sentinel_system_backup_offsite_copies", sl, d.offsite_copies)
    for state in REPLICATION_STATES:
        f.gauge("sentinel_system_replication_hosts", sl + (state,), d.replication_hosts.get(state, 0))
    f.gauge("sentinel_system_replication_lag_seconds", sl, d.replication_lag_seconds)


def _website(f: _Families, sl: tuple[str, str], w: WebsiteMetrics) -> None:
    wl = sl + (w.name,)
    f.info("sentinel_website_info").add_metric(list(wl), {"url": w.url})
    if w.vetoed is not None:
        f.gauge("sentinel_website_vetoed", wl, 1 if w.vetoed else 0)
    for kind in WEBSITE_FINDING_KINDS:
        f.gauge("sentinel_website_open_findings", wl + (kind,), w.open_findings.get(kind, 0))
    f.gauge("sentinel_website_availability_ratio", wl, w.availability_ratio)
    f.gauge("sentinel_website_last_round_timestamp_seconds", wl, _ts(w.last_round))
    f.gauge("sentinel_website_last_round_duration_seconds", wl, w.last_round_duration_seconds)
    for origin, not_after in w.certificates:
        f.gauge("sentinel_website_certificate_expiry_timestamp_seconds", wl + (origin,), not_after.timestamp())


def _host(f: _Families, sl: tuple[str, str], h: HostMetrics, per_check: bool) -> None:
    hl = sl + (h.name,)
    f.info("sentinel_host_info").add_metric(list(hl), {"os": h.os or "", "baseline": h.baseline or "",
                                                      "agent_version": h.agent_version or ""})
    f.gauge("sentinel_host_score", hl, h.score)
    f.gauge("sentinel_host_pass_ratio", hl, h.pass_ratio)
    if h.conclusion:
        for value in CONCLUSION_VALUES:
            f.gauge("sentinel_host_conclusion", hl + (value,), 1 if value == h.conclusion else 0)
    for sev, n in h.failing_checks.items():
        f.gauge("sentinel_host_failing_checks", hl + (sev.value,), n)
    f.gauge("sentinel_host_high_risk_findings", hl, h.high_risk_findings)
    f.gauge("sentinel_host_last_report_timestamp_seconds", hl, _ts(h.last_report))
    f.gauge("sentinel_host_up", hl, 1 if h.up else 0)
    if h.zombie_verdict is not None:
        for value in ZOMBIE_VERDICTS:
            f.gauge("sentinel_host_zombie_verdict", hl + (value,), 1 if value == h.zombie_verdict else 0)
    f.gauge("sentinel_host_idle_seconds", hl, h.idle_days * 86400 if h.idle_days is not None else None)
    f.gauge("sentinel_host_run_duration_seconds", hl, h.run_duration_seconds)
    if per_check:
        for c in h.checks:
            _check(f, hl, c)
    for o in h.objects:
        _object(f, hl, o)


def _object(f: _Families, hl: tuple[str, str, str], o: ObjectMetrics) -> None:
    ol = hl + (o.kind, o.instance)
    f.info("sentinel_object_info").add_metric(list(ol), {"name": o.name, "baseline": o.baseline or ""})
    f.gauge("sentinel_object_score", ol, o.score)
    f.gauge("sentinel_object_pass_ratio", ol, o.pass_ratio)
    if o.conclusion:
        for value in CONCLUSION_VALUES:
            f.gauge("sentinel_object_conclusion", ol + (value,), 1 if value == o.conclusion else 0)
    for sev, n in o.failing_checks.items():
        f.gauge("sentinel_object_failing_checks", ol + (sev.value,), n)
    f.gauge("sentinel_object_high_risk_findings", ol, o.high_risk_findings)
    f.gauge("sentinel_object_run_duration_seconds", ol, o.run_duration_seconds)


def _check(f: _Families, hl: tuple[str, str, str], c: CheckSeries) -> None:
    f.gauge("sentinel_check_result", hl + (c.check_id, c.clause, c.severity.value, c.status.value,
                                           "true" if c.advisory else "false"), 1)
    f.gauge("sentinel_check_last_duration_seconds", hl + (c.check_id,), c.duration_seconds)


def snapshot_families(snap: MetricsSnapshot, per_check: bool = False) -> _Families:
    f = _Families(per_check)
    for s in snap.systems:
        _system(f, s, per_check)
    for p in snap.check_durations:
        # strict: the model refuses a snapshot whose bucket and count tuples differ in length
        buckets = [(_le(b), n) for b, n in zip(p.buckets, p.bucket_counts, strict=True)] + [("+Inf", p.count)]
        f.histogram("sentinel_check_duration_seconds").add_metric([p.probe], buckets, p.sum_seconds)
    if snap.ingest is not None:
        for kind, n in sorted(snap.ingest.reports_total.items()):
            f.counter("sentinel_ingest_reports_total").add_metric([kind], n)
        for reason, n in sorted(snap.ingest.errors_total.items()):
            f.counter("sentinel_ingest_errors_total").add_metric([reason], n)
    return f


def _read_state(f: _Families, read_at: Optional[datetime], took: Optional[float], errors: int,
                up: Optional[bool] = None) -> None:
    """The build and how the stored state shown was read: when, in how long, and whether the last read worked."""
    f.info("sentinel_build_info").add_metric([], {"version": __version__, "python": platform.python_version()})
    f.gauge("sentinel_up", (), (read_at is not None) if up is None else up)
    if read_at is not None:
        f.gauge("sentinel_snapshot_timestamp_seconds", (), read_at.timestamp())
        f.gauge("sentinel_snapshot_duration_seconds", (), took)
    f.counter("sentinel_snapshot_errors_total").add_metric([], errors)


#: Families that a collector renders at every scrape: its own counters and histogram since it started, and how the
#: stored state shown was read. The other families show the stored state, which the collector renders in the
#: background (sentinel/collector/metrics.py), so a scrape costs what these few series cost.
LIVE_FAMILIES = frozenset({
    "sentinel_build_info", "sentinel_up", "sentinel_snapshot_timestamp_seconds", "sentinel_snapshot_duration_seconds",
    "sentinel_snapshot_errors_total", "sentinel_check_duration_seconds", "sentinel_ingest_reports_total",
    "sentinel_ingest_errors_total"})


def exposition_format(accept: Optional[str]) -> tuple[str, str]:
    """("openmetrics" or "text", its content type) for an Accept header, as prometheus-client negotiates."""
    encoder, content_type = choose_encoder(accept or "")
    if encoder is generate_latest:
        return "text", content_type
    return "openmetrics", "application/openmetrics-text; version=1.0.0; charset=utf-8"


def render_stored(snap: MetricsSnapshot, formats: Iterable[str], *, per_check: bool = False) -> dict[str, bytes]:
    """The stored state's families of `snap` (all but LIVE_FAMILIES) in each format, without OpenMetrics' `# EOF`:
    the first part of a body that `render_live` ends. The families are built once for all formats."""
    families = list(snapshot_families(snap, per_check).only(lambda name: name not in LIVE_FAMILIES))
    return {fmt: _FORMATS[fmt](families, False) for fmt in formats}


def render_live(snap: MetricsSnapshot, fmt: str, *, read_at: Optional[datetime], took: Optional[float],
                errors: int, up: bool) -> bytes:
    """LIVE_FAMILIES in `fmt` (ending the body: `# EOF` in OpenMetrics): the process's counters and check
    durations from `snap` (its systems are not read), and how the stored part was read: at `read_at`, in `took`
    seconds, `up` whether the last read worked, `errors` reads that failed."""
    f = snapshot_families(snap.model_copy(update={"systems": []}))
    _read_state(f, read_at, took, errors, up)
    return _FORMATS[fmt](f.only(lambda name: name in LIVE_FAMILIES), True)


def _le(bound: float) -> str:
    return repr(float(bound))


class SentinelCollector(Collector):
    """Renders the snapshot returned by `source` on each scrape.

    `source` reads stored state only. If it raises, the scrape still answers with `sentinel_up 0` and
    `sentinel_build_info` (and the error is logged), so a broken store shows up as an alert instead of a gap.
    (The collector does not scrape through this: it renders in the background, sentinel/collector/metrics_stored.py.)
    """

    def __init__(self, source: SnapshotSource, *, per_check: bool = False) -> None:
        self._source = source
        self.per_check = per_check
        self._lock = threading.Lock()  # for _errors: scrapes may run in several threads at once
        self._errors = 0

    def describe(self) -> Iterator[Metric]:
        # names only: registering must not read the store
        return iter(_Families(self.per_check))

    def _snapshot(self) -> tuple[MetricsSnapshot, float]:
        start = time.perf_counter()
        snap = self._source()
        if not isinstance(snap, MetricsSnapshot):
            raise TypeError(f"snapshot source returned {type(snap).__name__}, not MetricsSnapshot")
        return snap, time.perf_counter() - start

    def collect(self) -> Iterator[Metric]:
        snap: Optional[MetricsSnapshot]  # None: the stored state could not be read
        took: Optional[float]
        try:
            snap, took = self._snapshot()
        except Exception as exc:  # a scrape must answer: report the failure as sentinel_up 0
            with self._lock:
                self._errors += 1
            log.error("metrics: reading stored state failed: %s: %s", type(exc).__name__, exc)
            f = _Families(self.per_check)
            snap, took = None, None
        else:
            f = snapshot_families(snap, self.per_check)
        _read_state(f, snap.generated_at if snap is not None else None, took, self._errors)
        yield from f


def make_registry(source: SnapshotSource, *, per_check: bool = False) -> CollectorRegistry:
    """A registry holding only sentinel's collector (no process/platform metrics: don't re-export machine metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SentinelCollector(source, per_check=per_check))
    return registry


def render(registry: CollectorRegistry, accept: Optional[str] = None) -> tuple[bytes, str]:
    """(body, content type) for a `/metrics` request; any web framework can return them as they are.

    Content negotiation follows the Accept header: OpenMetrics when asked for, else the text format 0.0.4,
    written by `text_format` (the same bytes as prometheus-client's generate_latest, in about a third of the
    time at 10,000 hosts: bench/metrics_render_bench.py).
    """
    encoder, content_type = choose_encoder(accept or "")
    if encoder is generate_latest:
        return text_format(registry), content_type
    if (isinstance(encoder, partial) and encoder.func is om_generate_latest
            and encoder.keywords.get("version") == "1.0.0"
            and encoder.keywords.get("escaping") in (om.UNDERSCORES, om.ALLOWUTF8)):
        # what Prometheus asks for; sentinel's names are valid legacy names, so both escapings write the same
        return openmetrics_format(registry), content_type
    return encoder(registry), content_type


def openmetrics_format(registry: CollectorRegistry) -> bytes:
    """OpenMetrics 1.0.0 of `registry`, byte for byte as prometheus-client's openmetrics generate_latest
    writes it for sentinel's families (a test compares); label values escaped once each, as in text_format.
    Exemplars, native histograms and sample timestamps, which sentinel never sets, go to the library."""
    return _openmetrics(registry.collect(), True)


def _openmetrics(metrics: Iterable[Metric], eof: bool) -> bytes:
    out: list[str] = []
    escaped: dict[str, str] = {}
    for metric in metrics:
        if any(s.exemplar or s.native_histogram or s.timestamp is not None for s in metric.samples):
            raise ValueError(f"{metric.name}: exemplars/native histograms/timestamps are not written here")
        name = metric.name
        out.append(f"# HELP {name} {_escape_value(metric.documentation)}\n# TYPE {name} {metric.type}\n")
        if metric.unit:
            out.append(f"# UNIT {name} {metric.unit}\n")
        for s in metric.samples:
            labels = s.labels
            value = "" if s.value is None else floatToGoString(s.value)
            if labels:
                out.append(f"{s.name}{_label_set(labels, escaped)} {value}\n")
            else:
                out.append(f"{s.name} {value}\n")
    if eof:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _label_set(labels: dict[str, str], escaped: dict[str, str]) -> str:
    """`{name="value",...}` in name order; each distinct value is escaped once per exposition (`escaped`)."""
    parts = []
    for k in sorted(labels):
        v = labels[k]
        e = escaped.get(v)
        if e is None:
            e = escaped[v] = _escape_value(v)
        parts.append(f'{k}="{e}"')
    return "{" + ",".join(parts) + "}"


def _escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def text_format(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format 0.0.4 of `registry`, byte for byte as generate_latest writes it (a test
    compares). Faster because sentinel's metric and label names are fixed valid names (METRICS), so they need
    no escaping, and because the few thousand distinct label values (departments, systems, hosts) are escaped
    once each instead of once per sample."""
    return _text(registry.collect())


def _text(metrics: Iterable[Metric], eof: bool = False) -> bytes:  # `eof` unused: the text format has no end mark
    out: list[str] = []
    escaped: dict[str, str] = {}
    for metric in metrics:
        mname, mtype = metric.name, metric.type
        if mtype == "counter":
            mname += "_total"
        elif mtype == "info":
            mname, mtype = mname + "_info", "gauge"
        elif mtype == "stateset":
            mtype = "gauge"
        elif mtype == "gaugehistogram":
            mtype = "histogram"
        elif mtype == "unknown":
            mtype = "untyped"
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {mname} {doc}\n# TYPE {mname} {mtype}\n")
        om: dict[str, list[str]] = {}
        special = {metric.name + s: s for s in ("_created", "_gsum", "_gcount")}
        for s in metric.samples:
            labels = s.labels
            if labels:
                line = f"{s.name}{_label_set(labels, escaped)} {floatToGoString(s.value)}"
            else:
                line = f"{s.name} {floatToGoString(s.value)}"
            if s.timestamp is not None:
                line += f" {int(float(s.timestamp) * 1000):d}"
            suffix = special.get(s.name)
            if suffix is None:
                out.append(line + "\n")
            else:
                om.setdefault(suffix, []).append(line + "\n")
        for suffix, lines in sorted(om.items()):
            out.append(f"# HELP {metric.name + suffix} {doc}\n# TYPE {metric.name + suffix} gauge\n")
            out.extend(lines)
    return "".join(out).encode("utf-8")


_FORMATS: dict[str, Callable[[Iterable[Metric], bool], bytes]] = {"text": _text, "openmetrics": _openmetrics}


# ---- agent-side exporter ----------------------------------------------------------------------------


def host_metrics_from_report(report: HostReport, *, up: bool = True,
                             agent_version: Optional[str] = None) -> HostMetrics:
    failing: dict[Severity, int] = {}
    checks = []
    for r in report.results:
        if r.status == Status.FAIL and not r.waiver and not r.advisory:  # advisory evidence is no failure
            failing[r.severity] = failing.get(r.severity, 0) + 1
        checks.append(CheckSeries(check_id=r.check_id, clause=r.clause, severity=r.severity, status=r.status,
                                  duration_seconds=r.duration_ms / 1000.0, advisory=r.advisory is not None))
    return HostMetrics(
        name=report.host.hostname, score=report.summary.score, pass_ratio=report.summary.pass_rate,
        conclusion=report.summary.conclusion, failing_checks=failing, high_risk_findings=report.summary.high_risk,
        last_report=report.generated_at, up=up, run_duration_seconds=report.duration_ms / 1000.0,
        os=report.host.os_name, baseline=report.baseline.id, agent_version=agent_version, checks=checks)


def snapshot_from_report(report: HostReport, *, department: str, system: str,
                         agent_version: Optional[str] = __version__) -> MetricsSnapshot:
    """A snapshot of one host's latest report, for scraping an agent directly (system-wide series left out)."""
    host = host_metrics_from_report(report, agent_version=agent_version)
    return MetricsSnapshot(generated_at=datetime.now(timezone.utc),
                           systems=[SystemMetrics(department=department, name=system, hosts=[host], system_wide=False)])


MAX_REPORT_BYTES = 32 * 1024 * 1024


def report_file_source(path: Path, *, department: str, system: str) -> SnapshotSource:
    """Source reading the agent's latest report (a HostReport JSON, or the wire envelope holding one) per scrape."""

    def source() -> MetricsSnapshot:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            raise ValueError(f"{path}: {size} bytes, larger than the {MAX_REPORT_BYTES} byte limit")
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and data.get("kind") == "host_report" and "body" in data:
            data = data["body"]
        return snapshot_from_report(HostReport.model_validate(data), department=department, system=system)

    return source


def start_agent_exporter(source: SnapshotSource, *, addr: str = "127.0.0.1", port: int = DEFAULT_AGENT_EXPORTER_PORT,
                         per_check: bool = False):
    """Serve `/metrics` for one agent in a daemon thread; returns (server, thread). Bind wider only on purpose."""
    return start_http_server(port, addr=addr, registry=make_registry(source, per_check=per_check))
