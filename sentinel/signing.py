"""Ed25519 keys and signatures for agent reports and collector evidence (docs/wire.md).

Signatures cover the exact raw bytes sent, so no JSON canonicalisation is involved; they travel as
standard base64. Public keys travel as base64 of the raw 32 bytes. Private keys are stored as
unencrypted PKCS#8 PEM with mode 0600 (the file system is the protection, as for an SSH host key).

Strictness beyond `cryptography` (OpenSSL 3/4), measured rather than assumed (tests/test_collector_signing.py):
OpenSSL loads any 32 bytes as a public key and accepts signatures under small-order keys (with the key
01 00..00, R = r*B and S = r verify for any message and any r: a forgery that needs no private key). It
already refuses S >= L and, since it compares R's bytes with the canonical encoding of the point it
computes, a non-canonical R. So this module adds what it lacks, as libsodium does: public keys must be
canonical encodings (y < p) of points that are not of small order, and a signature's R must not be one of
the small-order points.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .atomicfile import write_atomic

__all__ = [
    "SigningKeyError",
    "generate_key",
    "load_private_key",
    "save_private_key",
    "public_key_b64",
    "load_public_key_b64",
    "sign",
    "verify",
    "enrollment_challenge",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

_P = 2**255 - 19
# The encodings of the points of order 1, 2, 4 and 8 with the sign bit cleared, including the
# non-canonical y = p (0) and y = p + 1 (1): the same list libsodium refuses (ge25519_has_small_order).
# Compared with the top bit masked, it covers each point's both signs.
_SMALL_ORDER = frozenset(bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity (order 1)
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = -1 (order 2)
    "0000000000000000000000000000000000000000000000000000000000000000",  # y = 0 (order 4)
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p, non-canonical 0
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1, non-canonical 1
))


def _masked(point: bytes) -> bytes:
    return point[:31] + bytes([point[31] & 0x7F])


def small_order(point: bytes) -> bool:
    """True if the 32-byte encoding is of a point of order 1, 2, 4 or 8 (either sign, canonical or not)."""
    return _masked(point) in _SMALL_ORDER


def canonical_point(point: bytes) -> bool:
    """True if the encoded y coordinate is below p (RFC 8032 5.1.3 refuses y >= p)."""
    return int.from_bytes(_masked(point), "little") < _P


class SigningKeyError(ValueError):
    """A key file or encoded key that cannot be used; the message says which and why."""


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def save_private_key(key: Ed25519PrivateKey, path: Union[str, Path]) -> None:
    """Write `key` as PEM to `path` with mode 0600, atomically (a crash never leaves half a key)."""
    path = Path(path)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pem, mode=0o600)


def load_private_key(path: Union[str, Path]) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"private key {path}: cannot read: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"private key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"private key {path}: expected an Ed25519 key, got {type(key).__name__}")
    return key


def public_key_b64(key: Union[Ed25519PrivateKey, Ed25519PublicKey]) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key_b64(value: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(value.encode("ascii") if isinstance(value, str) else value, validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        raise SigningKeyError("public key: not valid base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise SigningKeyError(f"public key: expected {PUBLIC_KEY_BYTES} raw bytes, got {len(raw)}")
    if not canonical_point(raw):
        raise SigningKeyError("public key: not a canonical Ed25519 point encoding (y >= p)")
    if small_order(raw):
        # a key anyone can sign for without a private key (see the module docstring)
        raise SigningKeyError("public key: a small-order Ed25519 point, which no real key pair has")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify(pub: Ed25519PublicKey, data: bytes, sig: str) -> bool:
    """True only for a well-formed signature of exactly `data` by `pub`; never raises on bad input."""
    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    if small_order(raw[:32]):  # R of small order: never made by an honest signer (S >= L OpenSSL refuses)
        return False
    key_bytes = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if small_order(key_bytes) or not canonical_point(key_bytes):  # a key not made by load_public_key_b64
        return False
    try:
        pub.verify(raw, data)
    except InvalidSignature:
        return False
    return True


ENROLL_CONTEXT = b"sentinel enrollment proof v1"


def enrollment_challenge(token: str, collector_public_key: str, hostname: str, public_key: str) -> bytes:
    """What an agent signs with its new private key to prove it holds it (docs/wire.md, Enrollment).

    SHA-256 over a fixed context and, NUL-separated (the API refuses NUL in these strings, so the
    split is unambiguous): SHA-256 of the one-time token (the token the collector issued and stores
    hashed), the collector's own public key (so a proof made for one collector is no use at another),
    the hostname and the agent's public key, all as sent. A proof is bound to one token, which is
    spent by the enrollment, so it cannot be replayed."""
    token_id = hashlib.sha256(token.encode("utf-8")).hexdigest()
    parts = (ENROLL_CONTEXT, token_id.encode("ascii"), collector_public_key.encode("ascii"),
             hostname.encode("utf-8"), public_key.encode("ascii"))
    return hashlib.sha256(b"\0".join(parts)).digest()
