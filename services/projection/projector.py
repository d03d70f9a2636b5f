"""Projection's consumer handler: fold case events into the read models, in the consumer's transaction.

``project_batch`` is the one write path: the live consumer calls it with every new event of a consumed
batch (and, when a batch has to be retried event by event, with one at a time), the rebuild with
thousands. Per batch it appends the
timeline, locks and folds the touched summaries, upserts them, applies the statistics deltas and replaces
the touched cases' worklist rows, each as one multi-row statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.consumer import Delivery
from runtime.sql import ArrayInsert, do_update, keys_in
from services.projection import domain
from services.projection.tables import (
    STAT_DIMENSIONS,
    case_search,
    case_stats_daily,
    case_summary,
    case_timeline,
    worklist_item,
)

SUMMARY_COLUMNS = tuple(c.name for c in case_summary.columns)
STAT_COUNTER_COLUMNS = tuple(c.name for c in case_stats_daily.columns if c.name not in STAT_DIMENSIONS)

# Each write is one statement of column arrays per batch (runtime.sql.ArrayInsert), its SQL written once:
# SQLAlchemy compiled a PostgreSQL upsert on every execution, and an executemany ran one statement per row
# (the summary upsert: ~3 per case, 19 % of PostgreSQL's execution in a bench/e2e replay, 2026-11-29).
UPSERT_SUMMARY = ArrayInsert(case_summary, SUMMARY_COLUMNS, do_update(["case_id"], SUMMARY_COLUMNS))
ADD_STATS = ArrayInsert(
    case_stats_daily,
    [*STAT_DIMENSIONS, *STAT_COUNTER_COLUMNS],
    do_update(
        STAT_DIMENSIONS,
        (),  # nothing replaced: the counters are added to
        **{name: f"case_stats_daily.{name} + excluded.{name}" for name in STAT_COUNTER_COLUMNS},
    ),
)
TIMELINE_COLUMNS = tuple(c.name for c in case_timeline.columns)
# A batch's timeline as one statement of arrays, its data as the JSON text pydantic writes in one step;
# RETURNING names the events not seen before. Written once: the multi-row INSERT … RETURNING it replaces
# was compiled by SQLAlchemy for every batch, with nine parameters per row ("insertmanyvalues" and
# parameter processing: ~4 % of projection's samples under a bench/e2e replay, py-spy 2026-11-28).
APPEND_TIMELINE = """
INSERT INTO case_timeline (event_id, case_id, event_type, occurred_at, actor, source, data, log_partition,
                           log_offset)
SELECT t.event_id, t.case_id, t.event_type, t.occurred_at, t.actor, t.source, t.data::jsonb,
       t.log_partition, t.log_offset
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[],
            $8::int[], $9::bigint[]) WITH ORDINALITY
    AS t(event_id, case_id, event_type, occurred_at, actor, source, data, log_partition, log_offset, position)
ORDER BY t.position
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
UPSERT_SEARCH = ArrayInsert(case_search, ["case_id", "grams"], do_update(["case_id"], ["case_id", "grams"]))
INSERT_WORKLIST = ArrayInsert(worklist_item, [c.name for c in worklist_item.columns])


async def project(conn: AsyncConnection, delivery: Delivery) -> None:
    """Apply one event to the read models (the live consumer's handler)."""
    await project_batch(conn, [delivery])


# Built once, at import (runtime.sql.keys_in says why).
_LOCK_SUMMARIES = (
    sa.select(case_summary)
    .where(keys_in(case_summary.c.case_id, "case_ids"))
    .order_by(case_summary.c.case_id)
    .with_for_update()
)
_DROP_EMPTY_STATS = sa.delete(case_stats_daily).where(
    keys_in(case_stats_daily.c.day, "days"), case_stats_daily.c.received == 0
)
_DELETE_WORKLISTS = sa.delete(worklist_item).where(keys_in(worklist_item.c.case_id, "case_ids"))


