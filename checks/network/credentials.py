"""Opt-in credential probes (issue 19 item 4): a short, fixed list of empty or default credentials.

Never on by default (`ScanOptions.credential_probes`), and never a guessing run: one attempt per listed
credential per port, at most MAX_ATTEMPTS_PER_PORT per port, PAUSE seconds apart, far below any lockout
threshold (pam_faillock's default deny=3 counts per account: each account here is tried once). Every attempt
is written to the finding's evidence and to the `sentinel.audit` logger.

The list (CREDENTIALS) is the whole of it: anonymous FTP, MySQL/MariaDB `root` with an empty password, SNMP
community `private` (`public` is probed in every scan). Default passwords of management consoles are not
tried: each product has its own, and a wrong one counts towards that console's lockout.
"""
from __future__ import annotations

import hashlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Optional

from .banners import ProbeFailed, connect, printable, recv_exact, recv_some
from .findings import CredentialAttempt

audit_log = logging.getLogger("sentinel.audit")

CREDENTIALS: dict[str, list[tuple[str, str]]] = {
    "ftp": [("anonymous", "sentinel@example.invalid")],
    "mysql": [("root", "")],
    "snmp": [("private", "")],  # (community, unused)
}
MAX_ATTEMPTS_PER_PORT = 2
PAUSE = 1.0


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
    import time

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
