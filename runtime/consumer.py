"""The consumer loop every service uses.

For each batch of records from one partition it opens one database transaction, and for each record:
decodes the CloudEvent (a bad one goes to ``<topic>.dlq`` with the reason in headers), skips it if the
inbox already holds its id, otherwise runs the handler inside a savepoint (a handler that rejects the
event sends it to the DLQ too) and writes the inbox row. The partition's tracking row is updated in the
same transaction. Kafka offsets are committed only after that transaction commits, so a crash anywhere
means redelivery, and redelivery is harmless.

Infrastructure failures (database or broker unreachable) are not the event's fault: the batch is rolled
back, the consumer seeks back and retries with backoff instead of dead-lettering good events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import ContractError, Envelope, decode_message
from runtime.db import inbox, tracking
from runtime.kafka import dlq_topic

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


class EventRejected(Exception):
    """Raised by a handler for an event that is valid on the wire but cannot be applied."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
)


def _is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return True
    # asyncpg's connection-level errors surface wrapped in DBAPIError with these SQLSTATE classes
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
        return code[:2] in {"08", "53", "57", "40"}  # connection, resources, shutdown, serialization
    return False


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
        handler: Handler,
        batch_size: int = 500,
        fault_exit_after_db_commit: int = 0,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._consumer = consumer
        self._producer = producer
        self._engine = engine
        self._handler = handler
        self._batch_size = batch_size
        self._fault_exit_after = fault_exit_after_db_commit
        self._after_commit = after_commit
        self._db_commits = 0
        self.status = ConsumerStatus()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and commit."""
        backoff = 0.5
        self.status.started = True
        while not stop.is_set():
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                self.status.assigned = len(self._consumer.assignment())
                for tp, records in batches.items():
                    await self._process_partition_batch(tp, records)
                    await self._consumer.commit({tp: records[-1].offset + 1})
                    self._update_lag(tp, records[-1].offset)
                self.status.last_error = None
                backoff = 0.5
            except Exception as exc:
                if not _is_infrastructure(exc):
                    raise
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("consumer.retrying", consumer=self.name, error=self.status.last_error)
                await self._rewind()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)

    async def _rewind(self) -> None:
        """Go back to the last committed offsets so a failed batch is read again."""
        for tp in self._consumer.assignment():
            try:
                committed = await self._consumer.committed(tp)
            except KafkaError:
                continue
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    def _update_lag(self, tp: TopicPartition, offset: int) -> None:
        highwater = self._consumer.highwater(tp)
        if highwater is not None:
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    async def _process_partition_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        dead_letters: list[tuple[ConsumerRecord, str, str]] = []
        async with self._engine.begin() as conn:
            for record in records:
                outcome = await self._process_record(conn, record, dead_letters)
                CONSUMED.labels(self.name, _header(record, "ce_type") or "?", outcome).inc()
            # DLQ entries are acknowledged before the transaction commits: a crash in between repeats
            # the entry, never loses it.
            for record, reason, detail in dead_letters:
                await self._send_to_dlq(record, reason, detail)
            await conn.execute(
                insert(tracking)
                .values(consumer=self.name, topic=tp.topic, partition=tp.partition, offset=records[-1].offset)
                .on_conflict_do_update(
                    index_elements=["consumer", "topic", "partition"],
                    set_={"offset": records[-1].offset, "updated_at": sa.func.now()},
                )
            )
        self.status.processed += len(records)
        if self._after_commit is not None:  # e.g. wake the outbox relay: handlers may have enqueued events
            self._after_commit()
        self._db_commits += 1
        if self._fault_exit_after and self._db_commits >= self._fault_exit_after:
            log.warning("consumer.fault_injected_exit", consumer=self.name)
            os._exit(17)

    async def _process_record(
        self,
        conn: AsyncConnection,
        record: ConsumerRecord,
        dead_letters: list[tuple[ConsumerRecord, str, str]],
    ) -> str:
        try:
            envelope = decode_message(record.key, record.headers, record.value)
        except ContractError as exc:
            event_id = _header(record, "ce_id") or f"{record.topic}:{record.partition}:{record.offset}"
            if await self._claim(conn, event_id, record, "dead-lettered"):
                dead_letters.append((record, exc.reason, exc.detail))
            return "dead-lettered"
        if not await self._claim(conn, envelope.id, record, "applied"):
            return "duplicate"
        parent = extract(envelope.trace_headers)
        token = otel_context.attach(parent)
        try:
            with (
                structlog.contextvars.bound_contextvars(case_id=envelope.subject, event_type=envelope.type),
                tracer.start_as_current_span(
                    f"{record.topic} receive",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": record.topic,
                        "messaging.kafka.destination.partition": record.partition,
                        "messaging.kafka.message.offset": record.offset,
                        "messaging.consumer.group.name": self.name,
                        "gridline.case_id": envelope.subject,
                        "gridline.event_type": envelope.type,
                    },
                ),
            ):
                try:
                    async with conn.begin_nested():
                        await self._handler(
                            conn, Delivery(envelope, record.topic, record.partition, record.offset)
                        )
                except EventRejected as exc:
                    await self._mark(conn, envelope.id, "dead-lettered")
                    dead_letters.append((record, exc.reason, exc.detail))
                    return "dead-lettered"
                except Exception as exc:
                    if _is_infrastructure(exc):
                        raise
                    log.exception("consumer.handler_failed", consumer=self.name, case_id=envelope.subject)
                    await self._mark(conn, envelope.id, "dead-lettered")
                    dead_letters.append((record, "handler-error", f"{type(exc).__name__}: {exc}"))
                    return "dead-lettered"
        finally:
            otel_context.detach(token)
        return "applied"

    async def _claim(
        self, conn: AsyncConnection, event_id: str, record: ConsumerRecord, outcome: str
    ) -> bool:
        result = await conn.execute(
            insert(inbox)
            .values(
                consumer=self.name,
                event_id=event_id,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                outcome=outcome,
            )
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(inbox.c.event_id)
        )
        return result.first() is not None

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


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None
