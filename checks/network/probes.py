"""Per-port service probes (banner, SSH, TLS, HTTP, unauthenticated access) and scapy's targeted probes.

`PortProbe` gathers what one open port tells: first from its banner and well-known port, then, once nmap's
version detection has named the service, any probe that still applies (`follow_up`). Every probe is
read-only; a probe that cannot decide records an error with the reason and never a pass.

scapy is imported only inside `icmp_echo`/`syn_ack` (it takes about a second to import) and is used where
nmap does not fit: ICMP reachability with the reply TTL, and the SYN/ACK a port answers (TTL, window).
"""
from __future__ import annotations

import re
import time
from typing import Literal, Optional

from sentinel.backoff import Backoff
from sentinel.model import Evidence, utcnow

from . import banners, credentials, ssh, tls, unauth
from .banners import ProbeFailed
from .findings import ServiceFinding
from .services import PORT_SERVICE, UNAUTH_SERVICES, canonical

EXCERPT = 600
# Protocols where the client speaks first: on their well-known ports a short passive wait is enough (a server
# that does speak first answers at once); if nothing is then identified, a full-length banner wait follows.
CLIENT_FIRST = {"http", "https", "redis", "mongodb", "elasticsearch", "docker", "docker-tls", "memcached",
                "zookeeper", "postgresql", "kibana", "winrm", "winrm-tls", "rdp", "mssql", "oracle", "ldap", "ldaps"}
SHORT_WAIT = 0.3
SERVER_RE = re.compile(r"^([A-Za-z][\w.-]*?)(?:/([\w.~+-]+))?(?:\s|$)")  # HTTP Server: product[/version]
PRODUCTS = {"redis": "Redis", "mongodb": "MongoDB", "elasticsearch": "Elasticsearch", "memcached": "memcached",
            "docker": "Docker", "zookeeper": "ZooKeeper", "postgresql": "PostgreSQL"}
# an undecided TCP unauth probe: three tries, pausing about 0.25 s, then 0.5 s
TCP_RETRY = Backoff(max_attempts=3, initial_delay=0.25, max_delay=1.0)
HTTP_LIKE = {"http", "https", "kibana", "elasticsearch", "docker", "docker-tls", "winrm", "winrm-tls"}
TLS_LIKE = {"https", "ldaps", "imaps", "pop3s", "docker-tls", "winrm-tls"}


def _ev(source: str, excerpt: str) -> Evidence:
    return Evidence(source=source, excerpt=excerpt[:EXCERPT] + ("..." if len(excerpt) > EXCERPT else ""),
                    at=utcnow())


