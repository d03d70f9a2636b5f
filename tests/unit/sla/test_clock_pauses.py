"""A paused clock: how much of its own time a pause takes, and how far that moves the deadline."""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.events.sla import ClockKind, DeadlineStage
from services.sla.domain.calendar import SHANGHAI, WorkingCalendar
from services.sla.domain.deadlines import compute_deadline, paused_in_clock
from services.sla.domain.policy import Limit

CAL = WorkingCalendar()
MONDAY = datetime(2025, 3, 3, 8, 30, tzinfo=SHANGHAI)


def test_a_pause_over_lunch_and_night_counts_only_office_time_on_working_clocks() -> None:
    since, until = MONDAY + timedelta(hours=1), MONDAY + timedelta(days=1, hours=1)
    paused = paused_in_clock(CAL, ClockKind.WORKING_HOURS, since, until)
    assert paused == timedelta(hours=7.5)  # Monday 09:30 to Tuesday 09:30: one office day


def test_a_pause_counts_wall_time_on_natural_clocks() -> None:
    paused = paused_in_clock(CAL, ClockKind.NATURAL, MONDAY, MONDAY + timedelta(days=1, hours=1))
    assert paused == timedelta(hours=25)


def test_a_pause_ending_before_it_started_counts_nothing() -> None:
    assert paused_in_clock(CAL, ClockKind.NATURAL, MONDAY, MONDAY - timedelta(hours=1)) == timedelta(0)


def test_one_paused_office_day_moves_a_working_day_deadline_by_one_working_day() -> None:
    limit = Limit(clock=ClockKind.WORKING_DAYS, amount=5)
    before = compute_deadline(CAL, DeadlineStage.REPLY, MONDAY, limit)
    after = compute_deadline(CAL, DeadlineStage.REPLY, MONDAY, limit, paused=timedelta(hours=7.5))
    assert before.due_at == datetime(2025, 3, 10, 17, 30, tzinfo=SHANGHAI)
    assert after.due_at == datetime(2025, 3, 11, 17, 30, tzinfo=SHANGHAI)


def test_a_pause_on_a_friday_moves_a_working_hours_deadline_over_the_weekend() -> None:
    friday = datetime(2025, 3, 7, 15, 30, tzinfo=SHANGHAI)
    limit = Limit(clock=ClockKind.WORKING_HOURS, amount=4)
    due = compute_deadline(CAL, DeadlineStage.SIGN_FOR, friday, limit, paused=timedelta(hours=1)).due_at
    assert due == datetime(2025, 3, 10, 11, 30, tzinfo=SHANGHAI)  # 2 h Friday, 3 h Monday morning
