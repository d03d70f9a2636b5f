"""The consumer loop every service uses.

Each poll's records (from every partition it brought; a case's events are all in one partition, in
order) are handled in one database transaction:

1. every record is decoded (a bad one is bound for ``<topic>.dlq`` with the reason in headers), except
   those of known event types the service does not handle (``handles``): they have no effect, so they
   are passed over undecoded and leave no inbox row;
2. one statement claims the whole batch in the inbox (``INSERT … SELECT unnest(…) ON CONFLICT DO
   NOTHING RETURNING``): an event whose id is already there is a redelivery and is skipped;
3. the claimed events go to the handler without a savepoint per event: one after another to a plain
   handler, or through a unit of work that reads what the whole batch needs at once, takes the events
   one by one and writes what they changed at the end (routing does; the projection's batch handler is
   one that only acts at the end);
4. each partition's tracking row is updated and the transaction commits (and the outbox relay is woken if
   unpublished rows are left, which the tracking statement reports); Kafka offsets are committed
   only after that, so a crash anywhere means redelivery, and redelivery is harmless. A busy consumer
   commits them at most once per ``commit_interval_s`` (the first batch after a quiet spell at once):
   an offset commit costs the broker about as much as a fetch, and after a crash the inbox recognises
   the second or so of events read again. Before a rebalance takes partitions away, what the database
   holds for them is committed at once (``rebalance_listener``), so their next owner starts there.

A poll that brought only events of types the service does not handle opens no transaction: there is
nothing to claim or apply. Its partitions' positions are kept and written with the next transaction, or
on their own once they are ``commit_interval_s`` old (and on stop), so a tracking row is never further
behind than that. Most of what a service reads from the case log is such events (routing handles 3 of
its 20-odd types), and at low rates, where a poll brings one event, that was most of its transactions.

If a handler rejects an event (or fails on it with a bug), the optimistic pass is rolled back and the
batch is handled again carefully: each event in its own savepoint, the failing one dead-lettered with its
reason, the others applied. So one bad event costs one batch a second pass, and good batches pay no
per-event savepoint round trips. One transaction per poll, not per partition: at a few hundred events
a second a poll brings one or two events from each of several partitions, and a transaction's fixed
statements (inbox claim, tracking, commit) cost more than its events.

Infrastructure failures (database or broker unreachable) are not the event's fault: the batch is rolled
back, the consumer seeks back and retries with backoff instead of dead-lettering good events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import sqlalchemy as sa
import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import ContractError, Envelope, decode_message
from contracts.events import EVENT_TYPES, UPCASTERS, CaseEvent
from runtime.db import inbox
from runtime.kafka import dlq_topic
from runtime.stopping import sleep_or_stop
from runtime.telemetry import tracing_enabled

log = structlog.get_logger(__name__)
tracer = trace.get_tracer("gridline.consumer")

CONSUMED = Counter("gridline_events_consumed_total", "Events handled", ["consumer", "event_type", "outcome"])
DEAD_LETTERED = Counter("gridline_dlq_total", "Events sent to a dead-letter topic", ["consumer", "reason"])
LAG = Gauge("gridline_consumer_lag", "Records behind the partition end", ["consumer", "topic", "partition"])


@dataclass(frozen=True)
class Delivery:
    """An event as a handler sees it: the decoded envelope and where it sits in the log."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int


Handler = Callable[[AsyncConnection, Delivery], Awaitable[None]]
# Applies many events (in log order) in one go, with the same effect as the handler applied to each.
BatchHandler = Callable[[AsyncConnection, Sequence[Delivery]], Awaitable[object]]


class UnitOfWork(Protocol):
    """A handler's work over the events of one transaction: ``handle`` takes each (in log order, inside
    its receive span), ``finish`` writes what they changed. Opened with every event of the batch, so it
    can read all it needs in one go."""

    async def handle(self, delivery: Delivery) -> None: ...

    async def finish(self) -> None: ...


