"""The PostgreSQL parameters sentinel judges: their type, unit and compiled-in default (boot value) per major version.

Defaults are the boot values of guc_tables.c (guc.c before 16) of PostgreSQL 12-17, as `pg_settings.boot_val`
shows them; tests/test_object_postgresql_real.py holds this table against the installed server's pg_settings.
Values are parsed as guc.c does: booleans by parse_bool (on/off/true/false/yes/no/1/0 and unique prefixes,
case-insensitive), integers by parse_int (strtol base 0, so `0640` is octal; a fraction is rounded; a unit
after optional spaces, converted to the parameter's base unit), enums case-insensitively among their options.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Union

Value = Union[str, int, float, list[str], None]

MEMORY_UNITS = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024 ** 2, "TB": 1024 ** 3}  # in kB
TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}  # in ms


class InvalidValue(ValueError):
    """The server would refuse this value for the parameter."""


@dataclass(frozen=True)
class Guc:
    kind: str  # bool | enum | int | mode | string | list
    default: Callable[[int], Value]  # boot value for a major version (None: the parameter does not exist there)
    unit: Optional[str] = None  # base unit of an int: ms, s, min, kB
    options: tuple[str, ...] = ()  # enum options as pg_settings spells them
    aliases: tuple[tuple[str, str], ...] = ()  # hidden enum spellings -> option
    library: Optional[str] = None  # an extension's parameter: exists only where this library is loaded
    since: int = 0  # first major version that has the parameter


def _const(value: Value) -> Callable[[int], Value]:
    return lambda _v: value


_BOOLISH = (("on", "on"), ("off", "off"), ("true", "on"), ("false", "off"), ("yes", "on"), ("no", "off"),
            ("1", "on"), ("0", "off"))

GUCS: dict[str, Guc] = {
    "password_encryption": Guc("enum", lambda v: "scram-sha-256" if v >= 14 else "md5",
                               options=("md5", "scram-sha-256"),
                               aliases=(("on", "md5"), ("true", "md5"), ("yes", "md5"), ("1", "md5"))),
    "ssl": Guc("bool", _const("off")),
    "ssl_min_protocol_version": Guc("enum", lambda v: "TLSv1.2" if v >= 13 else "TLSv1",
                                    options=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"), since=12),
    "ssl_ciphers": Guc("string", _const("HIGH:MEDIUM:+3DES:!aNULL")),
    "listen_addresses": Guc("list", _const(["localhost"])),
    "port": Guc("int", _const(5432)),
    "logging_collector": Guc("bool", _const("off")),
    "log_destination": Guc("list", _const(["stderr"])),
    "log_connections": Guc("bool", _const("off")),
    "log_disconnections": Guc("bool", _const("off")),
    "log_statement": Guc("enum", _const("none"), options=("none", "ddl", "mod", "all")),
    "log_line_prefix": Guc("string", _const("%m [%p] ")),
    "log_file_mode": Guc("mode", _const("0600")),
    "log_directory": Guc("string", _const("log")),
    "shared_preload_libraries": Guc("list", _const([])),
    "idle_in_transaction_session_timeout": Guc("int", _const(0), unit="ms"),
    "idle_session_timeout": Guc("int", lambda v: 0 if v >= 14 else None, unit="ms", since=14),
    "archive_mode": Guc("enum", _const("off"), options=("always", "on", "off"), aliases=_BOOLISH[2:]),
    "archive_command": Guc("string", _const("")),
    "archive_library": Guc("string", lambda v: "" if v >= 15 else None, since=15),
    "data_directory": Guc("string", _const(None)),
    "hba_file": Guc("string", _const(None)),
    "auth_delay.milliseconds": Guc("int", _const(0), unit="ms", library="auth_delay"),
    "credcheck.max_auth_failure": Guc("int", _const(0), library="credcheck"),
    "credcheck.reset_superuser": Guc("bool", _const("off"), library="credcheck"),
    "pgaudit.log": Guc("list", _const(["none"]), library="pgaudit"),
}


def parse_bool(text: str) -> Optional[bool]:
    """guc.c parse_bool_with_len: a prefix of true/false/yes/no, of on/off (two letters at least), or 1/0; no
    surrounding spaces, case-insensitive."""
    t = text.lower()
    if not t:
        return None
    for word, value in (("true", True), ("false", False), ("yes", True), ("no", False)):
        if t[0] == word[0]:
            return value if word.startswith(t) else None
    if t[0] == "o" and len(t) >= 2:
        return True if "on" == t else False if "off".startswith(t) else None
    return {"1": True, "0": False}.get(t)


_INT = re.compile(r"\s*([-+]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))")
_FLOAT = re.compile(r"\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)")


def parse_int(text: str, unit: Optional[str]) -> int:
    """guc.c parse_int: the number (strtol base 0; a fraction or exponent makes it strtod), then a unit."""
    m = _INT.match(text)
    if m is None:
        raise InvalidValue(f"{text!r} is not an integer")
    end = m.end()
    digits = m.group(1)
    octal = re.fullmatch(r"([-+]?)0([0-7]+)", digits)  # C's base 0: a leading 0 is octal (Python's int refuses it)
    number: float = int(octal.group(1) + octal.group(2), 8) if octal else int(digits, 0)
    if text[end:end + 1] in (".", "e", "E"):
        f = _FLOAT.match(text)
        assert f is not None
        number, end = float(f.group(1)), f.end()
    rest = text[end:].strip()
    if rest:
        table = TIME_UNITS if unit in TIME_UNITS else MEMORY_UNITS if unit in MEMORY_UNITS else None
        if table is None or rest not in table:
            raise InvalidValue(f"{text!r}: {rest!r} is not a valid unit for this parameter"
                               + (f" (valid: {', '.join(table)})" if table else ""))
        number = number * table[rest] / table[unit]  # type: ignore[index]  # unit is in table here
    return int(round(number))  # rint in the default rounding mode: half to even, as Python's round


def _split_list(text: str) -> list[str]:
    """SplitGUCList / SplitDirectoriesString: comma-separated, spaces trimmed, double quotes keep commas (case is
    kept; expectations compare case-insensitively)."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            j, word = i + 1, []
            while j < n:
                if text[j] == '"' and text[j + 1:j + 2] == '"':
                    word.append('"')
                    j += 2
                elif text[j] == '"':
                    break
                else:
                    word.append(text[j])
                    j += 1
            if j >= n:
                raise InvalidValue(f"{text!r}: unterminated quoted name")
            out.append("".join(word))
            i = j + 1
        else:
            j = i
            while j < n and text[j] != ",":
                j += 1
            word_text = text[i:j].strip()
            if not word_text:
                raise InvalidValue(f"{text!r}: empty list element")
            out.append(word_text)
            i = j
        while i < n and text[i].isspace():
            i += 1
        if i < n:
            if text[i] != ",":
                raise InvalidValue(f"{text!r}: expected a comma after {out[-1]!r}")
            i += 1
    return out


def normalize(name: str, raw: str) -> Value:
    """The value the server takes from `raw` for parameter `name`, in the form pg_settings shows (bool on/off, an
    enum's option, an int in the base unit, a mode as four octal digits, a list as its elements)."""
    guc = GUCS.get(name)
    if guc is None or guc.kind == "string":
        return raw
    if guc.kind == "bool":
        b = parse_bool(raw)
        if b is None:
            raise InvalidValue(f"{raw!r} is not a boolean")
        return "on" if b else "off"
    if guc.kind == "enum":
        low = raw.strip().lower()
        for opt in guc.options:
            if opt.lower() == low:
                return opt
        for alias, opt in guc.aliases:
            if alias == low:
                return opt
        raise InvalidValue(f"{raw!r} is not one of {', '.join(guc.options)}")
    if guc.kind == "int":
        return parse_int(raw, guc.unit)
    if guc.kind == "mode":
        mode = parse_int(raw, None)
        if not 0 <= mode <= 0o777:
            raise InvalidValue(f"{raw!r} is outside 0000-0777")
        return f"{mode:04o}"
    return _split_list(raw)