class PortProbe:
    """Probe state of one open port; `finding()` returns the ServiceFinding built so far."""

    def __init__(self, host: str, port: int, proto: Literal["tcp", "udp"] = "tcp", timeout: float = 3.0,
                 credentials: bool = False):
        self.host, self.port, self.proto, self.timeout = host, port, proto, timeout
        self.credentials = credentials  # opt-in credential probes (credentials.py)
        self.f = ServiceFinding(host=host, port=port, proto=proto, service=PORT_SERVICE.get((proto, port)))
        self.done: set[str] = set()
        self.silent = False  # connected, but the server did not speak first
        self.banner_service: Optional[str] = None  # what the banner alone identified

    @property
    def where(self) -> str:
        return f"{self.proto}://{self.host}:{self.port}"

    def _error(self, kind: str, exc: Exception) -> None:
        self.f.errors.append(f"{kind}: {exc}")

    # ---- individual probes -------------------------------------------------------------------

    def banner(self, long: bool = False) -> None:
        self.done.add("banner-long" if long else "banner")
        short = not long and PORT_SERVICE.get((self.proto, self.port)) in CLIENT_FIRST
        if short:
            self.done.add("banner-short")
        try:
            b = banners.grab(self.host, self.port, self.timeout, wait=SHORT_WAIT if short else min(1.0, self.timeout))
        except ProbeFailed as exc:
            self._error("banner", exc)
            return
        if not b.raw:
            self.silent = True
            return
        self.silent = False
        self.f.banner = b.text
        self.f.evidence.append(_ev(f"{self.where} banner", b.text))
        if b.service:
            self.f.service = b.service
            self.banner_service = b.service
        self.f.product = self.f.product or b.product
        self.f.version = self.f.version or b.version
        self.f.starttls = b.starttls

    def ssh(self) -> None:
        self.done.add("ssh")
        try:
            info = ssh.audit(self.host, self.port, self.timeout)
        except ProbeFailed as exc:
            self._error("ssh", exc)
            return
        if not info.protocol.startswith("1.") or info.protocol == "1.99":
            try:
                info.auth_methods = ssh.auth_methods(self.host, self.port, self.timeout)
            except ProbeFailed as exc:
                self._error("ssh-auth", exc)
        self.f.ssh = info
        self.f.service = "ssh"
        self.f.evidence.append(_ev(f"{self.where} ssh KEXINIT",
                                   f"{info.banner}\nkex: {','.join(info.kex)}\nhostkey: {','.join(info.host_key)}\n"
                                   f"ciphers: {','.join(info.ciphers)}\nmacs: {','.join(info.macs)}"
                                   + (f"\nauth methods (after `none`): {','.join(info.auth_methods)}"
                                      if info.auth_methods is not None else "")))

    def tls(self) -> None:
        self.done.add("tls")
        if not tls.is_tls(self.host, self.port, min(self.timeout, 2.0)):
            return
        try:
            info = tls.audit(self.host, self.port, self.timeout)
        except ProbeFailed as exc:
            self._error("tls", exc)
            return
        self.f.tls = info
        self.f.tunnel = "ssl"
        if self.f.service in (None, "http"):
            self.f.service = "https"
        self.f.evidence.append(_ev(f"{self.where} tls",
                                   f"protocols: {', '.join(info.protocols)}; cipher: {info.cipher}; "
                                   f"weak: {', '.join(info.weak_ciphers) or 'none'}; subject: {info.subject}; "
                                   f"issuer: {info.issuer}; not_after: {info.not_after}; "
                                   f"chain: {'ok' if info.chain_valid else info.chain_error}"))

    def http(self, over_tls: bool = False) -> None:
        self.done.add("https" if over_tls else "http")
        sock = None
        try:
            if over_tls:
                import ssl as _ssl

                raw = banners.connect(self.host, self.port, self.timeout)
                try:
                    sock = tls._context(None).wrap_socket(raw, server_hostname=tls._server_name(self.host))
                except (_ssl.SSLError, OSError) as exc:
                    raw.close()
                    raise ProbeFailed(f"TLS handshake failed: {exc}") from None
            raw_resp, info = banners.http_get(self.host, self.port, "/", self.timeout, sock=sock)
        except ProbeFailed as exc:
            if self.f.service in HTTP_LIKE and (over_tls or self.f.service not in TLS_LIKE):
                self._error("https" if over_tls else "http", exc)
            return
        finally:
            if sock is not None:
                sock.close()
        self.f.http = info
        if info.server and not self.f.product:  # "Apache/2.4.29 (Ubuntu)" -> Apache 2.4.29
            m = SERVER_RE.match(info.server)
            if m:
                self.f.product, self.f.version = m.group(1), self.f.version or m.group(2)
        if over_tls:  # an earlier plain attempt on a TLS port is not an error
            self.f.errors = [e for e in self.f.errors if not e.startswith("http:")]
        if self.f.service is None or self.f.service not in HTTP_LIKE or (over_tls and self.f.service == "http"):
            self.f.service = "https" if over_tls else "http"
        head = raw_resp.partition(b"\r\n\r\n")[0].decode("latin-1")
        self.f.evidence.append(_ev(f"{self.where} GET /" + (" (TLS)" if over_tls else ""), head + (
            "\n[page has a password field]" if info.login_form else "")))

    def unauth(self, service: str) -> None:
        self.done.add(f"unauth:{service}")
        probe = (unauth.UDP_PROBES if self.proto == "udp" else unauth.PROBES)[service]
        kw = {"use_tls": True} if service in ("elasticsearch", "docker") and self.f.tls is not None else {}
        # UDP probes retry with backoff themselves; a TCP probe that could not decide (timeout, reset,
        # garbled answer) is retried twice with a growing pause before its error stands.
        attempt = 0
        while True:
            attempt += 1
            try:
                exposure = probe(self.host, self.port, timeout=self.timeout, **kw)
                break
            except ProbeFailed as exc:
                if self.proto == "udp" or TCP_RETRY.exhausted(attempt):
                    self._error(service, exc)
                    return
                time.sleep(TCP_RETRY.delay(attempt))
        self.f.exposure = exposure
        self.f.service = service
        if exposure.tls is not None:
            self.f.starttls = exposure.tls
        if exposure.version and not self.f.version:
            self.f.version = exposure.version
            self.f.product = self.f.product or PRODUCTS.get(service)
        self.f.evidence.append(_ev(f"{self.where} {service}", exposure.detail))

    # ---- planning ------------------------------------------------------------------------------

    def needed(self) -> list[str]:
        """Probes that apply given what is known now and have not run yet."""
        svc = self.f.service
        todo: list[str] = []
        if self.proto == "udp":
            if svc in unauth.UDP_PROBES:
                todo.append(f"unauth:{svc}")
            # `private` only once `public` was seen refused by a live agent
            if (self.credentials and svc == "snmp" and self.f.exposure is not None
                    and not self.f.exposure.unauthenticated):
                todo.append("cred:snmp")
            return [k for k in todo if k not in self.done]
        if "banner" not in self.done:
            return ["banner"]
        if svc == "ssh" or (self.f.banner or "").startswith("SSH-"):
            todo.append("ssh")
        if svc in UNAUTH_SERVICES and (self.silent or svc == "docker"):
            if svc in ("elasticsearch", "docker") and "tls" not in self.done:
                todo.append("tls")
            todo.append(f"unauth:{svc}")
        elif (self.silent or svc in TLS_LIKE or self.f.tunnel == "ssl") and svc not in ("ssh", "mysql"):
            # Plain HTTP first where HTTP is expected (a TLS server answers a GET with an alert at once, while
            # a plain server may wait for the rest of a ClientHello); TLS first where TLS is expected.
            tls_first = svc in TLS_LIKE or self.f.tunnel == "ssl"
            if tls_first:
                todo += ["tls", "http"]
            else:
                todo.append("http")
                if "http" in self.done and self.f.http is None:
                    todo.append("tls")
            if self.f.tls is not None and self.f.http is None and (svc in HTTP_LIKE or svc is None):
                todo.append("https")
        if self.credentials and svc in ("ftp", "mysql") and self.f.banner:
            todo.append(f"cred:{svc}")
        if self.credentials and self.f.http is not None:  # it speaks HTTP: look for a Basic-auth console
            todo.append("cred:http-basic")
        todo = [k for k in dict.fromkeys(todo) if k not in self.done]
        if (not todo and self.silent and "banner-short" in self.done and "banner-long" not in self.done
                and not (self.f.http or self.f.tls or self.f.exposure or self.f.ssh)):
            todo = ["banner-long"]  # nothing answered our guess: maybe a slow server that speaks first
        return todo

    def creds(self, service: str) -> None:
        self.done.add(f"cred:{service}")
        if service == "http-basic":
            self.http_basic()
            return
        try:
            attempts = credentials.attempt(service, self.host, self.port, self.timeout)
        except ProbeFailed as exc:
            self._error(f"credentials {service}", exc)
            return
        self.f.credentials.extend(attempts)
        for a in attempts:
            self.f.evidence.append(_ev(f"{self.where} credential probe ({service}, user {a.user!r})", a.detail))

    def http_basic(self) -> None:
        # over TLS exactly when the HTTP probe's answer came over TLS (PortProbe.http)
        out = credentials.http_basic(self.host, self.port, self.timeout, over_tls=self.f.tls is not None)
        self.f.errors += [f"credentials http-basic: {e}" for e in out.errors]
        if out.path is None:
            return
        realm = f" realm {out.realm!r}" if out.realm is not None else ""
        self.f.evidence.append(_ev(f"{self.where} GET {out.path}", f"401 WWW-Authenticate: Basic{realm} "
                                                                   f"({out.product})"))
        self.f.credentials.extend(out.attempts)
        for a in out.attempts:
            self.f.evidence.append(_ev(f"{self.where} credential probe (http-basic, user {a.user!r})", a.detail))

    def needs_version(self) -> bool:
        """True when our probes could not tell what the port speaks: only then is nmap's -sV worth its wait."""
        f = self.f
        return not (f.ssh or f.exposure or f.http or f.tls or self.banner_service)

    def run(self, kind: str) -> None:
        if kind == "banner":
            self.banner()
        elif kind == "banner-long":
            self.banner(long=True)
        elif kind == "ssh":
            self.ssh()
        elif kind == "tls":
            self.tls()
        elif kind == "http":
            if self.f.tls is None:
                self.http()
            else:
                self.done.add("http")
        elif kind == "https":
            self.http(over_tls=True)
        elif kind.startswith("unauth:"):
            self.unauth(kind.split(":", 1)[1])
        elif kind.startswith("cred:"):
            self.creds(kind.split(":", 1)[1])

    def run_all(self) -> None:
        for _ in range(12):  # each probe may change what applies next; re-plan after each, bounded
            todo = self.needed()
            if not todo:
                return
            self.run(todo[0])

    def follow_up(self, nmap_service: Optional[str], tunnel: Optional[str], product: Optional[str],
                  version: Optional[str], extrainfo: Optional[str]) -> None:
        """Merge nmap's -sV answer, then run any probe it makes applicable."""
        self.f.nmap_service = nmap_service
        name = canonical(self.proto, self.port, nmap_service, tunnel)
        if tunnel == "ssl":
            self.f.tunnel = "ssl"
        if name and (self.f.service is None or self.f.service in (PORT_SERVICE.get((self.proto, self.port)),)):
            # nmap's name beats a guess from the port number; our own protocol evidence beats both
            if not (self.f.ssh or self.f.exposure or self.f.http or self.f.tls):
                self.f.service = name
        self.f.product = product or self.f.product
        self.f.version = version or self.f.version
        self.f.extrainfo = extrainfo or self.f.extrainfo
        self.run_all()

    def finding(self) -> ServiceFinding:
        return self.f