UnitOfWorkFactory = Callable[[AsyncConnection, Sequence[Delivery]], Awaitable[UnitOfWork]]


class _Collect:
    """A batch handler as a unit of work: collects the events, applies them all at the end."""

    def __init__(self, conn: AsyncConnection, apply: BatchHandler) -> None:
        self._conn = conn
        self._apply = apply
        self._deliveries: list[Delivery] = []

    async def handle(self, delivery: Delivery) -> None:
        self._deliveries.append(delivery)

    async def finish(self) -> None:
        await self._apply(self._conn, self._deliveries)


async def apply_in_unit(
    open_unit: UnitOfWorkFactory, conn: AsyncConnection, deliveries: Sequence[Delivery]
) -> None:
    """Events through one unit of work, as the consumer loop applies a batch (without its spans)."""
    unit = await open_unit(conn, deliveries)
    for delivery in deliveries:
        await unit.handle(delivery)
    await unit.finish()


def collecting(apply: BatchHandler) -> UnitOfWorkFactory:
    """The unit of work of a handler that applies a whole batch at once."""

    async def open_unit(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> UnitOfWork:
        return _Collect(conn, apply)

    return open_unit


class EventRejected(Exception):
    """Raised by a handler for an event that is valid on the wire but cannot be applied."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,  # every pooled connection busy for pool_timeout (30 s): a stalled database
    OSError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
)


# What asyncpg's client-side errors say when the server went away under the connection (the same classes
# also report bugs, e.g. "unexpected codec state", which stay bugs)
_DROPPED_CONNECTION = (
    "connection is closed",
    "another operation",
    "not connected",
    'protocol is in the "failed" state',
)


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the database or broker themselves (retry later), not of the work at hand."""
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        # SQLAlchemy saw the connection die under the statement (e.g. asyncpg's "cannot switch to state
        # …; another operation is in progress" when the server shuts down mid-query)
        return True
    # asyncpg's connection-level errors surface wrapped in DBAPIError with these SQLSTATE classes, or
    # unwrapped when they happen while the pool connects (e.g. 57P03 "the database system is shutting down")
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError) and any(
        sign in str(error) for sign in _DROPPED_CONNECTION
    ):  # raw asyncpg (intake's hot path) on a connection the server dropped, also mid-statement while it
        # shuts down: "cannot switch to state 15; another operation (2) is in progress" (a 500 in the
        # 100,000-case fault run, where a 503 was due)
        return True
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) or ""
    return isinstance(code, str) and code[:2] in {"08", "53", "57", "40"}


@dataclass
class ConsumerStatus:
    started: bool = False
    assigned: int = 0
    last_error: str | None = None
    processed: int = 0


