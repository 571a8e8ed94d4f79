"""Manual assessments: a person's verdict on a requirement item that no check can decide, and the files
attached to it (interview records, scanned documents)."""
from __future__ import annotations

import logging
import re
from typing import Annotated, Optional

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from sqlmodel import select

from ...evidence import attachments as att
from ...store.models import ManualAssessment
from .. import operations
from ..auth import ADMIN, ASSESSOR
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, SourceIp, visible, where_given
from ..errors import ApiError, not_found
from ..limits import RouteLimit
from ..problems import DocumentedRoute
from ..schemas import CLAUSE_PATTERN, AssessmentIn, AssessmentOut, AttachmentOut

log = logging.getLogger("sentinel.collector.attachments")

router = APIRouter(tags=["assessments"], route_class=DocumentedRoute)  # error answers in the OpenAPI document


@router.get("/systems/{system_id}/assessments", response_model=list[AssessmentOut])
def list_assessments(system_id: Id, db: DB, p: Caller,
                     clause: Optional[str] = Query(None, pattern=CLAUSE_PATTERN),
                     latest: bool = Query(False, description="only the latest verdict per clause+item"),
                     limit: Limit = 100, offset: Offset = 0):
    """Oldest first (the history of verdicts), or with `latest` the verdicts that count now."""
    with db.session() as s:
        operations.visible_system(Ctx(s, p), system_id)
        stmt = select(ManualAssessment).where(ManualAssessment.system_id == system_id)
        stmt = where_given(stmt, (ManualAssessment.clause, clause))
        rows = s.exec(stmt.order_by(ManualAssessment.id)).all()
        if latest:
            current: dict[tuple[str, str], ManualAssessment] = {}
            for row in rows:
                current[(row.clause, row.item)] = row
            rows = sorted(current.values(), key=lambda r: (r.clause, r.item))
        return rows[offset:offset + limit]


@router.post("/systems/{system_id}/assessments", status_code=201, response_model=AssessmentOut)
def add_assessment(system_id: Id, spec: AssessmentIn, db: DB, p: Caller, ip: SourceIp):
    with db.session(write=True) as s:
        return operations.add_assessment(Ctx(s, p, ip), system_id, spec)


@router.get("/assessments/{assessment_id}", response_model=AssessmentOut)
def get_assessment(assessment_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return visible(s, p, ManualAssessment, assessment_id, "assessment")


# ---- attachments -----------------------------------------------------------------------------------

ATTACHMENTS = "/systems/{system_id}/assessments/{assessment_id}/attachments"
# What a multipart body carries around the file: boundaries, the part headers (a 200-character file name,
# percent-encoded), the optional name field. Generous, so only the file's own size decides.
_MULTIPART_SLACK = 64 << 10


def upload_limit(prefix: str) -> RouteLimit:
    """The upload's own body limit (attachments may be larger than the collector's max_body_bytes, which
    sizes agent reports): refused while streaming in once past the file limit and its framing, so a 413
    names the attachment limit whichever check catches it."""
    path = re.compile(re.escape(prefix) + r"/systems/[^/]+/assessments/[^/]+/attachments")
    return RouteLimit("POST", path, att.MAX_ATTACHMENT_BYTES + _MULTIPART_SLACK,
                      f"attachment exceeds the limit of {att.MAX_ATTACHMENT_BYTES} bytes")


def _out(info: att.AttachmentInfo) -> AttachmentOut:
    return AttachmentOut.model_validate(info, from_attributes=True)


@router.post(ATTACHMENTS, status_code=201, response_model=AttachmentOut, tags=["attachments"])
def upload_attachment(
    system_id: Id, assessment_id: Id, db: DB, p: Caller, ip: SourceIp,
    file: Annotated[UploadFile, File(description=f"the file, at most {att.MAX_ATTACHMENT_BYTES} bytes")],
    name: Annotated[Optional[str], Form(description="file name to store (default: the upload's file name); a "
                                        "plain name, no / \\ or control characters, at most 200 characters")] = None,
):
    """Attach a file (interview record, scanned document) to a manual assessment: admin or assessor of the
    assessment's department. Its SHA-256 is kept; it appears in every export of the system."""
    with db.session(write=True) as s:
        ctx = Ctx(s, p, ip)
        row = operations.visible_assessment(ctx, system_id, assessment_id)
        p.require_department(row.department_id, ADMIN, ASSESSOR)  # before looking at what was sent
        field, filename = ("name", name) if name is not None else ("file", file.filename or "")
        try:
            filename = att.check_name(filename)  # NFC, as stored
        except att.AttachmentError as exc:
            raise ApiError(422, f"{field}: {exc}") from None
        file.file.seek(0)
        data = file.file.read(att.MAX_ATTACHMENT_BYTES + 1)  # one byte more tells a file over the limit
        return _out(operations.add_attachment(ctx, row, filename, data))


@router.get(ATTACHMENTS, response_model=list[AttachmentOut], tags=["attachments"])
def list_attachments(system_id: Id, assessment_id: Id, db: DB, p: Caller, limit: Limit = 100, offset: Offset = 0):
    """The assessment's files, oldest first: metadata only."""
    with db.session() as s:
        row = operations.visible_assessment(Ctx(s, p), system_id, assessment_id)
        assert row.id is not None  # a stored row
        files = att.for_assessments(s.connection(), [row.id]).get(row.id, [])
        return [_out(info) for info, _ in files[offset:offset + limit]]


@router.get(ATTACHMENTS + "/{attachment_id}", response_class=Response, tags=["attachments"],
            responses={200: {"description": "the file's bytes; X-Sentinel-SHA256 is their SHA-256 (hex)",
                             "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}})
def download_attachment(system_id: Id, assessment_id: Id, attachment_id: Id, db: DB, p: Caller):
    """The file as stored, after rechecking it against its recorded SHA-256."""
    with db.session() as s:
        row = operations.visible_assessment(Ctx(s, p), system_id, assessment_id)
        assert row.id is not None  # a stored row
        try:
            found = att.get(s.connection(), row.id, attachment_id)
        except att.AttachmentError as exc:  # the stored bytes no longer match their hash: never serve them
            log.error("%s", exc)
            raise ApiError(500, str(exc)) from None
    if found is None:
        raise not_found("attachment", attachment_id)
    info, data = found
    # An uploaded file is served as an opaque download, never rendered by the browser as a page of ours.
    return Response(content=data, media_type="application/octet-stream",
                    headers={"Content-Disposition": att.content_disposition(info.name),
                             "X-Sentinel-SHA256": info.sha256, "X-Content-Type-Options": "nosniff"})
