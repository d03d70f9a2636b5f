"""Signed webhooks: JSON POST with an HMAC-SHA256 signature over timestamp and body (docs/notify.md)."""

from __future__ import annotations

import time

import httpx
import orjson

from services.notify.channels import DeliveryError, Outgoing, http_error
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
    def __init__(self, client: httpx.AsyncClient, directory: Directory, clock=time.time) -> None:
        self._client = client
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
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"timeout calling webhook {endpoint_name}") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__} calling webhook {endpoint_name}") from None
        if not 200 <= response.status_code < 300:
            raise http_error(response.status_code, f"webhook {endpoint_name}")
