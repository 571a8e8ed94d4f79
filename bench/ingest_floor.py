"""Floors for bench/ingest_bench.py: a bare ASGI app under uvicorn that does only part of an ingest.

Served with the collector's uvicorn settings (uvloop, httptools, no access log) and fed by the same client,
it shows what this machine can do at all, so the collector's figures (and the issue's targets) can be read
against it. What the app does per POST, by `SENTINEL_FLOOR_MODE`:

- `receive`: read the body and answer 202: HTTP alone;
- `verify`: also what the issue requires of every report before anything is stored, done the collector's
  way: parse the JSON (sentinel.collector.fastjson), the canonical digest of the body, and the agent's
  Ed25519 signature over the bytes (keys from the JSON file named by `SENTINEL_FLOOR_KEYS`);
- `validate`: also the report's schema (pydantic, sentinel.model.HostReport) and the compressed copy of
  the signed bytes that the collector keeps.

None of them has a framework, a database or a thread hand-over; garbage collection is tuned as the
collector tunes it (sentinel.collector.app.tune_gc).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sentinel import signing
from sentinel.collector import fastjson
from sentinel.collector.app import tune_gc
from sentinel.model import HostReport
from sentinel.store import envelopes

MODES = ("receive", "verify", "validate")
MODE = os.environ.get("SENTINEL_FLOOR_MODE", "receive")
if MODE not in MODES:
    raise SystemExit(f"SENTINEL_FLOOR_MODE={MODE!r}: choose from {', '.join(MODES)}")
KEYS = {agent: signing.load_public_key_b64(key)
        for agent, key in json.loads(Path(os.environ["SENTINEL_FLOOR_KEYS"]).read_text()).items()} \
    if MODE != "receive" else {}
ANSWER = b'{"report_id":"floor","run_id":null,"new_failures":[],"fixed":[]}'


def _check(raw: bytes, headers: dict[bytes, bytes]) -> int:
    data, canonical = fastjson.parse_envelope(raw)
    hashlib.sha256(canonical if canonical is not None else fastjson.canonical_std(data["body"])).hexdigest()
    key = KEYS.get(headers.get(b"x-sentinel-agent", b"").decode())
    if key is None or not signing.verify(key, raw, headers.get(b"x-sentinel-signature", b"").decode()):
        return 401
    if MODE == "validate":
        HostReport.model_validate(data["body"])
        envelopes.pack(raw)
    return 202


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["method"] != "POST":
        status = 200  # the bench's readiness probe
    else:
        status = 202 if MODE == "receive" else _check(b"".join(chunks), dict(scope["headers"]))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


tune_gc()
