"""Load, validate and resolve baselines (YAML data) into `Baseline` models.

Errors name the file and line: `baselines/x.yaml:42: controls[0].items[1].checks[0].severity: Input should be
'low', 'medium', 'high' or 'critical'`. Lines come from the YAML node tree, so every pydantic error location
maps back to the nearest line in the source. `extends:` is resolved here (see docs/baselines.md).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import ValidationError

from . import baselines as _shipped_baselines
from .yamldoc import DataFileError, Doc, Loc, fmt_loc, parse, validation_problems
from .model import Baseline, CheckSpec, ControlSpec, ItemSpec

BASELINE_DIR = Path(_shipped_baselines.__file__).resolve().parent  # installed as sentinel.baselines (setup.cfg)
_EXTEND_KEYS = {"extends", "id", "version", "title", "standard", "level", "os_families", "renumber", "remove",
                "items", "override", "waive", "controls", "add_checks", "kind", "move", "required"}


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


def load_baseline(ref: Union[str, Path], _chain: tuple = ()) -> Baseline:
    """Load a baseline by shipped id or file path, resolving `extends` and validating everything."""
    path = resolve_ref(str(ref)) if not isinstance(ref, Path) else ref
    if not path.exists():
        raise BaselineError([f"{path}: no such baseline file"])
    real = path.resolve()
    if real in _chain:
        raise BaselineError([f"{path}:1: extends loop: " + " -> ".join(str(p) for p in _chain + (real,))])
    display = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError([f"{display}:1: cannot read: {exc}"]) from None
    doc = parse(display, text)
    if "extends" in doc.data:
        baseline = _extend(doc, path, _chain + (real,))
    else:
        try:
            baseline = Baseline.model_validate(doc.data)
        except ValidationError as exc:
            raise BaselineError(validation_problems(doc, exc)) from None
    baseline.source = str(path)
    problems = _semantic_problems(baseline, doc, positional="extends" not in doc.data)
    if problems:
        raise BaselineError(problems)
    return baseline


def _display(path: Path) -> str:
    """The path as the user would recognise it: relative when under the working directory."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _semantic_problems(baseline: Baseline, doc: Doc, positional: bool) -> list[str]:
    """What a schema cannot say: unique ids and clauses, probe kinds and their params, families.

    `positional`: the model mirrors the document one to one (no extends), so list indices locate lines;
    otherwise a check is located by its id in the extending file, or the file's first line.
    """
    from .probe import registry

    probes = registry()
    problems: list[str] = []
    seen_checks: dict[str, str] = {}
    seen_items: set = set()
    for ci, control in enumerate(baseline.controls):
        for ii, item in enumerate(control.items):
            key = (control.clause, item.item)
            loc = ("controls", ci, "items", ii) if positional else ()
            if key in seen_items:
                problems.append(doc.error(loc, f"duplicate item {control.clause}.{item.item}"))
            seen_items.add(key)
            for ki, check in enumerate(item.checks):
                def cloc() -> Loc:  # located only for an error: finding lines means parsing again
                    return loc + ("checks", ki) if positional else (_locate_check(doc, check.id) or ())

                if check.id in seen_checks:
                    problems.append(doc.error(cloc(), f"duplicate check id {check.id!r} "
                                                    f"(first used in {seen_checks[check.id]})"))
                    continue
                seen_checks[check.id] = f"{control.clause}.{item.item}"
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


# ---- extends ---------------------------------------------------------------------------------------


