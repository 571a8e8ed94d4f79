"""Chat robot payloads against each vendor's documented custom-bot format, signatures recomputed here from the
documented algorithms, sent to a local receiver on 127.0.0.1; vendor error codes; secrets kept out of logs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse

import pytest

from sentinel.events.model import AlertEvent, GradeMap
from sentinel.exporters.webhooks import (
    WECOM_MAX_BYTES,
    DeliveryError,
    DingTalkSender,
    FeishuSender,
    GenericJSONSender,
    WeComSender,
    redact_url,
)
from tests.obs_support import Receiver

TOKEN = "d1e2a3d4b5e6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2"  # made up for the test
SECRET = "SEC" + "0123456789abcdef" * 4  # made up for the test


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _event(**kw) -> AlertEvent:
    base = dict(kind="forbidden_port", severity="high", department="财政局", system="非税收入管理系统",
                host="10.10.1.21",
                summary="发现禁止开放的端口 23/tcp (telnet)", description="Scan at 10:02 found telnet listening.",
                payload={"subject": "23/tcp"}, fingerprint="fp-telnet")
    base.update(kw)
    return AlertEvent(**base)


def test_dingtalk_signed_markdown(receiver: Receiver):
    sender = DingTalkSender("ding", receiver.url(f"/robot/send?access_token={TOKEN}"), secret=SECRET,
                            at_mobiles=("13800000000",))
    before = int(time.time() * 1000)
    sender.send(_event())
    req = receiver.wait_for(1)[0]
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
    assert q["access_token"] == [TOKEN]
    ts = int(q["timestamp"][0])
    assert before <= ts <= int(time.time() * 1000), "timestamp is the current time in milliseconds"
    # documented: sign = urlEncode(base64(HmacSHA256(key=secret, "timestamp\nsecret"))), UTF-8
    expected = base64.b64encode(hmac.new(SECRET.encode("utf-8"), f"{ts}\n{SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert q["sign"] == [expected]  # parse_qs undid the URL encoding
    assert f"&sign={urllib.parse.quote_plus(expected)}" in req.path  # sent URL-encoded
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"].startswith("【重大】")
    text = body["markdown"]["text"]
    for fact in ("财政局", "非税收入管理系统", "10.10.1.21", "23/tcp", "重大 (II", "发现禁止开放的端口"):
        assert fact in text
    assert "@13800000000" in text and body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert req.headers["Content-Type"].startswith("application/json")


def test_dingtalk_unsigned_has_no_sign(receiver: Receiver):
    DingTalkSender("ding", receiver.url(f"/robot/send?access_token={TOKEN}")).send(_event())
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(receiver.wait_for(1)[0].path).query)
    assert set(q) == {"access_token"}


def test_wecom_markdown_within_the_size_limit(receiver: Receiver):
    sender = WeComSender("wx", receiver.url("/cgi-bin/webhook/send?key=" + TOKEN[:36]))
    sender.send(_event(description="很长的说明。" * 2000))
    req = receiver.wait_for(1)[0]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)["key"] == [TOKEN[:36]]
    body = req.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert len(content.encode("utf-8")) <= WECOM_MAX_BYTES
    assert content.startswith("### 【重大】") and "非税收入管理系统" in content


def test_wecom_refuses_a_secret():
    with pytest.raises(ValueError, match="not signed"):
        WeComSender("wx", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x", secret="s")


def test_feishu_signed_card(receiver: Receiver):
    sender = FeishuSender("fs", receiver.url("/open-apis/bot/v2/hook/" + TOKEN[:36]), secret=SECRET)
    receiver.responses = [(200, {"code": 0, "msg": "success", "data": {}})]
    before = int(time.time())
    # a kind outside the graded-response table is graded by severity: critical -> 特别重大 (red)
    sender.send(_event(kind="prometheus_alert", severity="critical"))
    body = receiver.wait_for(1)[0].json()
    ts = body["timestamp"]
    assert isinstance(ts, str) and before <= int(ts) <= int(time.time()), "timestamp: seconds, as a string"
    # documented: key = "timestamp\nsecret", message empty, HmacSHA256, base64
    expected = base64.b64encode(hmac.new(f"{ts}\n{SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"] == {"tag": "plain_text", "content": card["header"]["title"]["content"]}
    assert card["header"]["title"]["content"].startswith("【特别重大】")
    assert card["header"]["template"] == "red"
    md = card["elements"][0]["text"]
    assert md["tag"] == "lark_md" and "非税收入管理系统" in md["content"] and not md["content"].startswith("###")


def test_feishu_resolved_is_green_and_old_style_answer_accepted(receiver: Receiver):
    receiver.responses = [(200, {"StatusCode": 0, "StatusMessage": "success"})]
    FeishuSender("fs", receiver.url("/open-apis/bot/v2/hook/abc")).send(_event(resolved=True))
    body = receiver.wait_for(1)[0].json()
    assert "sign" not in body and "timestamp" not in body
    assert body["card"]["header"]["template"] == "green"
    assert "已恢复" in body["card"]["header"]["title"]["content"]


def test_generic_json_with_hmac_header(receiver: Receiver):
    sender = GenericJSONSender("hook", receiver.url("/hooks/sentinel"), secret=SECRET,
                               headers={"Authorization": "Bearer " + TOKEN})
    sender.send(_event())
    req = receiver.wait_for(1)[0]
    ts = req.headers["X-Sentinel-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{ts}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Sentinel-Signature"] == expected
    assert req.headers["Authorization"] == "Bearer " + TOKEN
    doc = req.json()
    assert doc["status"] == "firing" and doc["grade"] == "重大" and doc["grade_level"] == "II"
    assert doc["key"] == "fp-telnet"
    assert doc["event"]["system"] == "非税收入管理系统" and doc["event"]["payload"] == {"subject": "23/tcp"}


@pytest.mark.parametrize("sender_cls, path, answer, retryable", [
    (DingTalkSender, f"/robot/send?access_token={TOKEN}", {"errcode": 310000, "errmsg": "sign not match"}, False),
    (DingTalkSender, f"/robot/send?access_token={TOKEN}", {"errcode": 130101, "errmsg": "send too fast"}, True),
    (WeComSender, "/cgi-bin/webhook/send?key=k", {"errcode": 93000, "errmsg": "invalid webhook url"}, False),
    (WeComSender, "/cgi-bin/webhook/send?key=k", {"errcode": 45009, "errmsg": "api freq out of limit"}, True),
    (FeishuSender, "/open-apis/bot/v2/hook/x", {"code": 19021, "msg": "sign match fail"}, False),
    (FeishuSender, "/open-apis/bot/v2/hook/x", {"code": 9499, "msg": "too many request"}, True),
])
def test_vendor_error_codes_in_http_200(receiver: Receiver, sender_cls, path, answer, retryable):
    receiver.responses = [(200, answer)]
    with pytest.raises(DeliveryError) as exc:
        sender_cls("r", receiver.url(path)).send(_event())
    assert exc.value.retryable is retryable
    assert str(list(answer.values())[0]) in str(exc.value)


@pytest.mark.parametrize("status, retryable", [(500, True), (502, True), (429, True), (408, True), (400, False),
                                               (404, False)])
def test_http_status_classification(receiver: Receiver, status, retryable):
    receiver.responses = [(status, {"error": "x"})]
    with pytest.raises(DeliveryError) as exc:
        GenericJSONSender("hook", receiver.url("/h")).send(_event())
    assert exc.value.retryable is retryable


def test_custom_grade_mapping_changes_the_message(receiver: Receiver):
    """The site's severity mapping grades the kinds the graded-response table does not list."""
    sender = GenericJSONSender("hook", receiver.url("/h"), grades=GradeMap(mapping={"high": "一般"}))
    sender.send(_event(kind="prometheus_alert"))
    assert receiver.wait_for(1)[0].json()["grade"] == "一般"


