"""SMS through the gateway's HTTP API (documented in docs/notify.md).

The phone number travels only in the request body to the gateway: it is not logged, not stored and not
part of any error message.
"""

from __future__ import annotations

import aiohttp
import orjson

from services.notify.channels import DeliveryError, Outgoing, http_error
from services.notify.channels.http import request
from services.notify.domain import sms


class SmsGatewaySender:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/v1/sms"
        self._api_key = api_key

    async def send(self, message: Outgoing, address: str | None, endpoint_name: str | None) -> None:
        if not address:
            raise DeliveryError("no phone number for recipient", retryable=False, endpoint_fault=False)
        body = {
            "message_id": message.notification_id,
            "to": address,
            "text": message.body,
            "segments": sms.segments(message.body),
        }
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": message.notification_id,
        }
        status, _ = await request(
            self._session, "POST", self._url, "the SMS gateway", data=orjson.dumps(body), headers=headers
        )
        if status not in (200, 201, 202):
            raise http_error(status, "the SMS gateway")
