"""Files attached to manual assessments (interview notes, scanned documents): checks and store functions.

The rows live in the store's `assessment_attachments` table (sentinel.store.models.AssessmentAttachment,
migration 0003). The content is kept in the database with its SHA-256, so an export can hash-list it
and a verifier can recheck it; reading content back rechecks that hash.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import quote

from sqlalchemy import Connection, Row, insert, select
from typing_extensions import Unpack

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


# Characters that look like a path separator or a dot but are not one: "report\u2215etc" or "invoice\u2024pdf"
# would show as a path or a file type they are not.
_LOOKALIKES = {"\u2044": "FRACTION SLASH", "\u2215": "DIVISION SLASH", "\u29f8": "BIG SOLIDUS",
               "\uff0f": "FULLWIDTH SOLIDUS", "\u29f5": "REVERSE SOLIDUS OPERATOR", "\u29f9": "BIG REVERSE SOLIDUS",
               "\ufe68": "SMALL REVERSE SOLIDUS", "\uff3c": "FULLWIDTH REVERSE SOLIDUS", "\u2024": "ONE DOT LEADER",
               "\ufe52": "SMALL FULL STOP", "\uff0e": "FULLWIDTH FULL STOP"}
# Scripts whose letters pass for Latin ones (UTS #39 confusables): mixed with Latin letters in one name,
# as in "invоice.pdf" with a Cyrillic о, they make a look-alike of another file's name.
_CONFUSABLE_SCRIPTS = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def _refused(ch: str) -> Optional[str]:
    """Why `ch` may not be in an attachment name, or None."""
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp"):
        # Cc control, Cf format (the bidirectional overrides and isolates such as U+202E, zero-width
        # characters, the BOM), Cs/Co/Cn: invisible or reorder what a person reads
        return f"U+{ord(ch):04X} {unicodedata.name(ch, category)} (a control or format character)"
    if ch in _LOOKALIKES:
        return f"U+{ord(ch):04X} {_LOOKALIKES[ch]} (looks like / \\ or .)"
    return None


def check_name(name: str) -> str:
    """The name as it is stored: Unicode NFC, so that one name has one spelling. Refused (BadAttachmentName):
    empty, "." or "..", longer than 200 characters, / or \\, control and format characters (bidirectional
    overrides, zero-width), look-alikes of / \\ and ".", and words mixing Latin letters with Cyrillic, Greek,
    Armenian or Cherokee ones."""
    normal = unicodedata.normalize("NFC", name)
    why = [r for r in dict.fromkeys(_refused(ch) for ch in normal) if r]
    if why:
        raise BadAttachmentName(f"attachment name {name!r}: {'; '.join(why[:3])} is not allowed in a file name")
    for word in re.findall(r"[^\W\d_]+", normal):  # runs of letters: "Ελληνικά.txt" is two words, fine
        scripts = {unicodedata.name(ch, "").split(" ")[0] for ch in word}
        mixed = sorted(scripts & set(_CONFUSABLE_SCRIPTS))
        if "LATIN" in scripts and mixed:
            raise BadAttachmentName(f"attachment name {name!r}: {word!r} mixes Latin letters with "
                                    f"{', '.join(mixed).title()} ones, which look alike; use one script")
    if not _NAME_OK.match(normal) or normal.strip() in ("", ".", ".."):
        raise BadAttachmentName(f"attachment name {name!r}: must be a plain file name (no / \\ or control "
                                "characters, at most 200 characters)")
    return normal


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


def add(conn: Connection, assessment_id: int, name: str, data: bytes) -> AttachmentInfo:
    name = check_name(name)
    check_size(name, len(data))
    digest = hashlib.sha256(data).hexdigest()
    now = datetime.now(timezone.utc)
    key = conn.execute(insert(attachments).values(
        assessment_id=assessment_id, name=name, sha256=digest, size=len(data), content=data,
        created_at=now)).inserted_primary_key
    assert key is not None  # a single-row insert always reports the key it made
    new_id = key[0]
    return AttachmentInfo(id=new_id, assessment_id=assessment_id, name=name, sha256=digest, size=len(data),
                          created_at=now)


def _info(row: Row[Unpack[tuple[Any, ...]]]) -> AttachmentInfo:  # any row with the _META columns
    return AttachmentInfo(id=row.id, assessment_id=row.assessment_id, name=row.name, sha256=row.sha256,
                          size=row.size, created_at=row.created_at)


def _checked(info: AttachmentInfo, content: Union[bytes, memoryview]) -> bytes:
    data = bytes(content)
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise AttachmentError(f"attachment {info.id} ({info.name}) of assessment {info.assessment_id}: stored "
                              "content does not match its recorded SHA-256; the database was altered")
    return data


_META = (attachments.c.id, attachments.c.assessment_id, attachments.c.name, attachments.c.sha256,
         attachments.c.size, attachments.c.created_at)


# assessment id -> [(AttachmentInfo, content or None)]
Attached = dict[int, list[tuple[AttachmentInfo, Optional[bytes]]]]


def for_assessments(conn: Connection, assessment_ids: Iterable[int], with_content: bool = False) -> Attached:
    """assessment id -> [(AttachmentInfo, content or None)] in the order they were added."""
    ids = sorted(set(assessment_ids))
    if not ids:
        return {}
    cols = list(_META) + ([attachments.c.content] if with_content else [])
    out: Attached = {}
    for row in conn.execute(select(*cols).where(attachments.c.assessment_id.in_(ids)).order_by(attachments.c.id)):
        info = _info(row)
        out.setdefault(row.assessment_id, []).append((info, _checked(info, row.content) if with_content else None))
    return out


def get(conn: Connection, assessment_id: int, attachment_id: int) -> Optional[tuple[AttachmentInfo, bytes]]:
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
