"""Builders shared by the scan tests: a finished ScanReport from findings, scored by the real network scorer."""
from __future__ import annotations

from datetime import datetime, timedelta

from sentinel.checks.network.discovery import ScanOptions
from sentinel.checks.network.findings import ServiceFinding
from sentinel.checks.network.scope import Scope
from sentinel.network.engine import ScanReport, coverage_of
from sentinel.network.scoring import score_network
from sentinel.network.zones import load_zone_baseline

NET = "10.9.0.0/24"
BASELINE = load_zone_baseline("zone-egov-default")


def scan_report(findings: list[ServiceFinding], targets: list[str], at: datetime, scope: str = NET,
                options: ScanOptions | None = None, level: int | None = None) -> ScanReport:
    """What `run_scan` returns for a scan of `targets` (on `options`' ports) that found `findings`
    (zone-egov-default, no zone), scored at `level` (default: the zone baseline's)."""
    found = [f.model_copy(update={"first_seen": at, "last_seen": at}) for f in findings]
    score = score_network(found, BASELINE, level=level)
    return ScanReport(scan_id="s", started_at=at - timedelta(seconds=20), finished_at=at, duration_ms=20000.0,
                      targets=targets, scope=Scope.from_cli([scope]), zone_baseline="zone-egov-default@1",
                      level=score.level, not_scored=score.not_scored,
                      options=options or ScanOptions(), coverage=coverage_of(options or ScanOptions()), nmap=[],
                      hosts_up=sorted({f.host for f in found}),
                      findings=score.findings, results=score.results, items=score.items, objects=score.objects,
                      summary=score.summary)
