"""What the query API answers: cases (with timeline on the detail view), pages, statistics, worklists."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


class TimelineEntry(BaseModel):
    event_id: str
    event_type: str
    occurred_at: datetime
    actor: str
    source: str
    data: dict[str, Any]


class Card(BaseModel):
    colour: str
    stage: str
    due_at: datetime
    at: datetime


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
    citizen_phone_masked: str | None = Field(None, description="Masked only; full numbers never get here.")
    received_at: datetime | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None
    town_code: str | None = None
    town_name: str | None = None
    community_code: str | None = None
    grid_code: str | None = None
    assignee_kind: str | None = None
    assignee_code: str | None = None
    assignee_name: str | None = None
    department_code: str | None = None
    handler_departments: list[str] = []
    assigned_at: datetime | None = None
    accepted_at: datetime | None = None
    replied_at: datetime | None = None
    reply: str | None = None
    satisfaction: str | None = None
    duplicate_of: str | None = None
    deadlines: dict[str, dict[str, Any]] = {}
    case_due_at: datetime | None = None
    overdue: bool = False
    card: str | None = Field(None, description="yellow | red: the most severe card shown so far.")
    cards: list[Card] = []
    escalation_level: int = 0
    return_count: int = 0
    transfer_count: int = 0
    reopen_count: int = 0
    extension_days: int = 0
    extension_pending: bool = False
    clock_paused: bool = False
    is_open: bool = True
    on_time: bool | None = None
    handling_seconds: int | None = None
    last_event_at: datetime
    events_applied: int
    timeline: list[TimelineEntry] | None = None


class CaseList(BaseModel):
    items: list[CasePublic]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null at the end.")


class StatRow(BaseModel):
    """Counters and rates of one group (a day, category, town, department or source)."""

    key: str | date
    name: str | None = None
    received: int
    open: int
    closed: int
    on_time_rate: float | None = Field(None, description="Replied on time / cases with a known outcome.")
    return_rate: float | None = Field(None, description="Cases returned at least once / received.")
    avg_handling_hours: float | None = None
    satisfaction_rate: float | None = Field(None, description="(Basically) satisfied / rated.")
    rated: int = 0
    red: int = 0
    yellow: int = 0
    escalated: int = 0


class StatTable(BaseModel):
    by: str
    items: list[StatRow]
    total: StatRow


class Hotspot(BaseModel):
    key: str
    name: str | None = None
    open: int
    overdue: int
    lat: float | None = None
    lon: float | None = None


class WorklistEntry(BaseModel):
    case_id: str
    role: str
    status: str
    card: str | None = None
    escalation_level: int
    due_at: datetime | None = None
    opened_at: datetime


class Consistency(BaseModel):
    position: str
    caught_up: bool
