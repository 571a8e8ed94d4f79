"""Files attached to manual assessments (interview notes, scanned documents): checks and store functions.

The rows live in the store's `assessment_attachments` table (sentinel.store.models.AssessmentAttachment,
migration 0003). The content is kept in the database with its SHA-256, so an export can hash-list it
and a verifier can recheck it; reading content back rechecks that hash.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import quote

from sqlalchemy import insert, select

from ..store.models import AssessmentAttachment

MAX_ATTACHMENT_BYTES = 32 << 20
_NAME_OK = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,200}$")

attachments = AssessmentAttachment.__table__


class AttachmentError(ValueError):
    """An attachment that cannot be stored or read back; the message names the file and why."""


class BadAttachmentName(AttachmentError):
    pass


class AttachmentTooLarge(AttachmentError):
    pass


@dataclass(frozen=True)
class AttachmentInfo:
    id: int
    assessment_id: int
    name: str
    sha256: str
    size: int
    created_at: Optional[datetime] = None


def check_name(name: str) -> str:
    if not _NAME_OK.match(name) or name.strip() in ("", ".", ".."):
        raise BadAttachmentName(f"attachment name {name!r}: must be a plain file name (no / \\ or control "
                                "characters, at most 200 characters)")
    return name


def check_size(name: str, size: int) -> None:
    if size > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(f"attachment {name}: {size} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES} bytes")


def read_file(path: Path) -> tuple[str, bytes]:
    """(file name, content) of an attachment file given on the command line."""
    try:
        size = path.stat().st_size
        if size > MAX_ATTACHMENT_BYTES:
            raise AttachmentTooLarge(f"--attach {path}: {size} bytes exceeds the limit of {MAX_ATTACHMENT_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"--attach {path}: cannot read: {exc.strerror or exc}") from None
    return check_name(path.name), data


def add(conn, assessment_id: int, name: str, data: bytes) -> AttachmentInfo:
    check_name(name)
    check_size(name, len(data))
    digest = hashlib.sha256(data).hexdigest()
    now = datetime.now(timezone.utc)
    new_id = conn.execute(insert(attachments).values(
        assessment_id=assessment_id, name=name, sha256=digest, size=len(data), content=data,
        created_at=now)).inserted_primary_key[0]
    return AttachmentInfo(id=new_id, assessment_id=assessment_id, name=name, sha256=digest, size=len(data),
                          created_at=now)


def _info(row) -> AttachmentInfo:
    return AttachmentInfo(id=row.id, assessment_id=row.assessment_id, name=row.name, sha256=row.sha256,
                          size=row.size, created_at=row.created_at)


def _checked(info: AttachmentInfo, content) -> bytes:
    data = bytes(content)
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise AttachmentError(f"attachment {info.id} ({info.name}) of assessment {info.assessment_id}: stored "
                              "content does not match its recorded SHA-256; the database was altered")
    return data


_META = (attachments.c.id, attachments.c.assessment_id, attachments.c.name, attachments.c.sha256,
         attachments.c.size, attachments.c.created_at)


def for_assessments(conn, assessment_ids: Iterable[int], with_content: bool = False) -> dict[int, list]:
    """assessment id -> [(AttachmentInfo, content or None)] in the order they were added."""
    ids = sorted(set(assessment_ids))
    if not ids:
        return {}
    cols = list(_META) + ([attachments.c.content] if with_content else [])
    out: dict[int, list] = {}
    for row in conn.execute(select(*cols).where(attachments.c.assessment_id.in_(ids)).order_by(attachments.c.id)):
        info = _info(row)
        out.setdefault(row.assessment_id, []).append((info, _checked(info, row.content) if with_content else None))
    return out


def get(conn, assessment_id: int, attachment_id: int) -> Optional[tuple[AttachmentInfo, bytes]]:
    """One attachment of an assessment with its (rechecked) content; None if that assessment has no such file."""
    row = conn.execute(select(*_META, attachments.c.content).where(attachments.c.id == attachment_id,
                                                                   attachments.c.assessment_id == assessment_id)
                       ).first()
    if row is None:
        return None
    info = _info(row)
    return info, _checked(info, row.content)


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987), so a
    Chinese file name survives the download."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\%;' else "_" for c in name) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
