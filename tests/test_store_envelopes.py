"""Kept envelopes (sentinel/store/envelopes.py): zstd from now on, zlib rows from before still read."""
from __future__ import annotations

import zlib

import pytest

from sentinel.store import envelopes

RAW = '{"report_id":"r1","body":{"x":"测评 ' .encode() + b"a" * 5000 + b'"}}'


def test_pack_round_trips_and_compresses():
    packed = envelopes.pack(RAW)
    assert packed[:4] == b"\x28\xb5\x2f\xfd" and len(packed) < len(RAW) // 10
    assert envelopes.unpack(packed) == RAW


def test_rows_written_with_zlib_are_still_read():
    assert envelopes.unpack(zlib.compress(RAW, 1)) == RAW
    assert envelopes.unpack(memoryview(zlib.compress(RAW))) == RAW  # some drivers hand back memoryviews


@pytest.mark.parametrize("stored", [b"", b"not compressed at all", envelopes.pack(RAW)[:-8],
                                    zlib.compress(RAW)[:-8]])
def test_damaged_bytes_are_an_error_not_garbage(stored):
    with pytest.raises(envelopes.EnvelopeError, match="cannot be decompressed"):
        envelopes.unpack(stored)
