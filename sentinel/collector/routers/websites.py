"""Websites of the departments' systems (网站群监测): declarations, rounds, findings, tamper baselines.

A website belongs to a system and so to its department; a caller sees only its departments' websites (404
for the others, as if missing). Declaring or changing a website (its URLs are what the collector fetches) is
for an admin, as a system's scan scope is; a department operator may trigger a round and approve a page's
baseline for its own department. Rounds run only where the collector's `websites.enabled` is on.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from ...store.db import Database
from ...store.models import Website, WebsiteBaseline, WebsiteFinding, WebsiteRound
from ...websites import monitor
from ...websites.sites import SiteDeclaration
from .. import operations
from ..auth import ADMIN, DEPT_OPERATOR
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, OptId, SourceIp, page, visible, where_given
from ..errors import ApiError
from ..lifespan import around_lifespan
from ..problems import DocumentedRoute
from ..settings import CollectorSettings
from ..websites import WebsiteService

router = APIRouter(tags=["websites"], route_class=DocumentedRoute)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class WebsiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z_.-]+$")
    title: str = Field(default="", max_length=200)
    declaration: SiteDeclaration
    enabled: bool = True
    interval_seconds: int = Field(default=86400, ge=300, le=30 * 86400, description="seconds between rounds")
    visit_seconds: int = Field(default=3600, ge=60, le=86400, description="seconds between availability visits "
                                                                         "(the rule wants 20+ a day: <= 4320)")


class WebsiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Optional[str] = Field(default=None, max_length=200)
    declaration: Optional[SiteDeclaration] = None
    enabled: Optional[bool] = None
    interval_seconds: Optional[int] = Field(default=None, ge=300, le=30 * 86400)
    visit_seconds: Optional[int] = Field(default=None, ge=60, le=86400)


class WebsiteOut(Out):
    id: int
    name: str
    title: str
    department_id: int
    system_id: int
    declaration: dict[str, Any]
    enabled: bool
    interval_seconds: int
    visit_seconds: int
    claimed_at: Optional[datetime]
    created_at: datetime
    updated_at: datetime
    updated_by: str


class RoundOut(Out):
    id: int
    website_id: int
    department_id: int
    system_id: int
    triggered_by: str
    requested_by: str
    status: str
    started_at: datetime
    finished_at: Optional[datetime]
    duration_ms: Optional[float]
    pages: int
    failed_rules: int
    vetoed: list[str]
    summary: dict[str, Any]
    error: Optional[str]


class RoundDetailOut(RoundOut):
    results: list[dict[str, Any]]


class WebsiteFindingOut(Out):
    id: int
    website_id: int
    system_id: int
    department_id: int
    rule: str
    subject: str
    kind: str
    severity: str
    title: dict[str, str]
    source: str
    remediation: dict[str, str]
    observed: Any
    evidence: list[Any]
    first_seen: datetime
    last_seen: datetime
    resolved_at: Optional[datetime]
    first_round_id: int
    last_round_id: int
    resolved_round_id: Optional[int]
    occurrences: int


class BaselineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    note: str = Field(default="", max_length=2000)


class BaselineOut(Out):
    id: int
    website_id: int
    department_id: int
    url: str
    sha256: str
    lines: list[str]
    round_id: Optional[int]
    reviewed_by: str
    reviewed_at: datetime
    note: str


def _service(request: Request) -> WebsiteService:
    return request.app.state.websites


@router.post("/websites", status_code=201, response_model=WebsiteOut)
def create_website(spec: WebsiteIn, request: Request, db: DB, p: Caller, ip: SourceIp):
    """Declare a website of a system. Its URLs (and their directories) are all the collector will fetch."""
    with db.session(write=True) as s:
        ctx = Ctx(s, p, ip)
        system = operations.visible_system(ctx, spec.system_id)
        p.require_department(system.department_id, ADMIN)
        if s.exec(select(Website).where(Website.name == spec.name)).first() is not None:
            raise ApiError(409, f"website {spec.name} already exists")
        now = datetime.now(timezone.utc)
        row = Website(name=spec.name, title=spec.title, department_id=system.department_id, system_id=spec.system_id,
                      declaration=spec.declaration.model_dump(mode="json"), enabled=spec.enabled,
                      interval_seconds=spec.interval_seconds, visit_seconds=spec.visit_seconds, created_at=now,
                      updated_at=now, updated_by=p.actor)
        s.add(row)
        s.flush()
        ctx.audit("website.create", f"website:{row.id}:{row.name}",
                  f"system {system.name}; urls {', '.join(spec.declaration.urls)}")
        s.refresh(row)
        out = WebsiteOut.model_validate(row)
    _service(request).sync()  # scheduled from now on, not from the next reload
    return out


@router.get("/websites", response_model=list[WebsiteOut])
def list_websites(db: DB, p: Caller, department_id: OptId = None, system_id: OptId = None, limit: Limit = 100,
                  offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(Website), col(Website.department_id))
        stmt = where_given(stmt, (Website.department_id, department_id), (Website.system_id, system_id))
        return s.exec(page(stmt.order_by(col(Website.id)), limit, offset)).all()


@router.get("/websites/{website_id}", response_model=WebsiteOut)
def get_website(website_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, Website, website_id, "website")


@router.put("/websites/{website_id}", response_model=WebsiteOut)
def update_website(website_id: Id, spec: WebsiteUpdate, request: Request, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        row = visible(s, p, Website, website_id, "website")
        p.require_department(row.department_id, ADMIN)
        changed = spec.model_dump(exclude_none=True, mode="json")
        for key, value in changed.items():
            setattr(row, key, value)
        row.updated_at, row.updated_by = datetime.now(timezone.utc), p.actor
        s.add(row)
        s.flush()
        Ctx(s, p, ip).audit("website.update", f"website:{row.id}:{row.name}", ", ".join(sorted(changed)) or "nothing")
        s.refresh(row)
        out = WebsiteOut.model_validate(row)
    _service(request).sync()
    return out


@router.post("/websites/{website_id}/rounds", status_code=202, response_model=RoundOut,
             responses={403: {"description": "not an admin or operator of the department, or website monitoring is "
                                             "off on this collector"},
                        409: {"description": "a round of this website is already running"}})
def trigger_round(website_id: Id, request: Request, db: DB, p: Caller, ip: SourceIp):
    """Monitor the website now (its declared site only). 202 with the running round; poll GET .../rounds."""
    service = _service(request)
    with db.session() as s:
        row = visible(s, p, Website, website_id, "website")
        p.require_department(row.department_id, ADMIN, DEPT_OPERATOR)
        name = row.name
    if not service.config.enabled:
        raise ApiError(403, "website monitoring is off on this collector (its operator turns it on with "
                            "websites: {enabled: true}); nothing was fetched")
    try:
        round_id = monitor.begin(db, website_id, "api", p.actor)
    except monitor.RoundBusy as exc:
        raise ApiError(409, str(exc)) from None
    with db.session(write=True) as s:  # who had the collector fetch the site, and when
        Ctx(s, p, ip).audit("website.round", f"website:{website_id}:{name}", f"round {round_id}")
    service.submit(website_id, round_id, p.actor)
    with db.session() as s:
        return s.get(WebsiteRound, round_id)


@router.get("/websites/{website_id}/rounds", response_model=list[RoundOut])
def list_rounds(website_id: Id, db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        visible(s, p, Website, website_id, "website")
        stmt = select(WebsiteRound).where(WebsiteRound.website_id == website_id).order_by(col(WebsiteRound.id).desc())
        return s.exec(page(stmt, limit, offset)).all()


@router.get("/websites/{website_id}/rounds/{round_id}", response_model=RoundDetailOut)
def get_round(website_id: Id, round_id: Id, db: DB, p: Caller):
    """One round with every rule's verdict (rule, status, subject, observed, expected, reason, evidence)."""
    with db.session() as s:
        visible(s, p, Website, website_id, "website")
        row = s.get(WebsiteRound, round_id)
        if row is None or row.website_id != website_id:
            raise ApiError(404, f"round {round_id} not found")
        return row


