"""sentinel/collector/fastjson.py gives exactly what the standard library gives: values, refusals, digests."""
from __future__ import annotations

import json
import math
import random
import struct

import pytest

from sentinel.collector import fastjson
from sentinel.collector.fastjson import canonical_std, loads_std, parse_envelope

orjson = pytest.importorskip("orjson")


def _envelope(body) -> bytes:
    return json.dumps({"report_id": "r-1", "agent_id": "a-1", "sent_at": "2026-01-01T00:00:00Z",
                       "kind": "host_report", "body": body}, ensure_ascii=False).encode("utf-8")


def _reference(raw: bytes):
    try:
        data = loads_std(raw)
    except (ValueError, RecursionError) as exc:
        return "refused", type(exc).__name__, str(exc)
    body = data.get("body") if isinstance(data, dict) else None
    try:
        canonical = canonical_std(body) if isinstance(body, dict) else None
    except ValueError as exc:
        canonical = f"refused: {exc}"
    return repr(data), canonical


def _fast(raw: bytes):
    try:
        data, canonical = parse_envelope(raw)
    except (ValueError, RecursionError) as exc:
        return "refused", type(exc).__name__, str(exc)
    body = data.get("body") if isinstance(data, dict) else None
    if canonical is None and isinstance(body, dict):
        try:
            canonical = canonical_std(body)
        except ValueError as exc:
            canonical = f"refused: {exc}"
    return repr(data), canonical


def _floats(rng: random.Random, n: int) -> list[float]:
    out = [0.0, -0.0, 1e-4, 1e-5, 9.999999999999999e-05, 1.5e-7, 1e15, 1e16, 1234567890123456.8, 1e21, 5e-324,
           1.7976931348623157e308, 0.1, 87.5, 1234.5]
    for e in range(-12, 25):
        out += [rng.uniform(1, 10) * 10.0 ** e for _ in range(20)]
    while len(out) < n:
        v = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if not (math.isnan(v) or math.isinf(v)):
            out.append(v)
    return out


@pytest.mark.parametrize("body", [
    {"plain": [1, 2.5, "x", None, True, {"k": "v"}], "zh": "等保 2.0 检查", "emoji": "😀", "ctl": "\x01\x1f\x7f"},
    {"big": 123456789012345678901234567890, "neg": -123456789012345678901234567890, "u64": 2**64 - 1},
    {"small": 0.00001, "exp": 1e16, "tiny": 1e-7, "ok": 0.0001, "in_string": ":1e5 and ,0.00001"},
    {"nul": "a\x00b", "keys": {"b": 1, "a": 2, "é": 3, "\U0010ffff": 4, "\ufeff": 5}},
    {"deep": json.loads("[" * 300 + "]" * 300)},
])
def test_envelopes_agree(body):
    raw = _envelope(body)
    assert _fast(raw) == _reference(raw)


def test_random_floats_agree():
    rng = random.Random(20261123)
    floats = _floats(rng, 3000)
    for chunk in range(0, len(floats), 50):
        raw = _envelope({"v": floats[chunk:chunk + 50], "s": {"x": floats[chunk]}})
        assert _fast(raw) == _reference(raw)


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[1,]", b"NaN", b'{"body": NaN}', b'{"body": {"x": Infinity}}', b'{"body": {"x": 1e999}}',
    b'{"body": {"x": "\\ud800"}}', b'{"body": {"x": "\\ud83d\\ude00", "y": "\\u0000"}}',
    b'\xef\xbb\xbf{"body": {}}', '{"body": {"x": 1}}'.encode("utf-16"),
    b'{"body": {"x": 01}}', b'{"body": {"x": "\xff"}}', b"123456789012345678901234567890", b'"text"',
    b'{"body": {}, "report_id": 1e400}', b'{"body": {}, "report_id": 123456789012345678901234567890}',
    b'{"body": [1, 2]}', b'{"a": 1, "a": 2, "body": {"k": 1, "k": 2}}', b" \n{\"body\":{}}\t ",
])
def test_edge_inputs_agree(raw):
    assert _fast(raw) == _reference(raw)


def test_mutated_inputs_agree():
    """Byte-level mutations of a valid envelope: whatever orjson accepts, json reads the same way."""
    rng = random.Random(7)
    base = _envelope({"a": [1, 2.5, -0.0, "x\u00e9\n", True, None, {"b": 1e5}], "c": "中", "d": -12.75e-3})
    alphabet = b'{}[]:,"\\ 0123456789.eE+-tfnrulasx\x00\x01\x7f\xc3\xa9\xff\t\n/u'
    for _ in range(3000):
        s = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            p = rng.randrange(len(s))
            op = rng.random()
            if op < 0.4:
                s[p] = rng.choice(alphabet)
            elif op < 0.7:
                s.insert(p, rng.choice(alphabet))
            else:
                del s[p]
        raw = bytes(s)
        assert _fast(raw) == _reference(raw), raw


def test_spelling_guard_is_needed():
    """The guard is not dead code: this orjson spells some of these floats differently (which ones depends
    on its release: 1e16 only before 3.11), and the guard catches every one of them."""
    differ = 0
    for value in (1e-05, 1e16, 1e-7, 2.0**64, 1.5e300):
        fast = orjson.dumps({"v": value}, option=orjson.OPT_SORT_KEYS)
        differ += fast != canonical_std({"v": value})
        assert not fastjson.spelt_alike(fast), (orjson.__version__, value)
    assert differ >= 2
    assert fastjson.spelt_alike(orjson.dumps({"v": [0.0001, 87.5, 1e15], "s": "1e5 0.00001"}))


def test_long_plain_floats_are_guarded():
    """Should an orjson release write a float >= 1e16 out in full, `repr` would still use exponent form."""
    assert not fastjson.spelt_alike(b'{"v":18446744073709552000.0}')
    assert not fastjson.spelt_alike(b'{"v":[1,-12345678901234567.5]}')
    assert fastjson.spelt_alike(b'{"v":"12345678901234567.5","n":1234567890123456.8}')


def test_big_integers_keep_their_value_and_digest():
    body = {"n": 2**64, "m": -(2**63) - 1, "k": 10**30, "inner": [{"x": 2**64 + 1}]}
    data, canonical = parse_envelope(_envelope(body))
    assert data["body"] == body and all(isinstance(v, int) for v in (data["body"]["n"], data["body"]["k"]))
    assert (canonical or canonical_std(data["body"])) == canonical_std(body)


def test_dumps_keeps_big_integers():
    assert json.loads(fastjson.dumps({"n": 2**70, "f": 0.5})) == {"n": 2**70, "f": 0.5}
