"""sentinel.signing: Ed25519 keys and signatures as docs/wire.md specifies them."""
from __future__ import annotations

import base64
import stat

import pytest

from sentinel import signing


def test_sign_and_verify_raw_bytes():
    key = signing.generate_key()
    pub = signing.load_public_key_b64(signing.public_key_b64(key))
    data = '{"report_id": "r1", "body": {"x": "中文"}}'.encode()
    sig = signing.sign(key, data)
    assert len(base64.b64decode(sig)) == 64
    assert signing.verify(pub, data, sig)
    assert not signing.verify(pub, data + b" ", sig)  # any change of the bytes breaks it
    assert not signing.verify(signing.load_public_key_b64(signing.public_key_b64(signing.generate_key())), data, sig)
    for bad in ("", "!!!", base64.b64encode(b"short").decode(), sig[:-4] + "AAAA"):
        assert not signing.verify(pub, data, bad)


def test_public_key_encoding():
    key = signing.generate_key()
    encoded = signing.public_key_b64(key)
    assert len(base64.b64decode(encoded)) == 32
    assert signing.public_key_b64(key.public_key()) == encoded
    with pytest.raises(signing.SigningKeyError, match="base64"):
        signing.load_public_key_b64("not base64!")
    with pytest.raises(signing.SigningKeyError, match="32 raw bytes"):
        signing.load_public_key_b64(base64.b64encode(b"x" * 31).decode())


def test_private_key_file(tmp_path):
    key = signing.generate_key()
    path = tmp_path / "sub" / "agent.key"
    signing.save_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.public_key_b64(signing.load_private_key(path)) == signing.public_key_b64(key)
    assert [p.name for p in path.parent.iterdir()] == ["agent.key"]  # no temporary file left behind
    with pytest.raises(signing.SigningKeyError, match="cannot read"):
        signing.load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("hello")
    with pytest.raises(signing.SigningKeyError, match="not an unencrypted PEM"):
        signing.load_private_key(tmp_path / "junk.key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "ec.key").write_bytes(other)
    with pytest.raises(signing.SigningKeyError, match="Ed25519"):
        signing.load_private_key(tmp_path / "ec.key")


def test_weak_public_keys_are_refused_with_a_reason():
    """What cryptography does not check (it loads any 32 bytes): small-order and non-canonical keys."""
    identity = bytes.fromhex("01" + "00" * 31)
    with pytest.raises(signing.SigningKeyError, match="small-order"):
        signing.load_public_key_b64(base64.b64encode(identity).decode())
    with pytest.raises(signing.SigningKeyError, match="small-order"):  # the same point with the sign bit set
        signing.load_public_key_b64(base64.b64encode(identity[:31] + b"\x80").decode())
    non_canonical = (2**255 - 19 + 3).to_bytes(32, "little")
    with pytest.raises(signing.SigningKeyError, match="canonical"):
        signing.load_public_key_b64(base64.b64encode(non_canonical).decode())
    for _ in range(200):  # real keys are never caught by these checks
        signing.load_public_key_b64(signing.public_key_b64(signing.generate_key()))


def test_enrollment_challenge_binds_every_part():
    base = ("sntenr_x", "collector-key", "db-1", "agent-key")
    challenge = signing.enrollment_challenge(*base)
    assert len(challenge) == 32 and signing.enrollment_challenge(*base) == challenge
    for i in range(4):
        changed = list(base)
        changed[i] += "x"
        assert signing.enrollment_challenge(*changed) != challenge
    # NUL separates the parts, so moving characters from one part to the next changes the challenge
    assert signing.enrollment_challenge("sntenr_x", "collector-key", "db-1a", "gent-key") != challenge
