"""Chat webhooks: DingTalk, WeCom and Feishu robots and generic JSON, delivered off the caller's thread.

Vendor formats (each robot's documented custom-bot API):
- DingTalk: POST `https://oapi.dingtalk.com/robot/send?access_token=…`, signed robots add `timestamp` (ms) and
  `sign` = urlencode(base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}"))) to the query; body
  `{"msgtype": "markdown", "markdown": {"title", "text"}}`; answer `{"errcode": 0, "errmsg": "ok"}`.
- WeCom (企业微信) group robot: POST `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`, body
  `{"msgtype": "markdown", "markdown": {"content"}}` (content at most 4096 bytes); answer `{"errcode": 0}`.
- Feishu (飞书) custom bot: POST `https://open.feishu.cn/open-apis/bot/v2/hook/…`; signed bots put `timestamp`
  (s, string) and `sign` = base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg="")) in the body;
  answer `{"code": 0}` (older: `{"StatusCode": 0}`).
- Generic JSON: the event as JSON; with a secret, `X-Sentinel-Timestamp` and `X-Sentinel-Signature:
  sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` so the receiver can authenticate it.

Each sender makes one attempt (`send`) and says whether a failure may pass (transport errors, 408/429/5xx,
vendor rate limits: `DeliveryError.retryable`); queueing and retries are the core's
(`sentinel.events.delivery.DeliveryWorker`, one thread and one bounded queue per receiver). Webhook URLs
carry credentials (access_token, key, hook id): logs only ever show `redact_url()` of them, and secrets are
never logged.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Optional
from zoneinfo import ZoneInfo

import httpx

from sentinel.events.delivery import DeliveryError
from sentinel.events.model import GRADE_EN, GRADE_LEVEL, AlertEvent, GradeMap
from sentinel.events.redact import redact_url

log = logging.getLogger(__name__)

WECOM_MAX_BYTES = 4096
DINGTALK_MAX_BYTES = 20000  # DingTalk rejects very long markdown; keep well inside it

class _RedactingFilter(logging.Filter):
    """httpx logs every request URL at INFO; robot URLs hold credentials, so mask them on the way out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) or (isinstance(a, str) and "://" in a)
                                else a for a in record.args)
        return True


def _install_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactingFilter) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactingFilter())


_install_redaction()


# ---- signatures -------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign` query value (already URL-encoded)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's `sign` body field: the HMAC key is "timestamp\\nsecret" and the message is empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def generic_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()


# ---- message text -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    title: str
    markdown: str
    plain: str


def format_message(event: AlertEvent, grades: GradeMap, tz: str = "Asia/Shanghai") -> Message:
    """A bilingual (zh first) message: grade, what happened, where, when."""
    grade = grades.of(event)
    zh, en = event.title
    state_zh, state_en = ("已恢复", "Resolved") if event.resolved else ("告警", "Alert")
    title = f"【{grade}】{zh} / {en}" + (f" - {state_zh} {state_en}" if event.resolved else "")
    when = event.created_at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")
    facts = [
        ("状态 State", f"{state_zh} {state_en}"),
        ("事件分级 Grade", f"{grade} ({GRADE_LEVEL[grade]}, {GRADE_EN[grade]})"),
        ("严重程度 Severity", event.severity),
        ("部门 Department", event.department),
        ("系统 System", event.system),
    ]
    if event.host:
        facts.append(("主机 Host", event.host))
    if event.check:
        facts.append(("检查项 Check", event.check))
    if event.payload.get("subject") not in (None, ""):
        facts.append(("对象 Subject", str(event.payload["subject"])))
    observed = observed_value(event)
    if observed:
        facts.append(("观察值 Observed", _truncate_utf8(observed, 300)))
    facts.append(("时间 Time", when))
    remediation = _remediation(event.payload.get("remediation"))
    # facts before the free text, and the free text capped, so a size limit never cuts the facts off
    summary = _truncate_utf8(event.summary, 600)
    description = _truncate_utf8(event.description, 1500)
    lines = [f"### {title}", "", summary, ""]
    lines += [f"- **{k}**: {v}" for k, v in facts]
    if remediation and not event.resolved:
        lines += ["", f"**整改建议 Remediation**: {remediation}"]
    if event.url:
        lines += ["", f"[详情 Details]({event.url})"]
    if description:
        lines += ["", description]
    plain = "\n".join([title, summary] + [f"{k}: {v}" for k, v in facts]
                      + ([f"整改建议 Remediation: {remediation}"] if remediation and not event.resolved else [])
                      + ([event.url] if event.url else []) + ([description] if description else []))
    return Message(title=title, markdown="\n".join(lines), plain=plain)


