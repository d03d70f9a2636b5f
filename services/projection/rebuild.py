"""Rebuild every read model from offset 0 into a fresh schema while the live one serves; then swap.

1. Clone the live schema's tables, empty, into ``projection_rebuild_<time>``.
2. Read the case event log from the beginning of every partition up to its end offsets, folding it
   into the clone with COPY (services/projection/bulk.py: the same fold, summaries kept in memory while
   their cases are recent), plus inbox and tracking rows for the live consumer's name (so after the swap
   the live consumer recognises what the rebuild already applied). The partitions are shared out to
   ``workers`` processes (services/projection/first_pass.py).
3. Add the keys and secondary indexes, catch up to the new end offsets with the projector's own write
   path.
4. Lock the live tables against writes in the live consumer's order (it pauses between batches;
   readers go on), catch up to exactly the live consumer's tracked offsets, with ``verify`` compare
   checksums (the two schemas at once, on two connections), rename the schemas (atomic), commit.

The lock holds the live consumer for the catch-up and the rename, a second or less; verifying holds it for
the checksums too (41 s at 300,000 cases when the two schemas were read one after the other), so it is
asked for (``--verify``), not the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm import tqdm

from runtime.db import create_engine, inbox, tracking
from services.projection import schema_ops
from services.projection.bulk import APPEND_ONLY, INBOX_COLUMNS
from services.projection.config import ProjectionSettings
from services.projection.first_pass import Plan, consumer_for, decode_records, first_pass, schema_engine
from services.projection.projector import project_batch


@dataclass
class RebuildReport:
    """What a rebuild did: where it went, how much it read and how fast, and the checksums compared."""

    schema: str
    retired: str | None = None
    events: int = 0
    dead_lettered: int = 0
    reloaded: int = 0  # summaries read back in the first pass (cases met again after leaving memory)
    processes: int = 0  # worker processes of the first pass (0: it ran in this one)
    peak_rss_mb: int = 0  # the largest peak resident memory of a process of the first pass
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, in order
    live_checksums: dict[str, str] = field(default_factory=dict)
    rebuilt_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def identical(self) -> bool | None:
        """Whether the rebuilt read models equal the live ones; None if they were not compared."""
        if not self.live_checksums:
            return None
        return self.live_checksums == self.rebuilt_checksums


# Index builds: sort memory per connection (the default 64 MB spills to disk early), and at most this many
# at once, whatever the workers (each may take INDEX_MEMORY of the database server's memory).
INDEX_MEMORY = "512MB"
INDEX_BUILDS_AT_ONCE = 4


class Rebuilder:
    """One rebuild run against one projection database and one case event topic."""

    def __init__(
        self,
        settings: ProjectionSettings,
        *,
        batch_size: int = 5000,
        cached_cases: int = 100_000,
        workers: int = 1,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self.cached_cases = cached_cases
        self.workers = workers
        self.progress = progress
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        self.report = RebuildReport(schema=f"projection_rebuild_{stamp}")
        self.live: AsyncEngine = create_engine(settings)
        self.target: AsyncEngine = schema_engine(settings, self.report.schema)
        self.consumer = consumer_for(settings)
        self.positions: dict[TopicPartition, int] = {}
        self._lap_started = 0.0

    async def run(
        self, *, switch: bool = True, keep_retired: bool = False, verify: bool = False
    ) -> RebuildReport:
        """Rebuild, and unless ``switch`` is false swap the result in (with ``verify``, comparing both
        schemas' checksums first); returns the report. Without ``switch`` the rebuilt schema's checksums
        are reported."""
        started = self._lap_started = time.monotonic()
        await self.consumer.start()
        try:
            async with self.live.begin() as conn:
                await schema_ops.clone_schema(conn, self.report.schema, keys_later=APPEND_ONLY)
            partitions = await self._assign()
            await self._first_pass(await self.consumer.end_offsets(partitions))
            self._lap("load")
            await self._index()
            self._lap("index")
            await self._copy_until(await self.consumer.end_offsets(partitions), "追赶新事件")
            self._lap("catch_up")
            if switch:
                await self._switch(keep_retired, verify)
            else:
                async with self.live.connect() as conn:
                    self.report.rebuilt_checksums = await schema_ops.checksums(conn, self.report.schema)
            self._lap("switch" if switch else "checksums")
        except BaseException:
            await self.target.dispose()
            with contextlib.suppress(Exception):  # the original error is the one to tell
                await self._drop_unfinished()
            raise
        finally:
            self.report.seconds = time.monotonic() - started
            await self.consumer.stop()
            await self.target.dispose()
            await self.live.dispose()
        return self.report

    async def _drop_unfinished(self) -> None:
        """Drop the schema of a rebuild that failed (gone already if the swap had renamed it)."""
        async with self.live.begin() as conn:
            await conn.execute(sa.text("SET LOCAL lock_timeout = '30s'"))
            await conn.execute(
                sa.text(f"DROP SCHEMA IF EXISTS {schema_ops.quoted(self.report.schema)} CASCADE")
            )

    def _lap(self, phase: str) -> None:
        now = time.monotonic()
        self.report.phases[phase] = round(now - self._lap_started, 3)
        self._lap_started = now

    async def _assign(self) -> list[TopicPartition]:
        topic = self.settings.case_events_topic
        found = None
        for _ in range(50):
            found = self.consumer.partitions_for_topic(topic)
            if found:
                break
            await self.consumer._client.force_metadata_update()  # topic metadata is fetched lazily
            await asyncio.sleep(0.1)
        if not found:
            raise RuntimeError(f"topic {topic!r} not found")
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        beginnings = await self.consumer.beginning_offsets(partitions)
        self.positions = dict(beginnings)
        return partitions

    async def _index(self) -> None:
        """Add the keys and secondary indexes, as many builds at a time as workers (at most
        INDEX_BUILDS_AT_ONCE), then ANALYZE the schema."""
        async with self.target.connect() as conn:
            statements = await schema_ops.index_statements(conn, self.report.schema, keys_of=APPEND_ONLY)
            schema = schema_ops.quoted(self.report.schema)
            analyses = [
                f"ANALYZE {schema}.{schema_ops.quoted(t)}" for t in await schema_ops.live_tables(conn)
            ]

        async def build() -> None:
            async with self.target.connect() as conn:
                await conn.execute(sa.text(f"SET maintenance_work_mem = '{INDEX_MEMORY}'"))
                await conn.commit()
                while statements:
                    await conn.execute(sa.text(statements.pop(0)))
                    await conn.commit()
                while analyses:
                    await conn.execute(sa.text(analyses.pop(0)))
                    await conn.commit()

        await asyncio.gather(*(build() for _ in range(max(1, min(self.workers, INDEX_BUILDS_AT_ONCE)))))

    async def _first_pass(self, targets: dict[TopicPartition, int]) -> None:
        """Fold the log up to ``targets`` into the empty schema with COPY (first_pass.py)."""
        remaining = sum(max(0, targets[tp] - self.positions[tp]) for tp in targets)
        with self._bar(remaining, "重建读模型") as bar:
            plan = Plan(
                self.settings,
                self.report.schema,
                starts={tp.partition: self.positions[tp] for tp in targets},
                targets={tp.partition: offset for tp, offset in targets.items()},
                batch_size=self.batch_size,
                cached_cases=self.cached_cases,
            )
            share = await first_pass(plan, workers=self.workers, on_batch=bar.update)
        self.report.events += share.events
        self.report.dead_lettered += share.dead_lettered
        self.report.reloaded = share.reloaded
        self.report.processes = share.processes
        self.report.peak_rss_mb = share.peak_rss_mb
        for tp in targets:  # the catch-up goes on from where the first pass stopped
            self.positions[tp] = share.positions[tp.partition]
            self.consumer.seek(tp, self.positions[tp])

    def _bar(self, total: int, label: str) -> tqdm:
        """A progress bar of events with events/s and ETA (none when progress is off)."""
        return tqdm(total=total, desc=label, unit="事件", unit_scale=True, disable=not self.progress)

    async def _copy_until(self, targets: dict[TopicPartition, int], label: str) -> None:
        """Apply records with the live write path until every partition's position reaches its target
        (exclusive) offset."""
        remaining = sum(max(0, targets[tp] - self.positions[tp]) for tp in targets)
        with self._bar(remaining, label) as bar:
            while any(self.positions[tp] < targets[tp] for tp in targets):
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                for tp, part in batches.items():
                    await self._apply(tp, part)
                    self.positions[tp] = part[-1].offset + 1
                    bar.update(len(part))

    async def _apply(self, tp: TopicPartition, records: list) -> None:
        decoded, dead = decode_records(records, self.settings.consumer_group)
        self.report.dead_lettered += dead
        async with self.target.begin() as conn:
            await project_batch(conn, [d for d, _ in decoded if d is not None])
            await conn.execute(
                insert(inbox).on_conflict_do_nothing(),
                [dict(zip(INBOX_COLUMNS, row, strict=True)) for _, row in decoded],
            )
            await conn.execute(
                insert(tracking)
                .values(
                    consumer=self.settings.consumer_group,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=records[-1].offset,
                )  # fmt: skip
                .on_conflict_do_update(
                    index_elements=["consumer", "topic", "partition"], set_={"offset": records[-1].offset}
                )
            )
        self.report.events += len(records)

    async def _switch(self, keep_retired: bool, verify: bool) -> None:
        retired = self.report.schema.replace("projection_rebuild_", "projection_retired_")
        async with self.live.begin() as conn:
            await schema_ops.lock_live(conn)
            live = await conn.execute(
                sa.select(tracking.c.partition, tracking.c.offset).where(
                    tracking.c.consumer == self.settings.consumer_group,
                    tracking.c.topic == self.settings.case_events_topic,
                )
            )
            targets = {TopicPartition(self.settings.case_events_topic, p): o + 1 for p, o in live.all()}
            await self._copy_until({tp: targets.get(tp, 0) for tp in self.positions}, "切换前追平")
            if verify:
                async with self.target.connect() as other:  # both schemas hold still until the commit
                    self.report.live_checksums, self.report.rebuilt_checksums = await asyncio.gather(
                        schema_ops.checksums(conn, schema_ops.LIVE),
                        schema_ops.checksums(other, self.report.schema),
                    )
            await schema_ops.swap_in(conn, self.report.schema, retired)
        self.report.retired = retired
        if not keep_retired:
            async with self.live.begin() as conn:
                await conn.execute(sa.text(f"DROP SCHEMA {schema_ops.quoted(retired)} CASCADE"))
                self.report.retired = None


async def rebuild(settings: ProjectionSettings, **options) -> RebuildReport:
    """Run one rebuild (see module docstring); options as for ``Rebuilder`` and ``Rebuilder.run``."""
    run_options = {k: options.pop(k) for k in ("switch", "keep_retired", "verify") if k in options}
    return await Rebuilder(settings, **options).run(**run_options)


async def live_checksums(settings: ProjectionSettings) -> dict[str, str]:
    """Checksums of the live read models (compare two databases, or before and after a rebuild)."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return await schema_ops.checksums(conn, schema_ops.LIVE)
    finally:
        await engine.dispose()
