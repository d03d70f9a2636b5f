"""Transactional outbox: events are written with the state change, then a relay publishes them.

``enqueue`` runs inside the caller's transaction. ``OutboxRelay`` claims rows in id order (one replica's
relay at a time, ``_CLAIM``), publishes them with the idempotent producer, waits for every
acknowledgement, and deletes them in the same transaction as the claim: the outbox holds only events not
yet published (Kafka's log keeps the published ones). A relay that dies between the acknowledgements and
the commit publishes the rows again; consumers' inboxes recognise them.

Deleting is cheaper than marking a row published: an UPDATE writes a new version of the whole row
(payload included) and new entries in its indexes, and leaves the old version for autovacuum. In
replays of 15,000 cases it cut the write-ahead log from 60 to 51 KB a case, the disk a case takes from
32 to 26 KB, and PostgreSQL's CPU by about 0.3 ms a case (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import OutboundMessage
from runtime.stopping import sleep_or_stop
from runtime.telemetry import tracing_enabled

log = structlog.get_logger(__name__)
tracer = trace.get_tracer("gridline.outbox")

PUBLISHED = Counter("gridline_outbox_published_total", "Events published by the outbox relay", ["event_type"])
BACKLOG = Gauge("gridline_outbox_backlog", "Unpublished outbox rows seen at the last claim")
OLDEST_AGE = Gauge("gridline_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")

# A service whose relay may run in another process than its writers (``process_role`` worker) has a
# trigger on its outbox that notifies this channel when rows are committed (intake's migration 0004).
NOTIFY_CHANNEL = "gridline_outbox"


def current_trace_headers() -> dict[str, str]:
    """W3C trace context of the current span, to be carried with an event."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


async def enqueue(conn: AsyncConnection, messages: Sequence[OutboundMessage]) -> None:
    """Store messages in the outbox inside the caller's open transaction (idempotent by event id)."""
    if not messages:
        return
    # One statement of arrays for the whole batch (see runtime.sql.ArrayInsert for why not executemany).
    await conn.exec_driver_sql(ENQUEUE, outbox_columns(messages))


def _header_pairs(message: OutboundMessage) -> list[list[str]]:
    """Kafka headers as the outbox's JSON column holds them: [[name, value], ...]."""
    return [[name, value.decode()] for name, value in message.headers]


def outbox_insert_from_arrays(first: int, join: str = "", where: str = "") -> str:
    """SQL inserting outbox rows from six array parameters ``$first`` … ``$first+5`` (see
    ``outbox_columns``), in the order given (the relay publishes in outbox order), for a raw asyncpg
    statement that writes its state and its events in one go; ``join`` (e.g. ``CROSS JOIN appeal``) or
    ``where`` (on the rows ``m``) makes the rows conditional on another CTE's rows."""
    p = [f"${first + i}" for i in range(6)]
    return (
        "INSERT INTO outbox (event_id, topic, key, event_type, headers, value)"
        " SELECT m.event_id, m.topic, m.key, m.event_type, m.headers::jsonb, m.value"
        f" FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[],"
        f" {p[5]}::bytea[]) WITH ORDINALITY AS m(event_id, topic, key, event_type, headers, value, position)"
        f" {join} {where} ORDER BY m.position"
        " ON CONFLICT (event_id) DO NOTHING"
    )


# The outbox write of a batch on its own: six array parameters (outbox_columns), $1 … $6.
ENQUEUE = outbox_insert_from_arrays(1)
OutboxRow = tuple[str, str, str, str, str, bytes]


def outbox_row(message: OutboundMessage) -> OutboxRow:
    """A message as one row of ``outbox_insert_from_arrays``' six columns (to build rows ahead of time)."""
    m = message
    return (m.event_id, m.topic, m.key, m.type, orjson.dumps(_header_pairs(m)).decode(), m.value)


def outbox_columns(messages: Sequence[OutboundMessage]) -> tuple[list, list, list, list, list, list]:
    """The six array parameters of ``outbox_insert_from_arrays``, in order."""
    return outbox_columns_of_rows([outbox_row(m) for m in messages])


def outbox_columns_of_rows(rows: Sequence[OutboxRow]) -> tuple[list, list, list, list, list, list]:
    """``outbox_columns`` of rows already made by ``outbox_row``."""
    if not rows:
        return [], [], [], [], [], []
    event_ids, topics, keys, types, headers, values = (list(column) for column in zip(*rows, strict=True))
    return event_ids, topics, keys, types, headers, values


