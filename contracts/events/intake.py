"""Events written by intake (the single writer of these types)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, HttpUrl

from contracts.events import (
    AppealType,
    CaseEvent,
    CaseSource,
    CitizenContact,
    Location,
    Urgency,
)


class CaseReceived(CaseEvent):
    """An appeal entered Gridline (受理) and became a case."""

    name: ClassVar[str] = "received"
    producer: ClassVar[str] = "intake"

    source: CaseSource
    external_id: Annotated[str, Field(description="The source system's own id (e.g. 12345 order number).")]
    received_at: AwareDatetime
    appeal_type: AppealType | None = None
    category_code: str | None = None
    title: str | None = None
    description: str
    address: str | None = None
    location: Location | None = None
    urgency: Urgency = Urgency.NORMAL
    reply_required: bool = True
    citizen: CitizenContact = CitizenContact()
    attachments: tuple[HttpUrl, ...] = ()
    resolved_on_spot: bool = Field(False, description="Grid member fixed it at once (即知即改).")


class CaseClosed(CaseEvent):
    """The case is finished (办结)."""

    name: ClassVar[str] = "closed"
    producer: ClassVar[str] = "intake"

    reason: Literal["resolved_on_spot", "citizen_satisfied", "no_feedback", "withdrawn", "duplicate"]
    note: str | None = None


EVENTS: tuple[type[CaseEvent], ...] = (CaseReceived, CaseClosed)
