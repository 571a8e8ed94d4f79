"""Read-only probes for data services reachable without authentication (N4) and SNMP's default community (N3).

Each probe sends one or two harmless, read-only requests (Redis PING/INFO, MongoDB listDatabases, ES `GET /`,
memcached `stats` over TCP and UDP, Docker `GET /version`, ZooKeeper `ruok`/`srvr`, SNMP GET sysDescr.0 with
community `public`, PostgreSQL SSLRequest + a password-less startup message) and reports whether data came
back without credentials. No password is ever guessed: the opt-in default-credential mode of issue 19 item 4 is
not implemented (see docs/network.md).
"""
from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional

from .banners import ProbeFailed, connect, http_get, printable, recv_exact, recv_some
from .findings import Exposure


def _talk(host: str, port: int, payload: bytes, timeout: float, wait: float = 1.0, done=None) -> bytes:
    with connect(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(payload)
        except OSError as exc:
            raise ProbeFailed(f"send to {host}:{port} failed: {exc.strerror or exc}") from None
        data = recv_some(sock, wait=max(wait, timeout / 2), done=done)
    if not data:
        raise ProbeFailed(f"{host}:{port} sent no answer")
    return data


# ---- Redis --------------------------------------------------------------------------------------------


def _resp_complete(data: bytes) -> bool:
    """One whole RESP reply: a simple line, or a bulk string with all its bytes."""
    if not data.endswith(b"\r\n"):
        return False
    if data[:1] != b"$":
        return True
    head, _, rest = data.partition(b"\r\n")
    try:
        return len(rest) >= int(head[1:]) + 2
    except ValueError:
        return True


def redis(host: str, port: int, timeout: float = 3.0) -> Exposure:
    answer = _talk(host, port, b"PING\r\n", timeout, done=_resp_complete).decode("latin-1", "replace")
    if answer.startswith("+PONG"):
        info = _talk(host, port, b"INFO server\r\n", timeout, done=_resp_complete).decode("latin-1", "replace")
        version = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                        if line.startswith("redis_version:")), None)
        return Exposure(protocol="redis", unauthenticated=True, version=version,
                        detail="PING answered +PONG without AUTH"
                        + (f"; INFO: redis_version {version}" if version else ""))
    if answer.startswith(("-NOAUTH", "-ERR operation not permitted", "-WRONGPASS")):
        return Exposure(protocol="redis", unauthenticated=False, detail=f"PING refused: {answer.strip()[:80]}")
    if answer.startswith("-DENIED"):
        return Exposure(protocol="redis", unauthenticated=False,
                        detail="protected mode: remote clients refused without a password")
    raise ProbeFailed(f"redis: unexpected answer to PING: {printable(answer.encode()[:80])!r}")


# ---- MongoDB ------------------------------------------------------------------------------------------


def bson_encode(doc: dict) -> bytes:
    body = b""
    for key, value in doc.items():
        name = key.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + name + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, float):
            body += b"\x01" + name + struct.pack("<d", value)
        elif isinstance(value, str):
            raw = value.encode() + b"\x00"
            body += b"\x02" + name + struct.pack("<i", len(raw)) + raw
        elif isinstance(value, dict):
            body += b"\x03" + name + bson_encode(value)
        elif isinstance(value, list):
            body += b"\x04" + name + bson_encode({str(i): v for i, v in enumerate(value)})
        else:
            raise TypeError(f"bson_encode: unsupported {type(value).__name__}")
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def bson_decode(data: bytes, pos: int = 0) -> tuple[dict, int]:
    (length,) = struct.unpack_from("<i", data, pos)
    end = pos + length
    pos += 4
    out: dict[str, Any] = {}
    while pos < end - 1:
        kind = data[pos]
        pos += 1
        nul = data.index(b"\x00", pos)
        key = data[pos:nul].decode("utf-8", "replace")
        pos = nul + 1
        if kind == 0x01:
            out[key] = struct.unpack_from("<d", data, pos)[0]
            pos += 8
        elif kind in (0x02, 0x0D, 0x0E):
            (n,) = struct.unpack_from("<i", data, pos)
            out[key] = data[pos + 4:pos + 3 + n].decode("utf-8", "replace")
            pos += 4 + n
        elif kind in (0x03, 0x04):
            sub, pos = bson_decode(data, pos)
            out[key] = list(sub.values()) if kind == 0x04 else sub
        elif kind == 0x05:
            (n,) = struct.unpack_from("<i", data, pos)
            out[key] = data[pos + 5:pos + 5 + n]
            pos += 5 + n
        elif kind == 0x07:
            out[key] = data[pos:pos + 12].hex()
            pos += 12
        elif kind == 0x08:
            out[key] = data[pos] == 1
            pos += 1
        elif kind in (0x09, 0x11, 0x12):
            out[key] = struct.unpack_from("<q", data, pos)[0]
            pos += 8
        elif kind == 0x10:
            out[key] = struct.unpack_from("<i", data, pos)[0]
            pos += 4
        elif kind in (0x0A, 0x06, 0xFF, 0x7F):
            out[key] = None
        elif kind == 0x13:
            out[key] = data[pos:pos + 16].hex()
            pos += 16
        else:
            raise ProbeFailed(f"mongodb: unsupported BSON type {kind:#x} in reply")
    return out, end


