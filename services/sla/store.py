"""Sla's database access (SQLAlchemy Core): deadlines, durable timers and the holiday table."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events.sla import DeadlineStage
from runtime.outbox import OutboxRow, outbox_columns_of_rows, outbox_insert_from_arrays
from runtime.sql import ArrayInsert, custom_plans, do_update
from services.sla.domain.calendar import YearTable
from services.sla.tables import deadlines, holiday_years, holidays, timers

ACTIVE = ("running", "paused")


async def deadline_rows(
    conn: AsyncConnection, case_id: str, stages: Iterable[DeadlineStage] | None = None
) -> dict[str, sa.Row]:
    query = sa.select(deadlines).where(deadlines.c.case_id == case_id)
    if stages is not None:
        query = query.where(deadlines.c.stage.in_([str(s) for s in stages]))
    return {row.stage: row for row in (await conn.execute(query.order_by(deadlines.c.stage))).all()}


async def save_deadline(conn: AsyncConnection, values: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
    """Insert or replace stage clocks (the caller has chosen each new generation); many rows, with the same
    keys and one row per case and stage, go in one statement."""
    rows = [values] if isinstance(values, dict) else list(values)
    if rows:
        await _save_deadline_statement(tuple(rows[0])).execute(conn, rows)


@functools.cache
def _save_deadline_statement(columns: tuple[str, ...]) -> ArrayInsert:
    return ArrayInsert(deadlines, columns, do_update(["case_id", "stage"], columns, updated_at="now()"))


async def fired_kinds(conn: AsyncConnection, case_id: str, stage: str, since: datetime) -> set[str]:
    """Card kinds already fired for a stage's clock started at ``since`` (any generation)."""
    query = sa.select(timers.c.kind).where(
        timers.c.case_id == case_id, timers.c.stage == stage, timers.c.fired_at >= since
    )
    return {row.kind for row in (await conn.execute(query)).all()}


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
    cancelled_at: datetime | None = None  # stored already cancelled: queued and cancelled in one batch


# One statement per batch whatever its size, in the driver's own SQL: arrays bind as 7 parameters (a
# multi-row VALUES would bind 7 per row and hit PostgreSQL's 65535-parameter limit at ~9,000 rows), and
# asyncpg encodes the lists itself (SQLAlchemy's typed array binding cost as much as the insert).
_TIMER_ARRAYS = (
    "unnest({}::text[], {}::text[], {}::text[], {}::int[], {}::timestamptz[], {}::timestamptz[], {}::text[])"
    " AS n(case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id)"
)
_SCHEDULE_MANY = (
    "INSERT INTO sla_timers"
    " (case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id, cancelled_at)"
    " SELECT n.* FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[],"
    " $6::timestamptz[], $7::text[], $8::timestamptz[])"
    " AS n(case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id, cancelled_at)"
    " ON CONFLICT ON CONSTRAINT sla_timers_once DO NOTHING"
)


def timer_columns(new: Sequence[NewTimer]) -> tuple[list, list, list, list, list, list, list]:
    """The seven array parameters of an insert of ``new`` timers, in column order."""
    return (
        [t.case_id for t in new],
        [t.stage for t in new],
        [t.kind for t in new],
        [t.generation for t in new],
        [t.due_at for t in new],
        [t.deadline_due_at for t in new],
        [t.assignment_id for t in new],
    )


async def schedule_many(conn: AsyncConnection, new: Sequence[NewTimer]) -> int:
    """Store many timers in one statement; an already stored (case, stage, kind, generation) is skipped.
    Returns how many were new."""
    if not new:
        return 0
    cancelled = [t.cancelled_at for t in new]
    result = await conn.exec_driver_sql(_SCHEDULE_MANY, (*timer_columns(new), cancelled))
    return result.rowcount


# Pending timers cancelled by (case, stage) — a NULL stage: every stage of the case — in one statement,
# through ``sla_timers_once`` (case_id first) whatever the statistics say. Written ``fired_at IS NULL AND
# cancelled_at IS NULL``, the condition matched the partial index ``sla_timers_pending``: on a table not
# yet analysed (a fresh database, the first minutes of bench/e2e) the planner took that index for one row
# and read every pending timer, filtering on the case: 26 ms a call at 100 cases/s, 30 % of a core. The
# coalesce says the same but implies no partial index's predicate. The timers are found case by case
# (LATERAL, runtime.sql.rows_by_key says why) and updated by id: as ``case_id = ANY($1)`` joined to the
# list, a batch of ~40 cases on a table not yet analysed took each case for 0.5 % of the rows and scanned
# every timer (89 calls, ~1 s of PostgreSQL in a 20,000-case replay's first 75 s, auto_explain). The join
# to the list again picks each timer's cancellation time; the pending condition is there again for a timer
# fired by a concurrent transaction meanwhile (PostgreSQL re-checks the outer conditions on the row it
# waited for).
_CANCEL = """
UPDATE sla_timers t SET cancelled_at = c.at
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS c(case_id, stage, at)
WHERE t.id = ANY(ARRAY(
        SELECT found.id FROM unnest($1::text[], $2::text[]) AS k(case_id, stage)
        CROSS JOIN LATERAL (
            SELECT id FROM sla_timers
            WHERE case_id = k.case_id AND (k.stage IS NULL OR stage = k.stage)
              AND coalesce(fired_at, cancelled_at) IS NULL
            OFFSET 0
        ) found
    ))
  AND t.case_id = c.case_id AND (c.stage IS NULL OR t.stage = c.stage)
  AND coalesce(t.fired_at, t.cancelled_at) IS NULL
"""


