"""Assemble `SystemEvidence` from host reports, network scans, manual assessments and findings (no store).

`collect.py` feeds it from the store; tests and offline tools feed it directly. Every verdict, score and
conclusion comes from `sentinel.scoring`, with the same rules as the collector's system assessment
(sentinel/store/assessment.py):

- an object's record: its latest report per baseline (a host's OS, or a database, middleware or web server on
  it: each its own 测评对象, named by `HostRun.object`) or its latest full scan (the network);
- the system: `scoring.system_items` over every object's automated item verdicts, then manual verdicts,
  then `scoring.summarize` over those items and every object's results;
- manual verdicts: the latest per item decides an item the checks left 待核查 (a manual item, or checks that
  could not determine); where checks reached a verdict it stands and the assessment is shown beside it
  (changing it takes a waiver in the site baseline, which is visible).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Optional, Union

from pydantic import BaseModel

from .. import scoring
from ..model import BaselineRef, CheckResult, HostInfo, HostReport, ItemResult, ObjectRef, Summary, object_of
from ..store.assessment import ScoredResult
from .model import (
    CollectorIdentity,
    EvidenceError,
    FindingRecord,
    ItemRecord,
    ManualAssessmentRecord,
    ManualRef,
    ObjectEvidence,
    ReportEvidence,
    RunChain,
    ScorePoint,
    ServiceFindingRecord,
    SystemEvidence,
    SystemRef,
    TimeRange,
)

_ITEM_FIELDS = tuple(ItemResult.model_fields)
MAX_SYSTEM_POINTS = 120  # system score points in a history, at most (bounded cost for long ranges)

Manual = dict[tuple[str, str], ManualAssessmentRecord]


def effective_manual(assessments: Iterable[ManualAssessmentRecord], at: Optional[datetime] = None) -> Manual:
    """The latest assessment per (clause, item), among those recorded at or before `at`."""
    out: Manual = {}
    for a in sorted(assessments, key=lambda a: (a.at, a.id or 0)):
        if at is None or a.at <= at:
            out[(a.clause, a.item)] = a
    return out


def apply_manual(items: Sequence[ItemResult], manual: Manual) -> list[ItemRecord]:
    out = []
    for item in items:
        m = manual.get((item.clause, item.item))
        ref = ManualRef(assessment_id=m.id, assessor=m.assessor, at=m.at, note=m.note) if m else None
        decided = m.verdict if m is not None and scoring.manual_decides(item.verdict) else None
        # Built without re-validation: every value comes from validated models (a hot path for large systems).
        fields = {name: getattr(item, name) for name in _ITEM_FIELDS}
        fields.update(verdict=item.verdict if decided is None else decided, automated=item.verdict,
                      source="automated" if decided is None else "manual", manual=ref)
        out.append(ItemRecord.model_construct(**fields))
    return out


def automated_items(items: Sequence[ItemRecord]) -> list[ItemResult]:
    """An object's items as its checks judged them, before any manual verdict."""
    out = []
    for item in items:
        fields = {name: getattr(item, name) for name in _ITEM_FIELDS}
        fields["verdict"] = item.automated
        out.append(ItemResult.model_construct(**fields))
    return out


def system_rollup(item_sets: Iterable[Sequence[ItemResult]], results: Sequence[scoring.Scored], manual: Manual
                  ) -> tuple[list[ItemRecord], Summary]:
    """The system's items and summary: automated item sets rolled up, manual verdicts applied, then scored."""
    items = apply_manual(scoring.system_items(item_sets), manual)
    return items, scoring.summarize(items, list(results))


def evidence_rollup(reports: Iterable[ReportEvidence], manual: Manual) -> tuple[list[ItemRecord], Summary]:
    """The system roll-up of object records (what `build` stores and `verify` recomputes)."""
    item_sets, results = [], []
    for rep in reports:
        item_sets.append(automated_items(rep.items))
        results.extend(rep.results)
    return system_rollup(item_sets, results, manual)


def effective_in(ev: SystemEvidence) -> Manual:
    """The manual verdicts an evidence record counted (those marked effective)."""
    return {(a.clause, a.item): a for a in ev.manual_assessments if a.effective}


class ScoredReport(BaseModel):
    """A host report reduced to what its score needs. Runs kept only for the score history are parsed to
    this, skipping their evidence, which is most of a report's size and parse time; sentinel.scoring reads
    attributes only, so it takes ScoredResults as it takes CheckResults."""

    report_id: Optional[str] = None
    baseline: BaselineRef
    items: list[ItemResult]
    results: list[ScoredResult]
    object: Optional[ObjectRef] = None  # the 测评对象 (None: the host's OS, as HostReport's)


class NetworkReport(BaseModel):
    """A network scan's scored results, as the store keeps them for a scan run."""

    report_id: str
    generated_at: datetime
    baseline: BaselineRef
    items: list[ItemResult]
    results: list[CheckResult]
    summary: Summary


@dataclass
class HostRun:
    """One stored report of a 测评对象: a host's run, or a network scan (kind "zone")."""

    object: str
    report: Union[HostReport, ScoredReport, NetworkReport]  # ScoredReport: history only, never a latest
    received_at: datetime
    run_id: Optional[int] = None
    addresses: list[str] = field(default_factory=list)
    zone: Optional[str] = None
    kind: Literal["host", "zone"] = "host"
    scan_run_id: Optional[int] = None
    hostname: Optional[str] = None  # the host an object of kind "host" runs on (its OS's name is `object`)


