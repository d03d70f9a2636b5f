"""Properties of the calendar arithmetic over 2024-2027 (the last year is past the package's data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.domain.calendar import WorkingCalendar

CAL = WorkingCalendar()
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 10, 1), timezones=st.just(UTC)
)
hours = st.floats(min_value=0, max_value=120, allow_nan=False).map(lambda h: round(h, 2))
days = st.integers(min_value=1, max_value=30)


@settings(max_examples=300, deadline=None)
@given(instants, hours)
def test_adding_working_hours_never_lands_on_a_non_working_instant(start: datetime, amount: float) -> None:
    assert CAL.is_working_instant(CAL.add_working_hours(start, amount))


@settings(max_examples=300, deadline=None)
@given(instants, days)
def test_adding_working_days_never_lands_on_a_non_working_instant(start: datetime, amount: int) -> None:
    assert CAL.is_working_instant(CAL.add_working_days(start, amount))


@settings(max_examples=200, deadline=None)
@given(instants, days)
def test_one_more_working_day_is_always_later(start: datetime, amount: int) -> None:
    assert CAL.add_working_days(start, amount) < CAL.add_working_days(start, amount + 1)


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=0, max_value=10 * 24 * 3600), days)
def test_a_later_start_never_gives_an_earlier_deadline(start: datetime, later_by: int, amount: int) -> None:
    later = start + timedelta(seconds=later_by)
    assert CAL.add_working_days(start, amount) <= CAL.add_working_days(later, amount)
    assert CAL.add_working_hours(start, amount) <= CAL.add_working_hours(later, amount)


@settings(max_examples=200, deadline=None)
@given(instants, hours, hours)
def test_more_working_hours_are_never_earlier(start: datetime, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert CAL.add_working_hours(start, low) <= CAL.add_working_hours(start, high)


@settings(max_examples=200, deadline=None)
@given(instants, st.floats(min_value=0.01, max_value=60, allow_nan=False).map(lambda h: round(h, 2)))
def test_subtracting_working_hours_inverts_adding_them(start: datetime, amount: float) -> None:
    due = CAL.add_working_hours(start, amount)
    back = CAL.subtract_working_hours(due, amount)
    assert CAL.working_hours_between(back, due) == pytest.approx(amount, abs=1e-6)
