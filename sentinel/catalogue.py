"""The catalogue of GB/T 22239-2019: every control point and requirement item, per level, as data.

`baselines/catalogue/*.yaml` (docs/catalogue.md) list the standard's classes, control points and items once, each
item under a level-independent key (`ces.auth.identify`) with the levels that have it, the standard's wording,
sentinel's English and a weight, and per-level differences under `at:`. Nothing else in sentinel writes a clause
number: baselines, network checks and reports name items by key, and the number shown for a system comes from here
for the system's level.

Numbers are derived from order, as the standard numbers them: section = level + 5 (§7 二级, §8 三级, §9 四级);
part 1 安全通用要求, part 2 云计算安全扩展要求; a class's number is its rank among its part's classes present at that
level, a control point's its rank among its class's, an item's letter its rank among its control point's. So level 2
(no 数据保密性) numbers 数据备份恢复 7.1.4.8, where level 3 has 8.1.4.9. GB/T 28448 unit ids (L3-CES1-01) follow
the same ranks within a class.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from . import baselines as _shipped
from .model import Text
from .yamldoc import DataFileError, Doc, Loc, parse, validation_problems

CATALOGUE_DIR = Path(_shipped.__file__).resolve().parent / "catalogue"
STANDARD = "GB/T 22239-2019"
LEVELS = (2, 3, 4)
PARTS = {"general": 1, "cloud": 2}  # the part's number inside a level's section (8.1 / 8.2)

CatalogueError = DataFileError

_KEY = r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$"
Level = Literal[2, 3, 4]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _weight(value: float) -> float:
    if value not in WEIGHTS:
        raise ValueError(f"a weight is one of {', '.join(map(str, WEIGHTS))} (关键, 重要, 一般), not {value}")
    return value


WEIGHTS = (1.0, 0.7, 0.4)  # 关键, 重要, 一般: the weights a 测评记录 gives
Weight = Annotated[float, AfterValidator(_weight)]


class _ItemAt(_Strict):
    zh: Optional[str] = None
    en: Optional[str] = None
    weight: Optional[Weight] = None
    high_risk: Optional[list[str]] = None  # a level's own cases ([] where a case applies only from another level)


class _ItemDoc(_Strict):
    key: str = Field(pattern=_KEY)
    levels: list[Level] = Field(min_length=1)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    weight: Weight
    weight_basis: Literal["record", "rule"]
    high_risk: list[str] = Field(default_factory=list)
    at: dict[Level, _ItemAt] = Field(default_factory=dict)


class _ControlAt(_Strict):
    name: Text


class _ControlDoc(_Strict):
    key: str = Field(pattern=_KEY)
    name: Text
    at: dict[Level, _ControlAt] = Field(default_factory=dict)
    items: list[_ItemDoc] = Field(min_length=1)


class _ClassDoc(_Strict):
    key: str = Field(pattern=r"^[a-z]{3}$")
    code: str = Field(pattern=r"^[A-Z]{3}$")
    order: int = Field(ge=1, le=10)
    name: Text
    control_points: list[_ControlDoc] = Field(min_length=1)


class _FileDoc(_Strict):
    standard: Literal["GB/T 22239-2019"]
    part: Literal["general", "cloud"]
    classes: list[_ClassDoc] = Field(min_length=1)


@dataclass(frozen=True)
class Item:
    """One requirement item as one level has it."""

    key: str
    level: int
    part: str  # general | cloud
    class_key: str
    class_name: Text
    control_key: str
    control_name: Text
    clause: str  # the control point's number at this level, e.g. "8.1.4.1"
    letter: str  # "a", "b", ...
    text: Text
    weight: float
    weight_basis: str
    high_risk: tuple[str, ...]
    unit: str  # GB/T 28448 test unit id, e.g. "L3-CES1-01"

    @property
    def ref(self) -> str:
        """`8.1.4.1.a`: the clause and the letter, as reports cite an item."""
        return f"{self.clause}.{self.letter}"


@dataclass(frozen=True)
class ControlPoint:
    key: str
    level: int
    part: str
    class_key: str
    class_name: Text
    clause: str
    name: Text
    items: tuple[Item, ...]


class Catalogue:
    """The whole standard, resolved per level. Build with `load()` (cached); lookups raise `KeyError` with words."""

    def __init__(self, files: list[tuple[Doc, _FileDoc]]):
        self._levels: dict[str, tuple[int, ...]] = {}  # item key -> levels
        self._items: dict[tuple[str, int], Item] = {}
        self._controls: dict[tuple[str, int], ControlPoint] = {}
        self._by_clause: dict[tuple[str, str, int], Item] = {}
        self._order: dict[int, list[ControlPoint]] = {lv: [] for lv in LEVELS}
        self._build(files)

    # ---- lookups -------------------------------------------------------------------------------------------

    def item(self, key: str, level: int) -> Item:
        found = self._items.get((key, level))
        if found is None:
            levels = self._levels.get(key)
            if levels is None:
                raise KeyError(f"{key}: no such item in the catalogue of {STANDARD}")
            raise KeyError(f"{key}: level {level} has no such item (it is in level {', '.join(map(str, levels))})")
        return found

    def has(self, key: str, level: int) -> bool:
        return (key, level) in self._items

    def levels_of(self, key: str) -> tuple[int, ...]:
        """The levels that have an item (or control point: the levels of any of its items); () when unknown."""
        if key in self._levels:
            return self._levels[key]
        return tuple(lv for lv in LEVELS if (key, lv) in self._controls)

    def control(self, key: str, level: int) -> ControlPoint:
        found = self._controls.get((key, level))
        if found is None:
            raise KeyError(f"{key}: level {level} has no such control point" if self.levels_of(key)
                           else f"{key}: no such control point in the catalogue of {STANDARD}")
        return found

    def by_clause(self, clause: str, letter: str, level: int) -> Item:
        """The item a level numbers `clause` `letter` (8.1.4.1, a): for reading data written before keys."""
        found = self._by_clause.get((clause, letter, level))
        if found is None:
            raise KeyError(f"{clause}.{letter}: no such item at level {level}")
        return found

    def controls(self, level: int, part: Optional[str] = None, class_key: Optional[str] = None
                 ) -> list[ControlPoint]:
        return [c for c in self._order[level]
                if (part is None or c.part == part) and (class_key is None or c.class_key == class_key)]

    def items(self, level: int, part: Optional[str] = None, class_key: Optional[str] = None) -> list[Item]:
        return [i for c in self.controls(level, part, class_key) for i in c.items]

    def count(self, level: int, part: Optional[str] = None, class_key: Optional[str] = None) -> int:
        return len(self.items(level, part, class_key))

    # ---- building ------------------------------------------------------------------------------------------

    def _build(self, files: list[tuple[Doc, _FileDoc]]) -> None:
        problems: list[str] = []
        # key -> where first defined; its line is looked up only for a duplicate (mapping lines parses the file
        # again with marks, which every run would pay for)
        seen: dict[str, tuple[Doc, Loc]] = {}

        def claim(doc: Doc, loc: Loc, key: str) -> None:
            if key in seen:
                first_doc, first_loc = seen[key]
                problems.append(doc.error(loc, f"{key}: key defined twice (first at {first_doc.where(first_loc)})"))
            else:
                seen[key] = (doc, loc)

        by_part: dict[str, list[tuple[Doc, int, _ClassDoc]]] = {p: [] for p in PARTS}
        for doc, fd in files:
            for ci, cls in enumerate(fd.classes):
                by_part[fd.part].append((doc, ci, cls))
        for part, classes in by_part.items():
            orders: dict[int, str] = {}  # class order -> class key
            for doc, ci, cls in classes:
                if cls.order in orders:
                    problems.append(doc.error(("classes", ci, "order"),
                                              f"order {cls.order} is also {orders[cls.order]}'s in part {part}"))
                orders[cls.order] = cls.key
                prefix = cls.key + "." if part == "general" else f"cloud.{cls.key}."
                for pi, cp in enumerate(cls.control_points):
                    ploc = ("classes", ci, "control_points", pi)
                    claim(doc, ploc, cp.key)
                    if not cp.key.startswith(prefix):
                        problems.append(doc.error(ploc + ("key",), f"{cp.key}: must start with {prefix!r}"))
                    for lv in cp.at:
                        if not any(lv in it.levels for it in cp.items):
                            problems.append(doc.error(ploc + ("at", lv), f"level {lv} has no item of {cp.key}"))
                    for ii, it in enumerate(cp.items):
                        iloc = ploc + ("items", ii)
                        claim(doc, iloc, it.key)
                        if not it.key.startswith(cp.key + "."):
                            problems.append(doc.error(iloc + ("key",), f"{it.key}: must start with {cp.key + '.'!r}"))
                        if len(set(it.levels)) != len(it.levels):
                            problems.append(doc.error(iloc + ("levels",), "a level is listed twice"))
                        for lv in it.at:
                            if lv not in it.levels:
                                problems.append(doc.error(iloc + ("at", lv),
                                                          f"level {lv} is not in levels {it.levels}"))
                        self._levels[it.key] = tuple(sorted(it.levels))
        if problems:
            raise CatalogueError(problems)
        for part, classes in by_part.items():
            self._number(part, sorted((cls for _, _, cls in classes), key=lambda c: c.order))

    def _number(self, part: str, classes: list[_ClassDoc]) -> None:
        for level in LEVELS:
            present = [c for c in classes if any(level in it.levels for cp in c.control_points for it in cp.items)]
            for ci, cls in enumerate(present, start=1):
                class_no = f"{level + 5}.{PARTS[part]}.{ci}"
                unit = 0
                cps = [cp for cp in cls.control_points if any(level in it.levels for it in cp.items)]
                for pi, cp in enumerate(cps, start=1):
                    clause = f"{class_no}.{pi}"
                    cp_name = cp.at[level].name if level in cp.at else cp.name
                    items = []
                    # letters a, b, c ... for the level's items (26 letters: more than any control point has)
                    level_items = [i for i in cp.items if level in i.levels]
                    for letter, it in zip(string.ascii_lowercase, level_items, strict=False):
                        unit += 1
                        diff = it.at.get(level)  # type: ignore[call-overload]
                        text = Text(zh=(diff and diff.zh) or it.zh, en=(diff and diff.en) or it.en)
                        item = Item(key=it.key, level=level, part=part, class_key=cls.key, class_name=cls.name,
                                    control_key=cp.key, control_name=cp_name, clause=clause, letter=letter,
                                    text=text, weight=(diff and diff.weight) or it.weight,
                                    weight_basis=it.weight_basis,
                                    high_risk=tuple(it.high_risk if diff is None or diff.high_risk is None
                                                    else diff.high_risk),
                                    unit=f"L{level}-{cls.code}{PARTS[part]}-{unit:02d}")
                        items.append(item)
                        self._items[(it.key, level)] = item
                        self._by_clause[(clause, letter, level)] = item
                    control = ControlPoint(key=cp.key, level=level, part=part, class_key=cls.key,
                                           class_name=cls.name, clause=clause, name=cp_name, items=tuple(items))
                    self._controls[(cp.key, level)] = control
                    self._order[level].append(control)


def _read(path: Path) -> tuple[Doc, _FileDoc]:
    doc = parse(str(path), path.read_text(encoding="utf-8"))
    try:
        return doc, _FileDoc.model_validate(doc.data)
    except ValidationError as exc:
        raise CatalogueError(validation_problems(doc, exc)) from None


def load_from(directory: Path) -> Catalogue:
    """The catalogue in `directory` (every *.yaml in it); `CatalogueError` lists every problem as file:line."""
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise CatalogueError([f"{directory}: no catalogue files (*.yaml)"])
    return Catalogue([_read(p) for p in paths])


@lru_cache(maxsize=1)
def load() -> Catalogue:
    """The catalogue shipped with sentinel (read once per process)."""
    return load_from(CATALOGUE_DIR)
