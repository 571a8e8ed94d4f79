"""Item and check results numbered as one level of the standard numbers them, by catalogue key.

A system's roll-up is over reports of several kinds (host reports, network scans) made at some level each; the
system has one level, and its roll-up shows that level's clauses. `at_level` renumbers results that carry a
catalogue key to the level's clause, letter, text and weight, and takes out those whose key the level does not
have (returned in `outside`, so callers say what happened to them). Results without a key (written before keys)
keep their numbers, unless `legacy_level` says at which level they were numbered: then their key is read back
from the catalogue (network scans stored before keys were numbered at level 3), and they are renumbered from the
catalogue when the level differs (at the same level they stay as stored, with their key).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, TypeVar

from pydantic import BaseModel

from . import catalogue
from .model import ItemResult


class _Result(Protocol):
    """What `at_level` reads of a check result (CheckResult, or the store's ScoredResult)."""

    check_id: str
    clause: str
    item: str
    key: Optional[str]

    def model_copy(self, *, update: Optional[dict[str, Any]] = None, deep: bool = False) -> Any: ...


R = TypeVar("R", bound=_Result)


class OutsideLevel(BaseModel):
    """Results of one requirement the level does not have: left out of the level's roll-up."""

    key: str
    levels: list[int]  # the levels that have it
    clause: str  # as the report numbered it
    item: str
    source: str  # which report: "host web-1", "network scan 12"
    checks: list[str]


@dataclass
class Leveled:
    items: list[ItemResult] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # of the type given
    outside: list[OutsideLevel] = field(default_factory=list)


def _key(cat: catalogue.Catalogue, key: Optional[str], clause: str, letter: str,
         legacy_level: Optional[int]) -> Optional[str]:
    if key or legacy_level is None:
        return key
    try:
        return cat.by_clause(clause, letter, legacy_level).key
    except KeyError:
        return None


def at_level(items: Sequence[ItemResult], results: Sequence[R], level: int, source: str,
             legacy_level: Optional[int] = None, cat: Optional[catalogue.Catalogue] = None) -> Leveled:
    """`items` and `results` numbered at `level` (see the module docstring); unchanged objects are reused."""
    cat = cat or catalogue.load()
    out = Leveled()
    dropped: dict[str, OutsideLevel] = {}
    for it in items:
        key = _key(cat, it.key, it.clause, it.item, legacy_level)
        if key is None:
            out.items.append(it)
        elif it.key is None and level == legacy_level:  # numbered at this very level: as stored, with its key
            out.items.append(it.model_copy(update={"key": key}))
        elif cat.has(key, level):
            c = cat.item(key, level)
            same = (it.key, it.clause, it.item, it.weight) == (key, c.clause, c.letter, c.weight) and it.text == c.text
            out.items.append(it if same else it.model_copy(update={
                "key": key, "clause": c.clause, "item": c.letter, "control": c.control_name, "text": c.text,
                "weight": c.weight, "unit": c.unit}))
        else:
            dropped[key] = OutsideLevel(key=key, levels=list(cat.levels_of(key)), clause=it.clause, item=it.item,
                                        source=source, checks=list(it.checks))
    for r in results:
        key = _key(cat, r.key, r.clause, r.item, legacy_level)
        if key is None:
            out.results.append(r)
        elif r.key is None and level == legacy_level:
            out.results.append(r.model_copy(update={"key": key}))
        elif cat.has(key, level):
            c = cat.item(key, level)
            out.results.append(r if (r.key, r.clause, r.item) == (key, c.clause, c.letter) else
                               r.model_copy(update={"key": key, "clause": c.clause, "item": c.letter}))
        elif key not in dropped:
            dropped[key] = OutsideLevel(key=key, levels=list(cat.levels_of(key)), clause=r.clause, item=r.item,
                                        source=source, checks=[r.check_id])
    out.outside = list(dropped.values())
    return out
