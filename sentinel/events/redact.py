"""Webhook and robot URLs carry their credentials (access_token, key, Feishu's hook id): logs and errors
only ever show `redact_url()` of them."""
from __future__ import annotations

import urllib.parse

_SECRET_QUERY_KEYS = {"access_token", "key", "token", "sign", "secret", "signature", "apikey", "api_key"}


def redact_url(url: str) -> str:
    """The URL with credentials masked: query values, userinfo and Feishu's hook id (which is the credential)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    masked = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS or len(v) >= 16 else v) for k, v in query]
    path = parts.path
    segments = path.split("/")
    if "hook" in segments:  # Feishu/Lark: /open-apis/bot/v2/hook/<id>
        i = segments.index("hook")
        segments[i + 1:] = ["***"] * len(segments[i + 1:])
        path = "/".join(segments)
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, urllib.parse.urlencode(masked, safe="*"), ""))
