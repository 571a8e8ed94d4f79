"""Agent endpoints (docs/wire.md): enrollment and signed report ingestion."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import enrollment
from ..deps import DB, SourceIp
from ..ingest import Refused
from ..wire import EnrollInfo, EnrollRequest, EnrollResponse, Envelope, Problem, ReportAccepted

router = APIRouter(prefix="/agent", tags=["agent"])

# FastAPI's `responses` type: status -> OpenAPI response object
Responses = dict[int | str, dict[str, Any]]

_problems: Responses = {code: {"model": Problem} for code in (400, 401, 403, 409, 413, 422)}
# every agent route is behind the gate's rate limits (gate.py): 429 with Retry-After
_limited: Responses = {
    429: {"model": Problem, "description": "rate limited (source address or agent); see Retry-After",
          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}}}
_problems = {**_problems, **_limited}


@router.get("/enroll", response_model=EnrollInfo, responses=_limited)
def enroll_info(request: Request):
    """The collector's public key, which an agent's enrollment proof binds (docs/wire.md, Enrollment)."""
    return EnrollInfo(collector_public_key=request.app.state.collector_public_key, proof=enrollment.PROOF_RECIPE)


@router.post("/enroll", status_code=201, response_model=EnrollResponse, responses=_problems)
def enroll(req: EnrollRequest, request: Request, db: DB, ip: SourceIp):
    """Exchange a one-time enrollment token and a public key for an agent id."""
    try:
        return enrollment.enroll(db, req, ip, request.app.state.collector_public_key)
    except Refused as refusal:  # already audited
        return JSONResponse({"detail": refusal.detail}, status_code=refusal.status)


@router.post(
    "/reports", status_code=202, response_model=ReportAccepted,
    responses={200: {"model": ReportAccepted, "description": "the same report again: the first answer"},
               **_problems},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": Envelope.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
)
async def report(
    request: Request,
    ip: SourceIp,
    x_sentinel_agent: Annotated[Optional[str], Header(description="the agent id")] = None,
    x_sentinel_signature: Annotated[Optional[str], Header(description="base64 Ed25519 signature of the body")] = None,
):
    """Store a signed envelope (host_report, inventory or utilisation) after verifying it."""
    raw = await request.body()
    status, body = await run_in_threadpool(request.app.state.ingestor.handle, raw, x_sentinel_agent,
                                           x_sentinel_signature, ip)
    request.app.state.ingest_counters.observe_report(status, body, raw)  # ingest counters (collector/metrics.py)
    return JSONResponse(body, status_code=status)