class EventConsumer:
    """Consumes one or more topics into one handler, idempotently, with a DLQ for bad events."""

    def __init__(
        self,
        *,
        name: str,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        engine: AsyncEngine,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        unit_of_work: UnitOfWorkFactory | None = None,
        handles: Collection[type[CaseEvent]] | None = None,
        batch_size: int = 500,
        commit_interval_s: float = 1.0,
        fault_exit_after_db_commit: int = 0,
        wake_relay: Callable[[], None] | None = None,
        linger_s: float = 0.0,
    ) -> None:
        """``wake_relay``: called after a transaction that left unpublished rows in the service's outbox
        (the handlers' events, or older ones); without it the tracking statement does not look."""
        self.name = name
        self._linger_s = linger_s
        self._consumer = consumer
        self._producer = producer
        self._engine = engine
        if batch_handler is not None:
            unit_of_work = collecting(batch_handler)
        if unit_of_work is None:
            if handler is None:
                raise ValueError(f"consumer {name}: a handler, batch handler or unit of work is needed")
            unit_of_work = _one_by_one(handler)
        self._open_unit = unit_of_work
        self._ignored = ignored_type_names(handles)
        self._batch_size = batch_size
        self._commit_interval_s = commit_interval_s
        self._uncommitted: dict[TopicPartition, int] = {}  # next offsets whose events are in the database
        self._committed_at = -float("inf")
        self._assignment_epoch = 0  # one more at every revocation: a poll from before it records nothing
        self._fault_exit_after = fault_exit_after_db_commit
        self._wake_relay = wake_relay
        self._track = _TRACK if wake_relay is None else _TRACK_AND_PEEK
        self._untracked: dict[TopicPartition, int] = {}  # last offsets of polls that wrote no transaction
        self._untracked_since = 0.0
        self._db_commits = 0
        self.status = ConsumerStatus()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and commit."""
        backoff = 0.5
        self.status.started = True
        while not stop.is_set():
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                epoch = self._assignment_epoch
                self.status.assigned = len(self._consumer.assignment())
                if batches:
                    await self._process_poll(batches)
                for tp, records in batches.items():
                    # A rebalance while the batch was handled: its partitions may be someone else's (or
                    # ours again, from a newer commit) by now; the database has the events either way.
                    if epoch == self._assignment_epoch:
                        self._uncommitted[tp] = records[-1].offset + 1
                    self._update_lag(tp, records[-1].offset)
                await self._track_positions()
                await self._commit_offsets()
                self.status.last_error = None
                backoff = 0.5
                polled = sum(len(records) for records in batches.values())
                if self._linger_s and 0 < polled < self._batch_size:
                    await sleep_or_stop(stop, self._linger_s)
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer.retrying", consumer=self.name, error=self.status.last_error)
                await self._rewind()
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 10.0)
        try:
            await self._track_positions(now=True)
        except Exception as exc:  # the positions of ignored events only: reading them again is harmless
            if not is_infrastructure_error(exc):
                raise
            log.warning(
                "consumer.final_tracking_failed", consumer=self.name, error=f"{type(exc).__name__}: {exc}"
            )
        try:
            await self._commit_offsets(now=True)
        except KafkaError as exc:  # the next owner reads again from the last commit; the inbox skips it
            error = f"{type(exc).__name__}: {exc}"
            log.warning("consumer.final_commit_failed", consumer=self.name, error=error)

    async def _commit_offsets(self, *, now: bool = False) -> None:
        """One Kafka commit for every partition whose batches are in the database since the last one, if
        ``commit_interval_s`` has passed since then (or ``now``). Partitions a rebalance took away are
        left out: their new owner reads from the last commit, and its inbox skips what is done."""
        loop = asyncio.get_running_loop()
        if not self._uncommitted or (not now and loop.time() - self._committed_at < self._commit_interval_s):
            return
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in assigned}
        if offsets:
            await self._consumer.commit(offsets)
        self._uncommitted.clear()
        self._committed_at = loop.time()

    async def _track_positions(self, *, now: bool = False) -> None:
        """Write the positions of polls that opened no transaction, once the oldest of them is
        ``commit_interval_s`` old (or ``now``), in a transaction of their own."""
        if not self._untracked:
            return
        if not now and asyncio.get_running_loop().time() - self._untracked_since < self._commit_interval_s:
            return
        async with self._engine.begin() as conn:
            await self._write_positions(conn, dict(self._untracked))
        self._untracked.clear()  # only this loop adds to it; a revocation meanwhile only takes away

    async def _write_positions(self, conn: AsyncConnection, last: dict[TopicPartition, int]) -> bool:
        """Each partition's tracking row; returns whether the outbox holds unpublished rows (only looked
        at when there is a relay to wake)."""
        result = await conn.execute(
            self._track,
            {
                "consumer": self.name,
                "topics": [tp.topic for tp in last],
                "partitions": [tp.partition for tp in last],
                "offsets": list(last.values()),
            },
        )
        return self._wake_relay is not None and bool(result.scalar())

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        """Pass to ``subscribe``: commits, before a rebalance, what the database holds for the partitions
        going away, and forgets them."""
        return _CommitOnRevoke(self)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._assignment_epoch += 1
        for tp in revoked:  # their next owner writes their positions (these were only ignored events)
            self._untracked.pop(tp, None)
        offsets = {tp: self._uncommitted.pop(tp) for tp in revoked if tp in self._uncommitted}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # e.g. the group moved on without us: the next owner reads again from
            error = f"{type(exc).__name__}: {exc}"  # the last commit, and its inbox skips what is done
            log.warning("consumer.revoke_commit_failed", consumer=self.name, error=error)

    async def _rewind(self) -> None:
        """Go back to where the database is (or to the last committed offsets) so a failed batch is read
        again."""
        for tp in self._consumer.assignment():
            try:
                if (done := self._uncommitted.get(tp)) is not None:
                    self._consumer.seek(tp, done)
                    continue
                committed = await self._consumer.committed(tp)
                if committed is None:
                    await self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)
            except KafkaError:  # e.g. revoked by a rebalance meanwhile (IllegalStateError): its next owner
                continue  # starts from the committed offset, as we will if it comes back

    def _update_lag(self, tp: TopicPartition, offset: int) -> None:
        highwater = self._consumer.highwater(tp)
        if highwater is not None:
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    async def _process_poll(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [record for batch in batches.values() for record in batch]
        decoded = [
            None if _header(record, "ce_type") in self._ignored else _decode(record) for record in records
        ]
        last = {tp: batch[-1].offset for tp, batch in batches.items()}
        if all(item is None for item in decoded):  # nothing to claim or apply: no transaction
            if not self._untracked:
                self._untracked_since = asyncio.get_running_loop().time()
            self._untracked.update(last)
            self._count(records, ["ignored"] * len(records))
            return
        last = {**self._untracked, **last}  # positions kept from polls without a transaction, then this one's
        try:
            outcomes, outbox_pending = await self._apply(last, records, decoded, careful=False)
        except _RetryCarefully:
            outcomes, outbox_pending = await self._apply(last, records, decoded, careful=True)
        self._untracked.clear()  # all written with this poll's positions
        self._count(records, outcomes)
        if outbox_pending and self._wake_relay is not None:
            self._wake_relay()
        self._db_commits += 1
        if self._fault_exit_after and self._db_commits >= self._fault_exit_after:
            log.warning("consumer.fault_injected_exit", consumer=self.name)
            os._exit(17)

    def _count(self, records: list[ConsumerRecord], outcomes: list[str]) -> None:
        for record, outcome in zip(records, outcomes, strict=True):
            CONSUMED.labels(self.name, _header(record, "ce_type") or "?", outcome).inc()
        self.status.processed += len(records)

    async def _apply(
        self,
        last: dict[TopicPartition, int],
        records: list[ConsumerRecord],
        decoded: list[Envelope | ContractError | None],
        *,
        careful: bool,
    ) -> tuple[list[str], bool]:
        """One transaction over the poll's records (``last``: each partition's last offset); returns each
        record's outcome and whether the outbox holds unpublished rows after it."""
        dead_letters: list[tuple[ConsumerRecord, str, str]] = []
        outcomes = ["ignored" if item is None else "duplicate" for item in decoded]
        async with self._engine.begin() as conn:
            claimed = await self._claim(conn, records, decoded)
            todo: list[tuple[int, Delivery]] = []
            for index, (record, item) in enumerate(zip(records, decoded, strict=True)):
                if item is None:
                    continue  # a type this consumer does not handle: no effect, so no inbox row
                event_id = event_id_of(record, item)
                if event_id not in claimed:
                    continue  # already in the inbox: a redelivery (or a repeat inside this batch)
                claimed.discard(event_id)
                if isinstance(item, ContractError):
                    outcomes[index] = "dead-lettered"
                    dead_letters.append((record, item.reason, item.detail))
                else:
                    todo.append((index, Delivery(item, record.topic, record.partition, record.offset)))
            if careful:
                for index, delivery in todo:
                    failure = await self._handle_carefully(conn, delivery)
                    outcomes[index] = "applied" if failure is None else "dead-lettered"
                    if failure is not None:
                        dead_letters.append((records[index], *failure))
            elif todo:
                try:
                    await self._handle_all(conn, [delivery for _, delivery in todo])
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    raise _RetryCarefully from exc
                for index, _ in todo:
                    outcomes[index] = "applied"
            # DLQ entries are acknowledged before the transaction commits: a crash in between repeats
            # the entry, never loses it.
            for record, reason, detail in dead_letters:
                await self._send_to_dlq(record, reason, detail)
            outbox_pending = await self._write_positions(conn, last)
        return outcomes, outbox_pending

    async def _handle_all(self, conn: AsyncConnection, deliveries: list[Delivery]) -> None:
        """The optimistic pass: every claimed event in one unit of work, no savepoints."""
        unit = await self._open_unit(conn, deliveries)
        for delivery in deliveries:
            with self._receive_span(delivery):
                await unit.handle(delivery)
        await unit.finish()

    async def _handle_carefully(self, conn: AsyncConnection, delivery: Delivery) -> tuple[str, str] | None:
        """One event in its own savepoint; returns (reason, detail) if it has to be dead-lettered."""
        envelope = delivery.envelope
        with self._receive_span(delivery):
            try:
                async with conn.begin_nested():
                    await apply_in_unit(self._open_unit, conn, [delivery])
            except EventRejected as exc:
                failure = (exc.reason, exc.detail)
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                log.exception("consumer.handler_failed", consumer=self.name, case_id=envelope.subject)
                failure = ("handler-error", f"{type(exc).__name__}: {exc}")
            else:
                return None
        await self._mark(conn, envelope.id, "dead-lettered")
        return failure

    @contextlib.contextmanager
    def _receive_span(self, delivery: Delivery) -> Iterator[None]:
        """The event's case in the logs and its trace context current, so the events it causes carry it on;
        with a ``receive`` span when this process exports traces. Without, no span is started: the no-op
        tracer's would only hand back the incoming context, for ~4 % of a consumer's CPU (notify)."""
        envelope = delivery.envelope
        token = otel_context.attach(extract(envelope.trace_headers))
        try:
            with structlog.contextvars.bound_contextvars(case_id=envelope.subject, event_type=envelope.type):
                if not tracing_enabled():
                    yield
                    return
                with tracer.start_as_current_span(
                    f"{delivery.topic} receive",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": delivery.topic,
                        "messaging.kafka.destination.partition": delivery.partition,
                        "messaging.kafka.message.offset": delivery.offset,
                        "messaging.consumer.group.name": self.name,
                        "gridline.case_id": envelope.subject,
                        "gridline.event_type": envelope.type,
                    },
                ):
                    yield
        finally:
            otel_context.detach(token)

    async def _claim(
        self,
        conn: AsyncConnection,
        records: list[ConsumerRecord],
        decoded: list[Envelope | ContractError | None],
    ) -> set[str]:
        """Insert the batch's inbox rows in one statement; return the ids that were not there yet."""
        taken = [(r, d) for r, d in zip(records, decoded, strict=True) if d is not None]
        if not taken:
            return set()
        result = await conn.execute(
            _CLAIM,
            {
                "consumer": self.name,
                "topics": [r.topic for r, _ in taken],
                "partitions": [r.partition for r, _ in taken],
                "event_ids": [event_id_of(r, d) for r, d in taken],
                "offsets": [r.offset for r, _ in taken],
                "outcomes": [
                    "dead-lettered" if isinstance(d, ContractError) else "applied" for _, d in taken
                ],
            },
        )
        return set(result.scalars())

    async def _mark(self, conn: AsyncConnection, event_id: str, outcome: str) -> None:
        await conn.execute(
            sa.update(inbox)
            .where(inbox.c.consumer == self.name, inbox.c.event_id == event_id)
            .values(outcome=outcome)
        )

    async def _send_to_dlq(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        headers = list(record.headers or ()) + [
            ("dlq_reason", reason.encode()),
            ("dlq_error", detail[:2000].encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_source_topic", record.topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(
            dlq_topic(record.topic), record.value or b"", key=record.key, headers=headers
        )
        DEAD_LETTERED.labels(self.name, reason).inc()
        log.warning(
            "consumer.dead_lettered",
            consumer=self.name,
            reason=reason,
            detail=detail[:300],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


class _OneByOne:
    """A plain handler as a unit of work: each event is applied as it comes."""

    def __init__(self, conn: AsyncConnection, handler: Handler) -> None:
        self._conn = conn
        self._handler = handler

    async def handle(self, delivery: Delivery) -> None:
        await self._handler(self._conn, delivery)

    async def finish(self) -> None:
        return None


def _one_by_one(handler: Handler) -> UnitOfWorkFactory:
    async def open_unit(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> UnitOfWork:
        return _OneByOne(conn, handler)

    return open_unit


class _RetryCarefully(Exception):
    """The optimistic pass hit an event it cannot apply: roll back and go event by event."""


# Both statements are built once, so SQLAlchemy compiles them once (a statement made per call with its
# values inline is compiled per call, which cost more than the round trip).
class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        await self._consumer._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        return None


_CLAIM = sa.text(
    """
    INSERT INTO inbox (consumer, event_id, topic, partition, "offset", outcome)
    SELECT :consumer, claim.event_id, claim.topic, claim.partition, claim.position, claim.outcome
    FROM unnest(
        CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:event_ids AS text[]),
        CAST(:offsets AS bigint[]), CAST(:outcomes AS text[])
    ) AS claim(topic, partition, event_id, position, outcome)
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING event_id
    """
)
_TRACK_ROWS = """
    INSERT INTO tracking (consumer, topic, partition, "offset")
    SELECT :consumer, position.topic, position.partition, position.last
    FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]))
        AS position(topic, partition, last)
    ORDER BY position.topic, position.partition
    ON CONFLICT (consumer, topic, partition) DO UPDATE SET "offset" = excluded."offset", updated_at = now()
"""
_TRACK = sa.text(_TRACK_ROWS)
# The same write, and in the same round trip whether the outbox has rows for the relay: a transaction whose
# events caused none wakes no relay, which would only claim nothing (at 5 cases/s, most of routing's and
# all of the projection's wakes did). Asked as "the first id", which the primary key answers, passing
# over the entries of rows the relay deleted since the last vacuum; EXISTS was planned as a sequential
# scan, which reads every page those rows left (20,000 pages after 100,000 events).
_TRACK_AND_PEEK = sa.text(
    f"WITH track AS ({_TRACK_ROWS})"
    " SELECT (SELECT id FROM outbox ORDER BY id LIMIT 1) IS NOT NULL AS outbox_pending"
)


def ignored_type_names(handles: Collection[type[CaseEvent]] | None) -> frozenset[str]:
    """The CloudEvents types (every known version) whose events a consumer handling only ``handles``
    can skip without decoding them. None handles everything. An unknown type is never in the set, so
    it is still decoded and dead-lettered."""
    if handles is None:
        return frozenset()
    ignored = set()
    for name in {*EVENT_TYPES, *UPCASTERS}:
        current = name
        while current in UPCASTERS:
            current = UPCASTERS[current][0]
        if EVENT_TYPES.get(current) not in handles:
            ignored.add(name)
    return frozenset(ignored)


def _decode(record: ConsumerRecord) -> Envelope | ContractError:
    try:
        return decode_message(record.key, record.headers, record.value)
    except ContractError as exc:
        return exc


def event_id_of(record: ConsumerRecord, decoded: Envelope | ContractError) -> str:
    """The event id a record is known by in an inbox: its envelope's, or for a record that breaks the
    contract the producer's ``ce_id`` header, else its place in the log."""
    if isinstance(decoded, ContractError):  # keep the producer's id if it sent one
        return _header(record, "ce_id") or f"{record.topic}:{record.partition}:{record.offset}"
    return decoded.id


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None
