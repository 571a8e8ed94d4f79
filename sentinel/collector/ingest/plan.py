"""Ingest, stage 2: plan what a verified host report writes: its rows, its drift, its events.

Two steps. Before the write lock, `prepare` judges the report by the collector's own baseline
(judge.py: every verdict and score comes from that baseline or is computed here; the agent's summary is
only compared, a difference kept beside the collector's summary and audited) and builds the rows that do
not depend on what is stored: the run's columns, the check results (converted for the driver), the
report ledger row and the host's facts. It keeps only those and a few facts per result (`ResultFacts`),
so the parsed body and its model are freed before the next envelope is read.

Under the lock, `plan_host_report` takes what was read there (write.BatchState: the chain head, the host's
open findings, its previous score) and decides the rest: the run's place in its system's hash chain, the
drift (drift.py: findings opened, seen again, resolved as fixed, waived or advisory) and the events, which
facts become which events:
- a finding opened with a high-risk case: `high_risk_finding` (critical);
- an open high-risk finding fixed, waived or made advisory: the same kind, severity and fingerprint with
  "resolved": true (sentinel.events' AlertEvent.from_row reads it so);
- a score drop of at least the threshold on the same baseline: `score_drop` (critical when the
  conclusion falls to 差, else warning);
- any newly failing, fixed or waived check: `drift` (warning with new failures, else info).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Optional

from ... import scoring
from ...model import HostReport, Status, object_of
from ...store import envelopes
from .. import drift, judge
from ..baselines import BaselineRegistry, UnknownBaseline
from .verify import AgentRow, Checked, Refused, aware, chain
from .write import HOST_FACTS, BatchSQL, BatchState, BatchWrites


class ResultFacts(NamedTuple):
    """What drift, findings and events need of one check result (JSON values as sent)."""

    check_id: str
    clause: str
    item: str
    status: str
    severity: str
    high_risk: Optional[str]
    waiver: Optional[str]
    reason: Optional[str]
    title: dict[str, str]
    remediation: dict[str, str]
    advisory: Optional[dict[str, str]] = None  # the baseline's reason the check is advisory: it opens no finding


@dataclass
class Pending:
    """A host report that passed every check but uniqueness, with its rows built: what the writer needs."""

    report_id: str
    digest: str
    agent: AgentRow
    results: list[ResultFacts]
    finished: datetime
    run: dict[str, Any]  # runs columns known before the lock (baseline, score, conclusion, ...)
    rows: list[tuple[Any, ...]]  # check results as the driver takes them (BatchSQL.result_rows)
    report: dict[str, Any]  # reports columns known before the lock
    host: dict[str, Any]
    source_ip: Optional[str]
    flag: Optional[str] = None  # the agent's summary differs from the collector's scoring (audited)
    durations: tuple[tuple[str, float], ...] = ()  # (probe type, seconds) per result, for on_stored


class Planner:
    def __init__(self, baselines: BaselineRegistry, sql: BatchSQL, score_drop_threshold: float) -> None:
        self.baselines = baselines
        self.sql = sql
        self.score_drop_threshold = score_drop_threshold

    def prepare(self, c: Checked, source_ip: Optional[str]) -> Pending:
        """Judge the report by the collector's baseline, then build its rows (before the lock)."""
        rep: HostReport = c.model
        agent = c.agent
        try:
            ref = self.baselines.get(rep.baseline.id, rep.baseline.version, agent.department)
            verdict = judge.judge(ref, rep, c.body["summary"])
        except UnknownBaseline as exc:
            raise Refused(422, f"host_report body: body.baseline: {exc}",
                          [{"loc": "body.baseline", "msg": str(exc)}]) from None
        except judge.BaselineMismatch as exc:
            raise Refused(422, f"host_report body: {exc}", [{"loc": exc.loc, "msg": exc.msg}]) from None
        if ref.baseline.level != agent.level:
            # the system's grading decides what it is judged by, not the agent's choice of a laxer baseline
            msg = (f"baseline {ref.baseline.id} is a level-{ref.baseline.level} baseline but system {agent.system} is "
                   f"graded level {agent.level}; run a level-{agent.level} baseline")
            raise Refused(422, f"host_report body: body.baseline: {msg}", [{"loc": "body.baseline", "msg": msg}])
        summary = verdict.summary
        stored_summary = summary.model_dump(mode="json")
        flag = None
        if verdict.mismatch:
            stored_summary["agent_claimed"] = verdict.claimed  # shown with the run (GET /runs/{id})
            flag = judge.describe(verdict)
        finished = aware(rep.generated_at)
        checks = ref.checks
        rows, facts, durations = [], [], []
        for r, raw in zip(rep.results, c.body["results"], strict=True):
            spec = checks[r.check_id]  # judge() checked that every result is one of the baseline's checks
            durations.append((spec.probe, r.duration_ms / 1000.0))
            status = r.status.value
            # in write.RESULT_FIELDS order (the check_results columns)
            rows.append((r.check_id, spec.clause, spec.item, spec.title, status, spec.severity, spec.high_risk,
                         raw.get("observed"), r.expected, r.reason, raw.get("evidence") or [], spec.waiver,
                         r.duration_ms, spec.advisory))
            facts.append(ResultFacts(r.check_id, spec.clause, spec.item, status, spec.severity, spec.high_risk,
                                     spec.waiver, r.reason, spec.title, spec.remediation, spec.advisory))
        host = rep.host
        baseline = ref.baseline
        target = object_of(rep)  # judge() checked that its kind is the baseline's
        # the record's name for it; one the agent leaves empty (reports made before objects) is the host's own
        name = target.name or (agent.hostname if target.kind == "os" else
                               f"{agent.hostname} {target.kind}" + (f" ({target.instance})" if target.instance else ""))
        return Pending(
            report_id=c.envelope.report_id, digest=c.digest, agent=agent, results=facts, finished=finished,
            durations=tuple(durations),
            run={"report_id": c.envelope.report_id, "agent_id": agent.id, "host_id": agent.host_id,
                 "system_id": agent.system_id, "department_id": agent.department_id,
                 "baseline_id": baseline.id, "baseline_version": baseline.version,
                 "baseline_level": baseline.level, "object_kind": target.kind,
                 "object_instance": target.instance, "object_name": name[:200],
                 "started_at": finished - timedelta(milliseconds=rep.duration_ms),
                 "finished_at": finished, "summary": stored_summary, "score": summary.score,
                 "pass_rate": summary.pass_rate, "conclusion": summary.conclusion,
                 "checks_total": summary.checks_total,
                 "failed": sum(r.status == Status.FAIL and scoring.counted(r) for r in rep.results),
                 "high_risk": summary.high_risk, "digest": c.digest},
            rows=self.sql.result_rows(rows),
            report={"report_id": c.envelope.report_id, "kind": c.envelope.kind, "agent_id": agent.id,
                    "host_id": agent.host_id, "department_id": agent.department_id, "digest": c.digest,
                    "sent_at": c.envelope.sent_at, "source_ip": source_ip, "signature": c.signature,
                    "envelope": envelopes.pack(c.raw)},
            host={name: _cut(getattr(host, name), width, nullable) for name, width, nullable in HOST_FACTS},
            source_ip=source_ip, flag=flag)

    def plan_host_report(self, p: Pending, run_id: int, heads: dict[int, str], state: BatchState, now: datetime,
                         w: BatchWrites) -> dict[str, Any]:
        """Under the lock: chain the run, plan its drift and events into `w`; returns the report's answer."""
        results, agent, finished = p.results, p.agent, p.finished
        prev_head = heads[agent.system_id]
        heads[agent.system_id] = chain_hash = chain(prev_head, p.digest)
        w.runs.append({**p.run, "id": run_id, "received_at": now, "prev_chain_hash": prev_head,
                       "chain_hash": chain_hash})
        w.results.append((run_id, p.rows))

        kind, instance = p.run["object_kind"], p.run["object_instance"]
        open_rows = state.open_findings.get((agent.host_id, kind, instance), [])  # this 测评对象's only
        plan = drift.plan(results, {check_id: fid for check_id, fid, _ in open_rows})
        high_risk_open = {fid: high_risk for _, fid, high_risk in open_rows if high_risk}
        for i in plan.opened:
            r = results[i]
            w.findings.append({
                "host_id": agent.host_id, "system_id": agent.system_id, "department_id": agent.department_id,
                "object_kind": kind, "object_instance": instance, "check_id": r.check_id, "clause": r.clause,
                "item": r.item, "title": r.title,
                "remediation": r.remediation, "severity": r.severity,
                "high_risk": r.high_risk, "first_seen": finished, "last_seen": finished, "first_run_id": run_id,
                "last_run_id": run_id, "occurrences": 1, "resolved_at": None, "resolution": None,
                "resolved_run_id": None})
        if plan.seen_again:
            w.seen.append({"ids": list(plan.seen_again), "t": finished, "run": run_id})
        for resolution, ids in (("fixed", plan.fixed), ("waived", plan.waived), ("advisory", plan.advisory)):
            w.resolved.extend({"id": fid, "t": finished, "run": run_id, "how": resolution} for fid in ids)

        new_failures, fixed = plan.new_failures(results), plan.fixed_checks()
        prev_score, prev_conclusion = state.previous.get((agent.host_id, p.run["baseline_id"], instance),
                                                         (None, None))
        w.events.extend(self.events(p, run_id, plan, new_failures, fixed, high_risk_open, prev_score,
                                    prev_conclusion, now))
        outcome = {"report_id": p.report_id, "run_id": run_id, "new_failures": new_failures, "fixed": fixed}
        w.hosts.append({"hid": agent.host_id, "now": now, **p.host})
        w.agents.append({"aid": agent.id, "now": now, "ip": p.source_ip})
        w.reports.append({**p.report, "received_at": now, "outcome": outcome})
        return outcome

    def events(self, p: Pending, run_id: int, plan: drift.DriftPlan, new_failures: list[str], fixed: list[str],
               high_risk_open: dict[int, str], prev_score: Optional[float], prev_conclusion: Optional[str],
               now: datetime) -> list[dict[str, Any]]:
        """The events rows of one report (the rules in this module's docstring)."""
        agent, run = p.agent, p.run
        # level: the system's protection level, which grades the alert (sentinel/events/grading.py, 分级响应)
        common = {"department": agent.department, "system": agent.system, "system_label": agent.label,
                  "level": agent.level,
                  "host": agent.hostname, "host_id": agent.host_id, "run_id": run_id,
                  "report_id": p.report_id, "baseline": run["baseline_id"],
                  "baseline_version": run["baseline_version"], "object": run["object_kind"],
                  "object_instance": run["object_instance"], "object_name": run["object_name"]}
        where = f"{agent.system}/{agent.hostname}"
        # An object's conditions are its own: the OS keeps the host's fingerprints (alerts raised before objects
        # stay one condition), another object's carry its kind and instance.
        subject: Any = agent.host_id
        if run["object_kind"] != "os":
            subject = f"{agent.host_id}/{run['object_kind']}:{run['object_instance']}"
            where += f" {run['object_name'] or run['object_kind'] + ':' + run['object_instance']}"
            # the alert's `subject` label (sentinel/events/model.py): two objects' drift on a host stay two alerts
            common["subject"] = f"{run['object_kind']}:{run['object_instance']}"
        base = {"department_id": agent.department_id, "system_id": agent.system_id, "host_id": agent.host_id,
                "run_id": run_id, "created_at": now, "delivered": False, "attempts": 0}
        events = []
        for i in plan.opened:
            r = p.results[i]
            if not r.high_risk:
                continue
            events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": r.check_id,
                           "fingerprint": drift.fingerprint("high_risk_finding", subject, r.check_id),
                           "summary": f"{where}: high-risk finding {r.check_id} ({r.clause}{r.item}, "
                                      f"case {r.high_risk}): {r.title['zh']}",
                           "payload": {**common, "check_id": r.check_id, "clause": r.clause, "item": r.item,
                                       "case": r.high_risk, "severity": r.severity,
                                       "title": r.title, "reason": r.reason, "remediation": r.remediation}})
        # A high-risk finding that is fixed or waived resolves its alert: same kind, severity and
        # fingerprint, with "resolved": true in the payload.
        for resolution, closed in (("fixed", plan.fixed), ("waived", plan.waived), ("advisory", plan.advisory)):
            for finding_id, check_id in sorted(closed.items()):
                case = high_risk_open.get(finding_id)
                if case is None:
                    continue
                events.append({**base, "kind": "high_risk_finding", "severity": "critical", "check_id": check_id,
                               "fingerprint": drift.fingerprint("high_risk_finding", subject, check_id),
                               "summary": f"{where}: high-risk finding {check_id} (case {case}) resolved: {resolution}",
                               "payload": {**common, "check_id": check_id, "case": case, "resolved": True,
                                           "resolution": resolution, "finding_id": finding_id}})
        score, conclusion = run["score"], run["conclusion"]
        if prev_score is not None and drift.score_dropped(prev_score, score, self.score_drop_threshold):
            worse_to_bad = conclusion == "差" and prev_conclusion != "差"
            events.append({**base, "kind": "score_drop", "severity": "critical" if worse_to_bad else "warning",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("score_drop", subject, run["baseline_id"]),
                           "summary": f"{where}: score {prev_score:.1f} -> {score:.1f} "
                                      f"({prev_conclusion} -> {conclusion}) on {run['baseline_id']}",
                           "payload": {**common, "previous_score": prev_score, "score": score,
                                       "drop": round(prev_score - score, 3),
                                       "previous_conclusion": prev_conclusion,
                                       "conclusion": conclusion}})
        if new_failures or fixed or plan.waived:
            events.append({**base, "kind": "drift", "severity": "warning" if new_failures else "info",
                           "check_id": None,
                           "fingerprint": drift.fingerprint("drift", agent.host_id, run_id),
                           "summary": f"{where}: {len(new_failures)} newly failing, {len(fixed)} fixed",
                           "payload": {**common, "new_failures": new_failures, "fixed": fixed,
                                       "waived": sorted(plan.waived.values())}})
        return events


def _cut(value: Optional[str], width: int, nullable: bool) -> Optional[str]:
    """A host fact at most as wide as its column; an unknown one (empty) is NULL where the column allows."""
    if not value:
        return None if nullable else (value or "")
    return value[:width]