def observed_value(event: AlertEvent) -> str:
    """What was seen, from the event's payload as ingest and scan_ingest write it."""
    p = event.payload
    if event.kind == "score_drop" and p.get("score") is not None and p.get("previous_score") is not None:
        return (f"{p['previous_score']:.1f} -> {p['score']:.1f} "
                f"({p.get('previous_conclusion') or '?'} -> {p.get('conclusion') or '?'})")
    if p.get("reason"):
        return str(p["reason"])
    if p.get("after") or p.get("service"):
        return " -> ".join(str(v) for v in (p.get("before"), p.get("after") or p.get("service")) if v)
    if p.get("error"):
        return str(p["error"])
    return ""


def _remediation(value: object) -> str:
    """整改建议 as the baseline gives it: a {zh, en} mapping (both, zh first) or plain text."""
    if isinstance(value, dict):
        parts = [str(value[k]) for k in ("zh", "en") if value.get(k)]
        return _truncate_utf8(" / ".join(parts), 600)
    return _truncate_utf8(str(value), 600) if value else ""


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


# ---- senders ------------------------------------------------------------------------------------------


@dataclass
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Sender:
    """One webhook: builds the vendor request for an event and judges the answer (the core's `Sender`
    protocol). Not thread-safe; one worker uses it."""

    kind = "webhook"
    retryable_codes: frozenset[int] = frozenset()

    def __init__(self, name: str, url: str, *, secret: Optional[str] = None, grades: Optional[GradeMap] = None,
                 timeout: float = 10.0, timezone_name: str = "Asia/Shanghai",
                 client: Optional[httpx.Client] = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"receiver {name!r}: url must be http(s)://host/..., got {redact_url(url)}")
        ZoneInfo(timezone_name)  # fail at configuration time, not at the first alert
        self.name = name
        self._url = url
        self._secret = secret
        self.grades = grades or GradeMap()
        self.timezone = timezone_name
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                              follow_redirects=False, trust_env=False)

    @property
    def safe_url(self) -> str:
        return redact_url(self._url)

    def build(self, event: AlertEvent) -> Request:
        raise NotImplementedError

    def send(self, event: AlertEvent) -> None:
        """One attempt; raises DeliveryError (retryable or not) on failure."""
        req = self.build(event)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "sentinel-dengbao", **req.headers}
        try:
            resp = self._client.post(req.url, content=req.body, headers=headers)
        except httpx.HTTPError as exc:  # connect/read timeouts, refused, reset: the far end may come back
            raise DeliveryError(f"{type(exc).__name__}", retryable=True) from None
        self.check(resp)

    def check(self, resp: httpx.Response) -> None:
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            raise DeliveryError(f"HTTP {resp.status_code}", retryable=True)
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}", retryable=False)
        self.check_body(resp)

    def check_body(self, resp: httpx.Response) -> None:
        """Vendor robots answer HTTP 200 with an error code in the body."""

    def _code(self, resp: httpx.Response, *fields: str) -> None:
        try:
            data = resp.json()
        except ValueError:
            raise DeliveryError(f"answer is not JSON: {resp.text[:200]!r}", retryable=False) from None
        for f in fields:
            if isinstance(data, dict) and f in data:
                code = data[f]
                if code in (0, "0"):
                    return
                msg = data.get("errmsg") or data.get("msg") or data.get("StatusMessage") or ""
                try:
                    retryable = int(code) in self.retryable_codes
                except (TypeError, ValueError):
                    retryable = False
                raise DeliveryError(f"{f} {code}: {msg}"[:300], retryable=retryable)
        raise DeliveryError(f"answer has none of {fields}: {resp.text[:200]!r}", retryable=False)

    def close(self) -> None:
        self._client.close()


