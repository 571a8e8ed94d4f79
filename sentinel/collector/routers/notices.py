"""The 通报 loop over the API (docs/notices.md): an admin issues a notice to a department (for a period, or on
demand for a serious event); the department reads it (JSON, DOCX, PDF) and answers each item with what was done and
its files; verification (on every issue, and on request) marks each item fixed, open or overdue and escalates.

A caller sees only its departments' notices (404 for the others, as if missing); a department operator or admin of
the department answers; an answer never closes an item, the next run, scan or round does.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, FastAPI, File, Form, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from ...evidence import attachments as att
from ...notices import document, loop
from ...notices.policy import NoticePolicy
from ...notices.verifier import Verifier
from ...store.db import Database
from ...store.models import Department, Notice, NoticeAnswer, NoticeAttachment, NoticeItem, System
from ..auth import ADMIN, DEPT_OPERATOR
from ..deps import DB, Caller, Ctx, Id, Limit, Offset, OptId, SourceIp, page, visible, where_given
from ..errors import ApiError, not_found
from ..lifespan import around_lifespan
from ..limits import RouteLimit
from ..problems import DocumentedRoute
from ..settings import CollectorSettings

router = APIRouter(tags=["notices"], route_class=DocumentedRoute)
MAX_FILES = 10


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department_id: int = Field(ge=1)
    kind: Literal["periodic", "event"] = "periodic"
    period_start: Optional[datetime] = None
    period_end: Optional[datetime] = None
    reason: str = Field(default="", max_length=4000, description="the serious event an `event` notice is about")
    system_ids: Optional[list[int]] = Field(default=None, description="only these systems' problems (default all)")


class NoticeOut(Out):
    id: int
    department_id: int
    number: str
    kind: str
    authority: str
    period_start: Optional[datetime]
    period_end: Optional[datetime]
    reason: str
    issued_at: datetime
    issued_by: str


class NoticeItemOut(Out):
    id: int
    notice_id: int
    seq: int
    system_id: int
    source: str
    source_id: int
    grade: str
    title: dict[str, str]
    location: str
    basis: str
    remediation: dict[str, str]
    first_seen: datetime
    deadline: datetime
    state: str
    verified_at: Optional[datetime]
    fixed_at: Optional[datetime]
    escalated_at: Optional[datetime]
    carried_from: Optional[int]


class NoticeDetailOut(NoticeOut):
    items: list[NoticeItemOut]


class NoticeFileOut(Out):
    id: int
    name: str
    sha256: str
    size: int
    created_at: datetime


class NoticeAnswerOut(Out):
    id: int
    item_id: int
    text: str
    answered_by: str
    at: datetime
    attachments: list[NoticeFileOut] = []


class NoticeVerifyOut(BaseModel):
    fixed: int
    open: int
    overdue: int
    escalated: int


def install(app: FastAPI, settings: CollectorSettings, db: Database) -> Verifier:
    """Run the re-verification timer with the app (its routes are included with the others)."""
    verifier = Verifier(db, settings.notices.verify_seconds, settings.zombie)
    around_lifespan(app, start=verifier.start, stop=verifier.stop)
    return verifier


def _policy(request: Request) -> NoticePolicy:
    return request.app.state.settings.notices


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _items(s, notice_id: int) -> list[NoticeItem]:
    return list(s.exec(select(NoticeItem).where(NoticeItem.notice_id == notice_id).order_by(col(NoticeItem.seq))))


def _detail(s, row: Notice) -> NoticeDetailOut:
    assert row.id is not None
    return NoticeDetailOut.model_validate({**NoticeOut.model_validate(row).model_dump(),
                                           "items": [NoticeItemOut.model_validate(i) for i in _items(s, row.id)]})


@router.post("/notices", status_code=201, response_model=NoticeDetailOut)
def issue_notice(spec: NoticeIn, request: Request, db: DB, p: Caller, ip: SourceIp):
    """Issue a 通报 to a department (admin): its open problems, each with the deadline its grade gives."""
    with db.session(write=True) as s:
        if s.get(Department, spec.department_id) is None or not p.sees(spec.department_id):
            raise not_found("department", spec.department_id)
        p.require_department(spec.department_id, ADMIN)
        if spec.system_ids:
            systems = s.exec(select(System).where(col(System.id).in_(spec.system_ids))).all()
            if len(systems) != len(set(spec.system_ids)) or any(x.department_id != spec.department_id
                                                                for x in systems):
                raise ApiError(422, "system_ids: every system must be one of the department's")
        row = loop.issue(s, spec.department_id, _policy(request), request.app.state.settings.zombie, _now(),
                         p.actor, kind=spec.kind,
                         period_start=spec.period_start, period_end=spec.period_end, reason=spec.reason,
                         system_ids=spec.system_ids)
        Ctx(s, p, ip).audit("notice.issue", f"notice:{row.id}:{row.number}", f"department {spec.department_id}")
        return _detail(s, row)


@router.get("/notices", response_model=list[NoticeOut])
def list_notices(db: DB, p: Caller, department_id: OptId = None, limit: Limit = 100, offset: Offset = 0):
    with db.session() as s:
        stmt = p.scoped(select(Notice), col(Notice.department_id))
        stmt = where_given(stmt, (Notice.department_id, department_id))
        return s.exec(page(stmt.order_by(col(Notice.id).desc()), limit, offset)).all()


@router.get("/notices/{notice_id}", response_model=NoticeDetailOut)
def get_notice(notice_id: Id, db: DB, p: Caller):
    with db.session() as s:
        return _detail(s, visible(s, p, Notice, notice_id, "notice"))


_DOC_TYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
              "pdf": "application/pdf"}


@router.get("/notices/{notice_id}/document", response_class=Response,
            responses={200: {"description": "the 通报 as DOCX or PDF",
                             "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                         for t in _DOC_TYPES.values()}}})
def notice_document(notice_id: Id, db: DB, p: Caller, format: Literal["docx", "pdf"] = "docx"):
    """The 通报 as a document: the authority's header, its number and date, one row per problem."""
    with db.session() as s:
        row = visible(s, p, Notice, notice_id, "notice")
        department = s.get(Department, row.department_id)
        assert department is not None
        items = _items(s, notice_id)
        systems = {x.id: x for x in s.exec(select(System).where(System.department_id == row.department_id))}
        doc = document.NoticeDocument(row, department, items, systems)
        try:
            data = document.to_docx(doc) if format == "docx" else document.to_pdf(doc)
        except document.PdfUnavailable as exc:
            raise ApiError(501, str(exc)) from None
    return Response(content=data, media_type=_DOC_TYPES[format],
                    headers={"Content-Disposition": att.content_disposition(f"{row.number}.{format}")})


