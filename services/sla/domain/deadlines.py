"""Deadline arithmetic and the timer plan: when a stage is due, when its cards and escalations fire.

Pure functions of (calendar, policy, start instant); the service stores their answers as durable timers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from contracts.events.sla import ClockKind, DeadlineStage
from services.sla.domain.calendar import WorkingCalendar
from services.sla.domain.policy import EscalationLevel, Limit, PolicyTable, StageLimit


class TimerKind(StrEnum):
    YELLOW = "yellow"  # DeadlineApproaching
    RED = "red"  # DeadlineBreached
    ESCALATE_1 = "escalate-1"  # CaseEscalated level 1..3
    ESCALATE_2 = "escalate-2"
    ESCALATE_3 = "escalate-3"

    @classmethod
    def escalation(cls, level: int) -> TimerKind:
        return cls(f"escalate-{level}")

    @property
    def level(self) -> int | None:
        return int(self.value.rsplit("-", 1)[1]) if self.value.startswith("escalate") else None


@dataclass(frozen=True)
class Deadline:
    """A computed due time and the calendar it rests on."""

    stage: DeadlineStage
    started_at: datetime
    due_at: datetime
    limit: Limit
    calendar_basis: str
    provisional: bool


@dataclass(frozen=True)
class PlannedTimer:
    kind: TimerKind
    due_at: datetime


def add_limit(calendar: WorkingCalendar, start: datetime, limit: Limit) -> datetime:
    """``start`` plus ``limit`` in the limit's clock."""
    if limit.clock is ClockKind.NATURAL:
        return start + timedelta(hours=limit.amount)
    if limit.clock is ClockKind.WORKING_HOURS:
        return calendar.add_working_hours(start, limit.amount)
    return calendar.add_working_days(start, limit.amount)


def compute_deadline(
    calendar: WorkingCalendar,
    stage: DeadlineStage,
    start: datetime,
    limit: Limit,
    extension_working_days: int = 0,
    paused: timedelta = timedelta(0),
) -> Deadline:
    """The due time of one stage started at ``start``, after any approved extension and pauses.

    Paused time moves the due time by the same amount of the stage's own clock: a pause of three
    office hours on a working-hours clock gives three more office hours, not three wall-clock hours.
    """
    due = add_limit(calendar, start, limit)
    if extension_working_days:
        due = calendar.add_working_days(due, extension_working_days)
    if paused > timedelta(0):
        due = _shift(calendar, due, limit.clock, paused)
    basis, provisional = calendar.basis_between(start, due)
    if limit.clock is ClockKind.NATURAL and not extension_working_days:
        basis, provisional = "natural time", False
    return Deadline(stage, start, due, limit, basis, provisional)


def _shift(calendar: WorkingCalendar, due: datetime, clock: ClockKind, paused: timedelta) -> datetime:
    if clock is ClockKind.NATURAL:
        return due + paused
    return calendar.add_working_hours(due, paused.total_seconds() / 3600)


def paused_in_clock(
    calendar: WorkingCalendar, clock: ClockKind, since: datetime, until: datetime
) -> timedelta:
    """How much of the clock's own time passed during a pause (office time for working clocks)."""
    if clock is ClockKind.NATURAL:
        return max(until - since, timedelta(0))
    return timedelta(hours=calendar.working_hours_between(since, until))


def yellow_at(calendar: WorkingCalendar, table: PolicyTable, deadline: Deadline) -> datetime | None:
    """When the yellow card (黄牌预警) fires: one working day before a working-day deadline, or when
    ``yellow_fraction`` of an hour limit has run. None if that moment would not fall after the start."""
    limit, due = deadline.limit, deadline.due_at
    if limit.clock is ClockKind.NATURAL:
        at = due - timedelta(hours=limit.amount * (1 - table.yellow_fraction))
    elif limit.clock is ClockKind.WORKING_HOURS:
        at = calendar.subtract_working_hours(due, limit.amount * (1 - table.yellow_fraction))
    else:
        before = table.yellow_working_days_before * calendar.office.hours_per_day
        at = calendar.subtract_working_hours(due, before)
        if at <= deadline.started_at:
            # a limit shorter than the warning period: warn when the fraction of the office time has run
            span = calendar.working_hours_between(deadline.started_at, due)
            at = calendar.add_working_hours(deadline.started_at, span * table.yellow_fraction)
    return at if deadline.started_at < at < due else None


def plan_cards(
    calendar: WorkingCalendar, table: PolicyTable, deadline: Deadline, stage_limit: StageLimit
) -> list[PlannedTimer]:
    """The yellow and red timers of one stage deadline, as the policy asks for them."""
    timers = []
    if stage_limit.yellow and (at := yellow_at(calendar, table, deadline)) is not None:
        timers.append(PlannedTimer(TimerKind.YELLOW, at))
    if stage_limit.red:
        timers.append(PlannedTimer(TimerKind.RED, deadline.due_at))
    return timers


def plan_escalations(
    calendar: WorkingCalendar, ladder: tuple[EscalationLevel, ...], breached_at: datetime
) -> list[PlannedTimer]:
    """The escalation ladder (督办) counted from the case's first red card; never earlier than it."""
    return [
        PlannedTimer(
            TimerKind.escalation(step.level), max(breached_at, add_limit(calendar, breached_at, step.after))
        )
        for step in ladder
    ]


def next_escalation_level(current: int) -> int:
    """A dissatisfied citizen raises supervision by one level (at least 1, at most 3)."""
    return min(max(current, 0) + 1, 3)
