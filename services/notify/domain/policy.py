"""Delivery policy: retry backoff with jitter, the per-endpoint circuit breaker, quiet hours."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, capped, with
    "equal jitter" (half fixed, half random) so that retries of many messages don't arrive in step
    while none retries at once."""
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """One endpoint's breaker. Closed: calls flow. After ``threshold`` consecutive failures it opens and
    refuses calls for ``cooldown_s``; then half-open lets one trial call through, whose outcome closes or
    re-opens it. Times are monotonic seconds supplied by the caller."""

    threshold: int = 5
    cooldown_s: float = 30.0
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def allow(self, now: float) -> bool:
        """May a call go to the endpoint now? In half-open state only one trial at a time."""
        if self.state is CircuitState.OPEN and now - self.opened_at >= self.cooldown_s:
            self.state = CircuitState.HALF_OPEN
            self.trial_in_flight = False
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.HALF_OPEN and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until a refused call is worth trying again."""
        if self.state is CircuitState.OPEN:
            return max(0.0, self.opened_at + self.cooldown_s - now)
        return min(1.0, self.cooldown_s)

    def release(self) -> None:
        """An allowed call ended without telling anything about the endpoint (e.g. no address found)."""
        self.trial_in_flight = False

    def record_success(self) -> None:
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.state = CircuitState.OPEN
            self.opened_at = now


@dataclass(frozen=True)
class QuietHours:
    """A nightly window (e.g. 22:00–08:00 Asia/Shanghai) in which citizen SMS wait instead of going out."""

    start: time = time(22, 0)
    end: time = time(8, 0)
    timezone: str = "Asia/Shanghai"

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.timezone)).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, when: datetime) -> datetime:
        """``when`` itself outside the window, else the window's end (deferred, never dropped)."""
        if not self.contains(when):
            return when
        zone = ZoneInfo(self.timezone)
        local = when.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(when.tzinfo)
