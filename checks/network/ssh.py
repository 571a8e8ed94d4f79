"""SSH audit without logging in: the identification banner and the server's KEXINIT algorithm lists.

We read the server's identification line, send our own, and read the server's first binary packet, which
RFC 4253 §7.1 makes its SSH_MSG_KEXINIT (sent in the clear before any key exchange). Then we close: no key
exchange, no authentication attempt.
"""
from __future__ import annotations

import socket
import struct

from .banners import ProbeFailed, connect
from .findings import SSHInfo

CLIENT_ID = b"SSH-2.0-sentinel_scan\r\n"
MSG_KEXINIT = 20
MAX_PACKET = 35000  # RFC 4253 §6.1 minimum a peer must accept; a KEXINIT is far smaller

# Weak per current guidance (RFC 9142 for kex, RFC 8758 for arcfour, OpenSSH deprecations).
WEAK_KEX = {"diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1",
            "gss-group1-sha1-", "gss-group14-sha1-", "gss-gex-sha1-", "rsa1024-sha1", "ecdh-sha2-nistp192"}
WEAK_HOST_KEY = {"ssh-dss", "ssh-rsa1", "x509v3-sign-dss"}
WEAK_CIPHERS_PREFIX = ("arcfour", "des", "3des", "blowfish", "cast128", "idea", "rc4", "none")
# Weak MACs: MD5-based, tags truncated to 96 or 32 bits, and none. The 作业指导书 (HNJX-2025-CPZDS, 8.1.2.2 a /
# 8.1.4.7 a: "校验技术或密码技术") names no algorithm list, so the finding an assessor signs comes from the
# vulnerability scanners used in 测评 (Nessus plugin 71049 "SSH Weak MAC Algorithms Enabled": MD5 or 96-bit
# MACs). umac-64 (RFC 4418, 64-bit tag) and hmac-sha1 (HMAC does not rest on SHA-1's collision resistance,
# RFC 6194 §3.2) are not in it: both are in stock OpenSSH's defaults, and flagging one but not the other
# was incoherent. See docs/network.md.
WEAK_MACS = {"hmac-md5", "hmac-md5-96", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com",
             "hmac-sha1-96", "hmac-sha1-96-etm@openssh.com", "umac-32@openssh.com", "none"}


def _weak_cipher(name: str) -> bool:
    return name.startswith(WEAK_CIPHERS_PREFIX) or name.endswith("-cbc") or "-cbc@" in name


def _weak_kex(name: str) -> bool:
    return name in WEAK_KEX or any(name.startswith(p) for p in WEAK_KEX if p.endswith("-"))


def _read_line(sock: socket.socket, limit: int = 255) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        ch = sock.recv(1)
        if not ch:
            break
        line += ch
        if len(line) > limit:
            break
    return line


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ProbeFailed(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def parse_kexinit(payload: bytes) -> dict[str, list[str]]:
    """Name-lists of an SSH_MSG_KEXINIT payload (message byte included)."""
    if not payload or payload[0] != MSG_KEXINIT:
        raise ProbeFailed(f"first packet is message {payload[0] if payload else 'none'}, not KEXINIT")
    pos = 1 + 16  # cookie
    names = ["kex", "host_key", "ciphers_c2s", "ciphers_s2c", "macs_c2s", "macs_s2c", "compression_c2s",
             "compression_s2c", "languages_c2s", "languages_s2c"]
    out: dict[str, list[str]] = {}
    for name in names:
        if pos + 4 > len(payload):
            raise ProbeFailed("truncated KEXINIT")
        (length,) = struct.unpack(">I", payload[pos:pos + 4])
        pos += 4
        if pos + length > len(payload):
            raise ProbeFailed("truncated KEXINIT name-list")
        text = payload[pos:pos + length].decode("ascii", "replace")
        out[name] = [n for n in text.split(",") if n]
        pos += length
    return out


def audit(host: str, port: int, timeout: float = 3.0) -> SSHInfo:
    """Banner + KEXINIT of the SSH server at host:port. Raises ProbeFailed."""
    with connect(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            # Servers may send other lines before the identification string (RFC 4253 §4.2).
            for _ in range(20):
                line = _read_line(sock)
                if not line:
                    raise ProbeFailed(f"{host}:{port} closed before sending an SSH identification")
                if line.startswith(b"SSH-"):
                    break
            else:
                raise ProbeFailed(f"{host}:{port} sent no SSH identification line")
            banner = line.strip().decode("latin-1")
            parts = banner.split("-", 2)
            if len(parts) < 3:
                raise ProbeFailed(f"malformed SSH identification {banner!r}")
            protocol, software = parts[1], parts[2].split(" ", 1)[0]
            info = SSHInfo(banner=banner, protocol=protocol, software=software)
            if protocol.startswith("1.") and protocol != "1.99":
                return info  # SSH-1 only: no KEXINIT to read, the protocol itself is the finding
            sock.sendall(CLIENT_ID)
            (length,) = struct.unpack(">I", _recv_exact(sock, 4))
            if not 5 <= length <= MAX_PACKET:
                raise ProbeFailed(f"implausible SSH packet length {length}")
            packet = _recv_exact(sock, length)
        except socket.timeout:
            raise ProbeFailed(f"{host}:{port}: SSH read timed out after {timeout:g}s") from None
        except OSError as exc:
            raise ProbeFailed(f"{host}:{port}: SSH read failed: {exc.strerror or exc}") from None
    padding = packet[0]
    lists = parse_kexinit(packet[1:length - padding])
    info.kex = lists["kex"]
    info.host_key = lists["host_key"]
    info.ciphers = lists["ciphers_c2s"]
    info.macs = lists["macs_c2s"]
    info.compression = lists["compression_c2s"]
    info.weak_kex = [k for k in info.kex if _weak_kex(k)]
    info.weak_host_key = [k for k in info.host_key if k in WEAK_HOST_KEY]
    ciphers = list(dict.fromkeys(lists["ciphers_c2s"] + lists["ciphers_s2c"]))
    info.weak_ciphers = [c for c in ciphers if _weak_cipher(c)]
    macs = list(dict.fromkeys(lists["macs_c2s"] + lists["macs_s2c"]))
    info.weak_macs = [m for m in macs if m in WEAK_MACS]
    return info
