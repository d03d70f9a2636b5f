"""Where citizens' phone numbers come from: intake's PII vault, asked at send time, never stored here."""

from __future__ import annotations

from typing import Protocol

import aiohttp
import orjson

from services.notify.channels import DeliveryError
from services.notify.channels.http import request


class ContactDirectory(Protocol):
    """Port: the clear phone number of a case's citizen, or None when there is none to use."""

    async def phone_for(self, case_id: str, citizen_ref: str) -> str | None: ...


class IntakeContactDirectory:
    """Adapter: intake's scoped contact endpoint (API key with scope ``pii:read``; each read is logged
    by intake with our client id, purpose and the fields read). It asks for the phone alone."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, path: str, api_key: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._path = path
        self._api_key = api_key

    async def phone_for(self, case_id: str, citizen_ref: str) -> str | None:
        url = self._base_url + self._path.format(case_id=case_id)
        try:
            status, body = await request(
                self._session, "GET", url, "intake's contact lookup",
                params={"purpose": "notify-sms", "fields": "phone"}, headers={"X-API-Key": self._api_key},
            )  # fmt: skip
        except DeliveryError as exc:
            raise DeliveryError(f"contact lookup failed: {exc}", endpoint_fault=False) from None
        if status == 404:
            return None
        if status != 200:
            raise DeliveryError(
                f"contact lookup answered HTTP {status}",
                retryable=status >= 500 or status in (401, 403, 429),
                endpoint_fault=False,
            )
        data = orjson.loads(body)
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
