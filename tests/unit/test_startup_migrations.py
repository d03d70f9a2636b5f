"""A service started while its database is down or restarting waits for it (bounded), then migrates."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from runtime.service import migrate_when_reachable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def upgrade_failing(*failures: BaseException):
    calls: list[str] = []
    pending = list(failures)

    def upgrade(migrations_dir: Path, database_url: str) -> None:
        calls.append(database_url)
        if pending:
            raise pending.pop(0)

    return upgrade, calls


def test_an_unreachable_or_starting_database_is_waited_for_then_migrated():
    clock = Clock()
    starting = asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    upgrade, calls = upgrade_failing(ConnectionRefusedError(111, "refused"), starting)
    migrate_when_reachable(
        Path("m"), "postgresql://db", upgrade=upgrade, sleep=clock.sleep, clock=lambda: clock.now
    )
    assert len(calls) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_a_database_still_down_after_the_timeout_fails_the_start():
    clock = Clock()
    upgrade, calls = upgrade_failing(*[ConnectionRefusedError(111, "refused")] * 100)
    with pytest.raises(ConnectionRefusedError):
        migrate_when_reachable(
            Path("m"), "postgresql://db", timeout_s=20, upgrade=upgrade, sleep=clock.sleep,
            clock=lambda: clock.now,
        )  # fmt: skip
    assert clock.now <= 20
    assert 3 < len(calls) < 100


def test_a_broken_migration_fails_the_start_at_once():
    clock = Clock()
    upgrade, calls = upgrade_failing(ValueError("duplicate revision"))
    with pytest.raises(ValueError):
        migrate_when_reachable(
            Path("m"), "postgresql://db", upgrade=upgrade, sleep=clock.sleep, clock=lambda: clock.now
        )
    assert len(calls) == 1 and clock.sleeps == []
