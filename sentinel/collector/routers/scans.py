"""Network scans of a system and its assessment: schedule, trigger, scan runs, service findings, the system score.

Every route is under /systems/{system_id}/ and answers 404 for a system outside the caller's departments.
Triggering and scheduling need admin or a department operator of the system's department.
"""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, FastAPI, Request
from sqlmodel import col, select

from sentinel.checks.network.discovery import NmapMissing, nmap_path
from sentinel.checks.network.scope import ScopeError

from ...store.assessment import SystemAssessment, assess
from ...store.db import Database
from ...store.models import ScanRun, ScanSchedule, ServiceFindingRow, System
from .. import operations
from ..auth import ADMIN
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, SourceIp, page, where_given
from ..errors import ApiError
from ..lifespan import around_lifespan
from ..problems import DocumentedRoute
from ..scan_ingest import ScanBusy
from ..scan_schemas import ScanRunOut, ScanScheduleIn, ScanScheduleOut, ScanTriggerIn, ServiceFindingOut
from ..scanner import (
    ScanRequestError,
    ScanService,
    ScheduleSpec,
    check_plan,
    credential_grant,
    load_schedule,
    plan_scan,
    set_schedule,
)
from ..settings import CollectorSettings

router = APIRouter(tags=["scans"], route_class=DocumentedRoute)  # error answers in the OpenAPI document

# ---- routes ----------------------------------------------------------------------------------------------


def _service(request: Request) -> ScanService:
    return request.app.state.scans


def _schedule_out(system: System, spec: ScheduleSpec, configured: bool, service: ScanService) -> ScanScheduleOut:
    assert system.id is not None  # a stored row
    return ScanScheduleOut(system_id=system.id, configured=configured, enabled=spec.enabled,
                           interval_seconds=spec.interval_seconds, jitter_seconds=spec.jitter_seconds,
                           zone_baseline=spec.zone_baseline, zone=spec.zone, scanner_zone=spec.scanner_zone,
                           tcp_ports=spec.tcp_ports, udp_ports=spec.udp_ports,
                           version_detection=spec.version_detection, last_claimed_at=spec.claimed_at,
                           next_run_at=service.next_run(system.id) if spec.enabled else None,
                           scope=list(system.scan_scope))


@router.get("/systems/{system_id}/scan-schedule", response_model=ScanScheduleOut)
def get_scan_schedule(system_id: Id, request: Request, db: DB, p: Caller):
    with db.session() as s:
        system = operations.visible_system(Ctx(s, p), system_id)
        configured = s.get(ScanSchedule, system_id) is not None
        spec = load_schedule(s.connection(), system_id)
    return _schedule_out(system, spec, configured, _service(request))


@router.put("/systems/{system_id}/scan-schedule", response_model=ScanScheduleOut)
def put_scan_schedule(system_id: Id, spec: ScanScheduleIn, request: Request, db: DB, p: Caller, ip: SourceIp):
    service = _service(request)
    with db.session(write=True) as s:
        ctx = Ctx(s, p, ip)
        system = set_schedule(ctx, system_id, spec, service.settings)
        stored = load_schedule(s.connection(), system_id)
    service.sync()
    return _schedule_out(system, stored, True, service)


@router.post("/systems/{system_id}/scans", status_code=202, response_model=ScanRunOut,
             responses={403: {"description": "not an admin, or network scans are off on this collector"},
                        409: {"description": "a scan of this system is already running, or its scan_scope reaches "
                                             "outside its department's address plan (nothing sent)"},
                        422: {"description": "targets or ports outside the system's scan_scope (nothing sent)"},
                        503: {"description": "nmap is not installed on the collector"}})