async def cancel_timers_of(conn: AsyncConnection, which: Sequence[tuple[str, str | None, datetime]]) -> int:
    """Cancel the pending timers of each (case, stage or None for all its stages, when); how many."""
    if not which:
        return 0
    columns = ([c for c, _, _ in which], [s for _, s, _ in which], [at for _, _, at in which])
    # A generic plan cached while the table was small hashed the cases and read every timer, 27 ms a call
    # on average at 100 cases/s in bench/e2e (pg_stat_statements).
    async with custom_plans(conn):
        return (await conn.exec_driver_sql(_CANCEL, columns)).rowcount


# Claim and mark fired in one statement: the rows stay locked (FOR UPDATE SKIP LOCKED, so replicas take
# disjoint batches) until the caller's transaction, which also writes their events, commits. A red card
# comes with its stage's policy (whether it starts the escalation ladder), NULL when the stage has no
# deadline row; a lookup per red card, not a join the planner may turn into a scan of every deadline.
_CLAIM = """
WITH due AS (
    SELECT id FROM sla_timers
    WHERE {which} AND due_at <= $1 AND {pending}
    {order}
    FOR UPDATE SKIP LOCKED
), fired AS (
    UPDATE sla_timers t SET fired_at = $1 FROM due WHERE t.id = due.id
    RETURNING t.id, t.case_id, t.stage, t.kind, t.generation, t.due_at, t.deadline_due_at, t.assignment_id
)
SELECT f.*, CASE WHEN f.kind = 'red' THEN (
    SELECT d.policy_id FROM sla_deadlines d WHERE d.case_id = f.case_id AND d.stage = f.stage
) END AS policy_id
FROM fired f
ORDER BY f.due_at, f.id
"""
_FIRE_DUE = _CLAIM.format(
    which="TRUE", pending="fired_at IS NULL AND cancelled_at IS NULL", order="ORDER BY due_at LIMIT $2"
)
# The same claim for timers picked by id (their events were prepared ahead): those still pending and not
# held by another replica fire, in due order, with the same columns. Each by its primary key whatever the
# statistics say: with the pending condition written as for _FIRE_DUE, statistics from an ANALYZE taken
# when no timer was pending made the planner read the pending index from its start and filter the ids,
# the whole overdue backlog per call (20,000 rows, 7 ms for 40 timers); the coalesce says the same and
# implies no partial index (as in _CANCEL).
_FIRE_THESE = _CLAIM.format(
    which="id = ANY($2::bigint[])", pending="coalesce(fired_at, cancelled_at) IS NULL", order=""
)

# Pending timers after a (due_at, id) position up to a due time, in that order: what the runner prepares.
_PENDING_AFTER = """
SELECT id, case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id FROM sla_timers
WHERE due_at >= $1 AND (due_at, id) > ($1, $2) AND due_at <= $3 AND fired_at IS NULL AND cancelled_at IS NULL
ORDER BY due_at, id LIMIT $4
"""


async def fire_these(conn: AsyncConnection, now: datetime, ids: Sequence[int]) -> Sequence[sa.Row]:
    """``fire_due`` for the timers ``ids`` (due by ``now``): those already fired, cancelled or held by
    another replica are left out."""
    return (await conn.exec_driver_sql(_FIRE_THESE, (now, list(ids)))).all()


async def pending_after(
    conn: AsyncConnection, after: tuple[datetime, int], until: datetime, limit: int
) -> Sequence[sa.Row]:
    """Up to ``limit`` pending timers after position ``after`` (due time, id) and due by ``until``."""
    return (await conn.exec_driver_sql(_PENDING_AFTER, (*after, until, limit))).all()


async def fire_due(conn: AsyncConnection, now: datetime, limit: int) -> Sequence[sa.Row]:
    """Claim up to ``limit`` due timers and mark them fired at ``now``, in due order; rows another replica
    holds are skipped. The caller's transaction must write their events before it commits."""
    return (await conn.exec_driver_sql(_FIRE_DUE, (now, limit))).all()


@dataclass
class CaseChanges:
    """What a batch of fired timers changes on their cases (``record_fired``)."""

    breaches: dict[str, tuple[datetime, str | None]] = field(default_factory=dict)
    """case → its first red card's due time and assignment, for cases whose red card starts the ladder"""
    levels: dict[str, int] = field(default_factory=dict)
    """case → the highest supervision level an escalation timer reached"""
    first_steps: dict[datetime, tuple[str, datetime]] = field(default_factory=dict)
    """breach time → the first escalation timer it starts: (timer kind, due time)"""
    next_steps: list[NewTimer] = field(default_factory=list)
    """the next level's timer of each fired escalation timer below the top level"""


