"""Probe registry: the contract between baselines (data) and checks/ (code).

A probe is a pure function `(ctx, params) -> Observation` registered under a kind name such as
`config.value`. Baselines name the kind and give parameters; the loader validates those parameters
against the probe's pydantic model, so a typo is a load error with a line number, not a silent pass.
Probes read the host only through `ctx.host`; they raise `ProbeError` when the fact cannot be
determined and `NotApplicable` when it does not exist on this host view.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar, cast

from pydantic import BaseModel

# NotApplicable and ProbeError are part of this module's contract (docs/probes.md): re-exported
from .hostview import HostView, LiveOnly, NotApplicable, ProbeError
from .model import Evidence, ObjectRef, Observation, utcnow

EXCERPT_LIMIT = 2000
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Observation])  # a probe function: (ctx, params) -> Observation
__all__ = ["EXCERPT_LIMIT", "LiveOnly", "NotApplicable", "ProbeContext", "ProbeDef", "ProbeError", "evidence", "probe",
           "registry"]


@dataclass
class ProbeContext:
    host: HostView
    family: Optional[str]
    os_release: dict[str, str]
    # the 测评对象 being judged: object probes read their instance from it (its port, its config file), so one
    # baseline judges each of two MariaDB instances on a host (the OS baselines ignore it)
    target: ObjectRef = field(default_factory=ObjectRef)
    memo: dict[Hashable, Any] = field(default_factory=dict)  # per-run cache shared by probes (passwd, PAM...)

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key not in self.memo:
            try:
                self.memo[key] = compute()
            except (ProbeError, NotApplicable) as exc:
                self.memo[key] = exc
        value = self.memo[key]
        if isinstance(value, (ProbeError, NotApplicable)):
            raise value
        return cast(T, value)  # what compute() returned under this key (the memo holds many types)


@dataclass(frozen=True)
class ProbeDef:
    kind: str
    params: type[BaseModel]
    func: Callable[[ProbeContext, BaseModel], Observation]
    live_only: bool
    doc: str


_REGISTRY: dict[str, ProbeDef] = {}
_LOADED = False


def probe(kind: str, params: type[BaseModel], live_only: bool = False) -> Callable[[F], F]:
    """Register a probe function under `kind`."""

    def wrap(func: F) -> F:
        if kind in _REGISTRY:
            raise RuntimeError(f"probe kind {kind!r} registered twice")
        _REGISTRY[kind] = ProbeDef(kind, params, func, live_only, (func.__doc__ or "").strip())
        return func

    return wrap


def registry() -> dict[str, ProbeDef]:
    """All probe kinds; imports the `checks` package (and its modules) on first use."""
    global _LOADED
    if not _LOADED:
        importlib.import_module("sentinel.checks")
        _LOADED = True
    return _REGISTRY


def evidence(source: str, excerpt: Optional[str] = None, line: Optional[int] = None) -> Evidence:
    if excerpt is not None and len(excerpt) > EXCERPT_LIMIT:
        excerpt = excerpt[:EXCERPT_LIMIT] + f"\n... ({len(excerpt) - EXCERPT_LIMIT} more characters)"
    return Evidence(source=source, excerpt=excerpt, line=line, at=utcnow())
