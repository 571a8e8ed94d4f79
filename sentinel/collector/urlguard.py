"""Secrets never travel in URLs, and never reach the access log from one (issue 20, item 7).

Every credential of the collector goes in a header (`Authorization: Bearer ...`, the agent's signature
headers) or a body (enrollment). A URL is written to uvicorn's access log, to proxies' logs and to
browser history, so a request whose query string carries something that looks like a credential is
refused (400, audited, naming the parameter) and the access log shows such values as `REDACTED`
(the refusal is logged too, and it must not leak what it refused).
"""
from __future__ import annotations

import json
import logging
from typing import Optional
from urllib.parse import parse_qsl, quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..store.db import Database
from . import audit

#: query parameter names that mean a credential, compared case-insensitively
SECRET_NAMES = frozenset({"token", "access_token", "api_token", "api_key", "apikey", "key", "secret", "password",
                          "passwd", "auth", "authorization", "bearer", "credentials", "signature", "sig"})
#: prefixes of the collector's own secrets (API and enrollment tokens; sentinel/collector/auth.py)
SECRET_PREFIXES = ("sntapi_", "sntenr_")
REDACTED = "REDACTED"


def _is_secret(name: str, value: str) -> bool:
    return name.lower() in SECRET_NAMES or value.startswith(SECRET_PREFIXES) or name.startswith(SECRET_PREFIXES)


def secret_parameter(query: str) -> Optional[str]:
    """The name of the first query parameter that carries a credential, or None."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _is_secret(name, value):
            return name if not name.startswith(SECRET_PREFIXES) else REDACTED
    return None


def redact(path_with_query: str) -> str:
    """The path with every credential-looking query value replaced by REDACTED."""
    path, sep, query = path_with_query.partition("?")
    if not sep or not query:
        return path_with_query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret(n, v) for n, v in pairs):
        return path_with_query
    return path + "?" + urlencode([(REDACTED if n.startswith(SECRET_PREFIXES) else n,
                                    REDACTED if _is_secret(n, v) else v) for n, v in pairs], quote_via=quote)


class AccessLogRedactor(logging.Filter):
    """On uvicorn's access logger: its records are `'%s - "%s %s HTTP/%s" %d'` with the full path (and query)
    as the third argument; that argument is redacted. Anything else passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install_access_log_filter() -> None:
    """Add the redactor to uvicorn's access logger (once per process, whoever builds an app)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())


class NoSecretsInUrl:
    """ASGI middleware: 400 for a request whose query string carries a credential (audited, aggregated)."""

    def __init__(self, app: ASGIApp, *, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        name = secret_parameter(query.decode("latin-1")) if query else None
        if name is None:
            await self.app(scope, receive, send)
            return
        detail = (f"query parameter {name!r} looks like a credential: send tokens in the Authorization header, "
                  "never in the URL (URLs are written to logs)")
        client = scope.get("client")
        await run_in_threadpool(audit.record_refusal, self.db, actor="anonymous",
                                action=f"{scope.get('method')} {scope.get('path', '')}"[:64],
                                target=scope.get("path", ""), source_ip=client[0] if client else None,
                                status_code=400, detail=detail)
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 400, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
