"""Events written by notify (the single writer of these types): what was told to whom."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from contracts.events import CaseEvent


class NotificationSent(CaseEvent):
    """A message was delivered to a recipient over a channel."""

    name: ClassVar[str] = "notification-sent"
    producer: ClassVar[str] = "notify"

    notification_id: str
    trigger_event_id: str
    recipient: Annotated[str, Field(description="Recipient id (never a phone number or e-mail address).")]
    channel: Annotated[str, Field(description="sms | email | webhook")]
    template: str
    attempts: Annotated[int | None, Field(description="Delivery attempts it took (1 = first try).")] = None
    title: Annotated[str | None, Field(description="Subject or first line, as the recipient saw it.")] = None


class NotificationFailed(CaseEvent):
    """A message could not be delivered after the last retry."""

    name: ClassVar[str] = "notification-failed"
    producer: ClassVar[str] = "notify"

    notification_id: str
    trigger_event_id: str
    recipient: str
    channel: str
    attempts: int
    error: str
    template: str | None = None


EVENTS: tuple[type[CaseEvent], ...] = (NotificationSent, NotificationFailed)
