"""The exporters' receivers by type, for the core's `Dispatcher` (sentinel.events.dispatch.ReceiverKinds).

The composition root (the CLI commands that build a collector or `sentinel up`) hands `RECEIVERS` to the
collector; the core never imports this module. Chat robots and generic webhooks are one-attempt senders
that the core queues and retries (`ReceiverContext.worker`); Alertmanager keeps its alerts alive itself.
"""
from __future__ import annotations

from typing import Any

from sentinel.events.delivery import Receiver, ReceiverContext
from sentinel.events.dispatch import ReceiverConfig, ReceiverKinds

from .alertmanager import AlertmanagerClient, AlertmanagerPublisher
from .webhooks import SENDERS


def _headers(rc: ReceiverConfig) -> dict[str, str]:
    return {k: v.get_secret_value() for k, v in rc.headers.items()}


def alertmanager(rc: ReceiverConfig, ctx: ReceiverContext) -> Receiver:
    client = AlertmanagerClient(rc.url.get_secret_value(), timeout=rc.timeout_seconds, headers=_headers(rc))
    return AlertmanagerPublisher(client, grades=ctx.grades, resend_interval=rc.resend_interval_seconds,
                                 resolved_resend_for=rc.resolved_resend_seconds, backoff=ctx.retry,
                                 on_result=ctx.on_result, name=rc.name, labels=dict(rc.labels))


def chat(rc: ReceiverConfig, ctx: ReceiverContext) -> Receiver:
    kw: dict[str, Any] = {"grades": ctx.grades, "timeout": rc.timeout_seconds, "timezone_name": ctx.timezone,
                          "secret": rc.secret.get_secret_value() if rc.secret else None}
    if rc.type == "dingtalk":
        kw["at_mobiles"] = tuple(rc.at_mobiles)
    if rc.type == "webhook":
        kw["headers"] = _headers(rc)
    return ctx.worker(SENDERS[rc.type](rc.name, rc.url.get_secret_value(), **kw))


RECEIVERS: ReceiverKinds = {"alertmanager": alertmanager, **{kind: chat for kind in SENDERS}}
