"""Sla's database access (SQLAlchemy Core): deadlines, durable timers and the holiday table."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import TextualSelect

from contracts.events.sla import DeadlineStage
from runtime.sql import precompiled
from services.sla.domain.calendar import YearTable
from services.sla.tables import cases, deadlines, holiday_years, holidays, timers

ACTIVE = ("running", "paused")


async def ensure_case(conn: AsyncConnection, case_id: str, **facts: Any) -> sa.Row:
    """The case's row, locked, created on first sight; known facts (appeal type, ...) fill empty columns
    only. One round trip: the upsert always updates (so it locks and returns the row)."""
    given = {k: v for k, v in facts.items() if v is not None}
    return (await conn.execute(_ensure_statement(tuple(sorted(given))), {"case_id": case_id, **given})).one()


@functools.cache
def _ensure_statement(columns: tuple[str, ...]) -> TextualSelect:
    stmt = insert(cases)
    fill = {k: sa.func.coalesce(cases.c[k], stmt.excluded[k]) for k in columns}
    return precompiled(
        stmt.on_conflict_do_update(
            index_elements=["case_id"], set_=fill or {"case_id": stmt.excluded.case_id}
        ).returning(*cases.columns),
        ["case_id", *columns],
        returning=list(cases.columns),
    )


async def lock_case(conn: AsyncConnection, case_id: str) -> sa.Row | None:
    """The case's row, locked until the transaction ends; None if sla has never seen the case."""
    query = sa.select(cases).where(cases.c.case_id == case_id).with_for_update()
    return (await conn.execute(query)).first()


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


async def save_deadline(conn: AsyncConnection, values: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
    """Insert or replace stage clocks (the caller has chosen each new generation); many rows, with the same
    keys, go in one executemany."""
    rows = [values] if isinstance(values, dict) else list(values)
    if rows:
        await conn.execute(_save_deadline_statement(tuple(rows[0])), rows)


@functools.cache
def _save_deadline_statement(columns: tuple[str, ...]) -> sa.TextClause:
    stmt = insert(deadlines)
    return precompiled(
        stmt.on_conflict_do_update(
            index_elements=["case_id", "stage"],
            set_={k: stmt.excluded[k] for k in columns if k not in ("case_id", "stage")}
            | {"updated_at": sa.func.now()},
        ),
        columns,
    )


async def pause_deadlines(conn: AsyncConnection, case_id: str, stages: Sequence[str], at: datetime) -> None:
    """Mark running clocks paused since ``at``."""
    await conn.execute(
        sa.update(deadlines)
        .where(deadlines.c.case_id == case_id, deadlines.c.stage.in_(stages), deadlines.c.state == "running")
        .values(state="paused", paused_at=at, updated_at=sa.func.now())
    )


async def fired_kinds(conn: AsyncConnection, case_id: str, stage: str, since: datetime) -> set[str]:
    """Card kinds already fired for a stage's clock started at ``since`` (any generation)."""
    query = sa.select(timers.c.kind).where(
        timers.c.case_id == case_id, timers.c.stage == stage, timers.c.fired_at >= since
    )
    return {row.kind for row in (await conn.execute(query)).all()}


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


@dataclass(frozen=True)
class NewTimer:
    """One timer to store (a row of ``sla_timers`` before it is fired or cancelled)."""

    case_id: str
    stage: str
    kind: str
    generation: int
    due_at: datetime
    deadline_due_at: datetime
    assignment_id: str | None = None


# One statement per batch whatever its size: arrays bind as 7 parameters, where a multi-row VALUES would
# bind 7 per row (and hit PostgreSQL's 65535-parameter limit at ~9,000 rows).
_SCHEDULE_MANY = sa.text(
    "INSERT INTO sla_timers (case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id) "
    "SELECT * FROM unnest(:case_ids, :stages, :kinds, :generations, :due_ats, :deadline_due_ats, "
    ":assignment_ids) ON CONFLICT ON CONSTRAINT sla_timers_once DO NOTHING"
).bindparams(
    sa.bindparam("case_ids", type_=ARRAY(sa.Text)),
    sa.bindparam("stages", type_=ARRAY(sa.Text)),
    sa.bindparam("kinds", type_=ARRAY(sa.Text)),
    sa.bindparam("generations", type_=ARRAY(sa.Integer)),
    sa.bindparam("due_ats", type_=ARRAY(sa.DateTime(timezone=True))),
    sa.bindparam("deadline_due_ats", type_=ARRAY(sa.DateTime(timezone=True))),
    sa.bindparam("assignment_ids", type_=ARRAY(sa.Text)),
)


async def schedule_many(conn: AsyncConnection, new: Sequence[NewTimer]) -> int:
    """Store many timers in one statement; an already stored (case, stage, kind, generation) is skipped.
    Returns how many were new."""
    if not new:
        return 0
    result = await conn.execute(
        _SCHEDULE_MANY,
        {
            "case_ids": [t.case_id for t in new],
            "stages": [t.stage for t in new],
            "kinds": [t.kind for t in new],
            "generations": [t.generation for t in new],
            "due_ats": [t.due_at for t in new],
            "deadline_due_ats": [t.deadline_due_at for t in new],
            "assignment_ids": [t.assignment_id for t in new],
        },
    )
    return result.rowcount


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
    await conn.execute(
        sa.update(timers)
        .where(timers.c.id == sa.any_(sa.cast(list(ids), ARRAY(sa.BigInteger))))
        .values(fired_at=at)
    )


async def deadlines_of(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], sa.Row]:
    """The deadline rows of (case, stage) pairs, by pair."""
    if not keys:
        return {}
    wanted = set(keys)
    case_ids = sorted({case_id for case_id, _ in wanted})
    # one array parameter, not one parameter per key: the statement compiles once and stays cached
    query = sa.select(deadlines).where(deadlines.c.case_id == sa.any_(sa.cast(case_ids, ARRAY(sa.Text))))
    rows = (await conn.execute(query)).all()
    return {(row.case_id, row.stage): row for row in rows if (row.case_id, row.stage) in wanted}


