"""The state of a finding of the rectification trail (整改跟踪), one definition for every surface.

A host finding is one episode of a check failing on a host (sentinel/collector/drift.py): `open` until a
run shows it no longer failing, then closed with a resolution. Only a check that passes again is `fixed`;
one waived by a site baseline (`waived`) or made advisory (`advisory`) is closed but not fixed, so it
counts in neither the open nor the fixed figure (rectification progress = fixed / (open + fixed)).
The metrics (sentinel/store/snapshot.py), the API's findings and the evidence exports (as of the range end,
sentinel/evidence/collect.py) all count with `state`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Optional

FindingState = Literal["open", "fixed", "waived", "advisory"]
STATES: tuple[FindingState, ...] = ("open", "fixed", "waived", "advisory")


def state(resolved_at: Optional[Any], resolution: Optional[str]) -> FindingState:
    """A finding's state from its `resolved_at` (None: open) and its `resolution`."""
    if resolved_at is None:
        return "open"
    if resolution in ("waived", "advisory"):
        return resolution  # type: ignore[return-value]  # narrowed by the test above
    if resolution not in (None, "fixed"):
        raise ValueError(f"unknown finding resolution {resolution!r}")
    return "fixed"  # resolved rows stored before resolutions were recorded were fixes


def counts(rows: Iterable[tuple[Optional[Any], Optional[str], int]]) -> dict[FindingState, int]:
    """Findings by state, every state present: `rows` are (resolved_at, resolution, how many). The one tally
    behind sentinel_system_findings (the snapshot's grouped rows) and the evidence covers' and rectification
    report's 已整改/未整改 figures (one row per finding of the record), so they cannot count apart."""
    out: dict[FindingState, int] = dict.fromkeys(STATES, 0)
    for resolved_at, resolution, n in rows:
        out[state(resolved_at, resolution)] += n
    return out


__all__ = ["STATES", "FindingState", "counts", "state"]
