"""Which objects the agent judges this cycle, and by which baseline (docs/objects.md).

Discovery (sentinel/discovery.py, run in the check child) says what the host runs; the operator's `objects`
settings pin objects discovery does not find, give a kind another baseline (a site file), and disable kinds or
instances. A kind for which no baseline exists is reported once in the log, by name, and skipped: an object
is never left out silently.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from ..discovery import default_name
from ..model import ObjectRef
from .config import ObjectsSettings

log = logging.getLogger("sentinel.agent")


@dataclass(frozen=True)
class PlannedObject:
    target: ObjectRef
    baseline: Optional[str]  # baseline id or file; None: none exists for the kind at this level
    wanted: str  # what the baseline would be called (dengbao-l<level>-<kind>), for the log
    pinned: bool = False


def plan(found: dict[str, Any], settings: ObjectsSettings, hostname: str) -> list[PlannedObject]:
    """The objects to run: discovered ones (when discovery is on) and pinned ones, minus the disabled.

    `found` is the discovery child's output: {"level": N, "objects": [Discovered as JSON, ...]}."""
    level = found.get("level") or 3
    out: dict[tuple[str, str], PlannedObject] = {}
    if settings.discover:
        for d in found.get("objects") or []:
            target = ObjectRef.model_validate(d["object"])
            baseline = settings.baselines.get(target.kind) or d.get("baseline")
            out[(target.kind, target.instance)] = PlannedObject(target, baseline, d.get("wanted_baseline") or
                                                                f"dengbao-l{level}-{target.kind}")
    for pin in settings.pin:
        key = (pin.kind, pin.instance)
        seen = out.get(key)
        wanted = f"dengbao-l{level}-{pin.kind}"
        fields = {"kind": pin.kind, "instance": pin.instance, "port": pin.port, "config": pin.config,
                  "name": pin.name or (seen.target.name if seen else default_name(hostname, pin.kind, pin.instance))}
        if seen is not None:  # discovery knows more about it (version, config) than the pin says
            fields = {**seen.target.model_dump(), **{k: v for k, v in fields.items() if v is not None}}
        baseline = pin.baseline or settings.baselines.get(pin.kind) or (seen.baseline if seen else None)
        if baseline is None and found.get("shipped") and wanted in found["shipped"]:
            baseline = wanted
        out[key] = PlannedObject(ObjectRef.model_validate(fields), baseline, wanted, pinned=True)
    return [p for key, p in sorted(out.items()) if not settings.disabled(*key)]


class NoBaselineLog:
    """Says once per agent process, per kind and baseline, that an object has no baseline to run."""

    def __init__(self) -> None:
        self._said: set[tuple[str, str]] = set()

    def __call__(self, p: PlannedObject) -> None:
        key = (p.target.kind, p.wanted)
        if key in self._said:
            return
        self._said.add(key)
        log.warning("object %s (%s %s) found, but no baseline %s exists for it: it is not judged; ship or "
                    "configure one (objects.baselines.%s) or disable it (objects.disable)",
                    p.target.name or p.target.kind, p.target.kind, p.target.instance or "-", p.wanted,
                    p.target.kind)
