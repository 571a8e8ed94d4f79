"""HTTP to the collector (docs/wire.md): enrollment and signed envelope delivery.

TLS: once enrolled, the agent trusts only the collector CA it pinned (a PEM file; the system trust store
is not consulted). Plain HTTP is accepted only to a loopback address (`sentinel up`, tests), so a
report never crosses a network unencrypted.

The standard library's http.client, not httpx: the agent is a long-running daemon held to 60 MB at
rest (bench/agent_idle.py), httpx and what it imports cost it about 8 MB, and the agent only ever
POSTs JSON to one server. Each request has a connection of its own: reports are minutes apart, longer
than the collector keeps a connection open.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import time
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from .. import __version__

API = "/api/v1/agent"
# A collector's Retry-After is honoured within these bounds (seconds): at least one second (the collector never
# asks for less; a 0 would have an agent hammer it), at most five minutes (a wrong or hostile answer cannot
# park delivery for longer than the agent's own longest backoff would).
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1.0, 300.0


class ClientError(Exception):
    """A collector URL or CA that cannot be used, or a request the collector refused."""


class Outcome(str, Enum):
    DELIVERED = "delivered"  # 2xx: stored (or the same body again: idempotent)
    DUPLICATE = "duplicate"  # 409: the id is already stored, so this envelope arrived before
    RETRY = "retry"  # collector unreachable or busy, or a condition that may clear (clock skew)
    REJECTED = "rejected"  # the collector will never accept this envelope (schema, size)
    UNAUTHORIZED = "unauthorized"  # agent unknown, revoked or key mismatch: nothing can be delivered


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    status: Optional[int]
    detail: str
    data: Optional[dict[str, Any]] = None
    retry_after: Optional[float] = None  # a 429/503's Retry-After in seconds, bounded; None: not given


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After (RFC 9110 10.2.3: delay-seconds or an HTTP-date) as seconds within RETRY_AFTER_MIN..MAX;
    None when absent or unreadable (the agent's own backoff then applies)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value[:12]))  # a 40-digit value is "very long", not a memory or float problem
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT; a zone-less one is read as such
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"collector URL {url!r}: expected https://HOST[:PORT]")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ClientError(f"collector URL {url!r}: plain http is allowed only to a loopback address; "
                          "use https:// with the collector's CA (--ca)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ClientError(f"collector URL {url!r}: give only scheme, host and port (the API path is fixed)")
    return url.rstrip("/")


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting only `ca_file` (with a cafile, no default roots are loaded)."""
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"CA file {ca_file}: cannot load: {exc}") from exc


@dataclass(frozen=True)
class _Response:
    status_code: int
    reason: str
    body: bytes
    retry_after: Optional[str] = None  # the Retry-After header as sent

    def json(self) -> Any:
        return json.loads(self.body)


class _Unreachable(Exception):
    """The request did not get an HTTP answer (connection, TLS or timeout); the message says why."""


def _detail(response: _Response) -> str:
    try:
        body = response.json()
    except ValueError:  # includes bytes that are not UTF-8
        return response.body.decode("utf-8", "replace")[:300] or response.reason
    detail = body.get("detail", body) if isinstance(body, dict) else body
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return text[:300]


