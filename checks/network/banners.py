"""Banner grabbing and plaintext-protocol recognition (read-only: connect, read, at most one harmless request).

`grab(host, port)` connects, waits briefly for the server to speak first, and classifies what it said
(SSH, FTP, SMTP, telnet negotiation, MySQL greeting, VNC RFB...). Servers that wait for the client are left
to the protocol probes (HTTP, TLS, Redis...).
"""
from __future__ import annotations

import contextlib
import re
import socket
import struct
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Optional

from .findings import HTTPInfo

READ_LIMIT = 4096
IAC = 0xFF


class ProbeFailed(Exception):
    """A probe could not decide (connection refused/reset, timeout, unparsable answer); str() says why."""


@dataclass
class Banner:
    raw: bytes
    text: str  # printable rendering, capped
    service: Optional[str]  # canonical guess from the banner alone
    product: Optional[str] = None
    version: Optional[str] = None
    starttls: Optional[bool] = None  # in-band TLS upgrade offered (MySQL CLIENT_SSL); None: not applicable


def connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise ProbeFailed(f"connect to {host}:{port} timed out after {timeout:g}s") from None
    except OSError as exc:
        raise ProbeFailed(f"connect to {host}:{port} failed: {exc.strerror or exc}") from None


def recv_exact(sock: socket.socket, n: int, closed: Optional[str] = None) -> bytes:
    """Exactly `n` bytes of `sock`. If the peer closes first: ProbeFailed(closed) when `closed` is given,
    else the fewer bytes that came (for callers that take a short read as it is)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            if closed is not None:
                raise ProbeFailed(closed)
            break
        data += chunk
    return data


def recv_some(sock: socket.socket, limit: int = READ_LIMIT, wait: float = 1.0, done=None) -> bytes:
    """Read what arrives within `wait` seconds of the last byte (at most `limit`), or until `done(data)`."""
    sock.settimeout(wait)
    data = b""
    while len(data) < limit and not (done and data and done(data)):
        try:
            chunk = sock.recv(limit - len(data))
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if b"\n" in chunk and not data.startswith(bytes([IAC])):
            sock.settimeout(0.1)  # a line arrived: wait only briefly for more
    return data


def printable(data: bytes, limit: int = 300) -> str:
    text = "".join(chr(b) if 32 <= b < 127 or b in (9, 10, 13) else f"\\x{b:02x}" for b in data[:limit])
    return text.strip() + ("..." if len(data) > limit else "")


def _strip_telnet(data: bytes) -> tuple[bytes, bool]:
    """Remove telnet IAC negotiation; True if there was any."""
    out, i, seen = bytearray(), 0, False
    while i < len(data):
        if data[i] == IAC and i + 1 < len(data):
            seen = True
            cmd = data[i + 1]
            if cmd in (251, 252, 253, 254) and i + 2 < len(data):  # WILL WONT DO DONT <option>
                i += 3
                continue
            if cmd == 250:  # SB ... IAC SE
                end = data.find(bytes([IAC, 240]), i)
                i = end + 2 if end >= 0 else len(data)
                continue
            i += 2
            continue
        out.append(data[i])
        i += 1
    return bytes(out), seen


def parse_mysql_greeting(data: bytes) -> Optional[Banner]:
    """MySQL/MariaDB initial handshake (protocol 10): version string and whether the server offers TLS."""
    if len(data) < 8 or data[4] != 10:
        return None
    length = int.from_bytes(data[:3], "little")
    body = data[4:4 + length]
    end = body.find(b"\x00", 1)
    if end < 0:
        return None
    version = body[1:end].decode("latin-1")
    pos = end + 1 + 4 + 8 + 1  # thread id, auth-plugin-data part 1, filler
    if len(body) < pos + 2:
        return None
    caps = struct.unpack("<H", body[pos:pos + 2])[0]
    ssl = bool(caps & 0x0800)  # CLIENT_SSL
    product = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    if product == "MariaDB" and version.startswith("5.5.5-"):
        # MariaDB 10+ prefixes "5.5.5-" to its version on the wire for old MySQL replicas; its clients strip it
        # (SELECT VERSION() says 10.x): the real version follows
        version = version[len("5.5.5-"):]
    text = f"{product} {version} (protocol 10, ssl={'yes' if ssl else 'no'})"
    return Banner(raw=data, text=text, service="mysql", product=product, version=version, starttls=ssl)


def classify(data: bytes) -> Banner:
    if not data:
        return Banner(raw=data, text="", service=None)
    mysql = parse_mysql_greeting(data)
    if mysql:
        return mysql
    if data.startswith(b"SSH-"):
        line = data.split(b"\n", 1)[0].strip().decode("latin-1")
        m = re.match(r"SSH-[\d.]+-(\S+)", line)
        software = m.group(1) if m else None
        product, version = _split_software(software)
        return Banner(raw=data, text=line, service="ssh", product=product, version=version)
    if data.startswith(b"RFB "):
        return Banner(raw=data, text=printable(data[:12]), service="vnc", product="VNC",
                      version=data[4:11].decode("latin-1"))
    stripped, negotiated = _strip_telnet(data)
    if negotiated:
        return Banner(raw=data, text=printable(stripped) or "(telnet option negotiation)", service="telnet")
    text = printable(data)
    if re.match(r"^220[ -]", text):
        service = "smtp" if re.search(r"smtp|esmtp|postfix|exim|sendmail", text, re.I) else "ftp"
        m = re.search(r"\(?(vsFTPd|ProFTPD|Pure-FTPd|FileZilla Server|Microsoft FTP Service)[ )]*([\w.]+)?", text, re.I)
        return Banner(raw=data, text=text, service=service, product=m.group(1) if m else None,
                      version=m.group(2) if m else None)
    if text.lower().startswith(("login:", "username:", "user name:", "password:")):
        return Banner(raw=data, text=text, service="telnet")
    return Banner(raw=data, text=text, service=None)


def _split_software(software: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    if not software:
        return None, None
    m = re.match(r"([A-Za-z][\w-]*?)[_-]v?(\d[\w.]*)", software)
    if m:
        return ("OpenSSH" if m.group(1).lower() == "openssh" else m.group(1)), m.group(2)
    return software, None


def grab(host: str, port: int, timeout: float = 3.0, wait: float = 1.0) -> Banner:
    """Connect and read what the server sends first (nothing is sent). Raises ProbeFailed."""
    with connect(host, port, timeout) as sock:
        return classify(recv_some(sock, wait=wait))


# ---- HTTP ------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.title: Optional[str] = None
        self._in_title = False
        self.password = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag == "input" and any(k == "type" and (v or "").lower() == "password" for k, v in attrs):
            self.password = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title and data.strip():
            self.title = (self.title or "") + data.strip()


def parse_http_response(data: bytes) -> HTTPInfo:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", lines[0])
    if not m:
        raise ProbeFailed(f"not an HTTP response: {printable(data[:60])!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    page = _Page()
    with contextlib.suppress(Exception):  # malformed HTML: keep what was parsed
        page.feed(body.decode("utf-8", "replace"))
    return HTTPInfo(status=int(m.group(1)), server=headers.get("server"), title=page.title,
                    login_form=page.password,
                    basic_auth=headers.get("www-authenticate", "").lower().startswith("basic"),
                    location=headers.get("location"))


def _http_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    return m is not None and len(body) >= int(m.group(1))


def http_get(host: str, port: int, path: str = "/", timeout: float = 3.0, sock: Optional[socket.socket] = None,
             limit: int = 65536, headers: Optional[dict[str, str]] = None) -> tuple[bytes, HTTPInfo]:
    """GET `path` over plain TCP (or the given socket, e.g. TLS). Returns raw response (capped) and parsed info.
    `headers`: extra request headers (the opt-in Basic-auth probe's Authorization; credentials.py)."""
    own = sock is None
    s = sock or connect(host, port, timeout)
    try:
        s.settimeout(timeout)
        hostname = f"[{host}]" if ":" in host else host
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {hostname}\r\nUser-Agent: sentinel-scan\r\n"
                  f"Accept: */*\r\n{extra}Connection: close\r\n\r\n".encode())
        data = b""
        while len(data) < limit:
            try:
                chunk = s.recv(min(16384, limit - len(data)))
            except TimeoutError:
                if data:
                    break
                raise ProbeFailed(f"no HTTP answer from {host}:{port} within {timeout:g}s") from None
            except OSError as exc:
                if data:
                    break
                raise ProbeFailed(f"HTTP read from {host}:{port} failed: {exc}") from None
            if not chunk:
                break
            data += chunk
            if _http_complete(data):
                break  # Content-Length reached: a server ignoring `Connection: close` does not cost a timeout
    finally:
        if own:
            s.close()
    if not data:
        raise ProbeFailed(f"{host}:{port} closed the connection without an HTTP answer")
    return data, parse_http_response(data)
