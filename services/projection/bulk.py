"""The rebuild's first pass: fold the whole log into the fresh schema with COPY instead of upserts.

The live write path (projector.project_batch) reads, locks and upserts every touched summary per batch:
right for a few events at a time, slow for millions. Here the schema is empty and private until the swap,
so each batch's timeline and inbox rows are COPYed, and the summaries are folded in memory with the same
``domain.apply_all`` and kept there while their cases are recent. A summary is written once, when it
leaves memory (COPY for a case never written, upsert for one written before and met again, whose stored
row is read back first); the statistics are summed in memory and COPYed at the end.

The timeline and the inbox get their keys only after this pass (schema_ops.index_statements): an index
built from a sort costs a fraction of one kept up row by row. So the pass itself recognises an event it
has met before (an event published again, as the outbox relay may after a crash) by its id, as the live
consumer's inbox would: the first record of an id is applied, later ones are passed over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.consumer import Delivery
from runtime.db import inbox, tracking
from services.projection import domain
from services.projection.domain.derive import StatKey
from services.projection.projector import (
    INSERT_WORKLIST,
    SUMMARY_COLUMNS,
    TIMELINE_COLUMNS,
    UPSERT_SUMMARY,
    search_changed,
    summary_row,
    timeline_record,
    write_search,
)
from services.projection.tables import (
    STAT_DIMENSIONS,
    case_search,
    case_stats_daily,
    case_summary,
    case_timeline,
    worklist_item,
)

INBOX_COLUMNS = ("consumer", "event_id", "topic", "partition", "offset", "outcome")
WORKLIST_COLUMNS = tuple(c.name for c in worklist_item.columns)
STATS_COLUMNS = (*STAT_DIMENSIONS, *domain.STAT_COUNTERS)
# positions of the JSONB columns (never NULL), which asyncpg takes as JSON text (the engine's codec)
SUMMARY_JSON = [k for k, c in enumerate(case_summary.columns) if c.type.__visit_name__ == "JSONB"]
# The tables this pass only appends to: their keys are added after it (schema_ops.index_statements).
APPEND_ONLY = (case_timeline.name, inbox.name)
# A record of the log as the rebuild decoded it: its delivery (None if dead-lettered) and its inbox row.
Decoded = tuple[Delivery | None, tuple]


class BulkLoad:
    """Folds batches of deliveries into an empty schema; ``finish`` writes what is still in memory."""

    def __init__(self, engine: AsyncEngine, schema: str, *, cached_cases: int = 100_000) -> None:
        self.engine = engine
        self.schema = schema
        self.cached_cases = cached_cases
        self.states: dict[str, domain.Summary] = {}  # least recently folded first
        self.stored: dict[str, domain.Summary] = {}  # the stored row of a cached case written before
        self.written: set[str] = set()  # cases with a row in case_summary
        self.stats: dict[StatKey, dict[str, int]] = {}
        self.seen: set[int | str] = set()  # the event id of every record appended (see event_key)
        self.reloaded = 0  # cases met again after they left memory

    async def add(self, records: Sequence[Decoded]) -> None:
        """Apply one batch of records (in log order), in one transaction."""
        fresh, inbox_rows, seen = [], [], self.seen
        for delivery, row in records:
            key = event_key(row[1])
            if key in seen:
                continue  # met before: the live consumer's inbox would pass it over too
            seen.add(key)
            inbox_rows.append(row)
            if delivery is not None:
                fresh.append(delivery)
        async with self.engine.begin() as conn:
            # Private until the swap, so no need to wait for the WAL flush; being the first statement, it
            # also opens the transaction the raw connection's COPYs then run in.
            await conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
            await self._copy(conn, case_timeline.name, TIMELINE_COLUMNS, [timeline_record(d) for d in fresh])
            await self._copy(conn, inbox.name, INBOX_COLUMNS, inbox_rows)
            runs: dict[str, list[tuple[Any, Any]]] = {}
            for delivery in fresh:
                event = delivery.envelope.event
                runs.setdefault(event.case_id, []).append((event, event.occurred_at))
            await self._read_back(conn, [c for c in runs if c in self.written and c not in self.states])
            states = self.states
            for case_id, run in runs.items():
                states[case_id] = domain.apply_all(states.pop(case_id, None), run)
            if len(states) > self.cached_cases:
                await self._write(conn, list(states)[: len(states) - self.cached_cases * 3 // 4])

    async def finish(self) -> None:
        """Write every summary still in memory (the statistics stay in ``stats``, see write_totals)."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
            await self._write(conn, list(self.states))
        self.seen.clear()

    async def _read_back(self, conn: AsyncConnection, case_ids: list[str]) -> None:
        """Bring written summaries of cases met again back into memory, as the live path reads them."""
        if not case_ids:
            return
        rows = await conn.execute(sa.select(case_summary).where(case_summary.c.case_id.in_(case_ids)))
        for row in rows.mappings():
            self.stored[row["case_id"]] = self.states[row["case_id"]] = dict(row)
        self.reloaded += len(case_ids)

    async def _write(self, conn: AsyncConnection, case_ids: list[str]) -> None:
        """Write the summaries and worklist rows of ``case_ids`` and let them leave memory."""
        new_rows, new_search, new_items, updated, stale_items, fresh_items = [], [], [], [], [], []
        changes = []
        for case_id in case_ids:
            state = self.states.pop(case_id)
            before = self.stored.pop(case_id, None)
            changes.append((before, state))
            row = summary_row(state)
            if before is None:
                values = [row[name] for name in SUMMARY_COLUMNS]
                for k in SUMMARY_JSON:
                    values[k] = orjson.dumps(values[k]).decode()
                new_rows.append(values)
                new_search.append((case_id, domain.grams(state["search_text"])))
                new_items += [tuple(i[c] for c in WORKLIST_COLUMNS) for i in domain.worklist_items(state)]
            else:
                updated.append(row)
                stale_items += [
                    {k: i[k] for k in ("owner_kind", "owner_code", "case_id")}
                    for i in domain.worklist_items(before)
                ]
                fresh_items += domain.worklist_items(state)
        await self._copy(conn, case_summary.name, SUMMARY_COLUMNS, new_rows)
        await self._copy(conn, case_search.name, ("case_id", "grams"), new_search)
        await self._copy(conn, worklist_item.name, WORKLIST_COLUMNS, new_items)
        if updated:
            await UPSERT_SUMMARY.execute(conn, updated)
            await write_search(conn, [s for b, s in changes if b is not None and search_changed(b, s)])
        if stale_items:
            await conn.execute(
                sa.delete(worklist_item).where(
                    worklist_item.c.owner_kind == sa.bindparam("owner_kind"),
                    worklist_item.c.owner_code == sa.bindparam("owner_code"),
                    worklist_item.c.case_id == sa.bindparam("case_id"),
                ),
                stale_items,
            )
        if fresh_items:
            await INSERT_WORKLIST.execute(conn, fresh_items)
        add_stats(self.stats, domain.stat_deltas(changes))
        self.written.update(case_ids)

    async def _copy(self, conn: AsyncConnection, table: str, columns: Sequence[str], rows: list) -> None:
        await copy_rows(conn, self.schema, table, columns, rows)