@pytest.mark.parametrize("url, hidden, shown", [
    (f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", TOKEN, "oapi.dingtalk.com"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
     "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa", "/cgi-bin/webhook/send"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/2e8e6a1c-0000-4f3e-9b7e-0123456789ab",
     "2e8e6a1c-0000-4f3e-9b7e-0123456789ab", "/open-apis/bot/v2/hook/***"),
    ("https://user:pa55word@hooks.example/x?team=ops", "pa55word", "team=ops"),
])
def test_redact_url(url, hidden, shown):
    red = redact_url(url)
    assert hidden not in red and shown in red


def test_secrets_never_reach_the_log(receiver: Receiver, caplog):
    from sentinel.events.dispatch import DispatchConfig, Dispatcher
    from sentinel.exporters.receivers import RECEIVERS

    receiver.responses = [(500, {}), (200, {"errcode": 0, "errmsg": "ok", "code": 0})]
    cfg = DispatchConfig.model_validate({
        "retry": {"max_attempts": 2, "initial_delay_seconds": 0.01},
        "receivers": [
            {"name": "ding", "type": "dingtalk", "url": receiver.url(f"/robot/send?access_token={TOKEN}"),
             "secret": SECRET},
            {"name": "fs", "type": "feishu", "url": receiver.url(f"/open-apis/bot/v2/hook/{TOKEN}"), "secret": SECRET},
            {"name": "wx", "type": "wecom", "url": receiver.url(f"/cgi-bin/webhook/send?key={TOKEN}")},
            {"name": "hook", "type": "webhook", "url": receiver.url("/h"), "secret": SECRET,
             "headers": {"Authorization": "Bearer " + TOKEN}}],
        "default_receivers": ["ding", "fs", "wx", "hook"]})
    with caplog.at_level(logging.DEBUG):
        d = Dispatcher(cfg, RECEIVERS)
        try:
            assert repr(cfg).count(TOKEN) == 0 and repr(cfg).count(SECRET) == 0
            d.dispatch(_event())
            assert d.wait_idle(10)
        finally:
            d.close()
    assert len(receiver.requests) >= 4
    text = caplog.text + json.dumps([r.getMessage() for r in caplog.records])
    assert "attempt 1 failed" in text, "the retry was logged (so the log was really captured)"
    assert TOKEN not in text and SECRET not in text


