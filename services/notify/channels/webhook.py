"""Signed webhooks: JSON POST with an HMAC-SHA256 signature over timestamp and body (docs/notify.md)."""

from __future__ import annotations

import time

import aiohttp
import orjson

from services.notify.channels import DeliveryError, Outgoing, http_error
from services.notify.channels.http import request
from services.notify.domain import signing
from services.notify.domain.directory import Directory


def webhook_body(message: Outgoing) -> bytes:
    """The JSON document a receiver gets (schema in docs/notify.md)."""
    return orjson.dumps(
        {
            "type": "gridline.notification.v1",
            "notification_id": message.notification_id,
            "case_id": message.case_id,
            "trigger_event_id": message.trigger_event_id,
            "trigger_type": message.trigger_type,
            "recipient": message.recipient,
            "template": message.template,
            "title": message.title,
            "text": message.body,
            "data": message.payload,
            "created_at": message.created_at.isoformat(),
        }
    )


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, directory: Directory, clock=time.time) -> None:
        self._session = session
        self._directory = directory
        self._clock = clock

    async def send(self, message: Outgoing, address: str | None, endpoint_name: str | None) -> None:
        endpoint = self._directory.webhook_endpoints.get(endpoint_name or "")
        if endpoint is None:
            raise DeliveryError(
                f"unknown webhook endpoint {endpoint_name!r}", retryable=False, endpoint_fault=False
            )
        body = webhook_body(message)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.signature(endpoint.resolved_secret(), timestamp, body),
            signing.DELIVERY_HEADER: message.notification_id,
            signing.EVENT_HEADER: message.template,
        }
        status, _ = await request(
            self._session, "POST", endpoint.url, f"webhook {endpoint_name}", data=body, headers=headers
        )
        if not 200 <= status < 300:
            raise http_error(status, f"webhook {endpoint_name}")