def _mongo_reply(sock: socket.socket) -> dict:
    head = recv_exact(sock, 16, "mongodb: connection closed")
    length, _, _, opcode = struct.unpack("<iiii", head)
    if not 16 < length <= 16 * 1024 * 1024:
        raise ProbeFailed(f"mongodb: implausible reply length {length}")
    body = recv_exact(sock, length - 16, "mongodb: truncated reply")
    if opcode == 1:  # OP_REPLY: flags, cursorID, startingFrom, numberReturned, documents
        return bson_decode(body, 20)[0]
    if opcode == 2013:  # OP_MSG: flagBits, section kind 0, document
        return bson_decode(body, 5)[0]
    raise ProbeFailed(f"mongodb: unexpected reply opcode {opcode}")


def _op_query(command: dict) -> bytes:
    body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + bson_encode(command)
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2004) + body


def _op_msg(command: dict) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson_encode({**command, "$db": "admin"})
    return struct.pack("<iiii", 16 + len(body), 2, 0, 2013) + body


def mongodb(host: str, port: int, timeout: float = 3.0) -> Exposure:
    with connect(host, port, timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(_op_query({"isMaster": 1}))
            hello = _mongo_reply(sock)
            modern = int(hello.get("maxWireVersion", 0)) >= 6
            sock.sendall((_op_msg if modern else _op_query)({"buildInfo": 1}))
            build = _mongo_reply(sock)
            # listDatabases needs the listDatabases privilege: it fails when authentication is enforced.
            sock.sendall((_op_msg if modern else _op_query)({"listDatabases": 1, "nameOnly": True}))
            listing = _mongo_reply(sock)
        except TimeoutError:
            raise ProbeFailed(f"mongodb: no answer from {host}:{port} within {timeout:g}s") from None
        except (OSError, struct.error, ValueError) as exc:
            raise ProbeFailed(f"mongodb: bad exchange with {host}:{port}: {exc}") from None
    version = build.get("version") if isinstance(build.get("version"), str) else None
    if listing.get("ok") in (1, 1.0, True):
        dbs = listing.get("databases", [])
        names = [d.get("name") for d in (dbs.values() if isinstance(dbs, dict) else dbs) if isinstance(d, dict)]
        return Exposure(protocol="mongodb", unauthenticated=True, version=version,
                        detail=f"listDatabases answered without credentials: {', '.join(map(str, names)) or 'none'}")
    return Exposure(protocol="mongodb", unauthenticated=False, version=version,
                    detail=f"listDatabases refused: {listing.get('errmsg') or listing.get('codeName') or 'not ok'}")


# ---- HTTP APIs: Elasticsearch, Docker ---------------------------------------------------------------


def _json_api(name: str, host: str, port: int, path: str, timeout: float, version_keys: tuple[str, ...],
              use_tls: bool = False) -> Exposure:
    if use_tls:
        from .tls import https_get

        raw, info = https_get(host, port, path, timeout, what=f"{name}: ")
    else:
        raw, info = http_get(host, port, path, timeout)
    if info.status in (401, 403):
        return Exposure(protocol=name, unauthenticated=False, detail=f"GET {path} -> HTTP {info.status}")
    if info.status != 200:
        raise ProbeFailed(f"{name}: GET {path} -> HTTP {info.status}")
    body = raw.partition(b"\r\n\r\n")[2]
    try:
        doc = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise ProbeFailed(f"{name}: GET {path} answered 200 but not JSON: {printable(body[:60])!r}") from None
    version = doc
    for key in version_keys:
        version = version.get(key) if isinstance(version, dict) else None
    return Exposure(protocol=name, unauthenticated=True, version=str(version) if version else None,
                    detail=f"GET {path} -> HTTP 200 without credentials" + (f"; version {version}" if version else ""))


def elasticsearch(host: str, port: int, timeout: float = 3.0, use_tls: bool = False) -> Exposure:
    return _json_api("elasticsearch", host, port, "/", timeout, ("version", "number"), use_tls)


def docker(host: str, port: int, timeout: float = 3.0, use_tls: bool = False) -> Exposure:
    """Docker Engine API. Over TLS without a client certificate: a 200 means the daemon does not verify clients."""
    return _json_api("docker", host, port, "/version", timeout, ("Version",), use_tls)


# ---- memcached, ZooKeeper ----------------------------------------------------------------------------


def memcached(host: str, port: int, timeout: float = 3.0) -> Exposure:
    answer = _talk(host, port, b"stats\r\n", timeout,
                   done=lambda d: d.endswith(b"END\r\n") or (d.endswith(b"\r\n") and not d.startswith(b"STAT"))
                   ).decode("latin-1", "replace")
    if answer.startswith("STAT "):
        version = next((line.split()[2] for line in answer.splitlines()
                        if line.startswith("STAT version ") and len(line.split()) > 2), None)
        return Exposure(protocol="memcached", unauthenticated=True, version=version,
                        detail="stats answered without authentication" + (f"; version {version}" if version else ""))
    if "unauthenticated" in answer.lower() or answer.startswith(("CLIENT_ERROR", "SERVER_ERROR")):
        return Exposure(protocol="memcached", unauthenticated=False, detail=f"stats refused: {answer.strip()[:80]}")
    raise ProbeFailed(f"memcached: unexpected answer to stats: {printable(answer.encode()[:80])!r}")


def zookeeper(host: str, port: int, timeout: float = 3.0) -> Exposure:
    answer = _talk(host, port, b"srvr", timeout).decode("latin-1", "replace")
    if answer.startswith("Zookeeper version:"):
        version = answer.splitlines()[0].split(":", 1)[1].strip().split(",")[0].split("-")[0]
        return Exposure(protocol="zookeeper", unauthenticated=True, version=version,
                        detail=f"4-letter command srvr answered without authentication: {answer.splitlines()[0]}")
    if "not in the whitelist" in answer or "not executed" in answer:
        ruok = _talk(host, port, b"ruok", timeout).decode("latin-1", "replace")
        return Exposure(protocol="zookeeper", unauthenticated=False,
                        detail=f"srvr disabled by 4lw.commands.whitelist; ruok -> {ruok.strip()[:20] or 'nothing'}")
    raise ProbeFailed(f"zookeeper: unexpected answer to srvr: {printable(answer.encode()[:80])!r}")


# ---- SNMP ---------------------------------------------------------------------------------------------

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
# Waits of the successive SNMP attempts (seconds, scaled down to the probe timeout): a busy agent (nmap's UDP
# payloads, a slow MIB walk of another manager) answers late, a lossy path drops one datagram; three sends
# with growing waits catch both and keep a silent port bounded at 1 + 2 + 4 = 7 s.
SNMP_WAITS = (1.0, 2.0, 4.0)


def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _ber(0x06, out)


def snmp_get_request(community: str, oid: str = SYS_DESCR, request_id: Optional[int] = None) -> bytes:
    rid = request_id if request_id is not None else int.from_bytes(os.urandom(3), "big")
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _ber(0xA0, _ber_int(rid) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(1) + _ber(0x04, community.encode()) + pdu)


def snmpv3_discovery_request(msg_id: int) -> bytes:
    """RFC 3414 §4 engine-ID discovery: noAuthNoPriv, empty user and engine, an empty GetRequest.

    Any SNMPv3 agent answers it with a Report (usmStatsUnknownEngineIDs) whatever its communities and users:
    proof that the agent is there and answering, so silence to a v2c community means that community was dropped.
    """
    glob = _ber(0x30, _ber_int(msg_id) + _ber_int(65507) + _ber(0x04, b"\x04") + _ber_int(3))
    usm = _ber(0x30, _ber(0x04, b"") + _ber_int(0) + _ber_int(0) + _ber(0x04, b"") + _ber(0x04, b"")
               + _ber(0x04, b""))
    pdu = _ber(0xA0, _ber_int(msg_id) + _ber_int(0) + _ber_int(0) + _ber(0x30, b""))
    scoped = _ber(0x30, _ber(0x04, b"") + _ber(0x04, b"") + pdu)
    return _ber(0x30, _ber_int(3) + glob + _ber(0x04, usm) + scoped)


def ber_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the TLV at `pos`."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    return tag, data[pos:pos + length], pos + length


def _snmp_version(data: bytes) -> int:
    tag, msg, _ = ber_read(data, 0)
    if tag != 0x30:
        raise ProbeFailed("snmp: answer is not a BER sequence")
    tag, version, _ = ber_read(msg, 0)
    if tag != 0x02:
        raise ProbeFailed("snmp: answer has no version")
    return int.from_bytes(version, "big")


def parse_snmpv3_report(data: bytes) -> tuple[int, str]:
    """(msgID, authoritative engine ID as hex) of an SNMPv3 answer carrying a Report PDU."""
    _, msg, _ = ber_read(data, 0)
    _, _, pos = ber_read(msg, 0)  # version 3
    _, glob, pos = ber_read(msg, pos)
    _, msg_id, _ = ber_read(glob, 0)
    _, secparams, pos = ber_read(msg, pos)
    _, usm, _ = ber_read(secparams, 0)
    _, engine, _ = ber_read(usm, 0)
    tag, scoped, _ = ber_read(msg, pos)
    if tag != 0x30:
        raise ProbeFailed("snmp: encrypted or malformed scoped PDU in a v3 answer")
    _, _, q = ber_read(scoped, 0)  # contextEngineID
    _, _, q = ber_read(scoped, q)  # contextName
    pdu_tag = scoped[q]
    if pdu_tag not in (0xA8, 0xA2):  # Report, or a Response from an agent that answers discovery directly
        raise ProbeFailed(f"snmp: v3 answer PDU tag {pdu_tag:#x} is not a Report")
    return int.from_bytes(msg_id, "big"), engine.hex()


def parse_snmp_response(data: bytes) -> tuple[str, int, Any]:
    """(community, error_status, first varbind value) of a GetResponse."""
    tag, msg, _ = ber_read(data, 0)
    if tag != 0x30:
        raise ProbeFailed("snmp: answer is not a BER sequence")
    _, _, pos = ber_read(msg, 0)  # version
    _, community, pos = ber_read(msg, pos)
    tag, pdu, _ = ber_read(msg, pos)
    if tag != 0xA2:
        raise ProbeFailed(f"snmp: answer PDU tag {tag:#x} is not GetResponse")
    _, _, p = ber_read(pdu, 0)  # request id
    _, err, p = ber_read(pdu, p)
    _, _, p = ber_read(pdu, p)  # error index
    _, varbinds, _ = ber_read(pdu, p)
    _, vb, _ = ber_read(varbinds, 0)
    _, _, q = ber_read(vb, 0)  # oid
    vtag, value, _ = ber_read(vb, q)
    decoded: Any = value.decode("utf-8", "replace") if vtag == 0x04 else value.hex()
    return community.decode("latin-1"), int.from_bytes(err, "big"), decoded


def _request_id(data: bytes) -> Optional[int]:
    """Request id of a v1/v2c message (None if unparsable)."""
    try:
        _, msg, _ = ber_read(data, 0)
        _, _, pos = ber_read(msg, 0)
        _, _, pos = ber_read(msg, pos)
        _, pdu, _ = ber_read(msg, pos)
        _, rid, _ = ber_read(pdu, 0)
        return int.from_bytes(rid, "big")
    except (IndexError, ValueError):
        return None


def _datagrams_until(sock: socket.socket, deadline: float) -> Iterator[bytes]:
    """The datagrams arriving on the connected UDP `sock` until `deadline` (time.monotonic()); each recv waits
    only for what is left of the window, so a resend schedule keeps its timing. ICMP errors (a connected
    socket's ECONNREFUSED) are raised to the caller."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(left)
        try:
            yield sock.recv(65535)
        except TimeoutError:
            return


def snmp(host: str, port: int = 161, timeout: float = 3.0, community: str = "public",
         waits: tuple[float, ...] = SNMP_WAITS) -> Exposure:
    """GET sysDescr.0 with `community`, alongside an SNMPv3 discovery, resent with growing waits.

    - a GetResponse to the community: accepted (the finding);
    - no answer to the community but a v3 Report: the agent is up and dropped the community (a pass);
    - no answer to anything after every attempt: ProbeFailed, i.e. `error` (undetermined). Silence is never a
      pass: it is what a filtered port, a stopped agent and a busy one look like alike.
    """
    scale = min(1.0, timeout / 3.0)
    rid = int.from_bytes(os.urandom(3), "big")
    msg_id = int.from_bytes(os.urandom(3), "big")
    get, discovery = snmp_get_request(community, request_id=rid), snmpv3_discovery_request(msg_id)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    answer: Optional[bytes] = None
    engine: Optional[str] = None
    tries = 0
    confirm_done = False
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))  # connected: the kernel reports ICMP port-unreachable as ECONNREFUSED
            schedule = list(waits)
            while schedule and answer is None:
                wait = schedule.pop(0) * scale
                tries += 1
                sock.send(get)
                if engine is None:
                    sock.send(discovery)
                for data in _datagrams_until(sock, time.monotonic() + wait):
                    try:
                        version = _snmp_version(data)
                    except (IndexError, ValueError, ProbeFailed):
                        continue
                    if version == 3:
                        try:
                            got_id, eng = parse_snmpv3_report(data)
                        except (IndexError, ValueError, ProbeFailed):
                            continue
                        if got_id == msg_id:
                            engine = eng
                    elif _request_id(data) == rid:
                        answer = data
                        break
                if answer is None and engine is not None:
                    # The agent answered v3 in this window and ignored the community: one more send of the
                    # community alone rules out a lost datagram, then the refusal stands.
                    if confirm_done:
                        break
                    confirm_done = True
                    schedule = schedule[:1] or [waits[-1]]
        except ConnectionRefusedError:
            raise ProbeFailed(f"snmp: {host}:{port} answered ICMP port unreachable (no agent)") from None
        except OSError as exc:
            raise ProbeFailed(f"snmp: {host}:{port}: {exc.strerror or exc}") from None
    if answer is None:
        if engine is not None:
            return Exposure(protocol="snmp", unauthenticated=False,
                            detail=f"agent answered SNMPv3 discovery (engine {engine}) but not GET sysDescr.0 with "
                                   f"community {community!r} in {tries} tries: the community is not accepted")
        total = sum(waits) * scale
        raise ProbeFailed(f"snmp: no answer from {host}:{port} to GET sysDescr.0 (community {community!r}) nor to "
                          f"SNMPv3 discovery in {tries} tries over {total:g}s: undetermined (agent down, filtered "
                          f"or busy)")
    try:
        _, err, value = parse_snmp_response(answer)
    except (IndexError, ValueError) as exc:
        raise ProbeFailed(f"snmp: unparsable answer: {exc}") from None
    if err:
        return Exposure(protocol="snmp", unauthenticated=True,
                        detail=f"community {community!r} accepted (error-status {err} for sysDescr.0)")
    return Exposure(protocol="snmp", unauthenticated=True, version=None,
                    detail=f"community {community!r} accepted; sysDescr.0 = {str(value)[:120]!r}")


# ---- PostgreSQL --------------------------------------------------------------------------------------

PG_SSL_REQUEST = struct.pack(">II", 8, 80877103)
PG_AUTH = {0: "ok", 2: "Kerberos V5", 3: "cleartext password", 5: "MD5 password", 7: "GSSAPI", 9: "SSPI",
           10: "SASL (SCRAM)"}


def _pg_startup(user: str, database: str) -> bytes:
    body = struct.pack(">I", 196608) + f"user\x00{user}\x00database\x00{database}\x00\x00".encode()
    return struct.pack(">I", 4 + len(body)) + body


def _pg_error(body: bytes) -> str:
    fields = {chunk[:1]: chunk[1:].decode("utf-8", "replace") for chunk in body.split(b"\x00") if chunk}
    return fields.get(b"M") or fields.get(b"C") or "error"


def postgresql(host: str, port: int = 5432, timeout: float = 3.0) -> Exposure:
    """SSLRequest (does the server offer TLS?), then a StartupMessage as `postgres` with no password: the
    server's first answer says which authentication pg_hba.conf asks for. AuthenticationOk means `trust`:
    anyone reaching the port is the database superuser. Terminate follows at once; no query is sent."""
    try:
        with connect(host, port, timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(PG_SSL_REQUEST)
            answer = sock.recv(1)
    except TimeoutError:
        raise ProbeFailed(f"postgresql: no answer to SSLRequest from {host}:{port} within {timeout:g}s") from None
    except OSError as exc:
        raise ProbeFailed(f"postgresql: {host}:{port}: {exc.strerror or exc}") from None
    if answer not in (b"S", b"N"):
        raise ProbeFailed(f"postgresql: unexpected answer to SSLRequest: {printable(answer)!r}")
    tls = answer == b"S"
    try:
        with connect(host, port, timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_pg_startup("postgres", "postgres"))
            head = recv_exact(sock, 5, f"postgresql: {host}:{port} closed the connection after the startup message")
            kind, length = head[:1], struct.unpack(">I", head[1:5])[0]
            body = recv_exact(sock, min(length - 4, 4096))  # a short body is judged as it came
            try:
                sock.sendall(b"X" + struct.pack(">I", 4))  # Terminate
            except OSError:
                pass
    except TimeoutError:
        raise ProbeFailed(f"postgresql: no answer to the startup message from {host}:{port} within "
                          f"{timeout:g}s") from None
    except OSError as exc:
        raise ProbeFailed(f"postgresql: {host}:{port}: {exc.strerror or exc}") from None
    ssl_text = "SSLRequest answered " + ("S (TLS offered)" if tls else "N (no TLS)")
    if kind == b"R" and len(body) >= 4:
        code = struct.unpack(">I", body[:4])[0]
        if code == 0:
            return Exposure(protocol="postgresql", unauthenticated=True, tls=tls,
                            detail=f"startup as user postgres without a password: AuthenticationOk (trust "
                                   f"authentication); {ssl_text}")
        return Exposure(protocol="postgresql", unauthenticated=False, tls=tls,
                        detail=f"startup as user postgres: server asks for {PG_AUTH.get(code, f'method {code}')}; "
                               f"{ssl_text}")
    if kind == b"E":
        return Exposure(protocol="postgresql", unauthenticated=False, tls=tls,
                        detail=f"startup as user postgres refused: {_pg_error(body)[:120]}; {ssl_text}")
    raise ProbeFailed(f"postgresql: unexpected message {printable(kind)!r} after the startup message")


# ---- memcached over UDP ------------------------------------------------------------------------------


def memcached_udp(host: str, port: int = 11211, timeout: float = 3.0,
                  waits: tuple[float, ...] = SNMP_WAITS) -> Exposure:
    """`stats` in one UDP frame (8-byte frame header, RFC-less but documented in memcached's protocol.txt),
    resent with growing waits. An answer is unauthenticated access and a reflection/amplification source
    (the answer is ~100x the request); silence is undetermined, never a pass."""
    scale = min(1.0, timeout / 3.0)
    rid = int.from_bytes(os.urandom(2), "big")
    request = struct.pack(">HHHH", rid, 0, 1, 0) + b"stats\r\n"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    parts: dict[int, bytes] = {}
    total = None
    tries = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
            for wait in waits:
                tries += 1
                sock.send(request)
                for data in _datagrams_until(sock, time.monotonic() + wait * scale):
                    if len(data) < 8:
                        continue
                    got, seq, count, _ = struct.unpack(">HHHH", data[:8])
                    if got != rid:
                        continue
                    parts[seq], total = data[8:], count
                    if total is not None and len(parts) >= total:
                        break
                if parts:
                    break
        except ConnectionRefusedError:
            raise ProbeFailed(f"memcached: {host}:{port}/udp answered ICMP port unreachable") from None
        except OSError as exc:
            raise ProbeFailed(f"memcached: {host}:{port}/udp: {exc.strerror or exc}") from None
    if not parts:
        raise ProbeFailed(f"memcached: no answer from {host}:{port}/udp to stats in {tries} tries over "
                          f"{sum(waits) * scale:g}s: undetermined (not listening on UDP, filtered or busy)")
    answer = b"".join(parts[k] for k in sorted(parts)).decode("latin-1", "replace")
    if answer.startswith("STAT "):
        version = next((line.split()[2] for line in answer.splitlines()
                        if line.startswith("STAT version ") and len(line.split()) > 2), None)
        return Exposure(protocol="memcached", unauthenticated=True, version=version,
                        detail=f"stats over UDP answered without authentication ({len(answer)} bytes for a "
                               f"15-byte request: a reflection/amplification source)"
                               + (f"; version {version}" if version else ""))
    return Exposure(protocol="memcached", unauthenticated=False, detail=f"stats over UDP refused: {answer[:80]!r}")


PROBES: dict[str, Callable[..., Exposure]] = {
    "redis": redis, "mongodb": mongodb, "elasticsearch": elasticsearch, "memcached": memcached,
    "docker": docker, "zookeeper": zookeeper, "snmp": snmp, "postgresql": postgresql,
}
UDP_PROBES: dict[str, Callable[..., Exposure]] = {"snmp": snmp, "memcached": memcached_udp}