def _extend(doc: Doc, path: Path, chain: tuple) -> Baseline:
    data = doc.data
    problems = [doc.error((key,), "unknown key") for key in data if key not in _EXTEND_KEYS]
    for required in ("id", "version"):
        if required not in data:
            problems.append(doc.error((), f"missing required key {required!r}"))
    if problems:
        raise BaselineError(problems)
    parent = load_baseline(resolve_ref(str(data["extends"]), path), chain)
    tree = parent.model_dump(mode="json", by_alias=True, exclude_none=True)
    tree.pop("source", None)
    tree["lineage"] = [parent.id] + parent.lineage
    for key in ("id", "version", "title", "standard", "level", "os_families", "kind"):
        if key in data:
            tree[key] = data[key]

    controls: list[dict] = tree["controls"]
    renumber = data.get("renumber") or {}
    if not isinstance(renumber, dict):
        raise BaselineError([doc.error(("renumber",), "must be a mapping of old clause prefix to new")])
    dropped = []
    for control in controls:
        for old in sorted(renumber, key=len, reverse=True):
            clause = control["clause"]
            if clause == old or clause.startswith(old + "."):
                if renumber[old] is None:  # `"8.1.4.8": null`: this level has no such control point
                    dropped.append(control)
                else:
                    control["clause"] = str(renumber[old]) + clause[len(old):]
                break
    # `move` takes checks out before dropped control points go, so a level can keep a check whose level-3
    # item it does not have (level 2 keeps the SSH cipher checks of 数据保密性 under 身份鉴别 c).
    move = data.get("move") or {}
    if not isinstance(move, dict):
        raise BaselineError([doc.error(("move",), "must be a mapping of check id to item (clause.item)")])
    moving: list[tuple[str, dict]] = []
    for check_id in move:
        taken = None
        for control in controls:
            for item in control["items"]:
                for check in item.get("checks", []):
                    if check["id"] == str(check_id):
                        taken = check
                        item["checks"] = [ch for ch in item["checks"] if ch is not check]
        if taken is None:
            raise BaselineError([doc.error(("move", check_id), f"no check {check_id!r} in {parent.id}")])
        moving.append((str(check_id), taken))
    controls = [c for c in controls if not any(c is d for d in dropped)]
    clauses = [c["clause"] for c in controls]
    clashes = sorted({c for c in clauses if clauses.count(c) > 1})
    if clashes:
        raise BaselineError([doc.error(("renumber",), f"renumbering makes two control points {', '.join(clashes)}; "
                                                      "map one elsewhere or to null to drop it")])

    def find_item(ref: str, loc: Loc) -> tuple[dict, dict]:
        clause, _, letter = ref.rpartition(".")
        for control in controls:
            if control["clause"] == clause:
                for item in control["items"]:
                    if item["item"] == letter:
                        return control, item
        raise BaselineError([doc.error(loc, f"no item {ref!r} in {parent.id} (after renumbering)")])

    def find_check(check_id: str, loc: Loc) -> dict:
        for control in controls:
            for item in control["items"]:
                for check in item.get("checks", []):
                    if check["id"] == check_id:
                        return check
        raise BaselineError([doc.error(loc, f"no check {check_id!r} in {parent.id}")])

    for i, ref in enumerate(data.get("remove") or []):
        ref = str(ref)
        loc = ("remove", i)
        if any(check["id"] == ref for c in controls for it in c["items"] for check in it.get("checks", [])):
            for c in controls:
                for it in c["items"]:
                    it["checks"] = [ch for ch in it.get("checks", []) if ch["id"] != ref]
        else:
            control, item = find_item(ref, loc)
            control["items"].remove(item)
    tree["controls"] = controls = [c for c in controls if c["items"]]
    for check_id, check in moving:
        _, item = find_item(str(move[check_id]), ("move", check_id))
        item.setdefault("checks", []).append(check)

    for ref, patch in (data.get("items") or {}).items():
        _, item = find_item(str(ref), ("items", ref))
        if not isinstance(patch, dict) or set(patch) - {"text", "weight"}:
            raise BaselineError([doc.error(("items", ref), "an item patch may set only text and weight")])
        item.update(patch)

    for check_id, patch in (data.get("override") or {}).items():
        check = find_check(str(check_id), ("override", check_id))
        if not isinstance(patch, dict):
            raise BaselineError([doc.error(("override", check_id), "must be a mapping of check fields")])
        if "id" in patch:
            raise BaselineError([doc.error(("override", check_id, "id"), "a check id cannot be overridden")])
        for key, value in patch.items():
            if key == "params" and isinstance(value, dict):
                check["params"] = {**check.get("params", {}), **value}
            else:
                check[key] = value

    required = data.get("required") or []
    if not isinstance(required, list):
        raise BaselineError([doc.error(("required",), "must be a list of advisory check ids")])
    for i, check_id in enumerate(required):
        check = find_check(str(check_id), ("required", i))
        if not check.get("advisory"):
            raise BaselineError([doc.error(("required", i), f"check {check_id!r} is not advisory in {parent.id}; "
                                                            "only an advisory check can be made required")])
        check.pop("advisory")  # counted again in verdicts, scores and the exit code

    for check_id, reason in (data.get("waive") or {}).items():
        check = find_check(str(check_id), ("waive", check_id))
        if not isinstance(reason, str) or not reason.strip():
            raise BaselineError([doc.error(("waive", check_id), "a waiver needs a reason (non-empty text)")])
        check["waiver"] = reason.strip()

    for i, new in enumerate(data.get("controls") or []):
        loc = ("controls", i)
        if not isinstance(new, dict):
            raise BaselineError([doc.error(loc, "a control point must be a mapping")])
        existing = next((c for c in controls if c["clause"] == str(new.get("clause"))), None)
        if existing is None:
            controls.append(new)
            continue
        for j, item in enumerate(new.get("items") or []):
            if any(it["item"] == item.get("item") for it in existing["items"]):
                raise BaselineError([doc.error(loc + ("items", j), f"item {new['clause']}.{item.get('item')} "
                                                                   "already exists; use add_checks or items")])
            existing["items"].append(item)
        existing["items"].sort(key=lambda it: str(it.get("item")))

    for ref, checks in (data.get("add_checks") or {}).items():
        _, item = find_item(str(ref), ("add_checks", ref))
        if not isinstance(checks, list):
            raise BaselineError([doc.error(("add_checks", ref), "must be a list of checks")])
        item.setdefault("checks", []).extend(checks)

    controls.sort(key=lambda c: [int(p) for p in c["clause"].split(".")])
    try:
        return Baseline.model_validate(tree)
    except ValidationError as exc:
        # Point at this file: at the added control/check if the error is inside something it added.
        raise BaselineError([_extend_error(doc, tree, err) for err in exc.errors()]) from None


def _extend_error(doc: Doc, tree: dict, err: dict) -> str:
    loc = tuple(err["loc"])
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    where = fmt_loc(loc)
    # Find the check or control by id/clause in this file to give a line.
    obj = _get(tree, loc[:6]) if len(loc) >= 6 else _get(tree, loc[:2])
    if isinstance(obj, dict):
        target = _locate_check(doc, obj.get("id", "")) if "id" in obj else None
        if target is None and "clause" in obj:
            target = next((l for l in doc.lines if len(l) == 2 and l[0] == "controls"
                           and _get(doc.data, l + ("clause",)) == obj["clause"]), None)
        if target is not None:
            return f"{doc.path}:{doc.line(target)}: {where}: {msg}"
    return f"{doc.path}:{doc.line(())}: {where}: {msg}"


def item_index(baseline: Baseline) -> dict[tuple[str, str], tuple[ControlSpec, ItemSpec]]:
    return {(c.clause, i.item): (c, i) for c in baseline.controls for i in c.items}


def all_checks(baseline: Baseline) -> list[CheckSpec]:
    return [check for _, _, check in baseline.iter_checks()]
