"""Evaluate an `Expect` against an observed value: returns None when it holds, else the reason."""
from __future__ import annotations

import re
from typing import Any, Optional

from .model import Expect


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(int(text, 0)) if text.lower().startswith(("0x", "0o")) else float(text)
        except ValueError:
            return None
    return None


def _norm(value: Any) -> Any:
    """Compare scalars loosely: 'yes' == 'yes', 90 == '90', case-insensitive for strings."""
    if isinstance(value, str):
        num = _num(value)
        return num if num is not None else value.strip().lower()
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict, set)) and len(value) == 0)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def evaluate(expect: Expect, observed: Any, where: str = "") -> Optional[str]:
    """None if every operator holds; otherwise a short explanation of the first that does not."""
    label = f"{where}: " if where else ""
    if expect.absent is not None:
        if expect.absent and observed is not None:
            return f"{label}expected absent, found {_show(observed)}"
        if not expect.absent and observed is None:
            return f"{label}expected to be set, found nothing"
    if expect.empty is not None and _is_empty(observed) != expect.empty:
        return (f"{label}expected none, found {_show(observed)}" if expect.empty
                else f"{label}expected at least one, found none")
    scalar_ops = [expect.eq, expect.ne, expect.lt, expect.le, expect.gt, expect.ge, expect.in_,
                  expect.not_in, expect.match, expect.not_match, expect.mode_max]
    if observed is None and any(op is not None for op in scalar_ops):
        return f"{label}not set (expected {expect.describe()})"
    if expect.eq is not None and _norm(observed) != _norm(expect.eq):
        return f"{label}expected {_show(expect.eq)}, found {_show(observed)}"
    if expect.ne is not None and _norm(observed) == _norm(expect.ne):
        return f"{label}must not be {_show(expect.ne)}"
    for op, bound, test in (("<", expect.lt, lambda a, b: a < b), ("<=", expect.le, lambda a, b: a <= b),
                            (">", expect.gt, lambda a, b: a > b), (">=", expect.ge, lambda a, b: a >= b)):
        if bound is None:
            continue
        num = _num(observed)
        if num is None:
            return f"{label}expected a number {op} {bound:g}, found {_show(observed)}"
        if not test(num, bound):
            return f"{label}{num:g} is not {op} {bound:g}"
    if expect.in_ is not None and _norm(observed) not in [_norm(v) for v in expect.in_]:
        return f"{label}{_show(observed)} is not one of {_show(expect.in_)}"
    if expect.not_in is not None and _norm(observed) in [_norm(v) for v in expect.not_in]:
        return f"{label}{_show(observed)} is forbidden"
    if expect.match is not None and not re.search(expect.match, str(observed)):
        return f"{label}{_show(observed)} does not match /{expect.match}/"
    if expect.not_match is not None and re.search(expect.not_match, str(observed)):
        return f"{label}{_show(observed)} matches forbidden /{expect.not_match}/"
    if expect.mode_max is not None:
        mode = _num(observed) if not isinstance(observed, str) else _octal(observed)
        mask = _octal(expect.mode_max)
        if mode is None or mask is None:
            return f"{label}expected a file mode, found {_show(observed)}"
        extra = int(mode) & ~int(mask) & 0o7777
        if extra:
            return f"{label}mode {int(mode):04o} is more permissive than {int(mask):04o} (extra bits {extra:04o})"
    if expect.contains is not None:
        have = _norm(observed if isinstance(observed, (list, tuple)) else [observed]) if not isinstance(observed, str) else None
        for want in expect.contains:
            ok = (str(want).lower() in observed.lower()) if isinstance(observed, str) else (_norm(want) in (have or []))
            if not ok:
                return f"{label}missing {_show(want)} in {_show(observed)}"
    if expect.not_contains is not None:
        have = _norm(observed if isinstance(observed, (list, tuple)) else [observed]) if not isinstance(observed, str) else None
        for bad in expect.not_contains:
            hit = (str(bad).lower() in observed.lower()) if isinstance(observed, str) else (_norm(bad) in (have or []))
            if hit:
                return f"{label}contains forbidden {_show(bad)}"
    if expect.fields is not None:
        if not isinstance(observed, dict):
            return f"{label}expected a mapping, found {_show(observed)}"
        for key, sub in expect.fields.items():
            reason = evaluate(sub, observed.get(key), f"{where}.{key}" if where else key)
            if reason:
                return reason
    if expect.each is not None:
        if not isinstance(observed, (list, tuple)):
            return f"{label}expected a list, found {_show(observed)}"
        for element in observed:
            name = element.get("path") or element.get("service") or element.get("user") if isinstance(element, dict) else None
            reason = evaluate(expect.each, element, name or where)
            if reason:
                return reason
    if expect.any_of is not None:
        reasons = [evaluate(alt, observed, where) for alt in expect.any_of]
        if all(reasons):
            return "none of the alternatives holds: " + "; ".join(r for r in reasons if r)
    return None


def _octal(value: Any) -> Optional[int]:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 8)
    except ValueError:
        return None
