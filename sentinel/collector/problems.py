"""The error answers of the REST API, as they are really sent, in the published OpenAPI document.

Every refusal is `{"detail": "..."}` (ApiError, app.py); a request that fails validation adds `errors`,
up to ten `{loc, msg}` (app.py's RequestValidationError handler), which FastAPI's own `HTTPValidationError`
schema does not describe. `DocumentedRoute` (the route class of the API's routers) adds to each
operation the error statuses it can answer with, worked out from the route itself:

- 400 on those with a request body (one that cannot even be parsed: FastAPI's own answer);
- 401 on every route that takes an API token (a `Caller` parameter);
- 403 on those that change something (any method but GET); a GET that only some roles may call names
  403 itself in its `responses`;
- 404 on those with a path id or a request body naming a row (`..._id`); rows of other departments
  answer 404, as if missing;
- 413 on those with a request body (sentinel.collector.limits.BodyLimit);
- 422 on every route: any parameter or body may be invalid, and a query parameter the route does not
  take is refused (`_known_query_only`), with the schema above.
409 and any other status a route declares itself, as a route knows its own conflicts.
"""
from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends as RouteDepends
from fastapi import Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.params import Body, Depends, File, Form
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from . import wire

# One refusal model for the whole API (the agent endpoints' too), so the document has one `Problem`.
Problem = wire.Problem


class FieldProblem(BaseModel):
    loc: str = Field(description="where: body.field, query.name, path.name, header.name")
    msg: str


class ValidationProblem(Problem):
    """A request that does not match its schema (or a value the collector cannot accept)."""

    errors: list[FieldProblem] = Field(default_factory=list,
                                       description="up to ten problems (absent when the collector checked the "
                                                   "value itself, after the schema)")


DESCRIPTIONS = {
    400: "the body cannot be parsed at all (not UTF-8 JSON, or a broken multipart form)",
    401: "no API token, or a malformed, unknown, revoked or expired one",
    403: "the token's role may not do this, or the token is not bound to that department",
    404: "no such row among the caller's departments (rows of other departments answer the same)",
    409: "conflicts with the stored state",
    413: "request body over the collector's limit (the detail names it)",
    422: "invalid request: `detail` names the first problem (location: message)",
}


def problem(status: int, description: str | None = None) -> dict[str, Any]:
    """A `responses` entry for an error status, e.g. `responses={409: problem(409, "already exists")}`."""
    return {"model": ValidationProblem if status == 422 else Problem,
            "description": description or DESCRIPTIONS.get(status, "refused")}


def _hints(endpoint: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(endpoint, include_extras=True)
    except Exception:  # an annotation that does not resolve: document nothing rather than fail at start-up
        return {}


@dataclass
class _Shape:
    authed: bool = False  # takes an API token
    params: bool = False  # takes any request parameter or body
    body: bool = False
    names_row: bool = False  # the body names a row by id (`..._id`)
    query: set[str] = field(default_factory=set)  # names of its query parameters


def _shape(endpoint: Callable, path: str) -> _Shape:
    from .deps import get_principal

    shape = _Shape()
    for name, hint in _hints(endpoint).items():
        if name == "return":
            continue
        meta = getattr(hint, "__metadata__", ())
        base = typing.get_args(hint)[0] if meta else hint
        if any(isinstance(m, Depends) for m in meta):
            shape.authed = shape.authed or any(getattr(m, "dependency", None) is get_principal for m in meta)
            continue
        if base is Request:
            continue
        shape.params = True
        model = isinstance(base, type) and issubclass(base, BaseModel)
        if any(isinstance(m, (Body, File, Form)) for m in meta) or model:
            shape.body = True
            shape.names_row = shape.names_row or (model and any(f.endswith("_id") for f in base.model_fields))
        elif not any(isinstance(m, (params.Path, params.Header, params.Cookie)) for m in meta) \
                and f"{{{name}}}" not in path:
            aliases = [m.alias for m in meta if isinstance(m, params.Query) and m.alias]
            shape.query.add(aliases[0] if aliases else name)
    return shape


def _known_query_only(known: set[str]) -> Callable[[Request], None]:
    """A dependency refusing query parameters the route does not take: a misspelt filter
    (`/findings?sytem_id=3`) would otherwise be ignored and answer every department's findings in scope."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params.keys()) - known)
        if unknown:
            raise RequestValidationError([{"loc": ("query", name), "type": "extra_forbidden", "input": None,
                                           "msg": f"unknown query parameter (this route takes: "
                                                  f"{', '.join(sorted(known)) or 'none'})"} for name in unknown])

    return check


class DocumentedRoute(APIRoute):
    """An APIRoute whose OpenAPI operation lists the error answers it really gives (see the module)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, responses: dict | None = None,
                 methods: Any = None, **kwargs: Any) -> None:
        shape = _shape(endpoint, path)
        changes = bool(set(methods or ()) - {"GET", "HEAD"})
        found: dict[int, bool] = {400: shape.body, 401: shape.authed, 403: shape.authed and changes,
                                  404: shape.authed and ("{" in path or shape.names_row), 413: shape.body,
                                  422: True}  # 422 at least for an unknown query parameter
        documented = {int(k) if str(k).isdigit() else k: v for k, v in (responses or {}).items()}
        for status, applies in found.items():
            if applies or status in documented:
                documented[status] = {**problem(status), **documented.get(status, {})}
        dependencies = [*(kwargs.pop("dependencies", None) or []), RouteDepends(_known_query_only(shape.query))]
        super().__init__(path, endpoint, responses=documented, methods=methods, dependencies=dependencies, **kwargs)
