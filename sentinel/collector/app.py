"""The collector's FastAPI application: `create_app(settings)`.

Everything lives under /api/v1; the OpenAPI document is /api/v1/openapi.json. Refusals (401, 403,
413, 422 on writes, and every refused agent request) are written to the audit log, repeated ones of one
kind from one address as one row with a count (audit.RefusalLog). The agent endpoints are gated before
their bodies are read (gate.py); credentials in a URL are refused and kept out of the access log (urlguard.py).
"""
from __future__ import annotations

import gc
import logging
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, signing
from ..plugins import Exporters
from ..store.db import Database, ensure_current, private_dir
from . import audit, events_publisher, metrics, urlguard
from .baselines import BaselineRegistry
from .errors import ApiError
from .gate import AgentGate
from .ingest import Ingestor
from .lifespan import around_lifespan
from .limits import BodyLimit, BodyTooLarge
from .settings import CollectorSettings

log = logging.getLogger("sentinel.collector")

API = "/api/v1"


def load_or_create_signing_key(settings: CollectorSettings):
    """The collector's own Ed25519 key (evidence signatures; its public half is given to agents)."""
    path = settings.signing_key_file
    if not path.exists():
        signing.save_private_key(signing.generate_key(), path)
        log.info("made the collector signing key %s", path)
    return signing.load_private_key(path)


def client_ip(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


def _actor(request: Request) -> str:
    agent = request.headers.get("x-sentinel-agent")
    if agent:
        return f"agent:{agent[:64]}"
    return getattr(request.state, "actor", None) or "anonymous"


_AGENT_ACTIONS = {f"{API}/agent/reports": "report.ingest", f"{API}/agent/enroll": "agent.enroll"}


def _action(request: Request) -> str:
    path = request.url.path
    return _AGENT_ACTIONS.get(path) or f"{request.method} {path}"[:64]


def create_app(settings: Optional[CollectorSettings] = None, *, exporters: Exporters, db: Optional[Database] = None,
               check_schema: bool = True) -> FastAPI:
    """Build the app. `exporters` are what the composition root plugs in (sentinel.wiring.exporters():
    the /metrics exposition and the event receivers). `db` may be passed in (tests, `sentinel up`);
    otherwise it is opened from `settings.db_url`. The schema must be at the migrations' head unless
    check_schema=False."""
    settings = settings or CollectorSettings()
    db = db or Database(settings.db_url, sqlite_synchronous=settings.sqlite_synchronous,
                        pg_synchronous_commit=settings.pg_synchronous_commit, pool_size=settings.pool_size)
    if check_schema:
        ensure_current(db)
    private_dir(settings.state_dir)  # 0700: keys, tokens and (SQLite) the database live there
    key = load_or_create_signing_key(settings)

    app = FastAPI(title="sentinel collector", version=__version__,
                  description="Continuous 等保 2.0 compliance: agents, graded systems, runs, findings.",
                  # no Swagger/ReDoc pages: they load scripts from a public CDN, wrong on a closed network
                  openapi_url=f"{API}/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    app.state.collector_public_key = signing.public_key_b64(key)
    baselines = BaselineRegistry.for_state_dir(settings.state_dir)
    app.state.ingestor = Ingestor(db, max_body_bytes=settings.max_body_bytes, skew_seconds=settings.skew_seconds,
                                  score_drop_threshold=settings.score_drop_threshold, baselines=baselines,
                                  max_age_seconds=settings.report_max_age_seconds)
    around_lifespan(app, start=baselines.preload)  # the catalogue and shipped baselines, before the first report
    from .routers.assessments import upload_limit
    from .routers.notices import answer_limit
    from .routers.report_sections import section_limit

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, routes=[upload_limit(API), section_limit(API),
                                                                        answer_limit(API)])
    # added last, so they run first: refusals that need no body are made before anything reads one
    app.add_middleware(AgentGate, db=db, settings=settings)
    app.add_middleware(urlguard.NoSecretsInUrl, db=db)
    urlguard.install_access_log_filter()
    refusal_log = audit.aggregate_refusals(db, settings.audit_refusal_window)
    app.state.refusal_log = refusal_log
    if refusal_log is not None:
        _flush_on_shutdown(app, refusal_log)

    async def _refusal(request: Request, status: int, detail: str, extra: Optional[dict] = None) -> JSONResponse:
        await run_in_threadpool(audit.record_refusal, db, actor=_actor(request), action=_action(request),
                                target=request.url.path, source_ip=client_ip(request), status_code=status,
                                detail=detail)
        return JSONResponse({"detail": detail, **(extra or {})}, status_code=status)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        if exc.status in (401, 403, 409, 422) or request.method != "GET":
            return await _refusal(request, exc.status, exc.detail)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        if request.url.path == metrics.REPORTS_PATH:  # ingest counters (collector/metrics.py)
            app.state.ingest_counters.rejected("size")
        return await _refusal(request, 413, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", "")}
                  for e in exc.errors()[:10]]
        first = errors[0] if errors else {"loc": "request", "msg": "invalid"}
        detail = f"{first['loc']}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        if request.method == "GET":
            return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
        return await _refusal(request, 422, detail, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    from .routers import access, agent, assessments, directory, domestic, dr, notices, report_sections, results, zombie

    for module in (agent, directory, results, assessments, report_sections, access, zombie, notices, domestic, dr):
        app.include_router(module.router, prefix=API)
    metrics.install(app, exporters.metrics)  # GET /metrics and the ingest counters
    # event push to Alertmanager and chats, and the Alertmanager-webhook relay, when alerting_config is set
    events_publisher.install(app, exporters.receivers)
    from .routers import scans

    scans.install(app, settings, db)  # network scans: routes, and their scheduler run with the app
    from .routers import websites

    websites.install(app, settings, db)  # website monitoring: routes, and its scheduler run with the app
    notices.install(app, settings, db)  # the 通报 loop's re-verification timer
    return app


def _flush_on_shutdown(app: FastAPI, refusal_log: audit.RefusalLog) -> None:
    """The counts of repeated refusals reach the audit log when the app stops."""
    around_lifespan(app, stop=refusal_log.flush)


def tune_gc() -> None:
    """Garbage collection for a serving process, once its app is built.

    A host report parses into some ten thousand dicts, lists and models, and with CPython's default
    threshold (700) each one sets off several collections, which also walk every object the process
    made at start-up (FastAPI, SQLAlchemy, pydantic schemas): a third of the ingest CPU went there
    (bench/ingest_bench.py). Freezing the start-up objects takes them out of every later collection;
    report data holds no reference cycles, so collecting less often frees it just as soon."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)

