"""The rebuild's first pass, spread over processes: each folds its share of the log's partitions.

A case's events share its Kafka key and so one partition; the partitions are dealt out to ``workers``
processes, and each reads its own from their beginnings to the end offsets taken at the start, decodes,
folds and COPYs them into the new schema (``BulkLoad``) on its own connection. The parent adds up what they
report (events, dead letters, statistics, the offsets reached) and writes the statistics and tracking rows.
Python's decoding and folding is most of a rebuild's work, and one process uses one core.

A log whose topic gained partitions after it was written may hold one case (or one event published twice)
in two partitions: with more than one worker such a rebuild stops at a duplicate key instead of folding
the case twice; ``workers=1`` rebuilds it.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import ContractError, decode_message
from runtime.consumer import Delivery, event_id_of
from services.projection.bulk import BulkLoad, Decoded, add_stats, write_totals
from services.projection.config import ProjectionSettings
from services.projection.domain.derive import StatKey


class FirstPassFailed(RuntimeError):
    """A worker of the first pass failed (its error as text: it crosses the process boundary)."""


@dataclass
class Share:
    """What one worker of the first pass did."""

    events: int = 0
    dead_lettered: int = 0
    reloaded: int = 0
    positions: dict[int, int] = field(default_factory=dict)  # next offset to read, per partition
    stats: dict[StatKey, dict[str, int]] = field(default_factory=dict)
    processes: int = 0  # the worker processes this share's figures come from (0: this one)
    peak_rss_mb: int = 0  # the largest peak resident memory of a process that folded (MB)


@dataclass(frozen=True)
class Plan:
    """What a first pass, or one worker's share of it, reads and where it writes."""

    settings: ProjectionSettings
    schema: str
    starts: dict[int, int]  # partition -> first offset to read
    targets: dict[int, int]  # partition -> the offset to stop before
    batch_size: int
    cached_cases: int  # summaries kept in memory

    def share(self, partitions: list[int], workers: int) -> Plan:
        """The plan of one of ``workers`` processes, reading ``partitions``."""
        return replace(
            self,
            starts={p: self.starts[p] for p in partitions},
            targets={p: self.targets.get(p, 0) for p in partitions},
            cached_cases=max(1, self.cached_cases // workers),
        )


def consumer_for(settings: ProjectionSettings) -> AIOKafkaConsumer:
    """A group-less consumer reading from where it is told (large fetches: it reads the whole log)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )


def schema_engine(settings: ProjectionSettings, schema: str) -> AsyncEngine:
    """An engine whose connections see ``schema`` first."""
    return create_async_engine(
        settings.database_url, connect_args={"server_settings": {"search_path": schema}}
    )


def decode_records(records: Sequence, consumer: str) -> tuple[list[Decoded], int]:
    """Each record's delivery (None if it is dead-lettered) and inbox row under ``consumer``'s name, in
    log order; and how many were dead-lettered."""
    decoded: list[Decoded] = []
    dead = 0
    for record in records:
        try:
            envelope = decode_message(record.key, record.headers, record.value)
        except ContractError as exc:
            decoded.append((None, inbox_row(consumer, event_id_of(record, exc), record, "dead-lettered")))
            dead += 1
            continue
        delivery = Delivery(envelope, record.topic, record.partition, record.offset)
        decoded.append((delivery, inbox_row(consumer, envelope.id, record, "applied")))
    return decoded, dead


def inbox_row(consumer: str, event_id: str, record, outcome: str) -> tuple:
    """An inbox row, in bulk.INBOX_COLUMNS order."""
    return (consumer, event_id, record.topic, record.partition, record.offset, outcome)


async def load_partitions(plan: Plan, on_batch: Callable[[int], None] = lambda n: None) -> Share:
    """Fold the partitions of ``plan`` into its schema; write their summaries, not the statistics
    (returned) nor tracking rows."""
    settings, starts, targets = plan.settings, plan.starts, plan.targets
    share = Share(positions=dict(starts))
    topic = settings.case_events_topic
    consumer = consumer_for(settings)
    engine = schema_engine(settings, plan.schema)
    bulk = BulkLoad(engine, plan.schema, cached_cases=plan.cached_cases)
    writing: asyncio.Task | None = None  # the previous batch, written while this one decodes
    # The summaries kept in memory are millions of objects without cycles: spare them the cycle
    # collector's passes (each batch's own garbage is freed by reference counting).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(starts)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp.partition])
        while any(share.positions[p] < targets.get(p, 0) for p in starts):
            batches = await consumer.getmany(timeout_ms=500, max_records=plan.batch_size)
            if not batches:
                continue
            records = [r for part in batches.values() for r in part]
            decoded, dead = decode_records(records, settings.consumer_group)
            if writing is not None:
                await writing
            writing = asyncio.create_task(bulk.add(decoded))
            share.events += len(records)
            share.dead_lettered += dead
            for tp, part in batches.items():
                share.positions[tp.partition] = part[-1].offset + 1
            on_batch(len(records))
        if writing is not None:
            await writing
        await bulk.finish()
        share.reloaded, share.stats = bulk.reloaded, bulk.stats
        share.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        return share
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
        if gc_was_enabled:
            gc.enable()
        await consumer.stop()
        await engine.dispose()


async def first_pass(plan: Plan, *, workers: int, on_batch: Callable[[int], None]) -> Share:
    """Fold the log into the plan's schema with up to ``workers`` processes (one: in this one), then
    write the statistics and tracking rows; the combined share."""
    shares = _deal(sorted(plan.starts), workers)
    if len(shares) <= 1:
        results = [await load_partitions(plan, on_batch)]
    else:
        results = await _in_processes([plan.share(s, len(shares)) for s in shares], on_batch)
    total = Share(processes=len(results) if len(results) > 1 else 0)
    for share in results:
        total.events += share.events
        total.dead_lettered += share.dead_lettered
        total.reloaded += share.reloaded
        total.peak_rss_mb = max(total.peak_rss_mb, share.peak_rss_mb)
        total.positions |= share.positions
        add_stats(total.stats, share.stats)
    settings = plan.settings
    engine = schema_engine(settings, plan.schema)
    try:
        await write_totals(
            engine, plan.schema, settings.consumer_group, total.stats,
            {  # the last offset applied, where the pass applied any
                (settings.case_events_topic, p): position - 1
                for p, position in total.positions.items()
                if position > plan.starts[p]
            },
        )  # fmt: skip
    finally:
        await engine.dispose()
    return total


def _deal(partitions: list[int], workers: int) -> list[list[int]]:
    """Partitions dealt round-robin to at most ``workers`` non-empty shares."""
    count = max(1, min(workers, len(partitions)))
    return [partitions[k::count] for k in range(count)]


async def _in_processes(plans: list[Plan], on_batch: Callable[[int], None]) -> list[Share]:
    # spawned, not forked: this process runs an event loop and client threads a fork would copy half-done
    context = multiprocessing.get_context("spawn")
    progress = context.Value("q", 0)
    shown = 0
    # Leaving the pool's block terminates its processes: when one worker fails, the rest stop at once.
    with context.Pool(len(plans), initializer=_share_progress, initargs=(progress,)) as pool:
        pending = [pool.apply_async(_load_in_process, (plan,)) for plan in plans]
        while True:
            await asyncio.sleep(0.2)
            now = progress.value
            on_batch(now - shown)
            shown = now
            for result in pending:
                if result.ready() and not result.successful():
                    result.get()  # raises the worker's exception
            if all(result.ready() for result in pending):
                return [result.get() for result in pending]


_progress = None  # the worker process's shared event counter (set by the pool's initializer)


def _share_progress(counter) -> None:
    global _progress
    _progress = counter


def _count(n: int) -> None:
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def _load_in_process(plan: Plan) -> Share:
    try:
        return asyncio.run(load_partitions(plan, _count))
    except Exception as exc:  # not every driver error pickles; its text does
        raise FirstPassFailed(f"partitions {sorted(plan.starts)}: {type(exc).__name__}: {exc}") from None
