"""`logindefs.value`: one item of /etc/login.defs as shadow-utils itself reads it (lib/getdef.c).

shadow-utils does not strip comments after a value. Its reader, modelled here:
- each line is trimmed of trailing white space; a line whose first non-blank character is `#`, or that
  is blank, is skipped; so is a line with a name and no value;
- the name runs to the first space or tab; the value starts after the spaces, tabs and double quotes that
  follow and ends at the next double quote (so `PASS_MAX_DAYS 90 # 等保` has the value `90 # 等保`);
- a later line for the same name replaces an earlier one.
Numbers are read with C `strtol(value, &end, 0)`: an optional sign, then decimal, `0x` hex or leading-`0`
octal, and nothing may follow. A value that is not such a number is refused ("configuration error - cannot
parse"), and the tool uses its built-in default exactly as if the item were absent; `getdef_num` also
refuses values below -1 or above INT_MAX. Booleans are true only for `yes` (any case).

The observed value is what the program uses; the caller names that default (`default`), which differs per
item and per tool (useradd writes PASS_MAX_DAYS -1, i.e. no maximum, when it has none).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional, Union

from pydantic import Field

from sentinel.model import Observation, Strict
from sentinel.probe import ProbeContext, evidence, probe

from ._parse import read_lines

LOGIN_DEFS = "/etc/login.defs"
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
# strtol with base 0 after its own leading-space skip: sign, then 0x-hex, 0-octal or decimal digits.
_C_INTEGER = re.compile(r"^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


@dataclass(frozen=True)
class Item:
    name: str
    value: str  # as getdef.c stores it
    line: int
    text: str  # the raw line, for evidence


def parse_login_defs(text: str) -> dict[str, Item]:
    """Every item of a login.defs text as getdef.c's def_load stores it (the last line for a name wins)."""
    items: dict[str, Item] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip(" \t\n\v\f\r")
        name_start = line[len(line) - len(line.lstrip(" \t")):]
        if not name_start or name_start.startswith("#"):
            continue
        cut = next((i for i, ch in enumerate(name_start) if ch in " \t"), None)
        if cut is None:
            continue  # a name with no value: skipped by shadow-utils
        name, rest = name_start[:cut], name_start[cut + 1:]
        value = rest.lstrip(' \t"').split('"', 1)[0]
        items[name] = Item(name, value, number, raw.strip())
    return items


def c_integer(value: str) -> Optional[int]:
    """The value of `strtol(value, &end, 0)` when the whole string is one integer, else None."""
    m = _C_INTEGER.match(value)
    if not m:
        return None
    sign, digits = m.groups()
    if digits.lower().startswith("0x"):
        number = int(digits, 16)
    elif len(digits) > 1 and digits.startswith("0"):
        number = int(digits, 8)
    else:
        number = int(digits)
    return -number if sign == "-" else number


# `octal`: a number read as getdef_num does, reported as a four-digit octal mode (UMASK 027 -> "0027").
Kind = Literal["num", "unum", "octal", "bool", "str"]


def effective(item: Optional[Item], kind: Kind, default: Union[int, str, bool, None]
              ) -> tuple[Union[int, str, bool, None], Optional[str]]:
    """(value the tool uses, why the default applies or None) for one item, as getdef_num/unum/bool/str."""
    if item is None:
        return default, "not set"
    if kind == "str":
        return item.value, None
    if kind == "bool":
        return item.value.lower() == "yes", None
    number = c_integer(item.value)
    low, high = (0, UINT_MAX) if kind == "unum" else (-1, INT_MAX)
    if number is None or not low <= number <= high:
        return default, f"cannot parse {item.name} value {item.value!r}"
    return (f"{number:04o}" if kind == "octal" and number >= 0 else number), None


class LoginDefsParams(Strict):
    key: str = Field(min_length=1, pattern=r"^\S+$")
    kind: Kind = "num"
    # What the tool that reads the item uses when it is absent or refused (see the module docstring).
    default: Union[int, str, bool, None] = None
    path: str = Field(default=LOGIN_DEFS, pattern=r"^/")


@probe("logindefs.value", LoginDefsParams)
def login_defs_value(ctx: ProbeContext, params: LoginDefsParams) -> Observation:
    """The value shadow-utils uses for one login.defs item: parsed as getdef.c does, the tool's default
    when the item is absent or cannot be parsed."""
    lines = read_lines(ctx, params.path)
    items = ctx.cached(("login.defs", params.path), lambda: parse_login_defs("\n".join(lines or [])))
    item = items.get(params.key)
    value, why = effective(item, params.kind, params.default)
    if item is None:
        ev = [evidence(params.path, "no such file" if lines is None else f"{params.key} not set")]
    else:
        ev = [evidence(params.path, item.text, item.line)]
    if why is None:
        return Observation(observed=value, evidence=ev)
    shown = "(none)" if value is None else str(value)
    if why == "not set":
        note = f"{params.key} is not set; shadow-utils uses its default {shown}"
        note_zh = f"未设置 {params.key}，shadow-utils 采用默认值 {shown}"
    else:
        note = (f"shadow-utils refuses this line (configuration error - {why}) and uses its default {shown}, "
                "as if the item were absent")
        note_zh = (f"shadow-utils 无法解析该行（configuration error - cannot parse {params.key}），"
                   f"按未设置处理，采用默认值 {shown}")
    return Observation(observed=value, evidence=ev, note=note, note_zh=note_zh)
