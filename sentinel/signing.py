"""Ed25519 keys and signatures for agent reports and collector evidence (docs/wire.md).

Signatures cover the exact raw bytes sent, so no JSON canonicalisation is involved; they travel as
standard base64. Public keys travel as base64 of the raw 32 bytes. Private keys are stored as
unencrypted PKCS#8 PEM with mode 0600 (the file system is the protection, as for an SSH host key).
"""
from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "SigningKeyError",
    "generate_key",
    "load_private_key",
    "save_private_key",
    "public_key_b64",
    "load_public_key_b64",
    "sign",
    "verify",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


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
    # mkstemp creates the file 0600 from the start, so the key is never readable by others
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
    try:
        pub.verify(raw, data)
    except InvalidSignature:
        return False
    return True