class CollectorClient:
    def __init__(self, url: str, ca_file: Optional[Path] = None, timeout: float = 30.0) -> None:
        self.url = check_url(url)
        parts = urlsplit(self.url)
        # check_url refused a URL without a host, so the "" never applies
        self._host, self._port, self._timeout = parts.hostname or "", parts.port, timeout
        # plain http (loopback only): no TLS, so no CA bundle to load either
        self._tls: Optional[ssl.SSLContext] = None
        # what a certificate was checked against, for a refusal's message
        self._trust = f"the pinned CA {ca_file}" if ca_file is not None else (
            "the system trust store (no CA pinned; pass the collector's CA with --ca)")
        if parts.scheme == "https":
            self._tls = tls_context(ca_file) if ca_file is not None else ssl.create_default_context()

    def close(self) -> None:
        """Nothing is held between requests; kept so callers may use the client as a context manager."""

    def __enter__(self) -> CollectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enrollment_info(self) -> dict[str, Any]:
        """GET /enroll: the collector's public key, which the enrollment proof binds (docs/wire.md)."""
        try:
            response = self._request("GET", f"{API}/enroll", None, {})
        except _Unreachable as exc:
            raise ClientError(f"cannot reach the collector at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ClientError(f"enrollment information refused by {self.url} ({response.status_code}): "
                              f"{_detail(response)}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ClientError(f"enrollment information from {self.url} is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("collector_public_key"), str):
            raise ClientError(f"enrollment information from {self.url} has no collector_public_key")
        return data

    def enroll(self, token: str, public_key: str, hostname: str, os_info: dict[str, Any],
               proof: str) -> dict[str, Any]:
        payload = {"token": token, "public_key": public_key, "hostname": hostname, "os": os_info, "proof": proof}
        try:
            response = self._post(f"{API}/enroll", json.dumps(payload).encode("utf-8"), {})
        except _Unreachable as exc:
            raise ClientError(f"cannot reach the collector at {self.url}: {exc}") from exc
        if response.status_code not in (200, 201):
            raise ClientError(f"enrollment refused by {self.url} ({response.status_code}): {_detail(response)}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ClientError(f"enrollment answer from {self.url} is not JSON") from exc
        if not isinstance(data, dict) or not isinstance(data.get("agent_id"), str) or not data["agent_id"]:
            raise ClientError(f"enrollment answer from {self.url} has no agent_id")
        return data

    def send(self, raw: bytes, agent_id: str, signature: str) -> SendResult:
        """POST one signed envelope and classify the answer; never raises for HTTP or network trouble."""
        headers = {"X-Sentinel-Agent": agent_id, "X-Sentinel-Signature": signature}
        try:
            response = self._post(f"{API}/reports", raw, headers)
        except _Unreachable as exc:
            return SendResult(Outcome.RETRY, None, f"collector unreachable: {exc}")
        status, detail = response.status_code, _detail(response)
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                data = None
            return SendResult(Outcome.DELIVERED, status, detail, data if isinstance(data, dict) else None)
        if status == 409:
            return SendResult(Outcome.DUPLICATE, status, detail)
        if status in (401, 403):
            return SendResult(Outcome.UNAUTHORIZED, status, detail)
        if status == 400 and "stale" in detail.lower():
            # sent_at is signed when the report is made and never changes: a report dated ahead of the
            # collector's clock (this machine's clock is off) becomes acceptable with time, one too old never
            if "ahead" in detail.lower():
                return SendResult(Outcome.RETRY, status, f"clock skew with the collector: {detail}")
            return SendResult(Outcome.REJECTED, status, detail)
        if status in (429, 503):
            # busy or rate-limited: the collector says when (a full spool drains at its pace, not at the
            # agent's doubling backoff of up to retry_max)
            return SendResult(Outcome.RETRY, status, detail, retry_after=parse_retry_after(response.retry_after))
        if status in (404, 405, 408, 425) or status >= 500:
            return SendResult(Outcome.RETRY, status, detail)
        return SendResult(Outcome.REJECTED, status, detail)


    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> _Response:
        return self._request("POST", path, body, headers)

    def _request(self, method: str, path: str, body: Optional[bytes], headers: dict[str, str]) -> _Response:
        if self._tls is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request(method, path, body=body, headers={
                "User-Agent": f"sentinel-agent/{__version__}", "Content-Type": "application/json",
                "Connection": "close", **headers})
            answer = conn.getresponse()
            return _Response(answer.status, answer.reason, answer.read(), answer.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError and timeouts are OSErrors
            raise _Unreachable(_transport_reason(exc, self._trust)) from exc
        finally:
            conn.close()


def _transport_reason(exc: BaseException, trust: str) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted by {trust} ({text})"
    return text