def add_stats(into: dict[StatKey, dict[str, int]], deltas: dict[StatKey, dict[str, int]]) -> None:
    """Add statistics ``deltas`` (counters per key) into ``into``."""
    for key, counters in deltas.items():
        bucket = into.setdefault(key, dict.fromkeys(domain.STAT_COUNTERS, 0))
        for name, value in counters.items():
            bucket[name] += value


async def copy_rows(
    conn: AsyncConnection, schema: str, table: str, columns: Sequence[str], rows: list
) -> None:
    """COPY ``rows`` (tuples in ``columns`` order) into ``schema``.``table`` in ``conn``'s transaction."""
    if not rows:
        return
    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table, records=rows, columns=list(columns), schema_name=schema
    )


async def write_totals(
    engine: AsyncEngine,
    schema: str,
    consumer: str,
    stats: dict[StatKey, dict[str, int]],
    positions: dict[tuple[str, int], int],
) -> None:
    """Write the first pass's statistics (rows of no received case left out, as the live path deletes
    them) and ``consumer``'s tracking rows (``positions``: the last offset applied per (topic, partition))."""
    rows = [
        (*key, *(counters[name] for name in domain.STAT_COUNTERS))
        for key, counters in sorted(stats.items())
        if counters["received"]
    ]
    async with engine.begin() as conn:
        await conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
        await copy_rows(conn, schema, case_stats_daily.name, STATS_COLUMNS, rows)
        for (topic, partition), offset in positions.items():
            await conn.execute(
                insert(tracking)
                .values(consumer=consumer, topic=topic, partition=partition, offset=offset)
                .on_conflict_do_update(
                    index_elements=["consumer", "topic", "partition"], set_={"offset": offset}
                )
            )


def event_key(event_id: str) -> int | str:
    """``event_id`` as a set member: a canonical (lowercase) UUID as its 128-bit number, which takes
    half the memory of the string, anything else as itself. One-to-one, so never a false match."""
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-":
        digits = event_id.replace("-", "")
        if len(digits) == 32 and digits.isascii() and digits.isalnum() and digits == digits.lower():
            with contextlib.suppress(ValueError):  # a letter beyond f
                return int(digits, 16)
    return event_id
