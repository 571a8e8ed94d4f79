"""HTTP to the collector (docs/wire.md): enrollment and signed envelope delivery.

TLS: once enrolled, the agent trusts only the collector CA it pinned (a PEM file; the system trust store
is not consulted). Plain HTTP is accepted only to a loopback address (`sentinel up`, tests), so a
report never crosses a network unencrypted.
"""
from __future__ import annotations

import ipaddress
import json
import ssl
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit

# httpx's optional command-line client (httpx._main) imports rich and pygments along with httpx; the
# agent never uses it, and it would cost a long-running daemon meant to stay small several megabytes.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402

from .. import __version__

API = "/api/v1/agent"


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


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return text[:300]


class CollectorClient:
    def __init__(self, url: str, ca_file: Optional[Path] = None, timeout: float = 30.0) -> None:
        self.url = check_url(url)
        # plain http (loopback only): no TLS, so no CA bundle to load either
        verify: Union[bool, ssl.SSLContext] = self.url.startswith("https://")
        if verify and ca_file is not None:
            verify = tls_context(ca_file)
        self._http = httpx.Client(base_url=self.url, verify=verify, timeout=timeout, trust_env=False,
                                  headers={"User-Agent": f"sentinel-agent/{__version__}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CollectorClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enroll(self, token: str, public_key: str, hostname: str, os_info: dict[str, Any]) -> dict[str, Any]:
        payload = {"token": token, "public_key": public_key, "hostname": hostname, "os": os_info}
        try:
            response = self._http.post(f"{API}/enroll", json=payload)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the collector at {self.url}: {_transport_reason(exc)}") from exc
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
        headers = {"Content-Type": "application/json", "X-Sentinel-Agent": agent_id,
                   "X-Sentinel-Signature": signature}
        try:
            response = self._http.post(f"{API}/reports", content=raw, headers=headers)
        except httpx.TransportError as exc:
            return SendResult(Outcome.RETRY, None, f"collector unreachable: {_transport_reason(exc)}")
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
            # sent_at is stamped at each attempt, so "stale" means this machine's clock is off
            return SendResult(Outcome.RETRY, status, f"clock skew with the collector: {detail}")
        if status in (404, 405, 408, 425, 429) or status >= 500:
            return SendResult(Outcome.RETRY, status, detail)
        return SendResult(Outcome.REJECTED, status, detail)


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted by the pinned CA ({text})"
    return text
