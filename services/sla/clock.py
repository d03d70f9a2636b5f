"""Clocks: the real one, and a fast one for tests and demos (virtual time running ``speed`` times faster
from a fixed origin, so that restarted processes agree on what time it is)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Wall-clock now (UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScaledClock:
    """Virtual time: ``origin`` at real unix time ``anchor``, then ``speed`` virtual seconds per real one."""

    origin: datetime
    anchor: float
    speed: float = 1.0

    def __call__(self) -> datetime:
        return self.origin + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def real_seconds(self, virtual: timedelta) -> float:
        """How long to really wait for ``virtual`` time to pass."""
        return virtual.total_seconds() / self.speed


def real_wait(clock: Clock, virtual: timedelta) -> float:
    """Real seconds until ``virtual`` time has passed on ``clock``."""
    if isinstance(clock, ScaledClock):
        return clock.real_seconds(virtual)
    return virtual.total_seconds()
