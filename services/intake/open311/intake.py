"""An Open311 POST form, normalised into an ``Appeal``. Pure."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from pydantic import HttpUrl, TypeAdapter, ValidationError

from contracts.events import CaseSource, CoordinateSystem
from services.intake import categories
from services.intake.appeals import Normalisation, locate, phone
from services.intake.domain import Appeal, Contact
from services.intake.normalise import mask_numbers_in_text, normalise_optional, normalise_text
from services.intake.open311 import catalogue
from services.intake.open311.render import Open311Error

_ATTRIBUTE = re.compile(r"^attribute\[([^\]]{1,64})\](\[\])?$")
_URL = TypeAdapter(HttpUrl)
LIMITS = {
    "description": 4000,
    "address_string": 500,
    "address_id": 64,
    "first_name": 64,
    "last_name": 64,
    "phone": 32,
    "email": 254,
    "device_id": 128,
    "account_id": 128,
    "media_url": 1000,
    "jurisdiction_id": 200,
    "service_code": 64,
    "lat": 32,
    "long": 32,
    "api_key": 200,
}


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    value = values[0]
    if len(value) > LIMITS.get(name, 1000):
        raise Open311Error(400, f"{name} is longer than {LIMITS.get(name, 1000)} characters")
    return value if value.strip() else None


def _coordinate(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a decimal number (WGS84)") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise Open311Error(400, f"{name} must lie between {low} and {high}")
    return value


def appeal_from_form(
    fields: dict[str, list[str]], external_id: str, client_id: str, rules: Normalisation
) -> tuple[Appeal, dict]:
    """The appeal a POST requests form describes, and the submission fingerprinted for retries."""
    service_code = _one(fields, "service_code")
    if service_code is None:
        raise Open311Error(400, "service_code is required")
    service = catalogue.services().get(service_code)
    if service is None:
        raise Open311Error(400, f"service_code '{service_code}' not found (see services.json)")
    answers: dict[str, list[str]] = {}
    for key, values in fields.items():
        if key.startswith("attribute"):
            match = _ATTRIBUTE.match(key)
            if match is None:
                raise Open311Error(400, f"'{key}' is not of the form attribute[code]")
            answers.setdefault(match.group(1), []).extend(values)
    try:
        checked = catalogue.check_answers(service, answers)
    except catalogue.AttributeError_ as exc:
        raise Open311Error(400, str(exc)) from None

    lat_raw, long_raw = _one(fields, "lat"), _one(fields, "long")
    address = normalise_optional(_one(fields, "address_string"))
    address_id = _one(fields, "address_id")
    if (lat_raw is None) != (long_raw is None):
        raise Open311Error(400, "lat and long must be given together")
    if lat_raw is None and address is None and address_id is None:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    location, outside = None, False
    if lat_raw is not None and long_raw is not None:
        lat = _coordinate("lat", lat_raw, -90, 90)
        lon = _coordinate("long", long_raw, -180, 180)
        location, outside = locate(lat, lon, CoordinateSystem.WGS84)  # Open311 coordinates are WGS84

    media_url = _one(fields, "media_url")
    if media_url is not None:
        try:
            media_url = str(_URL.validate_python(media_url))
        except ValidationError:
            raise Open311Error(400, "media_url must be an http(s) URL") from None
    clear = normalise_text(_one(fields, "description") or "")
    answered = catalogue.describe_answers(checked)
    clear = "\n".join(part for part in (clear, answered) if part) or service.service_name
    first, last = (
        normalise_optional(_one(fields, "first_name")),
        normalise_optional(_one(fields, "last_name")),
    )
    try:
        number = phone("phone", _one(fields, "phone"), rules)
    except Exception as exc:
        raise Open311Error(400, f"phone: {exc}") from None
    appeal = Appeal(
        source=CaseSource.OPEN311,
        external_id=external_id,
        received_at=datetime.now(UTC),
        description=mask_numbers_in_text(clear),
        description_clear=clear,
        category=categories.classify("open311", service_code),
        category_code=service_code,
        title=service.service_name,
        address=(address and mask_numbers_in_text(address))
        or (f"address_id:{address_id}" if address_id else None),
        location=location,
        outside_jurisdiction=outside,
        place=categories.locate_address(address),
        attachments=(media_url,) if media_url else (),
        service_code=service_code,
        contact=Contact(name="".join(p for p in (last, first) if p) or None, phone=number),
        actor=f"open311:{client_id}",
    )
    # received_at is "now", so it stays out of the fingerprint; the form itself identifies a retry.
    submission = {k: v for k, v in sorted(fields.items()) if k != "api_key"}
    return appeal, submission