async def project_batch(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> int:
    """Apply events (in log order) to every read model; return how many were new. Idempotent."""
    if not deliveries:
        return 0
    inserted = await append_timeline(conn, deliveries)
    fresh = first_of_each(deliveries, inserted)
    if not fresh:
        return 0  # all already projected (the inbox normally catches this first)
    case_ids = sorted({d.envelope.event.case_id for d in fresh})
    rows = await conn.execute(_LOCK_SUMMARIES, {"case_ids": case_ids})
    before: dict[str, dict[str, Any] | None] = dict.fromkeys(case_ids)
    before.update({row["case_id"]: dict(row) for row in rows.mappings()})
    runs: dict[str, list[tuple[Any, Any]]] = {c: [] for c in case_ids}
    for delivery in fresh:
        event = delivery.envelope.event
        runs[event.case_id].append((event, event.occurred_at))
    after = {c: domain.apply_all(before[c], runs[c]) for c in case_ids}
    await _write_summaries(conn, [after[c] for c in case_ids])  # type: ignore[misc]
    await write_search(conn, [after[c] for c in case_ids if search_changed(before[c], after[c])])  # type: ignore[misc]
    await _write_stats(conn, domain.stat_deltas([(before[c], after[c]) for c in case_ids]))  # type: ignore[misc]
    changed = [c for c in case_ids if _worklist_changed(before[c], after[c])]
    if changed:
        await _write_worklists(conn, changed, [after[c] for c in changed])  # type: ignore[misc]
    return len(fresh)


def first_of_each(deliveries: Sequence[Delivery], inserted: set[str]) -> list[Delivery]:
    """The deliveries whose event ``inserted`` names, each event once: a batch may hold an event twice
    (published again), and only its first row went into the timeline."""
    fresh, pending = [], set(inserted)
    for delivery in deliveries:
        if delivery.envelope.id in pending:
            pending.discard(delivery.envelope.id)
            fresh.append(delivery)
    return fresh


async def append_timeline(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> set[str]:
    """Append the deliveries' events to the timeline (in order); the ids of those not there before."""
    columns = tuple(list(column) for column in zip(*(timeline_record(d) for d in deliveries), strict=True))
    return set((await conn.exec_driver_sql(APPEND_TIMELINE, columns)).scalars())


def timeline_record(delivery: Delivery) -> tuple:
    """The timeline row of one delivered event (TIMELINE_COLUMNS order), its data as JSON text serialised
    by pydantic in one step (the JSON the engine's encoder wrote from model_dump: a unit test compares)."""
    envelope = delivery.envelope
    event = envelope.event
    return (
        envelope.id,
        event.case_id,
        envelope.type,
        event.occurred_at,
        event.actor,
        envelope.source,
        event.model_dump_json(),
        delivery.partition,
        delivery.offset,
    )


def summary_row(state: dict[str, Any]) -> dict[str, Any]:
    """The case_summary row of a folded summary (every column present)."""
    return {name: state.get(name) for name in SUMMARY_COLUMNS}


def search_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Whether the case's keyword grams (case_search) need writing."""
    return before is None or before.get("search_text") != after.get("search_text")


def search_row(state: dict[str, Any]) -> dict[str, Any]:
    """The case_search row of a folded summary."""
    return {"case_id": state["case_id"], "grams": domain.grams(state["search_text"])}


async def write_search(conn: AsyncConnection, states: list[dict[str, Any]]) -> None:
    if states:
        await UPSERT_SEARCH.execute(conn, [search_row(s) for s in states])


async def _write_summaries(conn: AsyncConnection, states: list[dict[str, Any]]) -> None:
    await UPSERT_SUMMARY.execute(conn, [summary_row(s) for s in states])


async def _write_stats(conn: AsyncConnection, deltas: dict[tuple, dict[str, int]]) -> None:
    if not deltas:
        return
    rows = [
        {**dict(zip(STAT_DIMENSIONS, key, strict=True)), **counters}
        for key, counters in sorted(deltas.items())
    ]
    await ADD_STATS.execute(conn, rows)
    if any(counters["received"] < 0 for counters in deltas.values()):  # only then can a row reach zero
        await conn.execute(_DROP_EMPTY_STATS, {"days": sorted({key[0] for key in deltas})})


def _worklist_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    return before is None or domain.worklist_items(before) != domain.worklist_items(after)


async def _write_worklists(conn: AsyncConnection, case_ids: list[str], states: list[dict[str, Any]]) -> None:
    await conn.execute(_DELETE_WORKLISTS, {"case_ids": case_ids})
    items = [item for state in states for item in domain.worklist_items(state)]
    if items:
        await INSERT_WORKLIST.execute(conn, items)