async def mark_first_breach(conn: AsyncConnection, first: dict[str, datetime]) -> list[str]:
    """Record each case's first red card where none is recorded yet; returns the cases recorded now."""
    if not first:
        return []
    ordered = sorted(first)  # one lock order for every writer of these rows
    values = (
        sa.func.unnest(
            sa.cast(ordered, ARRAY(sa.Text)),
            sa.cast([first[case] for case in ordered], ARRAY(sa.DateTime(timezone=True))),
        )
        .table_valued("case_id", "at")
        .render_derived(name="v")
    )
    result = await conn.execute(
        sa.update(cases)
        .where(cases.c.case_id == values.c.case_id, cases.c.first_breach_at.is_(None))
        .values(first_breach_at=values.c.at, updated_at=sa.func.now())
        .returning(cases.c.case_id)
    )
    return [row.case_id for row in result.all()]


async def raise_escalation_levels(conn: AsyncConnection, levels: dict[str, int]) -> None:
    """Raise cases' supervision levels to at least the given ones (never lowers a level)."""
    if not levels:
        return
    ordered = sorted(levels)
    values = (
        sa.func.unnest(
            sa.cast(ordered, ARRAY(sa.Text)), sa.cast([levels[case] for case in ordered], ARRAY(sa.Integer))
        )
        .table_valued("case_id", "level")
        .render_derived(name="v")
    )
    await conn.execute(
        sa.update(cases)
        .where(cases.c.case_id == values.c.case_id)
        .values(escalation_level=sa.func.greatest(cases.c.escalation_level, values.c.level))
    )


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    query = sa.select(sa.func.min(timers.c.due_at)).where(
        timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None)
    )
    return (await conn.execute(query)).scalar_one_or_none()


async def pending_count(conn: AsyncConnection) -> int:
    """Timers still to fire (the active-timers gauge)."""
    query = sa.select(sa.func.count()).where(timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
    return int((await conn.execute(query)).scalar_one())


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
