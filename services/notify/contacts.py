"""Where citizens' phone numbers come from: intake's PII vault, asked at send time, never stored here."""

from __future__ import annotations

from typing import Protocol

import httpx

from services.notify.channels import DeliveryError


class ContactDirectory(Protocol):
    """Port: the clear phone number of a case's citizen, or None when there is none to use."""

    async def phone_for(self, case_id: str, citizen_ref: str) -> str | None: ...


class IntakeContactDirectory:
    """Adapter: intake's scoped contact endpoint (API key with scope ``pii:read``; each read is logged
    by intake with our client id and purpose)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, path: str, api_key: str) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._path = path
        self._api_key = api_key

    async def phone_for(self, case_id: str, citizen_ref: str) -> str | None:
        url = self._base_url + self._path.format(case_id=case_id)
        try:
            response = await self._client.get(
                url, params={"purpose": "notify-sms"}, headers={"X-API-Key": self._api_key}
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"contact lookup failed: {type(exc).__name__}", endpoint_fault=False
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DeliveryError(
                f"contact lookup answered HTTP {response.status_code}",
                retryable=response.status_code >= 500 or response.status_code in (401, 403, 429),
                endpoint_fault=False,
            )
        data = response.json()
        if data.get("citizen_ref") not in (None, citizen_ref):
            return None  # the vault holds someone else for this case now: better silent than wrong
        return data.get("phone")


class FakeContactDirectory:
    """In-memory directory for tests and local runs without intake."""

    def __init__(self, phones: dict[str, str] | None = None) -> None:
        self.phones = dict(phones or {})
        self.lookups = 0

    async def phone_for(self, case_id: str, citizen_ref: str) -> str | None:
        self.lookups += 1
        return self.phones.get(citizen_ref)
