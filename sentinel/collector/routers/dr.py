"""Disaster recovery (数据备份恢复) in the API: each graded system's verdict against its recovery point objective,
with its hosts' backup copies, replication and the stored check results it is judged from (sentinel/dr.py). Judged
when asked for, from the hosts' latest runs; department-scoped like the rest (a department's user sees its own
systems)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from fastapi import APIRouter, Query

from ...dr import SystemDR, Verdict
from ...store import dr as store
from .. import operations
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, OptId
from ..problems import DocumentedRoute

router = APIRouter(tags=["dr"], route_class=DocumentedRoute)


@router.get("/dr", response_model=list[SystemDR])
def list_systems(db: DB, p: Caller, department_id: OptId = None,
                 verdict: Optional[Verdict] = Query(None, description="only systems with this verdict: meets "
                                                                     "(满足), misses (未满足) or unknown (未知)"),
                 limit: Limit = 100, offset: Offset = 0):
    """Every system the caller sees with its RPO verdict, its hosts' newest backups, copies, off-site copies and
    replication, and the results they come from (which check, which host, which value, when)."""
    departments = p.listing(department_id)
    if departments == []:
        return []
    now = datetime.now(timezone.utc)
    with db.read() as conn:
        rows = store.evaluate(conn, now=now, department_ids=departments, evidence=False)
        if verdict is not None:
            rows = [r for r in rows if r.verdict == verdict]
        wanted = [r.system_id for r in rows[offset:offset + limit]]
        page = store.evaluate(conn, now=now, system_ids=wanted) if wanted else []
    return [r for r in page if verdict is None or r.verdict == verdict]


@router.get("/systems/{system_id}/dr", response_model=SystemDR)
def get_system(system_id: Id, db: DB, p: Caller):
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        (row,) = store.evaluate(s.connection(), system_ids=[system_id])
        return row