def _item(s, p, notice_id: int, item_id: int) -> NoticeItem:
    visible(s, p, Notice, notice_id, "notice")
    item = s.get(NoticeItem, item_id)
    if item is None or item.notice_id != notice_id:
        raise not_found("notice item", item_id)
    return item


def _answer_out(s, row: NoticeAnswer) -> NoticeAnswerOut:
    files = s.exec(select(NoticeAttachment).where(NoticeAttachment.answer_id == row.id)
                   .order_by(col(NoticeAttachment.id))).all()
    return NoticeAnswerOut.model_validate({"id": row.id, "item_id": row.item_id, "text": row.text,
                                     "answered_by": row.answered_by, "at": row.at,
                                     "attachments": [NoticeFileOut.model_validate(f) for f in files]})


ANSWERS = "/notices/{notice_id}/items/{item_id}/answers"


def answer_limit(prefix: str) -> RouteLimit:
    """An answer's own body limit (its files may be larger than max_body_bytes, which sizes agent reports)."""
    path = re.compile(re.escape(prefix) + r"/notices/[^/]+/items/[^/]+/answers")
    return RouteLimit("POST", path, MAX_FILES * att.MAX_ATTACHMENT_BYTES + (1 << 20),
                      f"an answer carries at most {MAX_FILES} files of {att.MAX_ATTACHMENT_BYTES} bytes")


