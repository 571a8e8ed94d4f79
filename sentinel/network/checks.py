"""The network checks as data: `baselines/network/checks.yaml`, each check with the catalogue item it counts for.

A check is what the scorer (sentinel/network/scoring.py) judges on a service finding; its results carry the item's
key, and the clause, letter, text and weight shown for them come from the catalogue at the level scored. The file
is validated once (schema, every `item` a catalogue key, ids unique) with `file:line` errors.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, ValidationError

from sentinel import baselines as _shipped
from sentinel import catalogue
from sentinel.model import Severity, Strict, Text
from sentinel.yamldoc import DataFileError, parse, validation_problems

CHECKS_FILE = Path(_shipped.__file__).resolve().parent / "network" / "checks.yaml"
_CASE = r"^\d+(\.\d+)+$"
_KEY = r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$"  # a catalogue key: ces.auth.identify


class NetRefs(Strict):
    """Where a network check comes from, as data (the clause and GB/T 28448 unit follow from `item`)."""

    # rows N1-N10 of the network-scan checks of the 测评作业指导书 notes (docs/network.md lists them)
    guide: list[Annotated[str, Field(pattern=r"^N\d+$")]] = Field(default_factory=list)
    high_risk: list[Annotated[str, Field(pattern=_CASE)]] = Field(default_factory=list)  # 高风险判定指引 cases
    rfc: list[Annotated[str, Field(pattern=r"^RFC \d+$")]] = Field(default_factory=list)
    cwe: list[Annotated[str, Field(pattern=r"^CWE-\d+$")]] = Field(default_factory=list)


class NetCheck(Strict):
    id: str = Field(pattern=r"^net-[a-z0-9-]+$")
    item: str = Field(pattern=_KEY)  # the catalogue key its results count for
    severity: Severity
    high_risk: Optional[str] = Field(default=None, pattern=_CASE)  # the case a failure is judged as
    title: Text
    rationale: Text
    remediation: Text
    refs: NetRefs = Field(default_factory=NetRefs)


class _ChecksFile(Strict):
    standard: Literal["GB/T 22239-2019"]
    kind: Literal["network-checks"]
    checks: list[NetCheck] = Field(min_length=1)


def load_checks(path: Path = CHECKS_FILE, cat: Optional[catalogue.Catalogue] = None) -> dict[str, NetCheck]:
    """The checks of `path` by id; DataFileError lists every problem as `file:line: ...`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError([f"{path}:1: cannot read: {exc}"]) from None
    doc = parse(str(path), text)
    try:
        data = _ChecksFile.model_validate(doc.data)
    except ValidationError as exc:
        raise DataFileError(validation_problems(doc, exc)) from None
    cat = cat or catalogue.load()
    problems, out = [], {}
    for i, check in enumerate(data.checks):
        if check.id in out:
            problems.append(doc.error(("checks", i, "id"), f"{check.id}: defined twice"))
        if not cat.levels_of(check.item):
            problems.append(doc.error(("checks", i, "item"), f"{check.item}: no such item in the catalogue of "
                                                             f"{catalogue.STANDARD}"))
        out[check.id] = check
    if problems:
        raise DataFileError(problems)
    return out


@lru_cache(maxsize=1)
def shipped_checks() -> dict[str, NetCheck]:
    """The shipped network checks (read once per process)."""
    return load_checks()
