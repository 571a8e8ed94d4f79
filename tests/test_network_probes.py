"""Unauthenticated-access probes against tiny protocol responders on 127.0.0.1 (ephemeral ports we open)."""
from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

from sentinel.checks.network import unauth
from sentinel.checks.network.banners import ProbeFailed


class Responder:
    """A one-port TCP server on 127.0.0.1 answering with `reply(request_bytes) -> bytes | None` per read."""

    def __init__(self, reply, close_after: bool = False):
        self.reply = reply
        self.close_after = close_after  # hang up after one answer (ZooKeeper 4-letter words do)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        with conn:
            conn.settimeout(3)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                self.requests.append(data)
                out = self.reply(data)
                if out is None:
                    return
                conn.sendall(out)
                if self.close_after:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def responder():
    made = []

    def make(reply, close_after=False):
        r = Responder(reply, close_after)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _http(status: int, body: dict | str) -> bytes:
    text = body if isinstance(body, str) else json.dumps(body)
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(text)}\r\n"
            f"Connection: close\r\n\r\n{text}").encode()


def test_redis_auth_states(responder):
    noauth = responder(lambda d: b"-NOAUTH Authentication required.\r\n")
    e = unauth.redis("127.0.0.1", noauth.port)
    assert not e.unauthenticated and e.detail == "PING refused: -NOAUTH Authentication required."
    protected = responder(lambda d: b"-DENIED Redis is running in protected mode\r\n")
    assert not unauth.redis("127.0.0.1", protected.port).unauthenticated
    junk = responder(lambda d: b"HTTP/1.0 400 Bad\r\n\r\n")
    with pytest.raises(ProbeFailed, match="unexpected answer to PING"):
        unauth.redis("127.0.0.1", junk.port)


def test_elasticsearch_and_docker(responder):
    es = responder(lambda d: _http(200, {"cluster_name": "prod", "version": {"number": "7.10.2"}}))
    e = unauth.elasticsearch("127.0.0.1", es.port)
    assert e.unauthenticated and e.version == "7.10.2"
    assert es.requests[0].startswith(b"GET / HTTP/1.0\r\n")
    secured = responder(lambda d: _http(401, {"error": "security_exception"}))
    assert unauth.elasticsearch("127.0.0.1", secured.port).detail == "GET / -> HTTP 401"
    dock = responder(lambda d: _http(200, {"Version": "20.10.24", "ApiVersion": "1.41"}))
    d = unauth.docker("127.0.0.1", dock.port)
    assert d.unauthenticated and d.version == "20.10.24" and dock.requests[0].startswith(b"GET /version ")
    html = responder(lambda d: _http(200, "<html>hi</html>"))
    with pytest.raises(ProbeFailed, match="not JSON"):
        unauth.docker("127.0.0.1", html.port)


def test_memcached_and_zookeeper(responder):
    mc = responder(lambda d: b"STAT pid 1\r\nSTAT version 1.6.9\r\nEND\r\n" if d == b"stats\r\n" else b"ERROR\r\n")
    m = unauth.memcached("127.0.0.1", mc.port)
    assert m.unauthenticated and m.version == "1.6.9"
    zk = responder(lambda d: b"Zookeeper version: 3.4.14-4c25d480e66aadd371de8bd2fd8da255ac140bcf, "
                   b"built on 03/06/2019\nMode: standalone\n" if d == b"srvr" else None, close_after=True)
    z = unauth.zookeeper("127.0.0.1", zk.port)
    assert z.unauthenticated and z.version == "3.4.14"
    off = responder(lambda d: b"srvr is not executed because it is not in the whitelist.\n" if d == b"srvr"
                    else b"imok", close_after=True)
    z2 = unauth.zookeeper("127.0.0.1", off.port)
    assert not z2.unauthenticated and z2.detail == "srvr disabled by 4lw.commands.whitelist; ruok -> imok"


def _mongo_server(list_ok: bool):
    def reply(data: bytes):
        _, rid, _, opcode = struct.unpack("<iiii", data[:16])
        if opcode == 2004:  # OP_QUERY isMaster
            doc = unauth.bson_encode({"ismaster": True, "maxWireVersion": 13, "ok": 1.0})
            body = struct.pack("<iqii", 0, 0, 0, 1) + doc
            return struct.pack("<iiii", 16 + len(body), 9, rid, 1) + body
        cmd, _ = unauth.bson_decode(data, 21)
        if "buildInfo" in cmd:
            doc = {"version": "5.0.14", "ok": 1.0}
        elif list_ok:
            doc = {"databases": [{"name": "admin"}, {"name": "citizens"}], "ok": 1.0}
        else:
            doc = {"ok": 0.0, "errmsg": "command listDatabases requires authentication", "code": 13}
        body = struct.pack("<I", 0) + b"\x00" + unauth.bson_encode(doc)
        return struct.pack("<iiii", 16 + len(body), 10, rid, 2013) + body
    return reply


