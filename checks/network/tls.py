"""TLS audit of one port: protocol versions offered, certificate (expiry, self-signed, chain), weak ciphers.

Versions and the certificate come from the `ssl` module (SECLEVEL=0 so the client can still speak TLS 1.0/1.1);
the certificate is parsed with `cryptography`. Weak cipher suites, and any version the local OpenSSL cannot
offer at all (SSLv3 always, TLS 1.0/1.1 on builds without them), are tested with a hand-built ClientHello
whose ServerHello answer is read and parsed: no handshake is completed, nothing else is sent.
"""
from __future__ import annotations

import os
import ssl
import struct
import warnings
from datetime import datetime, timezone
from typing import Optional

from .banners import ProbeFailed, connect, http_get, recv_exact
from .findings import HTTPInfo, TLSInfo

_VERSIONS = [("TLSv1.0", "TLSv1", 0x0301), ("TLSv1.1", "TLSv1_1", 0x0302), ("TLSv1.2", "TLSv1_2", 0x0303),
             ("TLSv1.3", "TLSv1_3", None)]

# Weak suites (IANA code -> name): NULL, EXPORT, RC4, DES, 3DES, anonymous key exchange.
WEAK_SUITES: dict[int, str] = {
    0x0001: "TLS_RSA_WITH_NULL_MD5", 0x0002: "TLS_RSA_WITH_NULL_SHA", 0x003B: "TLS_RSA_WITH_NULL_SHA256",
    0xC006: "TLS_ECDHE_ECDSA_WITH_NULL_SHA", 0xC010: "TLS_ECDHE_RSA_WITH_NULL_SHA",
    0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5", 0x0006: "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5",
    0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", 0x0014: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5", 0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0x0009: "TLS_RSA_WITH_DES_CBC_SHA", 0x0015: "TLS_DHE_RSA_WITH_DES_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", 0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0018: "TLS_DH_anon_WITH_RC4_128_MD5", 0x001B: "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA",
    0x0034: "TLS_DH_anon_WITH_AES_128_CBC_SHA", 0x003A: "TLS_DH_anon_WITH_AES_256_CBC_SHA",
    0x00A6: "TLS_DH_anon_WITH_AES_128_GCM_SHA256", 0x00A7: "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
    0xC018: "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", 0xC019: "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
    0xC017: "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", 0xC016: "TLS_ECDH_anon_WITH_RC4_128_SHA",
}
# A broad, ordinary suite list for raw version tests (ECDHE/RSA with AES-GCM/CBC).
COMMON_SUITES = [0xC02F, 0xC030, 0xC02B, 0xC02C, 0xC013, 0xC014, 0xC009, 0xC00A, 0x009C, 0x009D, 0x002F, 0x0035,
                 0x003C, 0x003D, 0x0033, 0x0039]
_MAX_WEAK_ROUNDS = 8


class HelloResult:
    __slots__ = ("accepted", "version", "suite", "detail")

    def __init__(self, accepted: bool, version: Optional[int] = None, suite: Optional[int] = None, detail: str = ""):
        self.accepted, self.version, self.suite, self.detail = accepted, version, suite, detail


def client_hello(version: int, suites: list[int], server_name: Optional[str] = None) -> bytes:
    """A TLS 1.0-1.2 (or SSLv3) ClientHello offering exactly `suites`."""
    body = struct.pack(">H", version) + os.urandom(32) + b"\x00"
    body += struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", s) for s in suites) + b"\x01\x00"
    if version >= 0x0301:
        ext = b""
        if server_name:
            name = server_name.encode("idna")
            sni = b"\x00" + struct.pack(">H", len(name)) + name
            ext += struct.pack(">HH", 0x0000, len(sni) + 2) + struct.pack(">H", len(sni)) + sni
        groups = [0x001D, 0x0017, 0x0018, 0x0019]
        g = b"".join(struct.pack(">H", x) for x in groups)
        ext += struct.pack(">HHH", 0x000A, len(g) + 2, len(g)) + g
        ext += struct.pack(">HHB", 0x000B, 2, 1) + b"\x00"
        if version >= 0x0303:
            algs = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201]
            a = b"".join(struct.pack(">H", x) for x in algs)
            ext += struct.pack(">HHH", 0x000D, len(a) + 2, len(a)) + a
        ext += struct.pack(">HHB", 0xFF01, 1, 0)  # renegotiation_info: some servers insist
        body += struct.pack(">H", len(ext)) + ext
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack(">HH", min(version, 0x0301), len(handshake)) + handshake


