"""SMS through the gateway's HTTP API (documented in docs/notify.md).

The phone number travels only in the request body to the gateway: it is not logged, not stored and not
part of any error message.
"""

from __future__ import annotations

import httpx

from services.notify.channels import DeliveryError, Outgoing, http_error
from services.notify.domain import sms


class SmsGatewaySender:
    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/v1/sms"
        self._api_key = api_key

    async def send(self, message: Outgoing, address: str | None, endpoint_name: str | None) -> None:
        if not address:
            raise DeliveryError("no phone number for recipient", retryable=False, endpoint_fault=False)
        request = {
            "message_id": message.notification_id,
            "to": address,
            "text": message.body,
            "segments": sms.segments(message.body),
        }
        try:
            response = await self._client.post(
                self._url,
                json=request,
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Idempotency-Key": message.notification_id,
                },
            )
        except httpx.TimeoutException:
            raise DeliveryError("timeout calling the SMS gateway") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__} calling the SMS gateway") from None
        if response.status_code not in (200, 201, 202):
            raise http_error(response.status_code, "the SMS gateway")