def report_evidence(report: Union[HostReport, NetworkReport], manual: Manual, run_id: Optional[int] = None,
                    received_at: Optional[datetime] = None, scan_run_id: Optional[int] = None) -> ReportEvidence:
    items = apply_manual(report.items, manual)
    return ReportEvidence(run_id=run_id, scan_run_id=scan_run_id, report_id=report.report_id or "",
                          received_at=received_at, generated_at=report.generated_at, baseline=report.baseline,
                          items=items, results=report.results, summary=scoring.summarize(items, report.results),
                          automated_summary=report.summary)


def score_history(runs: Sequence[HostRun], assessments: Sequence[ManualAssessmentRecord],
                  max_points: int = MAX_SYSTEM_POINTS) -> list[ScorePoint]:
    """A point per run for its object, and system points over the latest report of every object.

    System points are taken at the end of each of at most `max_points` equal time buckets, so a long
    range costs a bounded number of roll-ups.
    """
    runs = sorted(runs, key=lambda r: (r.received_at, r.run_id or 0))
    if not runs:
        return []
    points: list[ScorePoint] = []
    latest: dict[tuple[str, str], tuple[Sequence[ItemResult], Sequence[scoring.Scored]]] = {}
    first, last = runs[0].received_at, runs[-1].received_at
    width = (last - first) / max_points if last > first else timedelta(0)

    def bucket(at: datetime) -> int:
        return min(int((at - first) / width), max_points - 1) if width else 0

    for i, run in enumerate(runs):
        manual = effective_manual(assessments, run.received_at)
        items = apply_manual(run.report.items, manual)
        summary = scoring.summarize(items, run.report.results)
        latest[(run.object, run.report.baseline.id)] = (run.report.items, run.report.results)
        points.append(ScorePoint(at=run.received_at, object=run.object, score=summary.score,
                                 pass_rate=summary.pass_rate, conclusion=summary.conclusion))
        if i + 1 == len(runs) or bucket(runs[i + 1].received_at) != bucket(run.received_at):
            _, s = system_rollup([its for its, _ in latest.values()],
                                 [r for _, res in latest.values() for r in res], manual)
            points.append(ScorePoint(at=run.received_at, object=None, score=s.score, pass_rate=s.pass_rate,
                                     conclusion=s.conclusion))
    return points


def latest_runs(runs: Sequence[HostRun]) -> list[HostRun]:
    """The latest run per (object, baseline): hosts in name order, then the network."""
    latest: dict[tuple[str, str, str], HostRun] = {}
    for run in sorted(runs, key=lambda r: (r.received_at, r.run_id or 0)):
        latest[(run.kind, run.object, run.report.baseline.id)] = run
    return [latest[k] for k in sorted(latest)]


def build(*, system: SystemRef, time_range: TimeRange, collector: CollectorIdentity, runs: Sequence[HostRun],
          assessments: Sequence[ManualAssessmentRecord] = (), findings: Sequence[FindingRecord] = (),
          service_findings: Sequence[ServiceFindingRecord] = (),
          chain: Optional[RunChain] = None, raw_reports: Optional[dict[str, bytes]] = None,
          attachment_blobs: Optional[dict[str, bytes]] = None, generated_at: datetime,
          hosts: Optional[dict[str, HostInfo]] = None, notes: Sequence[str] = ()) -> SystemEvidence:
    """`runs` are all reports in range (for history); the latest per object and baseline is the record.
    Assessments recorded after the range end are left out."""
    assessments = [a for a in assessments if a.at <= time_range.end]
    manual = effective_manual(assessments, time_range.end)
    marked = [a.model_copy(update={"effective": manual.get((a.clause, a.item)) is a}) for a in assessments]
    objects: dict[tuple[str, str], ObjectEvidence] = {}
    for run in latest_runs(runs):
        if isinstance(run.report, ScoredReport):
            raise EvidenceError(f"{run.object}: run {run.run_id} is the latest report but was read for its score "
                                "only; the record needs the full report")
        obj = objects.get((run.kind, run.object))
        if obj is None:
            hostname = run.hostname or run.object
            host = (hosts or {}).get(hostname) or (run.report.host if isinstance(run.report, HostReport) else None)
            target = object_of(run.report) if isinstance(run.report, HostReport) else None
            obj = objects[(run.kind, run.object)] = ObjectEvidence(
                kind=run.kind, name=run.object, zone=run.zone, addresses=list(run.addresses), host=host,
                object=target.kind if target else None, instance=target.instance if target else "",
                version=target.version if target else None,
                hostname=hostname if run.kind == "host" else None)
        obj.reports.append(report_evidence(run.report, manual, run.run_id, run.received_at, run.scan_run_id))
    baselines = {}
    for run in runs:
        b = run.report.baseline
        baselines[(b.id, b.version)] = b
    all_reports = [rep for obj in objects.values() for rep in obj.reports]
    items, summary = evidence_rollup(all_reports, manual)
    return SystemEvidence(
        generated_at=generated_at, system=system, range=time_range, collector=collector,
        baselines=[baselines[k] for k in sorted(baselines)], objects=list(objects.values()),
        manual_assessments=marked, findings=list(findings), service_findings=list(service_findings),
        score_history=score_history(runs, assessments),
        chain=chain or RunChain(), items=items, summary=summary, notes=list(notes),
        raw_reports=dict(raw_reports or {}), attachment_blobs=dict(attachment_blobs or {}),
    )