def test_mongodb_with_and_without_auth(responder):
    open_db = responder(_mongo_server(list_ok=True))
    e = unauth.mongodb("127.0.0.1", open_db.port)
    assert e.unauthenticated and e.version == "5.0.14"
    assert e.detail == "listDatabases answered without credentials: admin, citizens"
    closed = responder(_mongo_server(list_ok=False))
    e2 = unauth.mongodb("127.0.0.1", closed.port)
    assert not e2.unauthenticated and "requires authentication" in e2.detail


class UDPAgent:
    """A fake SNMP agent on 127.0.0.1 (an ephemeral port we open): `reply(datagram, nth) -> bytes | None`."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.got.append(data)
            answer = self.reply(data, len(self.got))
            if answer:
                self.sock.sendto(answer, peer)

    def close(self):
        self.sock.close()


def _snmp_get_response(request: bytes) -> bytes:
    from sentinel.checks.network.unauth import _ber, _ber_int, ber_read

    _, msg, _ = ber_read(request, 0)
    _, _, pos = ber_read(msg, 0)
    _, community, pos = ber_read(msg, pos)
    _, pdu, _ = ber_read(msg, pos)
    _, rid, _ = ber_read(pdu, 0)
    vb = _ber(0x30, unauth._ber_oid(unauth.SYS_DESCR) + _ber(0x04, b"Linux busy-agent"))
    body = _ber(0xA2, _ber(0x02, rid) + _ber_int(0) + _ber_int(0) + _ber(0x30, vb))
    return _ber(0x30, _ber_int(1) + _ber(0x04, community) + body)


def _snmpv3_report(request: bytes) -> bytes:
    """What net-snmp answers to engine discovery: a Report with its engine ID and the request's msgID."""
    from sentinel.checks.network.unauth import _ber, _ber_int, ber_read

    _, msg, _ = ber_read(request, 0)
    _, _, pos = ber_read(msg, 0)
    _, glob, _ = ber_read(msg, pos)
    _, msg_id, _ = ber_read(glob, 0)
    glob_out = _ber(0x30, _ber(0x02, msg_id) + _ber_int(65507) + _ber(0x04, b"\x00") + _ber_int(3))
    usm = _ber(0x30, _ber(0x04, bytes.fromhex("80001f8880aabbccdd")) + _ber_int(1) + _ber_int(5) + _ber(0x04, b"")
               + _ber(0x04, b"") + _ber(0x04, b""))
    report = _ber(0xA8, _ber_int(0) + _ber_int(0) + _ber_int(0) + _ber(0x30, b""))
    scoped = _ber(0x30, _ber(0x04, b"") + _ber(0x04, b"") + report)
    return _ber(0x30, _ber_int(3) + glob_out + _ber(0x04, usm) + scoped)


def _is_v3(data: bytes) -> bool:
    return unauth._snmp_version(data) == 3


def test_snmp_silence_is_undetermined_not_a_pass():
    agent = UDPAgent(lambda data, n: None)  # a firewall that drops UDP, a stopped or a busy agent: all silent
    try:
        with pytest.raises(ProbeFailed, match=r"no answer .* in 3 tries .*undetermined"):
            unauth.snmp("127.0.0.1", agent.port, timeout=0.3)
        gets = [d for d in agent.got if not _is_v3(d)]
        assert len(gets) == 3 and all(b"public" in d for d in gets)  # retried, with the same request id
        assert len({unauth._request_id(d) for d in gets}) == 1
    finally:
        agent.close()


def test_snmp_busy_agent_answering_late_is_still_found():
    # the agent ignores the first two sends (as snmpd does while nmap's UDP payloads keep it busy)
    agent = UDPAgent(lambda data, n: _snmp_get_response(data) if not _is_v3(data) and n >= 4 else None)
    try:
        e = unauth.snmp("127.0.0.1", agent.port, timeout=0.3)
        assert e.unauthenticated and "Linux busy-agent" in e.detail
    finally:
        agent.close()


def test_snmp_agent_that_answers_v3_but_not_the_community_refused_it():
    agent = UDPAgent(lambda data, n: _snmpv3_report(data) if _is_v3(data) else None)
    try:
        e = unauth.snmp("127.0.0.1", agent.port, timeout=0.3)
        assert not e.unauthenticated and "engine 80001f8880aabbccdd" in e.detail and "not accepted" in e.detail
        assert sum(1 for d in agent.got if not _is_v3(d)) == 2  # the community re-sent once before concluding
    finally:
        agent.close()