def _findings(s, stmt, state: str, limit: int, offset: int):
    if state == "open":
        stmt = stmt.where(col(WebsiteFinding.resolved_at).is_(None))
    elif state == "resolved":
        stmt = stmt.where(col(WebsiteFinding.resolved_at).is_not(None))
    return s.exec(page(stmt.order_by(col(WebsiteFinding.id)), limit, offset)).all()


@router.get("/websites/{website_id}/findings", response_model=list[WebsiteFindingOut])
def website_findings(website_id: Id, db: DB, p: Caller, state: Literal["open", "resolved", "all"] = "open",
                     limit: Limit = 100, offset: Offset = 0):
    """The website's rectification trail: open findings by default, `state=all` for the history."""
    with db.session() as s:
        visible(s, p, Website, website_id, "website")
        return _findings(s, select(WebsiteFinding).where(WebsiteFinding.website_id == website_id), state, limit,
                         offset)


@router.get("/website-findings", response_model=list[WebsiteFindingOut])
def department_findings(db: DB, p: Caller, department_id: OptId = None, system_id: OptId = None,
                        rule: Optional[str] = None, state: Literal["open", "resolved", "all"] = "open",
                        limit: Limit = 100, offset: Offset = 0):
    """Website findings of the caller's departments (one department with `department_id`): what a 通报 lists."""
    with db.session() as s:
        stmt = p.scoped(select(WebsiteFinding), col(WebsiteFinding.department_id))
        stmt = where_given(stmt, (WebsiteFinding.department_id, department_id), (WebsiteFinding.system_id, system_id),
                           (WebsiteFinding.rule, rule))
        return _findings(s, stmt, state, limit, offset)


@router.post("/websites/{website_id}/baselines", status_code=201, response_model=BaselineOut,
             responses={422: {"description": "the URL is not a declared page, or no round has read it yet"}})
def approve_baseline(website_id: Id, spec: BaselineIn, db: DB, p: Caller, ip: SourceIp):
    """Approve the latest round's text of a declared page as its tamper baseline (the caller is its reviewer)."""
    with db.session() as s:
        row = visible(s, p, Website, website_id, "website")
        p.require_department(row.department_id, ADMIN, DEPT_OPERATOR)
        name = row.name
    try:
        baseline = monitor.approve_baseline(db, website_id, spec.url, reviewer=p.actor, note=spec.note)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    with db.session(write=True) as s:
        Ctx(s, p, ip).audit("website.baseline", f"website:{website_id}:{name}",
                            f"{baseline.url} sha256 {baseline.sha256}")
        return s.get(WebsiteBaseline, baseline.id)


@router.get("/websites/{website_id}/baselines", response_model=list[BaselineOut])
def list_baselines(website_id: Id, db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    """Every reviewed baseline, newest first (the latest per page counts)."""
    with db.session() as s:
        visible(s, p, Website, website_id, "website")
        stmt = select(WebsiteBaseline).where(WebsiteBaseline.website_id == website_id)
        return s.exec(page(stmt.order_by(col(WebsiteBaseline.id).desc()), limit, offset)).all()


def install(app: FastAPI, settings: CollectorSettings, db: Database) -> WebsiteService:
    """Add the routes and run the website scheduler with the app."""
    service = WebsiteService(db, settings)
    app.state.websites = service
    app.include_router(router, prefix="/api/v1")
    around_lifespan(app, start=service.start, stop=service.stop)
    return service

