"""Validation errors worded for the command line: the option a person typed and the value, not pydantic's dump.

    --scope '10.0.0.300/8': not a network in CIDR form ('10.0.0.300/8' does not appear to be an IPv4 or IPv6 network)

instead of "1 validation error for Scope / networks / Value error, ... [type=value_error, input_value=...]".
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Optional

from pydantic import ValidationError

_PREFIXES = ("Value error, ", "Assertion failed, ")


def validation_lines(exc: ValidationError, options: Optional[Mapping[str, str]] = None) -> list[str]:
    """One line per error: `OPTION VALUE: what is wrong` when the field maps to an option, else `field: ...`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else ""
        msg = err["msg"]
        for prefix in _PREFIXES:
            msg = msg.removeprefix(prefix)
        option = (options or {}).get(field)
        if option is None:
            lines.append(f"{'.'.join(map(str, loc)) or 'value'}: {msg}")
            continue
        # Validators of list fields name the element themselves ("scan_scope[0] '10.0.0.300/8': ..."): keep
        # the value and its message, drop the internal field name.
        inner = re.match(rf"{re.escape(field)}\[\d+\] (.*)$", msg, re.S)
        if inner:
            lines.append(f"{option} {inner.group(1)}")
            continue
        value = err.get("input")
        if len(loc) > 1 and isinstance(loc[1], int) and isinstance(value, list) and loc[1] < len(value):
            value = value[loc[1]]
        shown = f" {value!r}" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
        lines.append(f"{option}{shown}: {msg}")
    return lines
