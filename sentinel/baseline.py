"""Load, validate and resolve host baselines (YAML data) into `Baseline` models, on the catalogue of the standard.

A baseline file names catalogue items by key (`ref: ces.auth.identify`) and carries only their checks and notes;
it says which part of GB/T 22239-2019 it covers (`covers: [ces]`) and at which level. Resolving takes every
catalogue item of that scope at that level (sentinel/catalogue.py) with its clause, letter, text, weight and control
point name, so no item is ever missing (one without checks is manual, 待核查) and no file writes a number of the
standard. `extends:` (a level, a site file) works on keys too, before resolution at the extending file's level:
inherited items that level lacks drop out. Docs: docs/baselines.md.

Errors name the file and line: `baselines/x.yaml:42: items[0].checks[1].severity: Input should be 'low', ...`.
Lines come from the YAML node tree, so every pydantic error location maps back to the nearest line in the source.
"""
from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import ValidationError

from . import baselines as _shipped_baselines
from .catalogue import Catalogue
from .catalogue import load as load_catalogue
from .model import Baseline, BaselineFile, CheckSpec, ControlSpec, ItemSpec
from .yamldoc import DataFileError, Doc, Loc, fmt_loc, parse, validation_problems

BASELINE_DIR = Path(_shipped_baselines.__file__).resolve().parent  # installed as sentinel.baselines (setup.cfg)
_EXTEND_KEYS = {"extends", "id", "version", "title", "standard", "level", "os_families", "kind", "object", "covers",
                "move", "remove", "items", "add_checks", "override", "required", "waive"}
# Keys of the format before the catalogue, refused with what replaces them.
_RETIRED = {
    "renumber": "clause numbers come from the catalogue for the baseline's level: set `level:` instead",
    "controls": "control points and items come from the catalogue: name an item by key under `items:` "
                "(`- ref: ces.auth.identify`), and widen `covers:` for a part the parent does not cover",
}
_CLAUSE_REF = re.compile(r"^(\d+(?:\.\d+)+)\.([a-z])$")  # "8.1.4.1.a": an item as files before keys named it


# A baseline's problems are `file:line: message` lines; the same error type as the catalogue's (both are YAML
# data files read by sentinel/yamldoc.py), so a caller catches one exception for a baseline and what it refers to.
BaselineError = DataFileError


_KIND = re.compile(r"^kind:\s*['\"]?(\w+)", re.M)


def shipped(kind: str = "host") -> dict[str, Path]:
    """Baselines of one kind shipped with sentinel (baselines/*.yaml, by file stem).

    Host baselines are the default kind; zone baselines (network scans) say `kind: zone` at the top level.
    """
    out = {}
    for path in sorted(BASELINE_DIR.glob("*.yaml")):
        found = _KIND.search(path.read_text(encoding="utf-8"))
        if (found.group(1) if found else "host") == kind:
            out[path.stem] = path
    return out


def resolve_ref(ref: str, relative_to: Optional[Path] = None) -> Path:
    if ref.endswith((".yaml", ".yml")) or os.sep in ref or (relative_to is None and Path(ref).is_file()):
        p = Path(ref)
        if not p.is_absolute() and relative_to is not None:
            p = relative_to.parent / p
        if not p.exists():
            raise BaselineError([f"{ref}: no such baseline file"])
        return p
    found = shipped().get(ref)
    if found is None:
        known = ", ".join(shipped()) or "none"
        raise BaselineError([f"{ref}: unknown baseline id (shipped: {known})"])
    return found


