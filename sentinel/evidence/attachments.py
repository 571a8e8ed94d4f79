"""Files attached to manual assessments (interview notes, scanned documents): table and store functions.

The store's `manual_assessments` table has no attachments, so they live in a table of their own,
`assessment_attachments`, on a MetaData of its own: the store's Alembic migrations (which own its
MetaData) stay untouched, and the table is created on first use. The content is kept in the database
with its SHA-256, so an export can hash-list it and a verifier can recheck it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from sqlalchemy import (Column, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, insert,
                        inspect, select)

from ..store.models import ManualAssessment
from ..store.types import UTCDateTime

MAX_ATTACHMENT_BYTES = 32 << 20
_NAME_OK = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")

metadata = MetaData()

attachments = Table(
    "assessment_attachments", metadata,
    Column("id", Integer, primary_key=True),
    Column("assessment_id", Integer, ForeignKey(ManualAssessment.__table__.c.id, ondelete="CASCADE"),
           nullable=False),
    Column("name", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_assessment_attachments_assessment", "assessment_id", "id"),
)


class AttachmentError(ValueError):
    """An attachment that cannot be stored; the message names the file and why."""


@dataclass(frozen=True)
class AttachmentInfo:
    id: int
    assessment_id: int
    name: str
    sha256: str
    size: int


def ensure_table(conn) -> None:
    if not inspect(conn).has_table(attachments.name):
        metadata.create_all(conn, tables=[attachments])


def check_name(name: str) -> str:
    if not _NAME_OK.match(name) or name in (".", ".."):
        raise AttachmentError(f"attachment name {name!r}: must be a plain file name (no / or control characters, "
                              "at most 200 characters)")
    return name


def read_file(path: Path) -> tuple[str, bytes]:
    """(file name, content) of an attachment file given on the command line."""
    try:
        size = path.stat().st_size
        if size > MAX_ATTACHMENT_BYTES:
            raise AttachmentError(f"--attach {path}: {size} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"--attach {path}: cannot read: {exc.strerror or exc}") from None
    return check_name(path.name), data


def add(conn, assessment_id: int, name: str, data: bytes) -> AttachmentInfo:
    check_name(name)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(f"attachment {name}: {len(data)} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES}")
    ensure_table(conn)
    digest = hashlib.sha256(data).hexdigest()
    new_id = conn.execute(insert(attachments).values(
        assessment_id=assessment_id, name=name, sha256=digest, size=len(data), content=data,
        created_at=datetime.now(timezone.utc))).inserted_primary_key[0]
    return AttachmentInfo(id=new_id, assessment_id=assessment_id, name=name, sha256=digest, size=len(data))


def for_assessments(conn, assessment_ids: Iterable[int], with_content: bool = False) -> dict[int, list]:
    """assessment id -> [(AttachmentInfo, content or None)] in the order they were added."""
    ids = sorted(set(assessment_ids))
    if not ids or not inspect(conn).has_table(attachments.name):
        return {}
    cols = [attachments.c.id, attachments.c.assessment_id, attachments.c.name, attachments.c.sha256,
            attachments.c.size]
    if with_content:
        cols.append(attachments.c.content)
    out: dict[int, list] = {}
    for row in conn.execute(select(*cols).where(attachments.c.assessment_id.in_(ids)).order_by(attachments.c.id)):
        info = AttachmentInfo(id=row.id, assessment_id=row.assessment_id, name=row.name, sha256=row.sha256,
                              size=row.size)
        content = bytes(row.content) if with_content else None
        if content is not None and hashlib.sha256(content).hexdigest() != info.sha256:
            raise AttachmentError(f"attachment {info.id} ({info.name}) of assessment {info.assessment_id}: stored "
                                  "content does not match its recorded SHA-256; the database was altered")
        out.setdefault(row.assessment_id, []).append((info, content))
    return out
