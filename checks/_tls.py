"""What a TLS server built on the host's OpenSSL actually offers for a configured protocol list and cipher string.

A web server hands OpenSSL its protocol list and cipher string; OpenSSL then refuses what its security level
forbids (ssl/t1_lib.c, ssl_security_default_callback, OpenSSL 3.0): at level 1 and above SSLv3, TLS 1.0 and
TLS 1.1 are refused ("only allowed at level 0"), as are suites under the level's bits (80, 112, 128, 192, 256),
unauthenticated (aNULL) suites and MD5 MACs; level 3 keeps forward-secret suites only. The level is the cipher
string's last `@SECLEVEL=N`, else the library's default: the build's -DOPENSSL_TLS_SECURITY_LEVEL (Debian 12
builds 2; upstream's default is 1), which libcrypto carries in its compiler-flags string (`openssl version -a`
prints it), unless the system openssl.cnf (or RHEL's crypto-policies back-end) sets a CipherString with
@SECLEVEL. Cipher strings are expanded with the OpenSSL of the machine sentinel runs on (Python's ssl module):
on a live host that is the server's own library; for an offline root the image's library may differ.
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any, Optional

from sentinel.hostview import ProbeError
from sentinel.model import Evidence
from sentinel.probe import ProbeContext, evidence

LIB_GLOBS = ("/usr/lib/x86_64-linux-gnu/libcrypto.so.*", "/usr/lib/aarch64-linux-gnu/libcrypto.so.*",
             "/usr/lib/*-linux-gnu*/libcrypto.so.*", "/usr/lib64/libcrypto.so.*", "/lib64/libcrypto.so.*",
             "/usr/lib/libcrypto.so.*")
SYSTEM_CNF = ("/etc/ssl/openssl.cnf", "/etc/pki/tls/openssl.cnf", "/etc/crypto-policies/back-ends/opensslcnf.config")
MIN_BITS = {0: 0, 1: 80, 2: 112, 3: 128, 4: 192, 5: 256}
OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
# Suites an assessor rejects by name (no encryption, export grade, RC4, DES/3DES, anonymous, MD5).
_WEAK = re.compile(r"NULL|EXP|RC4|DES|ADH|AECDH|MD5|ANON", re.I)
_SECLEVEL = re.compile(r"@SECLEVEL=(\d)")


@dataclass(frozen=True)
class OpenSSL:
    major: Optional[int]  # 3 for libcrypto.so.3, 1 for libcrypto.so.1.1; None when no library was found
    default_level: int
    evidence: tuple[Evidence, ...]


def openssl(ctx: ProbeContext) -> OpenSSL:
    """The host's OpenSSL: its major version and its default security level (cached per run)."""

    def load() -> OpenSSL:
        ev: list[Evidence] = []
        libs = [p for pattern in LIB_GLOBS for p in ctx.host.glob(pattern) if re.search(r"\.so\.[0-9.]+$", p)]
        lib = next((p for p in libs if p.endswith(".so.3")), None) or next(iter(libs), None)
        major = None if lib is None else (3 if re.search(r"\.so\.3$", lib) else 1)
        level, how = 1, "upstream default 1 (no library build flag found)"
        if lib is not None:
            flags = _build_level(ctx, lib)
            if flags is not None:
                level, how = flags, f"{lib}: built with -DOPENSSL_TLS_SECURITY_LEVEL={flags}"
        for cnf in SYSTEM_CNF:
            text = ctx.host.read_optional(cnf) or ""
            for number, raw in enumerate(text.splitlines(), 1):
                line = raw.split("#", 1)[0]
                m = _SECLEVEL.search(line) if re.match(r"\s*CipherString\s*=", line) else None
                if m:
                    level, how = int(m.group(1)), f"{cnf}:{number}: {raw.strip()}"
        ev.append(evidence(lib or "libcrypto", f"OpenSSL {major or 'unknown'}; default security level {level}: "
                           + how))
        return OpenSSL(major, level, tuple(ev))

    return ctx.cached(("openssl",), load)


def _build_level(ctx: ProbeContext, lib: str) -> Optional[int]:
    """-DOPENSSL_TLS_SECURITY_LEVEL=N from libcrypto's compiler-flags string (OpenSSL_version(OPENSSL_CFLAGS))."""
    try:
        with open(ctx.host.real_path(lib), "rb") as fh:
            data = fh.read(16 << 20)
    except OSError:
        return None
    m = re.search(rb"-DOPENSSL_TLS_SECURITY_LEVEL=(\d)", data)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Offer:
    configured: tuple[str, ...]
    protocols: tuple[str, ...]  # what a handshake can actually negotiate
    level: int
    weak_protocols: tuple[str, ...]
    weak_ciphers: tuple[str, ...]  # TLS 1.2-and-below suites offered that an assessor rejects
    refused: tuple[str, ...]  # configured but refused by OpenSSL at this level


def offer(lib: OpenSSL, protocols: list[str], cipher_string: str) -> Offer:
    """The protocols and weak suites a server with these settings offers (see the module docstring)."""
    found = _SECLEVEL.findall(cipher_string)
    level = int(found[-1]) if found else lib.default_level
    usable = []
    for proto in protocols:
        if proto == "SSLv2" or (proto == "SSLv3" and lib.major == 3):
            continue  # no OpenSSL since 1.1 has SSLv2; 3.x builds leave SSLv3 out unless enable-ssl3
        if lib.major == 3 and proto in OLD_PROTOCOLS and level > 0:
            continue
        usable.append(proto)
    weak: list[str] = []
    if any(p in usable for p in ("TLSv1", "TLSv1.1", "TLSv1.2")):
        for suite in expand(cipher_string):
            if suite.get("protocol") == "TLSv1.3" or not _allowed(suite, level):
                continue
            if _WEAK.search(suite["name"]) or suite.get("auth") == "auth-null" or suite.get("digest") == "md5":
                weak.append(suite["name"])
    return Offer(tuple(protocols), tuple(usable), level, tuple(p for p in usable if p in OLD_PROTOCOLS),
                 tuple(dict.fromkeys(weak)), tuple(p for p in protocols if p not in usable))


def expand(cipher_string: str) -> list[dict[str, Any]]:
    """The suites OpenSSL makes of a cipher string (`openssl ciphers -v`), each as Python's ssl describes it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(cipher_string)
    except ssl.SSLError:
        raise ProbeError(f"OpenSSL makes no cipher of {cipher_string!r}; the server would not start with it",
                         f"OpenSSL 无法由 {cipher_string!r} 得到任何密码套件，服务器无法以此启动") from None
    return [dict(c) for c in context.get_ciphers()]


def _allowed(suite: dict[str, Any], level: int) -> bool:
    if level <= 0:
        return True
    if int(suite.get("strength_bits") or 0) < MIN_BITS.get(level, 256):
        return False
    if suite.get("auth") == "auth-null" or suite.get("digest") == "md5":
        return False
    if level >= 3 and suite.get("kea") not in ("kx-dhe", "kx-ecdhe", "kx-dhe-psk", "kx-ecdhe-psk"):
        return False
    return True