class OutboxRelay:
    """Publishes outbox rows to Kafka in claim order; safe to run in several replicas."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.2,
        linger_s: float = 0.0,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._linger_s = linger_s  # after a wake, wait for the commits that follow it
        self._wake = asyncio.Event()
        self.healthy = True

    def wake(self) -> None:
        """Tell the relay new rows were committed (saves waiting for the next poll)."""
        self._wake.set()

    async def listen(self, dsn: str, stop: asyncio.Event) -> None:
        """Wake on the database's outbox notifications (``NOTIFY_CHANNEL``) until ``stop``: how a relay
        learns of rows that another process committed. While the listening connection is down the relay
        still polls; it reconnects."""
        backoff = 0.5
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
                self.wake()  # rows committed while no one listened
                backoff = 0.5
                await _first_of(stop.wait(), lost.wait())
            except Exception as exc:  # any failure: poll meanwhile, then listen again
                log.warning("outbox.listen_failed", error=str(exc), error_type=type(exc).__name__)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; back off on errors, never give up."""
        backoff = 0.5
        while not stop.is_set():
            # Cleared before the claim, so a wake() that arrives while we publish is not lost.
            self._wake.clear()
            try:
                published = await self.publish_batch()
                self.healthy = True
                backoff = 0.5
            except Exception as exc:
                self.healthy = False
                log.warning("outbox.publish_failed", error=str(exc), error_type=type(exc).__name__)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if published < self._batch_size:
                waiter = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self._poll_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                stopper.cancel()
                if self._linger_s and self._wake.is_set():
                    await sleep_or_stop(stop, self._linger_s)

    async def publish_batch(self) -> int:
        """Claim, publish and delete one batch; returns how many rows were published.

        Two statements on asyncpg directly (the relay runs once per consumed batch in every service):
        the claim, which also reads the database clock, and the delete."""
        async with self._engine.connect() as conn:
            db: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
            async with db.transaction():
                rows = await db.fetch(_CLAIM, self._batch_size)
                if not rows:
                    BACKLOG.set(0)
                    OLDEST_AGE.set(0)
                    return 0
                BACKLOG.set(len(rows))
                OLDEST_AGE.set(max(0.0, (rows[0]["now"] - rows[0]["created_at"]).total_seconds()))
                futures = []
                for row in rows:
                    topic, key = row["topic"], row["key"]
                    headers = _publish_headers(topic, key, row["event_type"], orjson.loads(row["headers"]))
                    futures.append(
                        await self._producer.send(topic, row["value"], key=key.encode(), headers=headers)
                    )
                await asyncio.gather(*futures)
                await db.execute(_DELETE_PUBLISHED, [row["id"] for row in rows])
        for row in rows:
            PUBLISHED.labels(row["event_type"]).inc()
        return len(rows)


# One relay of a service publishes at a time: the claim first tries a transaction-level advisory lock (the
# two-key form, a key space apart from the one-key locks on cases) and claims nothing without it. Two
# relays claiming disjoint batches side by side could publish a later event of a case before an earlier
# one; taking turns, each publishes in id order what the one before left. The lock goes with the
# claiming transaction, so a relay that dies frees it. Rows stay locked too (routing withdraws a decision
# only if no relay holds it).
_CLAIM = (
    "WITH turn AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(1869968500, 1) AS held)"
    " SELECT id, topic, key, event_type, headers::text AS headers, value, created_at, now() AS now"
    " FROM outbox WHERE (SELECT held FROM turn) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)
_DELETE_PUBLISHED = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"


def _publish_headers(
    topic: str, key: str, event_type: str, stored: list[list[str]]
) -> list[tuple[str, bytes]]:
    """The stored headers, with the trace context moved on to a ``<topic> publish`` span whose parent
    is the span that wrote the event (so one trace runs from the HTTP request through the broker)."""
    if not tracing_enabled():
        return [(name, value.encode()) for name, value in stored]
    carrier = {name: value for name, value in stored if name in ("traceparent", "tracestate")}
    with tracer.start_as_current_span(
        f"{topic} publish",
        context=extract(carrier),
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "gridline.case_id": key,
            "gridline.event_type": event_type,
        },
    ):
        fresh: dict[str, str] = {}
        inject(fresh)
    kept = [(name, value) for name, value in stored if name not in ("traceparent", "tracestate")]
    return [(name, value.encode()) for name, value in kept + sorted(fresh.items())]


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
