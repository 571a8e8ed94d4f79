"""The hashes an evidence bundle is checked with, kept dependency-free so `verify` runs offline.

They restate the collector's ingest contract (sentinel/collector/ingest/verify.py): a run's digest is the
SHA-256 of its envelope `body` serialised canonically (sorted keys, compact separators, UTF-8, no NaN),
and each system chains its runs with chain_hash = sha256(prev_chain_hash + digest) over the lowercase hex
strings, starting from 64 zeros. tests/test_evidence_store.py pins them to the collector's functions.
"""
from __future__ import annotations

import hashlib
import json
from typing import IO, Any

CHUNK = 1 << 20


def canonical_bytes(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(fh: IO[bytes]) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def chain_hash(prev_chain_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_chain_hash + digest).encode("ascii")).hexdigest()