# The fired timers' events, their cases' first red cards and levels, and the escalation ladder's next
# timers, in one statement. Cases are locked in case-id order first (one lock order for every writer of
# these rows). The ladder climbs one timer at a time: a case whose ``first_breach_at`` this statement
# set (returned as ``started``) gets the first level's timer, planned for its breach time (one plan per
# breach time crosses the wire, not one per case); a fired level's timer stores the next level's. Either
# only while the case is open: a reply cancels the pending level, and the locked row tells a reply that
# committed while this batch waited for the lock. Should an equal, earlier breach time read as started,
# or a level's timer already exist, the insert does nothing. The first levels come straight from the
# update's RETURNING (breach, assignment, locked status): joining ``changes`` and ``locked`` again, which
# the planner took for a few rows, was a nested loop over cases × cases (half of a 1,000-card batch's
# statement time).
_RECORD_FIRED = f"""
WITH queued AS (
    {outbox_insert_from_arrays(1)}
), changes AS (
    SELECT * FROM unnest($7::text[], $8::timestamptz[], $9::int[], $10::text[])
        AS v(case_id, breach_at, level, assignment_id)
), locked AS (
    SELECT c.case_id, c.status FROM sla_cases c WHERE c.case_id = ANY($7::text[])
    ORDER BY c.case_id FOR UPDATE
), changed AS (
    UPDATE sla_cases c
    SET first_breach_at = coalesce(c.first_breach_at, v.breach_at),
        escalation_level = greatest(c.escalation_level, v.level),
        updated_at = now()
    FROM changes v JOIN locked l ON l.case_id = v.case_id
    WHERE c.case_id = v.case_id
      AND ((c.first_breach_at IS NULL AND v.breach_at IS NOT NULL) OR c.escalation_level < v.level)
    RETURNING c.case_id, v.breach_at, v.assignment_id, l.status,
              v.breach_at IS NOT NULL AND c.first_breach_at = v.breach_at AS started
)
INSERT INTO sla_timers (case_id, stage, kind, generation, due_at, deadline_due_at, assignment_id)
SELECT ch.case_id, $14, p.kind, 0, p.due_at, ch.breach_at, ch.assignment_id
FROM changed ch
JOIN unnest($11::timestamptz[], $12::text[], $13::timestamptz[]) AS p(breach_at, kind, due_at)
    ON p.breach_at = ch.breach_at
WHERE ch.started AND ch.status = 'open'
UNION ALL
SELECT n.case_id, n.stage, n.kind, n.generation, n.due_at, n.deadline_due_at, n.assignment_id
FROM {_TIMER_ARRAYS.format(*(f"${i}" for i in range(15, 22)))}
JOIN locked l ON l.case_id = n.case_id AND l.status = 'open'
ON CONFLICT ON CONSTRAINT sla_timers_once DO NOTHING
"""  # noqa: S608 - fixed text, every value is a bind parameter


async def record_fired(
    conn: AsyncConnection, outbox: Sequence[OutboxRow], changes: CaseChanges, ladder_stage: str
) -> None:
    """Write fired timers' events (``outbox`` rows) to the outbox; record each case's first red card
    where none is recorded yet and raise supervision levels (never lowering one); store the escalation
    ladder's next timers (stage ``ladder_stage``): the first level's of the cases whose first red card
    this is, and the next level's of the fired levels of cases still open."""
    ordered = sorted(changes.breaches.keys() | changes.levels.keys())
    breaches = [changes.breaches.get(case, (None, None)) for case in ordered]
    firsts = list(changes.first_steps.items())
    await conn.exec_driver_sql(
        _RECORD_FIRED,
        (
            *outbox_columns_of_rows(outbox),
            ordered,
            [breach for breach, _ in breaches],
            [changes.levels.get(case, 0) for case in ordered],
            [assignment for _, assignment in breaches],
            [breach for breach, _ in firsts],
            [kind for _, (kind, _) in firsts],
            [due for _, (_, due) in firsts],
            ladder_stage,
            *timer_columns(changes.next_steps),
        ),
    )


# The first pending timer, read as the first entry of ``sla_timers_pending`` whatever the statistics say.
# Written min(due_at), with statistics from an ANALYZE taken when no timer was pending (a fresh database
# whose first timers had all fired), the planner took the partial index for one row and aggregated all of
# it: 13,917 entries, 22 ms a call, ~5 calls/s in a bench/e2e replay (auto_explain, 2026-11-28).
NEXT_DUE = (
    sa.select(timers.c.due_at)
    .where(timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None))
    .order_by(timers.c.due_at)
    .limit(1)
)


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """When the first pending timer is due (None: none pending)."""
    return (await conn.execute(NEXT_DUE)).scalar_one_or_none()


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
