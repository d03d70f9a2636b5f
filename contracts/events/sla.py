"""Events written by sla (the single writer of these types): deadlines, cards and escalation."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from contracts.events import CaseEvent


class ClockKind(StrEnum):
    NATURAL = "natural"  # calendar time
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


class DeadlineStage(StrEnum):
    SIGN_FOR = "sign_for"  # 签收
    RETURN_WINDOW = "return_window"  # 退单时限
    REPLY = "reply"  # 答复
    CASE = "case"  # overall case deadline (办结)


class DeadlineSet(CaseEvent):
    """A deadline was set or recomputed for one stage of a case."""

    name: ClassVar[str] = "deadline-set"
    producer: ClassVar[str] = "sla"

    stage: DeadlineStage
    due_at: AwareDatetime
    clock: ClockKind
    amount: Annotated[float, Field(description="The limit in the clock's unit (hours or days).")]
    policy_id: str
    policy_version: int
    calendar_basis: Annotated[str, Field(description="e.g. chinese-calendar 1.11.0, operator table 2027-v1")]
    provisional: bool = Field(False, description="True when the calendar for the period is not yet known.")
    assignment_id: str | None = None


class DeadlineApproaching(CaseEvent):
    """Yellow card (黄牌): a deadline is near."""

    name: ClassVar[str] = "deadline-approaching"
    producer: ClassVar[str] = "sla"

    stage: DeadlineStage
    due_at: AwareDatetime
    assignment_id: str | None = None


class DeadlineBreached(CaseEvent):
    """Red card (红牌): a deadline passed."""

    name: ClassVar[str] = "deadline-breached"
    producer: ClassVar[str] = "sla"

    stage: DeadlineStage
    due_at: AwareDatetime
    assignment_id: str | None = None


class CaseEscalated(CaseEvent):
    """Supervision level raised (督办)."""

    name: ClassVar[str] = "escalated"
    producer: ClassVar[str] = "sla"

    level: Annotated[int, Field(ge=1, le=3)]
    reason: str


class ClockPaused(CaseEvent):
    """A case's clock stopped (extension approved, waiting for the citizen)."""

    name: ClassVar[str] = "clock-paused"
    producer: ClassVar[str] = "sla"

    stage: DeadlineStage
    reason: str


class ClockResumed(CaseEvent):
    """A paused clock runs again."""

    name: ClassVar[str] = "clock-resumed"
    producer: ClassVar[str] = "sla"

    stage: DeadlineStage
    paused_seconds: float


EVENTS: tuple[type[CaseEvent], ...] = (
    DeadlineSet,
    DeadlineApproaching,
    DeadlineBreached,
    CaseEscalated,
    ClockPaused,
    ClockResumed,
)
