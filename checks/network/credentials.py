"""Opt-in credential probes (issue 19 item 4): a short, fixed list of empty or default credentials.

Never on by default (`ScanOptions.credential_probes`), and never a guessing run: one attempt per listed
credential per port, at most MAX_ATTEMPTS_PER_PORT per port, PAUSE seconds apart, far below any lockout
threshold (pam_faillock's default deny=3 counts per account: each account here is tried once). Every attempt
is written to the finding's evidence and to the `sentinel.audit` logger.

The lists are the whole of it: CREDENTIALS (anonymous FTP, MySQL/MariaDB `root` with an empty password, SNMP
community `private`; `public` is probed in every scan) and BASIC_AUTH_CONSOLES (HTTP Basic-auth consoles: the
site root and Tomcat's manager paths, two default pairs each). HTML form logins are not tried: there is no
generic way to tell a refusal from a success or a lockout on an arbitrary form, nor to know its threshold.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from .banners import ProbeFailed, connect, http_get, printable, recv_exact, recv_some
from .findings import CredentialAttempt, HTTPInfo

audit_log = logging.getLogger("sentinel.audit")

CREDENTIALS: dict[str, list[tuple[str, str]]] = {
    "ftp": [("anonymous", "sentinel@example.invalid")],
    "mysql": [("root", "")],
    "snmp": [("private", "")],  # (community, unused)
}
# HTTP Basic-auth consoles (issue 19): the paths looked at, in order, without credentials (the first one that
# answers 401 with `WWW-Authenticate: Basic` is the port's console), and the default pairs tried there. Two
# pairs per path, so the per-port cap below is also the whole list: Tomcat's LockOutRealm locks a user after 5
# failures, pam_faillock (devices' PAM) after 3 per account; here no account gets more than 2 per scan.
BASIC_AUTH_CONSOLES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("/", "Basic-auth console at the site root", [("admin", "admin"), ("admin", "")]),
    ("/manager/html", "Apache Tomcat Manager", [("tomcat", "tomcat"), ("admin", "admin")]),
    ("/host-manager/html", "Apache Tomcat Host Manager", [("tomcat", "tomcat"), ("admin", "admin")]),
]
MAX_ATTEMPTS_PER_PORT = 2
PAUSE = 1.0
REALM_RE = re.compile(r'^www-authenticate:\s*basic\b[^\r\n]*?realm="([^"]*)"', re.I | re.M)


def record(host: str, port: int, attempt: CredentialAttempt) -> None:
    audit_log.warning("credential probe %s:%d %s user %r: %s (%s)", host, port, attempt.protocol, attempt.user,
                      "ACCEPTED" if attempt.accepted else "refused", attempt.detail)


def ftp_login(host: str, port: int, user: str, password: str, timeout: float = 3.0) -> CredentialAttempt:
    with connect(host, port, timeout) as sock:
        greeting = recv_some(sock, wait=timeout).decode("latin-1", "replace")
        if not greeting.startswith("220"):
            raise ProbeFailed(f"ftp: no 220 greeting: {printable(greeting.encode()[:60])!r}")

        def say(line: str) -> str:
            sock.sendall(line.encode() + b"\r\n")
            answer = recv_some(sock, wait=timeout).decode("latin-1", "replace").strip()
            if not answer:
                raise ProbeFailed(f"ftp: no answer to {line.split()[0]}")
            return answer.splitlines()[-1]

        answer = say(f"USER {user}")
        if answer.startswith("331"):
            answer = say(f"PASS {password}")
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    accepted = answer.startswith("230")
    return CredentialAttempt(protocol="ftp", user=user, accepted=accepted,
                             detail=f"USER {user} / PASS (documented anonymous password) -> {answer[:80]}")


def _mysql_packet(sock: socket.socket) -> tuple[int, bytes]:
    head = recv_exact(sock, 4, "mysql: connection closed")
    length, seq = int.from_bytes(head[:3], "little"), head[3]
    return seq, recv_exact(sock, length, "mysql: truncated packet")


def _native_password(password: str, salt: bytes) -> bytes:
    if not password:
        return b""  # mysql_native_password: an empty password is an empty response
    # SHA-1 because mysql_native_password is defined with it: we speak the protocol, we keep nothing
    h1 = hashlib.sha1(password.encode()).digest()  # noqa: S324  protocol-defined, see above
    h2 = hashlib.sha1(h1).digest()  # noqa: S324  protocol-defined
    h3 = hashlib.sha1(salt + h2).digest()  # noqa: S324  protocol-defined
    return bytes(a ^ b for a, b in zip(h1, h3, strict=True))  # two 20-byte digests


def mysql_login(host: str, port: int, user: str, password: str, timeout: float = 3.0) -> CredentialAttempt:
    """One HandshakeResponse41 (mysql_native_password); an AuthSwitchRequest is answered once. No query."""
    with connect(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            seq, greet = _mysql_packet(sock)
            if not greet or greet[0] != 10:
                raise ProbeFailed("mysql: not a protocol-10 greeting")
            end = greet.index(b"\x00", 1)
            pos = end + 1 + 4
            salt = greet[pos:pos + 8]
            pos += 8 + 1 + 2 + 1 + 2 + 2
            extra = max(13, greet[pos] - 8) if pos < len(greet) else 13
            pos += 1 + 10
            salt += greet[pos:pos + extra].rstrip(b"\x00")
            caps = 0x0200 | 0x8000 | 0x00080000 | 0x0001  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, LONG_PASSWORD
            auth = _native_password(password, salt[:20])
            body = (struct.pack("<IIB", caps, 1 << 24, 33) + b"\x00" * 23 + user.encode() + b"\x00"
                    + bytes([len(auth)]) + auth + b"mysql_native_password\x00")
            sock.sendall(len(body).to_bytes(3, "little") + bytes([seq + 1]) + body)
            seq, answer = _mysql_packet(sock)
            if answer[:1] == b"\xfe":  # AuthSwitchRequest: plugin name, then its salt
                name_end = answer.index(b"\x00", 1)
                plugin = answer[1:name_end].decode("latin-1")
                new_salt = answer[name_end + 1:].rstrip(b"\x00")
                reply = _native_password(password, new_salt[:20]) if plugin == "mysql_native_password" else b""
                sock.sendall(len(reply).to_bytes(3, "little") + bytes([seq + 1]) + reply)
                seq, answer = _mysql_packet(sock)
        except TimeoutError:
            raise ProbeFailed(f"mysql: no answer from {host}:{port} within {timeout:g}s") from None
        except (OSError, ValueError, IndexError) as exc:
            raise ProbeFailed(f"mysql: bad exchange with {host}:{port}: {exc}") from None
    if answer[:1] == b"\x00":
        return CredentialAttempt(protocol="mysql", user=user, accepted=True,
                                 detail=f"login as {user} with an empty password accepted (OK packet)")
    if answer[:1] == b"\xff":
        message = answer[9:].decode("utf-8", "replace") if answer[3:4] == b"#" else answer[3:].decode(
            "utf-8", "replace")
        return CredentialAttempt(protocol="mysql", user=user, accepted=False,
                                 detail=f"login as {user} with an empty password refused: {message[:100]}")
    raise ProbeFailed(f"mysql: unexpected answer {answer[:1].hex()} to the login")


def snmp_community(host: str, port: int, community: str, timeout: float = 3.0) -> CredentialAttempt:
    from .unauth import snmp

    exposure = snmp(host, port, timeout=timeout, community=community)
    return CredentialAttempt(protocol="snmp", user=community, accepted=exposure.unauthenticated,
                             detail=exposure.detail)


def attempt(protocol: str, host: str, port: int, timeout: float) -> list[CredentialAttempt]:
    """Every listed credential for `protocol` on host:port, PAUSE apart; each one audited. Raises ProbeFailed
    only if not one attempt could be made."""
    def snmp(host: str, port: int, community: str, _password: str, timeout: float) -> CredentialAttempt:
        return snmp_community(host, port, community, timeout)

    logins: dict[str, Callable[[str, int, str, str, float], CredentialAttempt]] = {
        "ftp": ftp_login, "mysql": mysql_login, "snmp": snmp}
    fn = logins.get(protocol)
    if fn is None:
        return []  # a protocol we have no login for: nothing to try
    out: list[CredentialAttempt] = []
    last: Optional[ProbeFailed] = None
    for i, (user, password) in enumerate(CREDENTIALS.get(protocol, [])[:MAX_ATTEMPTS_PER_PORT]):
        if i:
            time.sleep(PAUSE)
        try:
            result = fn(host, port, user, password, timeout)
        except ProbeFailed as exc:
            last = exc
            continue
        record(host, port, result)
        out.append(result)
        if result.accepted:
            break
    if not out and last is not None:
        raise last
    return out


# ---- HTTP Basic-auth consoles ------------------------------------------------------------------------------


def pair_label(user: str, password: str) -> str:
    return f"{user}/{password}" if password else f"{user}/(empty password)"


@dataclass
class BasicAuthOutcome:
    """What the Basic-auth probe of one port found: the console (path, product, realm), every completed
    attempt, and what could not be decided (an unreachable path, an answer neither 401 nor 2xx/3xx)."""

    path: Optional[str] = None
    product: str = ""
    realm: Optional[str] = None
    attempts: list[CredentialAttempt] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _http(host: str, port: int, path: str, timeout: float, over_tls: bool,
          headers: Optional[dict[str, str]] = None) -> tuple[bytes, HTTPInfo]:
    if not over_tls:
        return http_get(host, port, path, timeout, headers=headers)
    from .tls import https_get

    return https_get(host, port, path, timeout, headers=headers)


def http_basic(host: str, port: int, timeout: float, over_tls: bool) -> BasicAuthOutcome:
    """Find the port's Basic-auth console (BASIC_AUTH_CONSOLES, plain GETs) and try its default pairs, at most
    MAX_ATTEMPTS_PER_PORT, PAUSE apart, each audited. 401 is a refusal, 2xx/3xx an acceptance (the server
    stopped asking); any other answer, or none, is undetermined and stays an error, never a refusal."""
    out = BasicAuthOutcome()
    pairs: list[tuple[str, str]] = []
    for path, product, listed in BASIC_AUTH_CONSOLES:
        try:
            raw, info = _http(host, port, path, timeout, over_tls)
        except ProbeFailed as exc:
            out.errors.append(f"GET {path}: {exc}")
            continue
        if info.status == 401 and info.basic_auth:
            m = REALM_RE.search(raw.partition(b"\r\n\r\n")[0].decode("latin-1"))
            out.path, out.product, out.realm, pairs = path, product, m.group(1) if m else None, listed
            break
    if out.path is None:
        return out
    where = f"{out.product}, realm {out.realm!r}" if out.realm is not None else out.product
    for i, (user, password) in enumerate(pairs[:MAX_ATTEMPTS_PER_PORT]):
        if i:
            time.sleep(PAUSE)
        pair = pair_label(user, password)
        what = f"GET {out.path} with Basic {pair} ({where})"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        try:
            _, info = _http(host, port, out.path, timeout, over_tls, headers={"Authorization": f"Basic {token}"})
        except ProbeFailed as exc:  # the request may have reached the server: it counts towards the cap
            out.errors.append(f"{what}: {exc}")
            audit_log.warning("credential probe %s:%d http-basic user %r: undetermined (%s: %s)", host, port,
                              pair, what, exc)
            continue
        if info.status == 401:
            result = CredentialAttempt(protocol="http-basic", user=pair, accepted=False,
                                       detail=f"{what} -> 401: refused")
        elif info.status is not None and 200 <= info.status < 400:
            result = CredentialAttempt(protocol="http-basic", user=pair, accepted=True,
                                       detail=f"{what} -> {info.status}: accepted")
        else:
            out.errors.append(f"{what} -> HTTP {info.status}: neither 401 (refused) nor 2xx/3xx (accepted), "
                              "undetermined")
            audit_log.warning("credential probe %s:%d http-basic user %r: undetermined (%s -> HTTP %s)", host,
                              port, pair, what, info.status)
            continue
        record(host, port, result)
        out.attempts.append(result)
        if result.accepted:
            break
    return out
