"""The Chinese working calendar and office hours.

Which days are working days comes from, in order of precedence:
1. the operator's holiday table for that year (``YearTable``), when the operator has published one;
2. the chinese-calendar package (statutory holidays and make-up workdays, 2004-2026 in 1.11.0);
3. otherwise weekends only, and every deadline that depends on such a day is *provisional*.

Nothing here raises for an unknown year: deadlines must keep being set (and the consumer must keep
running) while the State Council's notice for next year is not yet out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

PACKAGE_BASIS = "chinese-calendar 1.11.0"
FALLBACK_BASIS = "weekends-only (provisional)"
SHANGHAI = ZoneInfo("Asia/Shanghai")
_MAX_DAYS_SCANNED = 3660  # ten years: an operator table marking every day off must not loop forever


@dataclass(frozen=True)
class YearTable:
    """An operator-published calendar for one year: days off and make-up workdays (调休上班)."""

    year: int
    version: int
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    @property
    def basis(self) -> str:
        return f"operator table {self.year}-v{self.version}"


@dataclass(frozen=True)
class OfficeHours:
    """Daily office windows in local time, e.g. 08:30-12:00 and 13:30-17:30 (lunch break between)."""

    windows: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))

    def __post_init__(self) -> None:
        previous = time(0, 0)
        for start, end in self.windows:
            if not previous <= start < end:
                raise ValueError("office windows must be ordered, non-empty and not overlapping")
            previous = end
        if not self.windows:
            raise ValueError("at least one office window is needed")

    @classmethod
    def parse(cls, spec: str) -> OfficeHours:
        """``"08:30-12:00,13:30-17:30"`` → OfficeHours."""
        windows = []
        for part in spec.split(","):
            start, end = part.strip().split("-")
            windows.append((time.fromisoformat(start), time.fromisoformat(end)))
        return cls(tuple(windows))

    @property
    def hours_per_day(self) -> float:
        return sum(_seconds(e) - _seconds(s) for s, e in self.windows) / 3600


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


@dataclass(frozen=True)
class DayVerdict:
    working: bool
    basis: str
    provisional: bool


@dataclass
class WorkingCalendar:
    """Working days and office hours in Asia/Shanghai. Deadlines it computes report their basis."""

    office: OfficeHours = field(default_factory=OfficeHours)
    operator_tables: Mapping[int, YearTable] = field(default_factory=dict)
    tz: ZoneInfo = SHANGHAI
    _cache: dict[date, DayVerdict] = field(default_factory=dict, repr=False)

    def day(self, day: date) -> DayVerdict:
        """Whether ``day`` is a working day, on what basis, and whether that is only provisional."""
        cached = self._cache.get(day)
        if cached is None:
            cached = self._cache[day] = self._judge(day)
        return cached

    def _judge(self, day: date) -> DayVerdict:
        table = self.operator_tables.get(day.year)
        if table is not None:
            if day in table.workdays:
                return DayVerdict(True, table.basis, False)
            return DayVerdict(day not in table.holidays and day.weekday() < 5, table.basis, False)
        try:
            return DayVerdict(chinese_calendar.is_workday(day), PACKAGE_BASIS, False)
        except NotImplementedError:  # year outside the package's data
            return DayVerdict(day.weekday() < 5, FALLBACK_BASIS, True)

    def is_working_day(self, day: date) -> bool:
        return self.day(day).working

    def windows_on(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The office windows of ``day`` as aware datetimes (none on a day off)."""
        if not self.is_working_day(day):
            return
        for start, end in self.office.windows:
            yield datetime.combine(day, start, self.tz), datetime.combine(day, end, self.tz)

    def is_working_instant(self, at: datetime) -> bool:
        """True inside an office window (ends included: a deadline may fall at closing time)."""
        local = at.astimezone(self.tz)
        return any(s <= local <= e for s, e in self.windows_on(local.date()))

    def basis_between(self, start: datetime, end: datetime) -> tuple[str, bool]:
        """The calendar bases used by the days from ``start`` to ``end``, and if any was provisional."""
        first, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        bases: list[str] = []
        provisional = False
        day = first
        while day <= last and (day - first).days <= _MAX_DAYS_SCANNED:
            verdict = self.day(day)
            provisional |= verdict.provisional
            if verdict.basis not in bases:
                bases.append(verdict.basis)
            day += timedelta(days=1)
        return " + ".join(bases), provisional

    # --- arithmetic -------------------------------------------------------------------------------

    def add_working_days(self, start: datetime, days: float) -> datetime:
        """Closing time of the ``days``-th working day after the day of ``start`` (自次日起计算).

        Whole days count from the next day, as 12345 rules do; a fraction of a day is that share of
        the office day, added after the whole days (so 0.5 = half an office day into the next day).
        """
        whole = int(days)
        fraction = days - whole
        local = start.astimezone(self.tz)
        day = local.date()
        counted = 0
        for _ in range(_MAX_DAYS_SCANNED):
            if counted >= whole:
                break
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        else:
            return start + timedelta(days=days)
        if whole == 0:
            return self.add_working_hours(start, fraction * self.office.hours_per_day)
        closing = datetime.combine(day, self.office.windows[-1][1], self.tz)
        if fraction:
            return self.add_working_hours(closing, fraction * self.office.hours_per_day)
        return closing

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The instant when ``hours`` of office time have passed after ``start``.

        Time outside office windows does not count (nights, lunch, days off); a start out of hours
        begins counting at the next opening. The result is always inside a window (ends included).
        """
        remaining = timedelta(hours=hours)
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(_MAX_DAYS_SCANNED):
            for open_at, close_at in self.windows_on(day):
                if close_at < local or (close_at == local and remaining > timedelta(0)):
                    continue
                begin = max(open_at, local)
                if remaining <= close_at - begin:
                    return begin + remaining
                remaining -= close_at - begin
            day += timedelta(days=1)
        return start + timedelta(hours=hours)

    def subtract_working_hours(self, end: datetime, hours: float) -> datetime:
        """The instant ``hours`` of office time before ``end``; landing on an opening reports the
        previous window's close instead (the same point of office time, but on the earlier side)."""
        remaining = timedelta(hours=hours)
        if remaining <= timedelta(0):
            return end
        local = end.astimezone(self.tz)
        day = local.date()
        for _ in range(_MAX_DAYS_SCANNED):
            for open_at, close_at in reversed(list(self.windows_on(day))):
                if open_at >= local:
                    continue
                span = min(close_at, local) - open_at
                if remaining < span:
                    return min(close_at, local) - remaining
                if remaining == span:
                    return self._previous_close(open_at)
                remaining -= span
            day -= timedelta(days=1)
        return end - timedelta(hours=hours)

    def _previous_close(self, at: datetime) -> datetime:
        day = at.date()
        for _ in range(_MAX_DAYS_SCANNED):
            closes = [close_at for _, close_at in self.windows_on(day) if close_at < at]
            if closes:
                return closes[-1]
            day -= timedelta(days=1)
        return at

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Office hours elapsed from ``start`` to ``end`` (0 if ``end`` is not after ``start``)."""
        if end <= start:
            return 0.0
        total = timedelta(0)
        local_start, local_end = start.astimezone(self.tz), end.astimezone(self.tz)
        day = local_start.date()
        while day <= local_end.date() and (day - local_start.date()).days <= _MAX_DAYS_SCANNED:
            for open_at, close_at in self.windows_on(day):
                begin, finish = max(open_at, local_start), min(close_at, local_end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total.total_seconds() / 3600