# ---- scapy targeted probes -------------------------------------------------------------------------


def _scapy():
    from scapy import config  # noqa: F401  (import order: config first keeps scapy quiet)
    from scapy.all import conf, sr  # loads every layer, as before
    from scapy.layers.inet import ICMP, IP, TCP  # from their own modules: scapy.all's star imports hide them
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    conf.verb = 0
    return IP, IPv6, ICMP, ICMPv6EchoRequest, TCP, sr


def icmp_echo(hosts: list[str], timeout: float = 1.0) -> dict[str, dict]:
    """ICMP echo to each host in one scapy `sr()` call: {host: {reachable, ttl}}. Needs raw sockets."""
    IP, IPv6, ICMP, ICMPv6EchoRequest, TCP, sr = _scapy()
    packets = [IPv6(dst=h) / ICMPv6EchoRequest() if ":" in h else IP(dst=h) / ICMP() for h in hosts]
    answered, _ = sr(packets, timeout=timeout, retry=0)
    out = {h: {"reachable": False, "ttl": None} for h in hosts}
    for sent, received in answered:
        ttl = getattr(received, "ttl", None) if received.haslayer(IP) else getattr(received, "hlim", None)
        out[sent.dst] = {"reachable": True, "ttl": ttl}
    return out


def syn_ack(host: str, ports: list[int], timeout: float = 1.0) -> dict[int, dict]:
    """One SYN per port in one `sr()` call: {port: {flags, ttl, window}} of the answer (None if silent).

    The kernel of the scanner answers the SYN/ACK with a RST, so no connection is left half-open.
    """
    IP, IPv6, ICMP, ICMPv6EchoRequest, TCP, sr = _scapy()
    base = IPv6(dst=host) if ":" in host else IP(dst=host)
    answered, _ = sr([base / TCP(dport=p, flags="S", sport=40000 + (p % 20000)) for p in ports],
                     timeout=timeout, retry=0)
    out: dict[int, dict] = {p: {"flags": None, "ttl": None, "window": None} for p in ports}
    for sent, received in answered:
        if received.haslayer(TCP):
            ttl = received.ttl if received.haslayer(IP) else received.hlim
            out[sent[TCP].dport] = {"flags": str(received[TCP].flags), "ttl": ttl, "window": received[TCP].window}
    return out


def os_hint(ttl: Optional[int]) -> Optional[str]:
    """Initial-TTL family of a host (64 Linux/Unix, 128 Windows, 255 network gear)."""
    if ttl is None:
        return None
    for initial, name in ((64, "linux/unix"), (128, "windows"), (255, "network device")):
        if ttl <= initial:
            return name
    return None