@dataclass
class _Source:
    """A baseline before resolution: its identity, scope and, by catalogue key, the checks and notes it gives."""

    header: dict[str, Any]  # id, version, title, standard, level, kind, os_families (JSON values)
    covers: list[str]
    items: dict[str, dict[str, Any]]  # key -> {"checks": [check as JSON], "notes": {zh, en} | None}
    lineage: list[str] = field(default_factory=list)

    @property
    def level(self) -> int:
        return int(self.header["level"])

    def checks(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, item in self.items.items():
            for check in item["checks"]:
                yield key, check


def load_baseline(ref: Union[str, Path], _chain: tuple = ()) -> Baseline:
    """Load a baseline by shipped id or file path, resolving `extends` and the catalogue, validating everything."""
    path = resolve_ref(str(ref)) if not isinstance(ref, Path) else ref
    doc, source = _load_source(path, _chain)
    baseline = _resolve(doc, source, load_catalogue())
    baseline.source = str(path)
    problems = _semantic_problems(baseline, doc)
    if problems:
        raise BaselineError(problems)
    return baseline


def _load_source(path: Path, chain: tuple) -> tuple[Doc, _Source]:
    if not path.exists():
        raise BaselineError([f"{path}: no such baseline file"])
    real = path.resolve()
    if real in chain:
        raise BaselineError([f"{path}:1: extends loop: " + " -> ".join(str(p) for p in chain + (real,))])
    display = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError([f"{display}:1: cannot read: {exc}"]) from None
    doc = parse(display, text)
    if not isinstance(doc.data, dict):
        raise BaselineError([doc.error((), "a baseline must be a mapping")])
    if "extends" in doc.data:
        return doc, _extend(doc, path, chain + (real,))
    return doc, _base(doc)


def _display(path: Path) -> str:
    """The path as the user would recognise it: relative when under the working directory."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


# ---- the catalogue side: scope and item references ---------------------------------------------------------


def _scope(catalogue: Catalogue, covers: list[str], level: int, doc: Doc, loc: Loc) -> tuple[set[str], list[str]]:
    """The item keys `covers` names at `level`, and the problems with its entries."""
    keys: set[str] = set()
    problems: list[str] = []
    for i, entry in enumerate(covers):
        part, _, cls = entry.rpartition(".") if entry.startswith("cloud.") and entry.count(".") == 1 else ("", "", "")
        if re.fullmatch(r"[a-z]{3}", entry) or (part == "cloud" and re.fullmatch(r"[a-z]{3}", cls)):
            found = catalogue.items(level, "cloud" if part else "general", cls or entry)
            if not found:
                problems.append(doc.error(loc + (i,),
                                          f"{entry}: the catalogue has no class {entry!r} at level {level}"))
            keys.update(it.key for it in found)
            continue
        if catalogue.has(entry, level):  # one item (a baseline for a narrow object, a test)
            keys.add(entry)
            continue
        try:
            keys.update(it.key for it in catalogue.control(entry, level).items)
        except KeyError as exc:
            message = exc.args[0]
            try:  # an item key of other levels: say so rather than "no such control point"
                catalogue.item(entry, level)
            except KeyError as item_exc:
                if "no such item in" not in item_exc.args[0]:
                    message = item_exc.args[0]
            problems.append(doc.error(loc + (i,), f"{message} (covers names a class such as ces or cloud.ces, "
                                                  "a control point such as ces.auth, or an item)"))
    return keys, problems


def _item_key(catalogue: Catalogue, ref: str, level: int, scope: set[str], doc: Doc, loc: Loc,
              clause_form: bool) -> str:
    """The catalogue key an item reference names at `level`: a key, or (site files) a clause form `8.1.4.1.a`."""
    m = _CLAUSE_REF.match(ref)
    if m and clause_form:
        try:
            key = catalogue.by_clause(m.group(1), m.group(2), level).key
        except KeyError as exc:
            raise BaselineError([doc.error(loc, f"{exc.args[0]} in the catalogue of the standard")]) from None
    else:
        try:
            key = catalogue.item(ref, level).key
        except KeyError as exc:
            raise BaselineError([doc.error(loc, exc.args[0])]) from None
    if key not in scope:
        raise BaselineError([doc.error(loc, f"{ref}: outside what the baseline covers; add its class or control "
                                            "point to `covers:`")])
    return key


# ---- a file without extends --------------------------------------------------------------------------------


def _base(doc: Doc) -> _Source:
    try:
        bf = BaselineFile.model_validate(doc.data)
    except ValidationError as exc:
        raise BaselineError(validation_problems(doc, exc)) from None
    catalogue = load_catalogue()
    scope, problems = _scope(catalogue, bf.covers, bf.level, doc, ("covers",))
    items: dict[str, dict[str, Any]] = {}
    where: dict[str, int] = {}
    seen_checks: dict[str, str] = {}
    for i, it in enumerate(bf.items):
        loc: Loc = ("items", i, "ref")
        try:
            key = _item_key(catalogue, it.ref, bf.level, scope, doc, loc, clause_form=False)
        except BaselineError as exc:
            problems.extend(exc.problems)
            continue
        if key in items:
            problems.append(doc.error(loc, f"{key}: listed twice (also items[{where[key]}])"))
            continue
        where[key] = i
        for k, check in enumerate(it.checks):
            if check.id in seen_checks:
                problems.append(doc.error(("items", i, "checks", k, "id"),
                                          f"duplicate check id {check.id!r} (first used in {seen_checks[check.id]})"))
            seen_checks[check.id] = key
        items[key] = {"checks": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in it.checks],
                      "notes": it.notes.model_dump(mode="json") if it.notes else None}
    if problems:
        raise BaselineError(problems)
    header = bf.model_dump(mode="json", include={"id", "version", "title", "standard", "level", "kind",
                                                 "object", "os_families"})
    return _Source(header=header, covers=list(bf.covers), items=items)


# ---- resolution --------------------------------------------------------------------------------------------


def _resolve(doc: Doc, source: _Source, catalogue: Catalogue) -> Baseline:
    """Every catalogue item of the source's scope at its level, in the standard's order, with the source's checks.
    Items the level lacks (inherited from another level) drop out with their checks."""
    scope, problems = _scope(catalogue, source.covers, source.level, doc, ("covers",))
    if problems:
        raise BaselineError(problems)
    controls = []
    for cp in catalogue.controls(source.level):
        items = []
        for it in cp.items:
            if it.key not in scope:
                continue
            given = source.items.get(it.key, {})
            items.append({"key": it.key, "item": it.letter, "text": it.text.model_dump(mode="json"),
                          "weight": it.weight, "unit": it.unit, "notes": given.get("notes"),
                          "checks": given.get("checks", [])})
        if items:
            controls.append({"key": cp.key, "clause": cp.clause, "name": cp.name.model_dump(mode="json"),
                             "items": items})
    tree = {**source.header, "covers": source.covers, "lineage": source.lineage, "controls": controls}
    try:
        return Baseline.model_validate(tree)
    except ValidationError as exc:
        # Point at this file: at the check or item it wrote or changed, else its first line.
        raise BaselineError([_tree_error(doc, tree, err) for err in exc.errors()]) from None


def _tree_error(doc: Doc, tree: dict, err: Any) -> str:
    loc = tuple(err["loc"])
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    check = _get(tree, loc[:6]) if len(loc) >= 6 and loc[0] == "controls" and loc[4] == "checks" else None
    target = _locate_check(doc, check.get("id", "")) if isinstance(check, dict) else None
    if target is not None:  # where this file writes the check, then the field inside it
        return doc.error(target + loc[6:], msg)
    return f"{doc.path}:{doc.line(())}: {fmt_loc(loc)}: {msg}"


def _semantic_problems(baseline: Baseline, doc: Doc) -> list[str]:
    """What a schema cannot say: unique check ids, probe kinds and their params, families. A check is located by
    its id in this file (its own document or an extending one), else at the file's first line."""
    from .probe import registry

    probes = registry()
    problems: list[str] = []
    seen_checks: dict[str, str] = {}
    for _, item, check in baseline.iter_checks():
        def cloc(check_id: str = check.id) -> Loc:  # located only for an error: finding lines means parsing again
            return _locate_check(doc, check_id) or ()

        if check.id in seen_checks:
            problems.append(doc.error(cloc(), f"duplicate check id {check.id!r} "
                                              f"(first used in {seen_checks[check.id]})"))
            continue
        seen_checks[check.id] = item.key
        pdef = probes.get(check.probe)
        if pdef is None:
            problems.append(doc.error(cloc() + ("probe",), f"unknown probe kind {check.probe!r} "
                                                         f"(known: {', '.join(sorted(probes))})"))
            continue
        try:
            pdef.params.model_validate(check.params)
        except ValidationError as exc:
            problems.extend(validation_problems(doc, exc, cloc() + ("params",)))
        for fam in check.os_families or []:
            if fam not in baseline.os_families:
                problems.append(doc.error(cloc() + ("os_families",),
                                          f"{fam!r} is not among the baseline's os_families"))
    return problems


def _locate_check(doc: Doc, check_id: str) -> Optional[Loc]:
    """Find where a check id is written in this file (its own document or an extending one)."""
    for loc in doc.lines:
        if loc and loc[-1] == "id" and _get(doc.data, loc) == check_id:
            return loc[:-1]
        if len(loc) == 2 and loc[0] in ("override", "waive") and loc[1] == check_id:
            return loc
    return None


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# ---- extends -----------------------------------------------------------------------------------------------


def _extend(doc: Doc, path: Path, chain: tuple) -> _Source:
    data = doc.data
    problems = [doc.error((key,), _RETIRED.get(key, "unknown key")) for key in data if key not in _EXTEND_KEYS]
    for needed in ("id", "version"):
        if needed not in data:
            problems.append(doc.error((), f"missing required key {needed!r}"))
    if problems:
        raise BaselineError(problems)
    _, parent = _load_source(resolve_ref(str(data["extends"]), path), chain)
    source = _Source(header=copy.deepcopy(parent.header), covers=list(parent.covers),
                     items=copy.deepcopy(parent.items), lineage=[parent.header["id"]] + parent.lineage)
    for key in ("id", "version", "title", "standard", "level", "os_families", "kind", "object"):
        if key in data:
            source.header[key] = data[key]
    if source.header["level"] not in (2, 3, 4):
        raise BaselineError([doc.error(("level",), f"{source.header['level']!r}: the catalogue has levels 2, 3 and 4")])
    level = source.level
    covers = data.get("covers") or []
    if not isinstance(covers, list) or not all(isinstance(c, str) for c in covers):
        raise BaselineError([doc.error(("covers",), "must be a list of catalogue keys (ces, cloud.ces, ces.auth)")])
    source.covers += [c for c in covers if c not in source.covers]  # widens the parent's scope, never narrows it
    catalogue = load_catalogue()
    scope, problems = _scope(catalogue, source.covers, level, doc, ("covers",))
    if problems:
        raise BaselineError(problems)
    parent_id = parent.header["id"]

    def item_at(ref: Any, loc: Loc) -> dict[str, Any]:
        key = _item_key(catalogue, str(ref), level, scope, doc, loc, clause_form=True)
        return source.items.setdefault(key, {"checks": [], "notes": None})

    def find_check(check_id: str, loc: Loc) -> dict[str, Any]:
        for _, check in source.checks():
            if check["id"] == check_id:
                return check
        raise BaselineError([doc.error(loc, f"no check {check_id!r} in {parent_id}")])

    def mapping(name: str, what: str) -> dict:
        value = data.get(name) or {}
        if not isinstance(value, dict):
            raise BaselineError([doc.error((name,), f"must be a mapping of {what}")])
        return value

    # `move` first: a check keeps its place in this level when the item it sits under in the parent is one this
    # level lacks (level 2 keeps the SSH cipher checks of 数据保密性 under 身份鉴别 c).
    for check_id, target in mapping("move", "check id to item key").items():
        taken = find_check(str(check_id), ("move", check_id))
        for item in source.items.values():
            item["checks"] = [c for c in item["checks"] if c is not taken]
        item_at(target, ("move", check_id))["checks"].append(taken)

    removals = data.get("remove") or []
    if not isinstance(removals, list):
        raise BaselineError([doc.error(("remove",), "must be a list of check ids")])
    for i, check_id in enumerate(removals):
        check_id = str(check_id)
        if _CLAUSE_REF.match(check_id) or catalogue.levels_of(check_id):
            raise BaselineError([doc.error(("remove", i), f"{check_id}: an item cannot be removed: every item of "
                                                          "`covers:` is in the baseline (one without checks is "
                                                          "manual)")])
        find_check(check_id, ("remove", i))
        for item in source.items.values():
            item["checks"] = [c for c in item["checks"] if c["id"] != check_id]

    entries = data.get("items") or []
    if not isinstance(entries, list):
        raise BaselineError([doc.error(("items",), "must be a list of {ref, checks, notes} (text and weight come "
                                                   "from the catalogue)")])
    for i, entry in enumerate(entries):
        loc: Loc = ("items", i)
        if not isinstance(entry, dict) or "ref" not in entry or set(entry) - {"ref", "checks", "notes"}:
            raise BaselineError([doc.error(loc, "an item gives ref, and checks and/or notes (text and weight come "
                                                "from the catalogue)")])
        item = item_at(entry["ref"], loc + ("ref",))
        if not isinstance(entry.get("checks", []), list):
            raise BaselineError([doc.error(loc + ("checks",), "must be a list of checks")])
        item["checks"].extend(entry.get("checks", []))
        if "notes" in entry:
            item["notes"] = entry["notes"]

    for ref, checks in mapping("add_checks", "item key to a list of checks").items():
        if not isinstance(checks, list):
            raise BaselineError([doc.error(("add_checks", ref), "must be a list of checks")])
        item_at(ref, ("add_checks", ref))["checks"].extend(checks)

    for check_id, patch in mapping("override", "check id to check fields").items():
        check = find_check(str(check_id), ("override", check_id))
        if not isinstance(patch, dict):
            raise BaselineError([doc.error(("override", check_id), "must be a mapping of check fields")])
        if "id" in patch:
            raise BaselineError([doc.error(("override", check_id, "id"), "a check id cannot be overridden")])
        for name, given in patch.items():
            if name == "params" and isinstance(given, dict):
                check["params"] = {**check.get("params", {}), **given}
            else:
                check[name] = given

    required = data.get("required") or []
    if not isinstance(required, list):
        raise BaselineError([doc.error(("required",), "must be a list of advisory check ids")])
    for i, check_id in enumerate(required):
        check = find_check(str(check_id), ("required", i))
        if not check.get("advisory"):
            raise BaselineError([doc.error(("required", i), f"check {check_id!r} is not advisory in {parent_id}; "
                                                            "only an advisory check can be made required")])
        check.pop("advisory")  # counted again in verdicts, scores and the exit code

    for check_id, reason in mapping("waive", "check id to the reason").items():
        check = find_check(str(check_id), ("waive", check_id))
        if not isinstance(reason, str) or not reason.strip():
            raise BaselineError([doc.error(("waive", check_id), "a waiver needs a reason (non-empty text)")])
        check["waiver"] = reason.strip()
    return source


def item_index(baseline: Baseline) -> dict[tuple[str, str], tuple[ControlSpec, ItemSpec]]:
    """(clause, letter) -> the control point and item, as reports name items."""
    return {(c.clause, i.item): (c, i) for c in baseline.controls for i in c.items}


def key_index(baseline: Baseline) -> dict[str, tuple[ControlSpec, ItemSpec]]:
    """catalogue key -> the control point and item."""
    return {i.key: (c, i) for c in baseline.controls for i in c.items}


def all_checks(baseline: Baseline) -> list[CheckSpec]:
    return [check for _, _, check in baseline.iter_checks()]
