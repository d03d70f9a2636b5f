"""Intake's pure domain: turning an appeal into a case, masking personal data, case numbers."""

from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from contracts.events import CaseSource, CitizenContact

CHINA_TZ = ZoneInfo("Asia/Shanghai")


def case_number(prefix: str, received_at: datetime, sequence: int) -> str:
    """Human-readable case number: prefix, local date, six-digit sequence (ZQ20261126000042)."""
    local = received_at.astimezone(CHINA_TZ)
    return f"{prefix}{local:%Y%m%d}{sequence:06d}"


def mask_phone(phone: str | None) -> str | None:
    """138****5678 for mobiles; keep area code and last four for landlines."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_name(name: str | None) -> str | None:
    """张** / 欧阳** : keep the surname character, hide the rest."""
    if not name:
        return None
    return name[0] + "*" * max(1, len(name) - 1)


def citizen_ref(phone: str | None, secret: str) -> str | None:
    """Stable opaque reference for one citizen's phone (keyed hash), usable for dedupe without PII."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    return "cz_" + hashlib.blake2b(digits.encode(), key=secret.encode()[:64], digest_size=12).hexdigest()


def citizen_contact(name: str | None, phone: str | None, secret: str) -> CitizenContact:
    return CitizenContact(
        name_masked=mask_name(name), phone_masked=mask_phone(phone), citizen_ref=citizen_ref(phone, secret)
    )


def fingerprint(source: CaseSource, payload: dict) -> str:
    """Hash of a submission, to tell a retry (same body) from a conflicting reuse of an external id."""
    return hashlib.sha256(
        source.value.encode() + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
