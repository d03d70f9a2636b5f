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
    # Added by intake's normalisation (all optional, so older events still validate).
    category: Annotated[
        str | None,
        Field(description="Gridline's unified category (data/categories.csv); unclassified = triage."),
    ] = None
    category_name: str | None = None
    town_code: Annotated[
        str | None, Field(description="12-digit NBS code of the street/town, when known.")
    ] = None
    community_code: Annotated[
        str | None, Field(description="12-digit NBS code of the community/village.")
    ] = None
    grid_code: Annotated[str | None, Field(description="Grid (网格) code, when the source names it.")] = None
    reporter_id: Annotated[str | None, Field(description="Grid member id (网格员) for grid reports.")] = None
    outside_jurisdiction: bool = Field(
        False, description="The point lies outside the district: route to triage, do not drop."
    )
    triage_reasons: tuple[str, ...] = Field((), description="Why intake thinks an operator should look.")
    duplicate_of: Annotated[
        str | None, Field(description="Primary case this repeats (重复件); such a case is not routed again.")
    ] = None
    service_code: Annotated[str | None, Field(description="Open311 service_code, for Open311 requests.")] = (
        None
    )


class CaseClosed(CaseEvent):
    """The case is finished (办结)."""

    name: ClassVar[str] = "closed"
    producer: ClassVar[str] = "intake"

    reason: Literal["resolved_on_spot", "citizen_satisfied", "no_feedback", "withdrawn", "duplicate"]
    note: str | None = None


class DuplicateLinked(CaseEvent):
    """The appeal repeats an open case (重复件); it is linked to the primary and closed with it."""

    name: ClassVar[str] = "duplicate-linked"
    producer: ClassVar[str] = "intake"

    primary_case_id: str
    similarity: Annotated[float, Field(ge=0, le=1)]
    reason: str


class AppealUpdated(CaseEvent):
    """The citizen or source system added information to an open appeal (补充诉求)."""

    name: ClassVar[str] = "appeal-updated"
    producer: ClassVar[str] = "intake"

    description_addendum: str | None = None
    attachments: tuple[HttpUrl, ...] = ()


class AppealWithdrawn(CaseEvent):
    """The citizen withdrew the appeal (撤诉)."""

    name: ClassVar[str] = "appeal-withdrawn"
    producer: ClassVar[str] = "intake"

    reason: str | None = None


class FeedbackReceived(CaseEvent):
    """The citizen rated the reply (回访评价)."""

    name: ClassVar[str] = "feedback-received"
    producer: ClassVar[str] = "intake"

    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    resolved: bool | None = None
    comment: str | None = None


class CaseReopened(CaseEvent):
    """A dissatisfied citizen's case goes back for rework (重办)."""

    name: ClassVar[str] = "reopened"
    producer: ClassVar[str] = "intake"

    reason: str
    reopen_count: int = 1


EVENTS: tuple[type[CaseEvent], ...] = (
    CaseReceived,
    DuplicateLinked,
    AppealUpdated,
    AppealWithdrawn,
    FeedbackReceived,
    CaseClosed,
    CaseReopened,
)