def test_message_carries_observed_value_remediation_and_link():
    from sentinel.exporters.webhooks import format_message

    ev = _event(kind="high_risk_finding", level=3, url="https://collector.example:8443/api/v1/events?system_id=1",
                payload={"reason": "PermitRootLogin yes (/etc/ssh/sshd_config:32)",
                         "remediation": {"zh": "设置 PermitRootLogin no", "en": "set PermitRootLogin no"}})
    msg = format_message(ev, GradeMap())
    assert "**观察值 Observed**: PermitRootLogin yes (/etc/ssh/sshd_config:32)" in msg.markdown
    assert "**整改建议 Remediation**: 设置 PermitRootLogin no / set PermitRootLogin no" in msg.markdown
    assert "[详情 Details](https://collector.example:8443/api/v1/events?system_id=1)" in msg.markdown
    assert "整改建议 Remediation: 设置 PermitRootLogin no" in msg.plain
    assert msg.title.startswith("【较大】高风险问题 / High-risk finding")  # level 3 exposure
    payload = {"previous_score": 82.5, "score": 64.0, "previous_conclusion": "良", "conclusion": "差"}
    drop = format_message(_event(kind="score_drop", payload=payload), GradeMap())
    assert "**观察值 Observed**: 82.5 -> 64.0 (良 -> 差)" in drop.markdown
    resolved = format_message(ev.model_copy(update={"resolved": True}), GradeMap())
    assert "整改建议" not in resolved.markdown  # nothing to do any more
    scan = format_message(_event(kind="new_forbidden_port", payload={"subject": "10.10.1.21:23/tcp",
                                                                      "service": "telnet", "after": None}), GradeMap())
    assert "开放了禁止的端口" in scan.title and "**观察值 Observed**: telnet" in scan.markdown
