"""国产化 inventory and rates in the API (docs/domestic.md): the rates per department, system and for the cloud,
by host and by component; each host's recognised components with the facts that recognised them; the daily
trend. All department-scoped: a department's user sees its own hosts, and the cloud figures over them only."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query

from ...domestic import default_rules
from ...store import domestic as store
from ..deps import DB, Caller, Limit, Offset, OptId
from ..problems import DocumentedRoute
from ..schemas import Out

router = APIRouter(tags=["domestic"], route_class=DocumentedRoute)
Days = Annotated[int, Query(ge=1, le=366, description="days of trend, up to today (UTC)")]


class CloudOut(Out):
    rates: store.Rates
    trend: list[store.TrendPoint]


@router.get("/domestic", response_model=list[store.Rates])
def departments(db: DB, p: Caller, department_id: OptId = None):
    """国产化 rates of each department the caller sees, by host and by component per category, and 国密."""
    scope = p.listing(department_id)
    with db.read() as conn:
        return store.by_department(conn, store.hosts(conn, default_rules(), department_ids=scope), scope)


@router.get("/domestic/systems", response_model=list[store.Rates])
def systems(db: DB, p: Caller, department_id: OptId = None, system_id: OptId = None):
    """国产化 rates of each system the caller sees."""
    scope, only = p.listing(department_id), None if system_id is None else [system_id]
    with db.read() as conn:
        found = store.hosts(conn, default_rules(), department_ids=scope, system_ids=only)
        return store.by_system(conn, found, scope, only)


@router.get("/domestic/cloud", response_model=CloudOut)
def cloud(db: DB, p: Caller, days: Days = 30):
    """The cloud's rates and daily trend, over the hosts the caller sees (every host for an admin)."""
    scope = p.listing()
    with db.read() as conn:
        found = store.hosts(conn, default_rules(), department_ids=scope)
        (whole, *_) = store.trend(conn, default_rules(), days, datetime.now(timezone.utc).date(), department_ids=scope)
    return CloudOut(rates=store.cloud(found), trend=whole.points)


@router.get("/domestic/hosts", response_model=list[store.HostDomestic])
def host_list(db: DB, p: Caller, department_id: OptId = None, system_id: OptId = None,
              limit: Limit = 100, offset: Offset = 0):
    """Each host's recognised components (OS, CPU, databases, middleware, crypto libraries) with their origin and
    the facts that recognised them, and its 国密 TLS state (a host not yet inventoried: no component)."""
    with db.read() as conn:
        found = store.hosts(conn, default_rules(), department_ids=p.listing(department_id),
                            system_ids=None if system_id is None else [system_id])
    return found[offset:offset + limit]


@router.get("/domestic/trend", response_model=list[store.Trend])
def trend(db: DB, p: Caller, days: Days = 30, department_id: OptId = None):
    """Daily host rates per category (and component rates, 国密 rate) of each department with hosts."""
    with db.read() as conn:
        rows = store.trend(conn, default_rules(), days, datetime.now(timezone.utc).date(),
                           department_ids=p.listing(department_id))
    return rows[1:]  # the first is the cloud's: GET /domestic/cloud
