"""Notify's HTTP schemas."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class NotificationPublic(BaseModel):
    """One entry of a case's delivery log (recipient ids, never addresses or phone numbers)."""

    notification_id: str
    trigger_event_id: str
    trigger_type: str
    recipient: str
    recipient_kind: str
    channel: str
    template: str
    title: str
    body: str = Field(description="The rendered text (masked data only).")
    status: str = Field(description="pending | sent | failed")
    attempts: int
    deferred_reason: str | None = Field(None, description="quiet-hours | circuit-open | retry")
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None
    failed_at: datetime | None = None


class CaseNotifications(BaseModel):
    case_id: str
    notifications: list[NotificationPublic]
