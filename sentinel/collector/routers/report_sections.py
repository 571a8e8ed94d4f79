"""The report chapters a person writes (测评项目概述, 网络结构, 整体测评, 等级测评结论 ...: the catalogue and
why are in sentinel/evidence/sections.py). Read by every role that sees the system; written by admins and
assessors of its department, append-only, audited. Exports show the latest text per chapter or 待填写."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Optional

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from ...evidence import sections
from ...model import Text
from ...store.models import ReportSection
from .. import operations
from ..deps import DB, Caller, Ctx, Id, SourceIp
from ..errors import not_found
from ..limits import RouteLimit
from ..problems import DocumentedRoute

router = APIRouter(tags=["report sections"], route_class=DocumentedRoute)

SectionKey = Annotated[str, Path(pattern=r"^[a-z_]{1,32}$", description="chapter key, e.g. overview, "
                                 "topology, overall, conclusion (GET .../report-sections lists them)")]


class SectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=sections.MAX_SECTION_CHARS,
                      description="the chapter's content as the assessor writes it (plain text)")


# The longest text the schema accepts, as a client may send it: JSON escapes a character as up to 12 bytes
# (\uXXXX\uXXXX for one outside the BMP; json.dumps escapes every non-ASCII character by default), so a
# 100,000-character chapter in Chinese can be 600 KB on the wire, over the collector's max_body_bytes.
SECTION_BODY_BYTES = sections.MAX_SECTION_CHARS * 12 + 1024


def section_limit(prefix: str) -> RouteLimit:
    """The body limit of writing a chapter: what its longest valid text can take, not the report limit."""
    path = re.compile(re.escape(prefix) + r"/systems/[^/]+/report-sections/[^/]+")
    return RouteLimit("PUT", path, SECTION_BODY_BYTES,
                      f"request body exceeds the limit of {SECTION_BODY_BYTES} bytes of a report section "
                      f"(its text: at most {sections.MAX_SECTION_CHARS} characters)")


class SectionOut(BaseModel):
    key: str
    number: str
    title: Text
    hint: Text
    data: Optional[Text] = None
    status: str = Field(description="filled, or to_fill (shown as 待填写 in exports)")
    text: Optional[str] = None
    author: Optional[str] = None
    at: Optional[datetime] = None


def _out(spec: sections.SectionSpec, row: Optional[ReportSection]) -> SectionOut:
    return SectionOut(key=spec.key, number=spec.number, title=spec.title, hint=spec.hint, data=spec.data,
                      status="filled" if row is not None else "to_fill", text=row.text if row else None,
                      author=row.author if row else None, at=row.at if row else None)


@router.get("/systems/{system_id}/report-sections", response_model=list[SectionOut])
def list_sections(system_id: Id, db: DB, p: Caller):
    """Every chapter of the template that a person writes, in order, with its latest text or status to_fill."""
    with db.session() as s:
        system = operations.visible_system(Ctx(s, p), system_id)
        assert system.id is not None  # a stored row
        latest = sections.latest_sections(s, system.id)
        return [_out(spec, latest.get(spec.key)) for spec in sections.SECTIONS]


@router.put("/systems/{system_id}/report-sections/{key}", response_model=SectionOut)
def set_section(system_id: Id, key: SectionKey, spec_in: SectionIn, db: DB, p: Caller, ip: SourceIp):
    """Write a chapter (admin or assessor of the system's department); the previous text stays as history."""
    if key not in sections.BY_KEY:
        raise not_found("report section", key)
    with db.session(write=True) as s:
        row = operations.add_section(Ctx(s, p, ip), system_id, key, spec_in.text)
        return _out(sections.BY_KEY[key], row)