@router.post(ANSWERS, status_code=201, response_model=NoticeAnswerOut)
def answer_item(
    notice_id: Id, item_id: Id, db: DB, p: Caller, ip: SourceIp,
    text: Annotated[str, Form(min_length=1, max_length=20000, description="what was done (整改情况)")],
    files: Annotated[Optional[list[UploadFile]], File(description=f"up to {MAX_FILES} files, each at most "
                                                                  f"{att.MAX_ATTACHMENT_BYTES} bytes")] = None,
):
    """The department's answer on an item (operator or admin of the department). The item stays as it is until
    the next run, scan or round shows the problem gone."""
    with db.session(write=True) as s:
        item = _item(s, p, notice_id, item_id)
        p.require_department(item.department_id, ADMIN, DEPT_OPERATOR)
        uploads = files or []
        if len(uploads) > MAX_FILES:
            raise ApiError(422, f"files: at most {MAX_FILES}")
        read: list[tuple[str, bytes]] = []
        for f in uploads:
            try:
                name = att.check_name(f.filename or "")
                f.file.seek(0)
                data = f.file.read(att.MAX_ATTACHMENT_BYTES + 1)
                att.check_size(name, len(data))
            except att.AttachmentError as exc:
                raise ApiError(422, f"files: {exc}") from None
            read.append((name, data))
        row, attached = loop.answer(s, item, text, p.actor, _now(), read)
        Ctx(s, p, ip).audit("notice.answer", f"notice:{notice_id}:item:{item_id}",
                            f"{len(attached)} file(s)" + "".join(f"; {a.name} sha256 {a.sha256}" for a in attached))
        return _answer_out(s, row)


@router.get(ANSWERS, response_model=list[NoticeAnswerOut])
def list_answers(notice_id: Id, item_id: Id, db: DB, p: Caller):
    with db.session() as s:
        _item(s, p, notice_id, item_id)
        rows = s.exec(select(NoticeAnswer).where(NoticeAnswer.item_id == item_id).order_by(col(NoticeAnswer.id)))
        return [_answer_out(s, r) for r in rows.all()]


@router.get(ANSWERS + "/{answer_id}/files/{file_id}", response_class=Response,
            responses={200: {"description": "the file's bytes",
                             "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}})
def download_answer_file(notice_id: Id, item_id: Id, answer_id: Id, file_id: Id, db: DB, p: Caller):
    with db.session() as s:
        _item(s, p, notice_id, item_id)
        answer = s.get(NoticeAnswer, answer_id)
        f = s.get(NoticeAttachment, file_id)
        if answer is None or answer.item_id != item_id or f is None or f.answer_id != answer_id:
            raise not_found("file", file_id)
        return Response(content=bytes(f.content), media_type="application/octet-stream",
                        headers={"Content-Disposition": att.content_disposition(f.name),
                                 "X-Sentinel-SHA256": f.sha256, "X-Content-Type-Options": "nosniff"})


@router.post("/notices/verify", response_model=NoticeVerifyOut)
def verify_notices(request: Request, db: DB, p: Caller, ip: SourceIp, department_id: OptId = None):
    """Re-verify every unfixed item now (admin): fixed, still open or overdue; overdue ones escalate."""
    p.require(ADMIN)
    with db.session(write=True) as s:
        if department_id is not None and not p.sees(department_id):
            raise not_found("department", department_id)
        counts = loop.verify(s, _now(), request.app.state.settings.zombie, department_id)
        Ctx(s, p, ip).audit("notice.verify", f"department:{department_id or 'all'}",
                            ", ".join(f"{k} {v}" for k, v in counts.items()))
        return NoticeVerifyOut(**counts)