def trigger_scan(system_id: Id, spec: ScanTriggerIn, request: Request, db: DB, p: Caller, ip: SourceIp):
    """Scan the system now (inside its scan_scope only). 202 with the running scan; poll GET .../scans."""
    service = _service(request)
    with db.session() as s:
        system = operations.visible_system(Ctx(s, p), system_id)
        # admin only (least privilege): a scan sends packets into a department's network; operators get
        # the scheduled scans an admin set up, and ask an admin for one more
        p.require_department(system.department_id, ADMIN)
        schedule = load_schedule(s.connection(), system_id)
        name, cidrs, level = system.name, list(system.scan_scope), system.level
        grant = credential_grant(system)  # on only while an admin has it on for this system
        try:
            check_plan(s.connection(), system.department_id, name, cidrs)
        except ScanRequestError as exc:
            raise ApiError(409, str(exc)) from None  # audited by the app's error handler
    try:
        plan = plan_scan(system_id, name, cidrs, schedule, service.settings, targets=spec.targets,
                         tcp_ports=spec.tcp_ports, udp_ports=spec.udp_ports, credentials=grant, level=level)
    except (ScopeError, ScanRequestError) as exc:
        raise ApiError(422, str(exc)) from None  # audited by the app's error handler
    if not service.settings.scans:
        raise ApiError(403, "network scans are off on this collector (its operator turns them on with "
                            "SENTINEL_COLLECTOR_SCANS=true); nothing was sent")
    try:
        nmap_path()
    except NmapMissing as exc:
        raise ApiError(503, str(exc)) from None
    try:
        claim = service.begin(plan, system_id, p.actor, "api", schedule, ip)
    except ScanBusy as exc:
        raise ApiError(409, str(exc)) from None
    service.submit(claim, plan, p.actor)
    with db.session() as s:
        return s.get(ScanRun, claim.run_id)


@router.get("/systems/{system_id}/scans", response_model=list[ScanRunOut])
def list_scans(system_id: Id, db: DB, p: Caller, status: Optional[Literal["running", "succeeded", "failed"]] = None,
               limit: Limit = 100, offset: Offset = 0):
    """Scan runs of the system, newest first."""
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        stmt = select(ScanRun).where(ScanRun.system_id == system_id).order_by(col(ScanRun.id).desc())
        stmt = where_given(stmt, (ScanRun.status, status))
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/systems/{system_id}/services", response_model=list[ServiceFindingOut])
def list_services(system_id: Id, db: DB, p: Caller, state: Literal["open", "closed", "all"] = "open",
                  forbidden: Optional[bool] = None, high_risk: Optional[bool] = None, limit: Limit = 100,
                  offset: Offset = 0):
    """Service findings: open services by default; `state=all` is the history (a reopened port is a new row)."""
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        stmt = select(ServiceFindingRow).where(ServiceFindingRow.system_id == system_id)
        if state == "open":
            stmt = stmt.where(col(ServiceFindingRow.closed_at).is_(None))
        elif state == "closed":
            stmt = stmt.where(col(ServiceFindingRow.closed_at).is_not(None))
        if forbidden is not None:
            stmt = stmt.where(col(ServiceFindingRow.forbidden).is_(forbidden))
        stmt = stmt.order_by(ServiceFindingRow.host, ServiceFindingRow.proto, ServiceFindingRow.port,
                             ServiceFindingRow.id)
        if high_risk is None:
            return s.exec(page(stmt, limit, offset)).all()
        rows = [r for r in s.exec(stmt).all() if bool(r.high_risk) == high_risk]  # a JSON list: filtered here
        return rows[offset:offset + limit]


@router.get("/systems/{system_id}/assessment", response_model=SystemAssessment)
def get_assessment(system_id: Id, db: DB, p: Caller):
    """The system's score: its hosts' latest reports and latest full network scan, rolled up (sentinel.scoring)."""
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        return assess(s.connection(), [system_id])[system_id]


# ---- wiring ----------------------------------------------------------------------------------------------


def install(app: FastAPI, settings: CollectorSettings, db: Database) -> ScanService:
    """Add the routes and run the scan scheduler with the app (started and stopped by its lifespan)."""
    service = ScanService(db, settings)
    app.state.scans = service
    app.include_router(router, prefix="/api/v1")
    around_lifespan(app, start=service.start, stop=service.stop)
    return service