def raw_hello(host: str, port: int, version: int, suites: list[int], timeout: float = 3.0,
              server_name: Optional[str] = None) -> HelloResult:
    """Send one ClientHello and read the first record: ServerHello (accepted) or alert/close (refused)."""
    with connect(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(client_hello(version, suites, server_name))
            head = recv_exact(sock, 5)
            if len(head) < 5:
                return HelloResult(False, detail="connection closed")
            ctype, _, length = struct.unpack(">BHH", head)
            payload = recv_exact(sock, min(length, 16384))
        except TimeoutError:
            return HelloResult(False, detail="no answer")
        except OSError as exc:
            return HelloResult(False, detail=f"connection reset ({exc.strerror or exc})")
    if ctype == 0x15:
        return HelloResult(False, detail=f"alert {payload[1] if len(payload) > 1 else '?'}")
    if ctype != 0x16 or len(payload) < 40 or payload[0] != 0x02:
        raise ProbeFailed(f"{host}:{port}: unexpected answer to a ClientHello (record type {ctype})")
    server_version = struct.unpack(">H", payload[4:6])[0]
    sid_len = payload[38]
    pos = 39 + sid_len
    if len(payload) < pos + 2:
        raise ProbeFailed(f"{host}:{port}: truncated ServerHello")
    suite = struct.unpack(">H", payload[pos:pos + 2])[0]
    return HelloResult(server_version == version, server_version, suite,
                       detail="" if server_version == version else f"server answered version {server_version:#06x}")


def _context(name: Optional[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    if not name:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if name:
        with warnings.catch_warnings():  # TLSv1/TLSv1_1 members are deprecated, which is why we test them
            warnings.simplefilter("ignore", DeprecationWarning)
            v = getattr(ssl.TLSVersion, name)
            ctx.minimum_version = v
            ctx.maximum_version = v
    return ctx


def _server_name(host: str) -> Optional[str]:
    try:
        import ipaddress

        ipaddress.ip_address(host)
        return None
    except ValueError:
        return host


def handshake(host: str, port: int, version: Optional[str],
              timeout: float) -> tuple[str, Optional[tuple[str, str, int]], Optional[bytes]]:
    """One handshake at `version` (None: best). Returns (protocol, cipher (name, protocol, bits), peer cert DER)."""
    ctx = _context(version)
    with connect(host, port, timeout) as raw:
        raw.settimeout(timeout)
        with ctx.wrap_socket(raw, server_hostname=_server_name(host)) as tls:
            return tls.version() or "?", tls.cipher(), tls.getpeercert(binary_form=True)


def is_tls(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the port completes a TLS handshake (any version)."""
    try:
        handshake(host, port, None, timeout)
        return True
    except (ssl.SSLError, ProbeFailed, OSError, ValueError):
        return False


def _client_supports(name: str) -> Optional[str]:
    """None if the local OpenSSL can offer `name`, else why not."""
    if getattr(ssl, "HAS_" + name, True) is False:
        return f"local OpenSSL was built without {name}"
    try:
        _context(name)
    except (ValueError, ssl.SSLError) as exc:
        return f"local OpenSSL cannot offer {name}: {exc}"
    return None


def audit(host: str, port: int, timeout: float = 3.0, now: Optional[datetime] = None) -> TLSInfo:
    """Full TLS audit. Raises ProbeFailed if no TLS version at all completes a handshake."""
    now = now or datetime.now(timezone.utc)
    info = TLSInfo()
    der: Optional[bytes] = None
    best: Optional[tuple] = None
    last_error = ""
    for label, name, raw_version in _VERSIONS:
        why_not = _client_supports(name)
        if why_not is None:
            try:
                proto, cipher, cert = handshake(host, port, name, timeout)
                info.protocols.append(label)
                der = cert or der
                best = (proto, cipher)
                continue
            except ssl.SSLError as exc:
                last_error = exc.reason or str(exc)
                if exc.reason != "NO_PROTOCOLS_AVAILABLE":
                    continue  # the server refused this version
                why_not = f"local OpenSSL refused to offer {label} ({exc.reason})"
            except (OSError, ProbeFailed) as exc:
                last_error = str(exc)
                continue
        if raw_version is None:
            info.untested[label] = why_not
            continue
        # Our OpenSSL cannot speak this version: ask with a raw ClientHello instead.
        try:
            if raw_hello(host, port, raw_version, COMMON_SUITES + list(WEAK_SUITES), timeout,
                         _server_name(host)).accepted:
                info.protocols.append(label)
        except ProbeFailed as exc:
            info.untested[label] = f"{why_not}; raw ClientHello failed: {exc}"
    # SSLv3: no modern OpenSSL speaks it, so always by raw hello.
    try:
        if raw_hello(host, port, 0x0300, COMMON_SUITES + list(WEAK_SUITES), timeout).accepted:
            info.protocols.insert(0, "SSLv3")
    except ProbeFailed as exc:
        info.untested["SSLv3"] = str(exc)
    if not info.protocols:
        raise ProbeFailed(f"{host}:{port}: no TLS handshake completed ({last_error or 'refused'})")
    if best:
        info.cipher = best[1][0] if best[1] else None
    info.weak_ciphers = _weak_suites(host, port, info.protocols, timeout)
    if der:
        _read_certificate(der, info, now)
        info.chain_valid, info.chain_error = _verify_chain(host, port, timeout)
    return info


def _weak_suites(host: str, port: int, protocols: list[str], timeout: float) -> list[str]:
    codes = {"SSLv3": 0x0300, "TLSv1.0": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303}
    found: list[str] = []
    for label in protocols:
        version = codes.get(label)
        if version is None:
            continue
        offer = [s for s in WEAK_SUITES if WEAK_SUITES[s] not in found]
        for _ in range(_MAX_WEAK_ROUNDS):
            if not offer:
                break
            result = raw_hello(host, port, version, offer, timeout, _server_name(host))
            if not result.accepted or result.suite not in WEAK_SUITES:
                break
            found.append(WEAK_SUITES[result.suite])
            offer.remove(result.suite)
    return found


def _read_certificate(der: bytes, info: TLSInfo, now: datetime) -> None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    cert = x509.load_der_x509_certificate(der)
    info.subject = cert.subject.rfc4514_string()
    info.issuer = cert.issuer.rfc4514_string()
    info.not_before = cert.not_valid_before_utc
    info.not_after = cert.not_valid_after_utc
    info.expired = now > info.not_after or now < info.not_before
    info.days_left = (info.not_after - now).days
    self_signed = False
    if cert.issuer == cert.subject:
        try:
            cert.verify_directly_issued_by(cert)
            self_signed = True
        except (InvalidSignature, ValueError, TypeError):
            self_signed = False
    info.self_signed = self_signed
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        info.key = f"RSA-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        info.key = f"EC-{key.curve.name}"
    elif isinstance(key, dsa.DSAPublicKey):
        info.key = f"DSA-{key.key_size}"
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        info.key = type(key).__name__.replace("PublicKey", "")
    algo = cert.signature_hash_algorithm
    info.signature_hash = algo.name if algo else None


def _verify_chain(host: str, port: int, timeout: float) -> tuple[Optional[bool], Optional[str]]:
    """Verify against the scanner's default trust store (hostname not checked: targets are addresses)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    try:
        with connect(host, port, timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=_server_name(host)):
                return True, None
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or str(exc)
    except (ssl.SSLError, OSError, ProbeFailed) as exc:
        return None, f"could not verify: {exc}"


def https_get(host: str, port: int, path: str, timeout: float, headers: Optional[dict[str, str]] = None,
              what: str = "") -> tuple[bytes, HTTPInfo]:
    """banners.http_get over TLS, the certificate not verified (it is judged on its own). `what` prefixes the
    ProbeFailed of a failed handshake (the probe's name)."""
    raw = connect(host, port, timeout)
    try:
        sock = _context(None).wrap_socket(raw, server_hostname=_server_name(host))
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise ProbeFailed(f"{what}TLS handshake failed: {exc}") from None
    try:
        return http_get(host, port, path, timeout, sock=sock, headers=headers)
    finally:
        sock.close()
