"""TLS of a declared site's HTTPS origins: protocol versions and certificate from the network probes'
audit (sentinel.checks.network.tls), and the chain verified as a browser would: against the collector's
trust store plus the CAs the declaration names, for the site's host name."""
from __future__ import annotations

import socket
import ssl
from datetime import datetime
from typing import Optional
from urllib.parse import urlsplit

from sentinel.checks.network.banners import ProbeFailed
from sentinel.checks.network.tls import audit

from .judge import TlsFacts
from .sites import SiteDeclaration


def _verify(host: str, port: int, ca_pem: Optional[str], timeout: float) -> tuple[bool, Optional[str]]:
    ctx = ssl.create_default_context()
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True, None
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or str(exc)


def tls_facts(decl: SiteDeclaration, now: datetime, timeout: float = 5.0) -> list[TlsFacts]:
    """One TlsFacts per HTTPS origin of the declaration (none for an http-only site)."""
    out = []
    seen = set()
    for url in decl.urls:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            continue
        host, port = parts.hostname, parts.port or 443
        if (host, port) in seen:
            continue
        seen.add((host, port))
        facts = TlsFacts(origin=f"https://{parts.netloc}")
        try:
            info = audit(host, port, timeout=timeout, now=now)
        except (ProbeFailed, OSError) as exc:
            facts.error = f"TLS audit of {host}:{port} failed: {exc}"
            out.append(facts)
            continue
        facts.protocols = list(info.protocols)
        facts.not_after, facts.days_left, facts.subject = info.not_after, info.days_left, info.subject
        try:
            facts.verified, facts.verify_error = _verify(host, port, decl.ca_pem, timeout)
        except (ssl.SSLError, OSError, ValueError) as exc:
            facts.verified, facts.verify_error = None, f"{type(exc).__name__}: {exc}"
        if info.expired and facts.verified:  # the trust store was asked about the real clock; the rule about `now`
            facts.verified, facts.verify_error = False, "certificate expired"
        out.append(facts)
    return out