def test_snmp_port_unreachable_is_an_error():
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now: the kernel answers ICMP port unreachable
    with pytest.raises(ProbeFailed, match="port unreachable"):
        unauth.snmp("127.0.0.1", port, timeout=0.3)


def test_elasticsearch_behind_tls(tmp_path):
    import ssl

    from tests.netlab import make_cert

    crt, key = make_cert(tmp_path / "es", "es.lab", expired=False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(_http(200, {"version": {"number": "8.11.1"}}))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        e = unauth.elasticsearch("127.0.0.1", port, timeout=3, use_tls=True)
        assert e.unauthenticated and e.version == "8.11.1"
    finally:
        t.join(5)
        srv.close()


def _mysql_server(accept_empty_root: bool):
    """A MySQL-protocol responder on 127.0.0.1: greeting, then OK or ERR to the login; records the login."""
    from tests.netlab import mysql_greeting

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    logins: list[bytes] = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(mysql_greeting())
                head = conn.recv(4)
                body = conn.recv(int.from_bytes(head[:3], "little"))
                logins.append(body)
                user = body[32:body.index(b"\x00", 32)]
                auth_len = body[33 + len(user)]
                if accept_empty_root and user == b"root" and auth_len == 0:
                    reply = b"\x00\x00\x00\x02\x00\x00\x00"
                else:
                    reply = b"\xff\x15\x04#28000Access denied for user 'root'@'10.0.0.1' (using password: NO)"
                conn.sendall(len(reply).to_bytes(3, "little") + bytes([head[3] + 1]) + reply)

    threading.Thread(target=serve, daemon=True).start()
    return srv, logins


def test_mysql_empty_root_password_probe():
    from sentinel.checks.network import credentials

    for accept in (True, False):
        srv, logins = _mysql_server(accept)
        try:
            a = credentials.mysql_login("127.0.0.1", srv.getsockname()[1], "root", "", timeout=2.0)
        finally:
            srv.close()
        assert a.accepted is accept and a.user == "root"
        assert ("accepted" in a.detail) if accept else ("Access denied" in a.detail)
        (login,) = logins  # exactly one login, and it carried no password at all
        assert login[33 + len(b"root")] == 0 and b"mysql_native_password" in login


def test_credential_attempts_are_bounded_and_only_the_documented_list():
    from sentinel.checks.network import credentials

    assert credentials.MAX_ATTEMPTS_PER_PORT <= 2
    assert {k: [u for u, _ in v] for k, v in credentials.CREDENTIALS.items()} == {
        "ftp": ["anonymous"], "mysql": ["root"], "snmp": ["private"]}
    assert all(p == "" for u, p in credentials.CREDENTIALS["mysql"])  # empty passwords only, nothing guessed


def _memcached_udp_stats(request: bytes, parts: list[bytes]) -> list[bytes]:
    rid = struct.unpack(">H", request[:2])[0]
    return [struct.pack(">HHHH", rid, seq, len(parts), 0) + body for seq, body in enumerate(parts)]


def test_memcached_udp_joins_frames_ignores_strangers_and_silence_is_undetermined():
    # memcached_udp and snmp share the receive window (_datagrams_until): frames of the answer arrive out of
    # order with a stranger's (wrong request id) and a runt in between, and are joined in sequence order.
    body = [b"STAT pid 1\r\nSTAT version 1.6.21\r\n", b"STAT uptime 5\r\nEND\r\n"]

    class Agent(UDPAgent):
        def _serve(self):
            while True:
                try:
                    data, peer = self.sock.recvfrom(65535)
                except OSError:
                    return
                self.got.append(data)
                first, second = _memcached_udp_stats(data, body)
                stranger = struct.pack(">HHHH", (struct.unpack(">H", data[:2])[0] + 1) % 65536, 0, 1, 0) + b"x"
                for frame in (second, stranger, b"abc", first):
                    self.sock.sendto(frame, peer)

    agent = Agent(None)
    try:
        e = unauth.memcached_udp("127.0.0.1", agent.port, timeout=0.3)
        assert e.unauthenticated and e.version == "1.6.21" and len(agent.got) == 1
    finally:
        agent.close()
    silent = UDPAgent(lambda data, n: None)
    try:
        with pytest.raises(ProbeFailed, match=r"no answer .*/udp to stats in 3 tries .*undetermined"):
            unauth.memcached_udp("127.0.0.1", silent.port, timeout=0.3)
        assert len(silent.got) == 3
    finally:
        silent.close()
