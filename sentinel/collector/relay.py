"""The Alertmanager-webhook relay: `POST /api/v1/alertmanager/webhook` (docs/alerting.md).

Alertmanager's webhook receivers (deploy/alertmanager/alertmanager.yml) send the rule alerts here; the
collector turns each notification into events (sentinel.events.relay) and hands them to the chat robots of
its dispatch configuration (routes may match the Alertmanager receiver with `relayed_from`). Never back to an
Alertmanager: receivers that keep state are left out of this dispatcher, so nothing loops.

- Authenticated: `Authorization: Bearer <token>`, the token in `relay_token_file` (default
  <state_dir>/relay-token, made 0600 at the first start; Alertmanager reads it with
  `http_config.authorization.credentials_file`).
- One retry policy: the delivery queue's (`retry:`), as for the collector's own events. The answer is 200 once
  every event is queued (or was just sent in that state), 503 when a queue is full, so Alertmanager sends the
  notification again later; nothing is kept in the store.
- Every worker process has its own relay dispatcher; Alertmanager sends each notification to one of them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..events.dispatch import DispatchConfig, Dispatcher, ReceiverKinds
from ..events.relay import events_from_alertmanager_webhook
from .errors import ApiError
from .lifespan import around_lifespan
from .metrics import authorized, read_or_make_token
from .settings import CollectorSettings

log = logging.getLogger("sentinel.collector.relay")

PATH = "/api/v1/alertmanager/webhook"


def relay_token_path(settings: CollectorSettings) -> Path:
    return settings.relay_token_file or settings.state_dir / "relay-token"


def install(app: FastAPI, config: DispatchConfig, kinds: ReceiverKinds) -> Dispatcher:
    """Add the relay route, with a dispatcher of the chat receivers that lives as long as the app."""
    settings: CollectorSettings = app.state.settings
    token = read_or_make_token(relay_token_path(settings), "relay token")
    dispatcher = Dispatcher(config, kinds, only=lambda receiver: not receiver.keeps_state)
    app.state.relay_dispatcher = dispatcher

    async def relay(request: Request) -> JSONResponse:
        if not authorized(request, token):
            raise ApiError(401, f"POST {PATH} needs Authorization: Bearer <relay token>")
        try:
            payload: Any = json.loads(await request.body())
            events = events_from_alertmanager_webhook(payload)
        except (ValueError, TypeError) as exc:  # JSON errors are ValueErrors; so are pydantic's
            raise ApiError(422, f"not an Alertmanager webhook notification: {str(exc)[:300]}") from None
        queued = unrouted = full = 0
        for event in events:
            names = dispatcher.route(event)
            if not names:
                unrouted += 1
                continue
            drops = {n: _dropped(dispatcher, n) for n in names}
            dispatcher.dispatch(event)
            if any(_dropped(dispatcher, n) > drops[n] for n in names):
                full += 1
            else:
                queued += 1
        if unrouted:
            log.warning("relay: %d alert(s) from Alertmanager receiver %r match no route of %s", unrouted,
                        payload.get("receiver"), settings.alerting_config)
        body = {"alerts": len(events), "queued": queued, "unrouted": unrouted, "queue_full": full}
        # 503: Alertmanager retries the whole notification; the de-duplicator keeps the ones queued from repeating
        return JSONResponse(body, status_code=503 if full else 200)

    app.add_api_route(PATH, relay, methods=["POST"], include_in_schema=False)
    around_lifespan(app, stop=dispatcher.close)
    return dispatcher


def _dropped(dispatcher: Dispatcher, name: str) -> int:
    return int(getattr(dispatcher.worker(name), "stats", {}).get("dropped", 0))
