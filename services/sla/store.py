"""Sla's database access (SQLAlchemy Core): deadlines, durable timers and the holiday table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events.sla import DeadlineStage
from services.sla.domain.calendar import YearTable
from services.sla.domain.deadlines import PlannedTimer
from services.sla.tables import cases, deadlines, holiday_years, holidays, timers

ACTIVE = ("running", "paused")


async def ensure_case(conn: AsyncConnection, case_id: str, **facts: Any) -> sa.Row:
    """The case's row, created on first sight; known facts (appeal type, ...) fill empty columns only."""
    given = {k: v for k, v in facts.items() if v is not None}
    stmt = insert(cases).values(case_id=case_id, **given)
    if given:
        stmt = stmt.on_conflict_do_update(
            index_elements=["case_id"],
            set_={k: sa.func.coalesce(getattr(cases.c, k), stmt.excluded[k]) for k in given},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["case_id"])
    await conn.execute(stmt)
    row = (await conn.execute(sa.select(cases).where(cases.c.case_id == case_id).with_for_update())).one()
    return row


async def update_case(conn: AsyncConnection, case_id: str, **values: Any) -> None:
    await conn.execute(
        sa.update(cases).where(cases.c.case_id == case_id).values(updated_at=sa.func.now(), **values)
    )


async def deadline_rows(
    conn: AsyncConnection, case_id: str, stages: Iterable[DeadlineStage] | None = None
) -> dict[str, sa.Row]:
    query = sa.select(deadlines).where(deadlines.c.case_id == case_id)
    if stages is not None:
        query = query.where(deadlines.c.stage.in_([str(s) for s in stages]))
    return {row.stage: row for row in (await conn.execute(query.order_by(deadlines.c.stage))).all()}


async def save_deadline(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert or replace a stage's clock (the caller has chosen the new generation)."""
    stmt = insert(deadlines).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["case_id", "stage"],
            set_={k: stmt.excluded[k] for k in values if k not in ("case_id", "stage")}
            | {"updated_at": sa.func.now()},
        )
    )


async def set_deadline_state(
    conn: AsyncConnection, case_id: str, stages: Sequence[DeadlineStage], state: str, at: datetime
) -> list[str]:
    """Move active clocks of ``stages`` to ``state``; returns the stages that changed."""
    result = await conn.execute(
        sa.update(deadlines)
        .where(
            deadlines.c.case_id == case_id,
            deadlines.c.stage.in_([str(s) for s in stages]),
            deadlines.c.state.in_(ACTIVE),
        )
        .values(state=state, stopped_at=at, updated_at=sa.func.now())
        .returning(deadlines.c.stage)
    )
    return [row.stage for row in result.all()]


async def schedule(
    conn: AsyncConnection,
    case_id: str,
    stage: str,
    generation: int,
    planned: Sequence[PlannedTimer],
    deadline_due_at: datetime,
    assignment_id: str | None,
) -> None:
    """Store timers; scheduling the same (case, stage, kind, generation) twice is a no-op."""
    if not planned:
        return
    await conn.execute(
        insert(timers)
        .values(
            [
                {
                    "case_id": case_id,
                    "stage": stage,
                    "kind": str(p.kind),
                    "generation": generation,
                    "due_at": p.due_at,
                    "deadline_due_at": deadline_due_at,
                    "assignment_id": assignment_id,
                }
                for p in planned
            ]
        )
        .on_conflict_do_nothing(constraint="sla_timers_once")
    )


async def cancel_timers(
    conn: AsyncConnection,
    case_id: str,
    at: datetime,
    stages: Iterable[str] | None = None,
    kinds_prefix: str | None = None,
) -> int:
    """Cancel pending timers of a case (optionally only some stages, or kinds starting with a prefix)."""
    query = sa.update(timers).where(
        timers.c.case_id == case_id, timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None)
    )
    if stages is not None:
        query = query.where(timers.c.stage.in_([str(s) for s in stages]))
    if kinds_prefix is not None:
        query = query.where(timers.c.kind.startswith(kinds_prefix))
    return (await conn.execute(query.values(cancelled_at=at))).rowcount


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[sa.Row]:
    """Lock up to ``limit`` due, unfired timers; rows locked by another replica are skipped."""
    query = (
        sa.select(timers)
        .where(timers.c.due_at <= now, timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
        .order_by(timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await conn.execute(query)).all())


async def mark_fired(conn: AsyncConnection, ids: Sequence[int], at: datetime) -> None:
    await conn.execute(sa.update(timers).where(timers.c.id.in_(ids)).values(fired_at=at))


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    query = sa.select(sa.func.min(timers.c.due_at)).where(
        timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None)
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def case_timers(conn: AsyncConnection, case_id: str) -> list[sa.Row]:
    query = sa.select(timers).where(timers.c.case_id == case_id).order_by(timers.c.due_at, timers.c.id)
    return list((await conn.execute(query)).all())


async def load_year_tables(conn: AsyncConnection) -> dict[int, YearTable]:
    """Every operator-published year, as calendar tables."""
    years = {row.year: row.version for row in (await conn.execute(sa.select(holiday_years))).all()}
    off: dict[int, set[date]] = {y: set() for y in years}
    on: dict[int, set[date]] = {y: set() for y in years}
    for row in (await conn.execute(sa.select(holidays))).all():
        (on if row.kind == "workday" else off)[row.year].add(row.day)
    return {y: YearTable(y, v, frozenset(off[y]), frozenset(on[y])) for y, v in years.items()}


async def holiday_table_stamp(conn: AsyncConnection) -> tuple[int, int]:
    """A cheap fingerprint of the operator table (years, sum of versions) to notice changes."""
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(holiday_years.c.version), 0))
    count, total = (await conn.execute(query)).one()
    return int(count), int(total)


async def replace_year(
    conn: AsyncConnection, year: int, entries: Sequence[tuple[date, str, str | None]], source: str | None
) -> int:
    """Replace one year's operator table; returns its new version."""
    stmt = insert(holiday_years).values(year=year, version=1, source=source)
    version = (
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["year"],
                set_={
                    "version": holiday_years.c.version + 1,
                    "source": stmt.excluded.source,
                    "updated_at": sa.func.now(),
                },
            ).returning(holiday_years.c.version)
        )
    ).scalar_one()
    await conn.execute(sa.delete(holidays).where(holidays.c.year == year))
    if entries:
        await conn.execute(
            insert(holidays).values([{"day": d, "year": year, "kind": k, "name": n} for d, k, n in entries])
        )
    return int(version)


async def provisional_case_ids(conn: AsyncConnection) -> list[str]:
    query = (
        sa.select(deadlines.c.case_id)
        .where(deadlines.c.provisional, deadlines.c.state.in_(ACTIVE))
        .distinct()
    )
    return [row.case_id for row in (await conn.execute(query)).all()]
