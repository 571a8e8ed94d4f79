"""A small PKI for a closed network: a collector CA and a server certificate signed by it.

Agents pin the CA certificate (ca.crt) at enrollment; nothing depends on a public trust store. Keys
are ECDSA P-256 (accepted by every TLS stack the agents run on) and are written with mode 0600.
"""
from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..atomicfile import write_atomic

CA_DAYS = 3650
SERVER_DAYS = 825


class TlsError(Exception):
    pass


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    ca_fingerprint: str  # sha256 of the CA certificate (DER), hex with colons
    names: tuple[str, ...]


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomic write with `mode` from the start (a key is never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=mode)


def fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()


def default_names() -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    fqdn = socket.getfqdn()
    for name in (socket.gethostname(), fqdn):
        if name and name not in names:
            names.insert(0, name)
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not name or any(c.isspace() for c in name) or "/" in name:
                raise TlsError(f"server name {name!r}: not a DNS name or IP address") from None
            out.append(x509.DNSName(name))
    return out


def init_pki(tls_dir: Path, names: Optional[list[str]] = None, force: bool = False,
             now: Optional[datetime] = None) -> Pki:
    """Make ca.{crt,key} and server.{crt,key} in `tls_dir`; refuses to replace existing files unless
    `force` (replacing the CA means re-pinning every agent)."""
    paths = {n: tls_dir / n for n in ("ca.crt", "ca.key", "server.crt", "server.key")}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise TlsError(f"{', '.join(existing)} already exist; use --force to replace them "
                       "(agents that pinned the old CA must then be given the new ca.crt)")
    names = names or default_names()
    san = _san(names)
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(minutes=5)  # tolerate small clock differences on the agents

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sentinel"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"sentinel collector CA {names[0]}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(now + timedelta(days=CA_DAYS))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=True, crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sentinel"),
                                            x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                   .issuer_name(ca_name).public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(now + timedelta(days=SERVER_DAYS))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName(san), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))

    write_file(paths["ca.key"], _key_pem(ca_key), 0o600)
    write_file(paths["server.key"], _key_pem(server_key), 0o600)
    write_file(paths["ca.crt"], ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_file(paths["server.crt"], server_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Pki(ca_cert=paths["ca.crt"], ca_key=paths["ca.key"], server_cert=paths["server.crt"],
               server_key=paths["server.key"], ca_fingerprint=fingerprint(ca_cert), names=tuple(names))
