"""What the disaster-recovery view reads (sentinel/dr.py judges it): each current host's latest OS run and its
results of the backup checks, per graded system. Current hosts are those with an enrolled agent, as for the
zombie verdicts and the metrics; the results read are the four backup checks' rows per host, whatever the
baseline's size."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import Connection, and_, func, select

from ..dr import CHECKS, HostDR, StoredResult, SystemDR, judge_host, roll_up
from .models import Agent, CheckResultRow, Department, Host, Run, System

S, D, H, A = System.__table__, Department.__table__, Host.__table__, Agent.__table__
R, C = Run.__table__, CheckResultRow.__table__


# A run's results never change once stored: the metrics' read parses each host's latest run once per store and run,
# so a background read after the first parses only the runs stored since (as sentinel/store/zombie.py keeps the
# upkeep facts per inventory).
_RUNS: dict[tuple[str, int, str], list[StoredResult]] = {}
_RUNS_MAX = 200_000


def _read(conn: Connection, run_ids: Sequence[int], *, evidence: bool) -> dict[int, list[StoredResult]]:
    """The backup checks' results of these runs, by run (bounded IN lists)."""
    out: dict[int, list[StoredResult]] = defaultdict(list)
    cols: list[Any] = [R.c.finished_at, C.c.run_id, C.c.check_id, C.c.status, C.c.reason, C.c.observed, C.c.waiver]
    if evidence:
        cols.append(C.c.evidence)
    for i in range(0, len(run_ids), 500):
        chunk = list(run_ids[i:i + 500])
        for row in conn.execute(select(*cols).join(R, R.c.id == C.c.run_id)
                                .where(and_(C.c.run_id.in_(chunk), C.c.check_id.in_(CHECKS))).order_by(C.c.id)):
            out[row.run_id].append(StoredResult(
                check_id=row.check_id, status=row.status, reason=row.reason, observed=row.observed,
                evidence=list(row.evidence or []) if evidence else [], waiver=row.waiver, run_id=row.run_id,
                checked_at=row.finished_at))  # UTCDateTime: aware on both stores
    return out


def evaluate(conn: Connection, *, now: Optional[datetime] = None, system_ids: Optional[Sequence[int]] = None,
             department_ids: Optional[Sequence[int]] = None, evidence: bool = True) -> list[SystemDR]:
    """The DR verdict of each system (all, or those given; in department and system name order) with its hosts'.
    `evidence` False leaves out each host's copies, databases and stored results (the metrics need the figures)."""
    now = now or datetime.now(timezone.utc)
    conds = []
    if system_ids is not None:
        conds.append(S.c.id.in_(list(system_ids)))
    if department_ids is not None:
        conds.append(S.c.department_id.in_(list(department_ids)))
    systems = conn.execute(select(S.c.id, S.c.name, S.c.level, S.c.department_id, D.c.name.label("department"))
                           .join(D, D.c.id == S.c.department_id).where(*conds).order_by(D.c.name, S.c.name)).all()
    if not systems:
        return []
    enrolled = select(A.c.host_id).where(A.c.state == "enrolled")
    which = and_(H.c.id.in_(enrolled), H.c.system_id.in_(select(S.c.id).where(*conds))) if conds else \
        H.c.id.in_(enrolled)
    hosts = conn.execute(select(H.c.id, H.c.system_id, H.c.hostname).where(which).order_by(H.c.hostname)).all()
    latest = (select(func.max(R.c.id))
              .where(and_(R.c.object_kind == "os", R.c.host_id.in_(select(H.c.id).where(which))))
              .group_by(R.c.host_id).scalar_subquery())
    runs = conn.execute(select(R.c.host_id, R.c.id, R.c.digest).where(R.c.id.in_(latest))).all()
    run_of = {r.host_id: r.id for r in runs}
    if evidence:  # the API's page and the evidence export: read as stored, with the evidence, never kept
        results = _read(conn, list(run_of.values()), evidence=True)
    else:
        # keyed by the report's digest too, so a run id a store hands out again (SQLite may, after deletions)
        # never finds another report's results
        store = conn.engine.url.render_as_string(hide_password=True)
        keys = {r.id: (store, r.id, r.digest) for r in runs}
        missing = [rid for rid, key in keys.items() if key not in _RUNS]
        if len(_RUNS) + len(missing) > _RUNS_MAX:
            _RUNS.clear()
            missing = list(keys)
        fresh = _read(conn, missing, evidence=False)
        for rid in missing:
            _RUNS[keys[rid]] = fresh.get(rid, [])
        results = {rid: _RUNS[key] for rid, key in keys.items()}
    by_system: dict[int, list[HostDR]] = defaultdict(list)
    for h in hosts:
        rid = run_of.get(h.id)
        by_system[h.system_id].append(judge_host(h.id, h.hostname, results.get(rid, []) if rid else [], now,
                                                 evidence))
    return [roll_up(s.id, s.name, s.department_id, s.department, s.level, by_system.get(s.id, []), now)
            for s in systems]
