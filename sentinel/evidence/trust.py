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
import hashlib
import re
from typing import Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

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


# ---- OpenSSH signature (SSHSIG, PROTOCOL.sshsig), checked by `ssh-keygen -Y verify` ----------------------

SSHSIG_NAMESPACE = "sentinel-evidence"
SSHSIG_PRINCIPAL = "sentinel-collector"
_SSHSIG_HASH = "sha512"
_ARMOR_BEGIN, _ARMOR_END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _read_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(buf):
        raise ValueError("truncated")
    n = int.from_bytes(buf[pos:pos + 4], "big")
    if pos + 4 + n > len(buf):
        raise ValueError("truncated")
    return buf[pos + 4:pos + 4 + n], pos + 4 + n


def ssh_public_key(key: Ed25519PublicKey) -> str:
    """The key as an OpenSSH public key line (`ssh-ed25519 AAAA...`), for an allowed_signers file."""
    raw = base64.b64decode(signing.public_key_b64(key))
    return "ssh-ed25519 " + base64.b64encode(_string(b"ssh-ed25519") + _string(raw)).decode("ascii")


def allowed_signers(key: Ed25519PublicKey) -> str:
    """One line of an `ssh-keygen -Y verify -f` allowed_signers file naming the collector for evidence."""
    return f'{SSHSIG_PRINCIPAL} namespaces="{SSHSIG_NAMESPACE}" {ssh_public_key(key)}\n'


def _signed_data(message: bytes) -> bytes:
    return (b"SSHSIG" + _string(SSHSIG_NAMESPACE.encode()) + _string(b"") + _string(_SSHSIG_HASH.encode())
            + _string(hashlib.sha512(message).digest()))


def ssh_signature(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """An armored SSHSIG of `message` by the Ed25519 key, as `ssh-keygen -Y sign -n sentinel-evidence` makes."""
    pub = base64.b64decode(signing.public_key_b64(private_key))
    sig = private_key.sign(_signed_data(message))
    blob = (b"SSHSIG" + (1).to_bytes(4, "big") + _string(_string(b"ssh-ed25519") + _string(pub))
            + _string(SSHSIG_NAMESPACE.encode()) + _string(b"") + _string(_SSHSIG_HASH.encode())
            + _string(_string(b"ssh-ed25519") + _string(sig)))
    body = base64.b64encode(blob).decode("ascii")
    lines = [body[i:i + 70] for i in range(0, len(body), 70)]
    return "\n".join([_ARMOR_BEGIN, *lines, _ARMOR_END]) + "\n"


def check_ssh_signature(armored: bytes, key: Ed25519PublicKey, message: bytes) -> Optional[str]:
    """None if `armored` is an SSHSIG of `message` by `key` in the evidence namespace, else what is wrong."""
    try:
        text = armored.decode("ascii").strip()
        if not (text.startswith(_ARMOR_BEGIN) and text.endswith(_ARMOR_END)):
            return "not an armored SSH signature"
        blob = base64.b64decode("".join(text[len(_ARMOR_BEGIN):-len(_ARMOR_END)].split()), validate=True)
        if blob[:6] != b"SSHSIG" or int.from_bytes(blob[6:10], "big") != 1:
            return "not an SSHSIG version 1 blob"
        pub_blob, pos = _read_string(blob, 10)
        namespace, pos = _read_string(blob, pos)
        _, pos = _read_string(blob, pos)
        hash_alg, pos = _read_string(blob, pos)
        sig_blob, pos = _read_string(blob, pos)
        kind, p2 = _read_string(pub_blob, 0)
        raw_pub, _ = _read_string(pub_blob, p2)
        sig_kind, s2 = _read_string(sig_blob, 0)
        sig, _ = _read_string(sig_blob, s2)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return "cannot be parsed"
    if kind != b"ssh-ed25519" or sig_kind != b"ssh-ed25519":
        return "not an Ed25519 signature"
    if raw_pub != base64.b64decode(signing.public_key_b64(key)):
        return "made with another key than the manifest's"
    if namespace != SSHSIG_NAMESPACE.encode() or hash_alg != _SSHSIG_HASH.encode():
        return f"namespace or hash is not {SSHSIG_NAMESPACE}/{_SSHSIG_HASH}"
    if not signing.verify(key, _signed_data(message), base64.b64encode(sig).decode("ascii")):
        return "does not verify over manifest.json"
    return None
