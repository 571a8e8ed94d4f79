"""JSON on the ingest hot path: orjson where it provably gives what the standard library gives, else the
standard library, so parsing, refusals and the canonical digest are exactly those of `json`.

`parse_envelope` parses with orjson and writes the envelope body's canonical form (docs/wire.md: sorted
keys, compact separators, UTF-8, no NaN) with orjson too. The two libraries agree on every value and
every byte except in three places, each of which sends the envelope to the standard library instead:
- input orjson refuses (the standard library then decides, with its own message; it also reads UTF-16
  and lone surrogates, which orjson does not);
- integers past 64 bits, which orjson turns into floats: such a float is at least 1.8e19, so it is written
  in exponent form (`1.8e19` before orjson 3.11, `1.8e+19` from 3.11 on) or, should a later release write
  it out in full, as 17 or more digits before the point; both are caught by the next rule (outside the
  body: a float there sends it back too);
- float spelling: orjson writes `1e-7`, `0.00001` (and before 3.11 `1e16`) where `repr` writes `1e-07`,
  `1e-05`, `1e+16`; so any number in exponent form, below 1e-4, or with 17 or more digits before its point
  in orjson's output sends the envelope to the standard library. Such numbers are rare in reports; a false
  alarm (the pattern inside a string) only costs time.
tests/test_collector_fastjson.py checks the agreement (values, refusals, canonical bytes).
"""
from __future__ import annotations

import json
import re
from typing import Any, Optional

try:
    import orjson
    _HAVE_ORJSON = True
except ImportError:  # pragma: no cover - orjson is optional; the standard library gives the same results
    _HAVE_ORJSON = False  # a flag, not `orjson = None`, keeps orjson's own types for mypy

# orjson's exponent: 'e' and a sign or a digit (a literal first character keeps the scan fast); every
# orjson release allowed by setup.cfg spells exponents in one of these ways.
_EXPONENT = re.compile(rb"e[-+0-9]")
# A float of 1e16 or more written out in full: `repr` would use exponent form.
_LONG_PLAIN = re.compile(rb"[0-9]{17}[0-9]*\.")
_DIGITS = frozenset(b"0123456789")
_NUMBER_CHARS = frozenset(b"0123456789.-")
_NUMBER_STARTS = frozenset(b":,[")  # in compact output, what precedes a number


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_std(raw: bytes) -> Any:
    """The reference parse: `json.loads` refusing NaN/Infinity."""
    return json.loads(raw, parse_constant=_no_constants)


def canonical_std(value: Any) -> bytes:
    """The reference canonical form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _in_number(out: bytes, i: int) -> bool:
    """Whether position i of compact JSON output may be inside a number token (not surely in a string)."""
    while i > 0 and out[i - 1] in _NUMBER_CHARS:
        i -= 1
    return i > 0 and out[i - 1] in _NUMBER_STARTS


def spelt_alike(out: bytes) -> bool:
    """True when no number in orjson's compact output may be spelt differently by `json.dumps`."""
    for m in _EXPONENT.finditer(out):
        i = m.start()
        if out[i - 1] in _DIGITS and _in_number(out, i):
            return False
    for m in _LONG_PLAIN.finditer(out):
        if _in_number(out, m.start() + 1):
            return False
    i = out.find(b"0.0000")
    while i >= 0:
        if i > 0 and out[i - 1] in b":,[-":
            return False
        i = out.find(b"0.0000", i + 1)
    return True


def parse_envelope(raw: bytes) -> tuple[Any, Optional[bytes]]:
    """(parsed value, canonical bytes of its "body" or None). None means the value came from `loads_std` and
    the caller computes the canonical form with `canonical_std` (the envelope may be refused before that).
    Raises what `loads_std` raises for input it refuses."""
    if _HAVE_ORJSON:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None  # the standard library decides, with its own message
        if isinstance(data, dict) and isinstance(data.get("body"), dict) \
                and not any(isinstance(v, float) for k, v in data.items() if k != "body"):
            try:
                out = orjson.dumps(data["body"], option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:  # nested past orjson's limit
                out = None
            if out is not None and spelt_alike(out):
                return data, out
    return loads_std(raw), None


def dumps(value: Any) -> str:
    """JSON text for a JSON column (any valid spelling is as good there)."""
    if _HAVE_ORJSON:
        try:
            return orjson.dumps(value).decode("utf-8")
        except orjson.JSONEncodeError:
            pass  # e.g. an integer past 64 bits, which `json` writes exactly
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
