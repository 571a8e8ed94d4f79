"""The trust anchor of evidence bundles: the collector's public key and its fingerprint.

A bundle carries the collector's public key, so its signature shows only that the bundle is internally
consistent: whoever forges a bundle signs it with their own key and puts that key in. What makes it
evidence is the agency's comparison with the key it obtained from the collector's operator out of band
(`sentinel key show` on the collector, docs/evidence.md). This module gives that key one printable
identity, the fingerprint: SHA-256 of the raw 32 key bytes, in lowercase hex (what manifest.json, the
covers of the exports and `sentinel verify` show). The same value is what

    openssl pkey -pubin -in collector.pub.pem -outform DER | tail -c 32 | sha256sum

prints, so an agency can recompute it with its own tools.
"""
from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .. import signing
from .digest import sha256_hex

_HEX_FP = re.compile(r"^[0-9a-f]{64}$")


class FingerprintError(ValueError):
    """A fingerprint given by a person that is not one; the message says which form is expected."""


def fingerprint(key: Ed25519PublicKey) -> str:
    return sha256_hex(base64.b64decode(signing.public_key_b64(key)))


def fingerprint_b64(key_b64: str) -> str:
    """The fingerprint of a key given as base64 of its raw bytes (as manifest.json carries it)."""
    return sha256_hex(base64.b64decode(key_b64))


def grouped(fp: str) -> str:
    """The fingerprint in groups of four for reading aloud over the phone (`1a2b 3c4d ...`)."""
    return " ".join(fp[i:i + 4] for i in range(0, len(fp), 4))


def parse_fingerprint(text: str) -> str:
    """A fingerprint as a person types or pastes it: 64 hex digits, any case, with or without spaces or
    colons, optionally prefixed `sha256:`. Returns the lowercase hex form; FingerprintError otherwise."""
    value = text.strip()
    if value.lower().startswith("sha256:"):
        value = value[7:]
    compact = re.sub(r"[\s:]", "", value).lower()
    if _HEX_FP.match(compact):
        return compact
    raise FingerprintError(f"{text!r} is not a collector key fingerprint: expected the 64 hex digits of SHA-256 "
                           "(as `sentinel key show` prints it; spaces and colons are ignored)")


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def raw_signature(sig_b64: str) -> bytes:
    """manifest.sig (base64 text) as the 64 raw bytes that manifest.sig.bin holds; ValueError if it is not."""
    try:
        raw = base64.b64decode(sig_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("manifest.sig is not base64") from None
    if len(raw) != signing.SIGNATURE_BYTES:
        raise ValueError(f"manifest.sig decodes to {len(raw)} bytes, not {signing.SIGNATURE_BYTES}")
    return raw
