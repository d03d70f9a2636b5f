"""The working calendar: holidays, make-up workdays, office hours, lunch, out-of-hours receipt."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from services.sla.domain.calendar import (
    FALLBACK_BASIS,
    PACKAGE_BASIS,
    SHANGHAI,
    OfficeHours,
    WorkingCalendar,
    YearTable,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


CAL = WorkingCalendar()


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2024, 2, 4), True),  # Sunday, make-up workday before Spring Festival
        (date(2024, 2, 12), False),  # Spring Festival, a Monday
        (date(2024, 10, 12), True),  # Saturday, make-up workday after National Day
        (date(2024, 10, 7), False),
        (date(2025, 1, 26), True),  # Sunday make-up
        (date(2025, 2, 4), False),
        (date(2025, 2, 8), True),  # Saturday make-up
        (date(2025, 10, 8), False),  # Mid-Autumn joined National Day in 2025
        (date(2025, 10, 11), True),
        (date(2026, 2, 14), True),  # Saturday make-up
        (date(2026, 2, 23), False),
        (date(2026, 2, 28), True),
        (date(2026, 10, 10), True),
        (date(2025, 3, 8), False),  # an ordinary Saturday
        (date(2025, 3, 10), True),  # an ordinary Monday
    ],
)
def test_working_days_follow_the_statutory_calendar(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working
    assert CAL.day(day).basis == PACKAGE_BASIS


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        ("2025-03-03 10:00", 5, "2025-03-10 17:30"),  # counted from the next day, closing time
        ("2025-03-07 10:00", 1, "2025-03-10 17:30"),  # over a weekend
        ("2025-03-08 11:00", 1, "2025-03-10 17:30"),  # received on a Saturday
        ("2025-03-03 22:00", 1, "2025-03-04 17:30"),  # received at night
        ("2024-09-27 10:00", 5, "2024-10-10 17:30"),  # Sunday make-up, then National Day
        ("2024-10-11 09:00", 1, "2024-10-12 17:30"),  # Saturday make-up is a working day
        ("2025-01-24 15:00", 3, "2025-02-05 17:30"),  # Spring Festival 2025
        ("2026-02-13 15:00", 2, "2026-02-24 17:30"),  # Spring Festival 2026 with a Saturday make-up
        ("2025-04-30 16:00", 2, "2025-05-07 17:30"),  # Labour Day
        ("2025-03-03 10:00", 0.5, "2025-03-03 15:15"),  # half an office day
    ],
)
def test_adding_working_days_skips_holidays_and_counts_make_up_days(
    start: str, days: float, due: str
) -> None:
    assert CAL.add_working_days(at(start), days) == at(due)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        ("2025-03-03 08:30", 4, "2025-03-03 14:00"),  # the lunch break does not count
        ("2025-03-03 11:00", 1, "2025-03-03 12:00"),  # due exactly at the lunch break
        ("2025-03-03 11:00", 1.5, "2025-03-03 14:00"),
        ("2025-03-03 12:15", 1, "2025-03-03 14:30"),  # received during lunch
        ("2025-03-03 07:00", 0.5, "2025-03-03 09:00"),  # received before opening
        ("2025-03-07 18:00", 2, "2025-03-10 10:30"),  # received Friday evening
        ("2025-03-03 17:00", 7.5, "2025-03-04 17:00"),  # one office day
        ("2025-03-03 17:30", 0, "2025-03-03 17:30"),  # closing time is still a working instant
        ("2025-03-03 12:30", 0, "2025-03-03 13:30"),  # zero hours out of hours: the next opening
        ("2025-09-30 16:30", 2, "2025-10-09 09:30"),  # into the National Day holiday
        ("2025-10-10 17:00", 1, "2025-10-11 09:00"),  # onto a make-up Saturday
    ],
)
def test_adding_working_hours_counts_only_office_time(start: str, hours: float, due: str) -> None:
    assert CAL.add_working_hours(at(start), hours) == at(due)


@pytest.mark.parametrize(
    ("end", "hours", "result"),
    [
        ("2025-03-04 14:00", 1, "2025-03-04 11:30"),  # back over lunch
        ("2025-03-04 17:30", 7.5, "2025-03-03 17:30"),  # one office day back lands on the earlier close
        ("2025-03-10 10:00", 2, "2025-03-07 17:00"),  # back over a weekend
    ],
)
def test_subtracting_working_hours_walks_back_through_office_time(
    end: str, hours: float, result: str
) -> None:
    assert CAL.subtract_working_hours(at(end), hours) == at(result)


def test_office_hours_can_be_configured() -> None:
    calendar = WorkingCalendar(office=OfficeHours.parse("09:00-12:00,14:00-18:00"))
    assert calendar.office.hours_per_day == 7
    assert calendar.add_working_hours(at("2025-03-03 11:00"), 2) == at("2025-03-03 15:00")
    assert calendar.add_working_days(at("2025-03-03 11:00"), 1) == at("2025-03-04 18:00")


def test_overlapping_office_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        OfficeHours(((time(8), time(12)), (time(11), time(17))))


def test_a_year_beyond_the_package_falls_back_to_weekends_and_is_provisional() -> None:
    verdict = CAL.day(date(2027, 1, 1))  # New Year's Day 2027 is a Friday
    assert verdict.working and verdict.provisional and verdict.basis == FALLBACK_BASIS
    due = CAL.add_working_days(at("2026-12-31 10:00"), 5)
    assert due == at("2027-01-07 17:30")
    basis, provisional = CAL.basis_between(at("2026-12-31 10:00"), due)
    assert provisional and PACKAGE_BASIS in basis and FALLBACK_BASIS in basis


def test_an_operator_table_replaces_the_fallback_for_its_year() -> None:
    table = YearTable(2027, 1, holidays=frozenset({date(2027, 1, 1)}), workdays=frozenset({date(2027, 1, 9)}))
    calendar = WorkingCalendar(operator_tables={2027: table})
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 1, 9))  # a Saturday made a workday
    assert calendar.add_working_days(at("2026-12-31 10:00"), 5) == at("2027-01-08 17:30")
    assert calendar.basis_between(at("2026-12-31 10:00"), at("2027-01-08 17:30")) == (
        f"{PACKAGE_BASIS} + operator table 2027-v1",
        False,
    )


def test_a_calendar_with_no_working_day_at_all_still_answers() -> None:
    everything_off = YearTable(
        2030,
        1,
        holidays=frozenset(
            date.fromordinal(d) for d in range(date(2030, 1, 1).toordinal(), date(2031, 1, 1).toordinal())
        ),
    )
    calendar = WorkingCalendar(operator_tables={2030: everything_off})
    assert calendar.add_working_hours(at("2030-06-01 10:00"), 1) > at("2030-06-01 10:00")


def test_working_hours_between_undoes_adding_them() -> None:
    start = at("2025-09-30 16:30")
    assert CAL.working_hours_between(start, CAL.add_working_hours(start, 9.25)) == pytest.approx(9.25)
