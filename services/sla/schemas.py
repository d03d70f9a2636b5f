"""Sla's HTTP shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class DeadlinePublic(BaseModel):
    stage: str
    state: str
    clock: str
    amount: float
    started_at: datetime
    due_at: datetime
    provisional: bool
    calendar_basis: str
    policy_id: str
    policy_version: int
    assignment_id: str | None
    extension_days: int
    generation: int


class TimerPublic(BaseModel):
    stage: str
    kind: str
    generation: int
    due_at: datetime
    fired_at: datetime | None
    cancelled_at: datetime | None


class CaseDeadlinesPublic(BaseModel):
    case_id: str
    status: str
    escalation_level: int
    deadlines: list[DeadlinePublic]
    timers: list[TimerPublic]


class CalendarEntry(BaseModel):
    date: date
    kind: Literal["holiday", "workday"] = Field(description="holiday = 放假; workday = 调休上班")
    name: Annotated[str | None, Field(max_length=64, description="e.g. 春节")] = None


class CalendarYearUpdate(BaseModel):
    """The operator's table for one year, as published by the State Council (国务院办公厅通知)."""

    source: Annotated[str | None, Field(max_length=500)] = None
    entries: list[CalendarEntry]


class CalendarYearPublic(BaseModel):
    year: int
    version: int | None
    basis: str
    entries: list[CalendarEntry]
    recomputed_deadlines: int = 0


class ClockPause(BaseModel):
    """Why the case's clocks stop, e.g. waiting for the citizen (等待群众补充材料)."""

    reason: Annotated[str, Field(min_length=1, max_length=200, examples=["waiting for citizen"])]


class ClockActionPublic(BaseModel):
    """What a pause or resume changed, and the case's deadlines after it."""

    action: Literal["pause", "resume"]
    stages: list[str]
    case: CaseDeadlinesPublic
