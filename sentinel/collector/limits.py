"""Request body size limit, enforced while the body streams in (not only by Content-Length)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """A 413; an HTTPException so FastAPI's body parsing passes it on to the app's handler."""

    def __init__(self, limit: int, detail: Optional[str] = None) -> None:
        super().__init__(status_code=413, detail=detail or f"request body exceeds the limit of {limit} bytes")


@dataclass(frozen=True)
class RouteLimit:
    """A limit of its own for one route (an upload), instead of the collector's max_body_bytes."""

    method: str
    path: re.Pattern
    limit: int
    detail: str  # the 413's reason, naming the limit the caller has to keep to


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, routes: Sequence[RouteLimit] = ()) -> None:
        self.app = app
        self.limit = limit
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        limit, detail = self.limit, None
        for route in self.routes:
            if scope.get("method") == route.method and route.path.fullmatch(scope.get("path", "")):
                limit, detail = route.limit, route.detail
                break
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit, detail)  # refuse before reading a byte of it
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, detail)
            return message

        await self.app(scope, limited, send)
