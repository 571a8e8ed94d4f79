"""JSON export: the whole `SystemEvidence` (every result with its raw evidence), for agency tools.

Keys are the model's field names (sentinel/evidence/model.py) and are stable; `schema_version` changes
when they do. Raw report bodies and attachments are files beside it in a bundle, not inside it.
"""
from __future__ import annotations

from sentinel.evidence.model import SystemEvidence


def export_json(ev: SystemEvidence) -> bytes:
    return ev.model_dump_json().encode("utf-8")  # compact: it is for tools, and large for big systems


def load_json(data: bytes | str) -> SystemEvidence:
    return SystemEvidence.model_validate_json(data)