class DingTalkSender(Sender):
    kind = "dingtalk"
    retryable_codes = frozenset({130101, -1})  # 130101: sending too fast; -1: system busy

    def __init__(self, name: str, url: str, *, at_mobiles: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(name, url, **kw)
        if "access_token=" not in url:
            raise ValueError(f"receiver {name!r}: a DingTalk robot URL has an access_token query ({self.safe_url})")
        self.at_mobiles = tuple(at_mobiles)

    def build(self, event: AlertEvent) -> Request:
        msg = format_message(event, self.grades, self.timezone)
        text = msg.markdown
        if self.at_mobiles:  # DingTalk only notifies people whose @mobile is in the text as well
            text += "\n\n" + " ".join(f"@{m}" for m in self.at_mobiles)
        body = {"msgtype": "markdown",
                "markdown": {"title": msg.title, "text": _truncate_utf8(text, DINGTALK_MAX_BYTES)},
                "at": {"atMobiles": list(self.at_mobiles), "isAtAll": False}}
        url = self._url
        if self._secret:
            ts = int(time.time() * 1000)
            url += f"&timestamp={ts}&sign={dingtalk_sign(self._secret, ts)}"
        return Request(url, json.dumps(body, ensure_ascii=False).encode())

    def check_body(self, resp: httpx.Response) -> None:
        self._code(resp, "errcode")


class WeComSender(Sender):
    kind = "wecom"
    retryable_codes = frozenset({45009, -1})  # 45009: api freq out of limit; -1: system busy

    def __init__(self, name: str, url: str, **kw: Any) -> None:
        if kw.get("secret"):
            raise ValueError(f"receiver {name!r}: WeCom robots are not signed; the key in the URL is the credential")
        super().__init__(name, url, **kw)
        if "key=" not in url:
            raise ValueError(f"receiver {name!r}: a WeCom robot URL has a key query ({self.safe_url})")

    def build(self, event: AlertEvent) -> Request:
        msg = format_message(event, self.grades, self.timezone)
        body = {"msgtype": "markdown", "markdown": {"content": _truncate_utf8(msg.markdown, WECOM_MAX_BYTES)}}
        return Request(self._url, json.dumps(body, ensure_ascii=False).encode())

    def check_body(self, resp: httpx.Response) -> None:
        self._code(resp, "errcode")


class FeishuSender(Sender):
    kind = "feishu"
    retryable_codes = frozenset({9499, 11232})  # rate limits

    _TEMPLATE = {"特别重大": "red", "重大": "orange", "较大": "yellow", "一般": "blue"}

    def build(self, event: AlertEvent) -> Request:
        msg = format_message(event, self.grades, self.timezone)
        grade = self.grades.of(event)
        body: dict[str, Any] = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": msg.title},
                           "template": "green" if event.resolved else self._TEMPLATE[grade]},
                # lark_md has no headings: drop the first (title) line, the header shows it
                "elements": [{"tag": "div", "text": {"tag": "lark_md",
                                                     "content": msg.markdown.split("\n", 2)[2]}}],
            },
        }
        if self._secret:
            ts = int(time.time())
            body = {"timestamp": str(ts), "sign": feishu_sign(self._secret, ts), **body}
        return Request(self._url, json.dumps(body, ensure_ascii=False).encode())

    def check_body(self, resp: httpx.Response) -> None:
        self._code(resp, "code", "StatusCode")


class GenericJSONSender(Sender):
    kind = "webhook"

    def __init__(self, name: str, url: str, *, headers: Optional[dict[str, str]] = None, **kw: Any) -> None:
        super().__init__(name, url, **kw)
        self.headers = dict(headers or {})

    def build(self, event: AlertEvent) -> Request:
        grade = self.grades.of(event)
        doc = {"version": "1", "source": "sentinel", "status": "resolved" if event.resolved else "firing",
               "key": event.key, "grade": grade, "grade_level": GRADE_LEVEL[grade], "title": list(event.title),
               "event": event.model_dump(mode="json")}
        body = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()
        headers = dict(self.headers)
        if self._secret:
            ts = int(time.time())
            headers["X-Sentinel-Timestamp"] = str(ts)
            headers["X-Sentinel-Signature"] = generic_signature(self._secret, ts, body)
        return Request(self._url, body, headers)


SENDERS: dict[str, type[Sender]] = {"dingtalk": DingTalkSender, "wecom": WeComSender, "feishu": FeishuSender,
                                    "webhook": GenericJSONSender}
