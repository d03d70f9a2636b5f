from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class TimelineEntry(BaseModel):
    event_id: str
    event_type: str
    occurred_at: datetime
    actor: str
    source: str
    data: dict[str, Any]


class CasePublic(BaseModel):
    """A case as operators see it: current state plus, on the detail view, its timeline."""

    case_id: str
    status: str
    source: str | None = None
    external_id: str | None = None
    appeal_type: str | None = None
    category_code: str | None = None
    title: str | None = None
    description: str | None = None
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    urgency: str | None = None
    reply_required: bool | None = None
    citizen_name_masked: str | None = None
    citizen_phone_masked: str | None = None
    received_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    last_event_at: datetime
    events_applied: int
    timeline: list[TimelineEntry] | None = None


class CaseList(BaseModel):
    items: list[CasePublic]
    next_cursor: str | None = None
