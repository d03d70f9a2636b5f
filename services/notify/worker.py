"""The delivery worker: claims due rows of the delivery queue and sends them, concurrently and bounded.

Claims use ``FOR UPDATE SKIP LOCKED`` plus a lease (``next_attempt_at`` pushed past the send timeout), so
several replicas share the queue and a crashed worker's rows come back by themselves. Each message is
sent in its own task with a timeout; a slow endpoint occupies at most the tasks it was given, and after
``circuit_threshold`` consecutive failures its circuit opens and its rows wait without being tried.
Outcomes are recorded with NotificationSent / NotificationFailed (and a DLQ record) in the outbox, in the
same transaction as the row's new status. Sends that finish while a recording transaction runs are
recorded together in the next one (group commit): under a backlog one transaction records many messages,
and each send still returns only once its outcome is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import OutboundMessage, encode_event
from contracts.events.notify import NotificationFailed, NotificationSent
from runtime.consumer import is_infrastructure_error
from runtime.logging import mask_pii
from runtime.outbox import enqueue
from runtime.sql import custom_plans, local_settings
from services.notify.batching import Batcher
from services.notify.channels import DeliveryError, Outgoing, Sender
from services.notify.contacts import ContactDirectory
from services.notify.domain.directory import Directory
from services.notify.domain.policy import CircuitBreaker, QuietHours, backoff_delay
from services.notify.handlers import NOTIFICATION_NAMESPACE
from services.notify.tables import deliveries

log = structlog.get_logger(__name__)
tracer = trace.get_tracer("gridline.notify")
ATTEMPTS = Counter("gridline_notify_attempts_total", "Delivery attempts", ["channel", "endpoint", "outcome"])


@dataclass(frozen=True)
class WorkerPolicy:
    max_attempts: int = 8
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 1800.0
    circuit_threshold: int = 5
    circuit_cooldown_s: float = 30.0
    send_timeout_s: float = 10.0
    max_in_flight: int = 32
    poll_interval_s: float = 0.25
    quiet_hours: QuietHours = QuietHours()

    @property
    def lease(self) -> timedelta:
        # Long enough for a contact lookup and a send, each bounded by the timeout.
        return timedelta(seconds=3 * self.send_timeout_s + 30)


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        senders: Mapping[str, Sender],
        directory: Directory,
        contacts: ContactDirectory,
        policy: WorkerPolicy,
        *,
        events_topic: str,
        dlq_topic: str,
        source: str,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._engine, self._senders, self._directory, self._contacts = engine, senders, directory, contacts
        self.policy = policy
        self._events_topic, self._dlq_topic, self._source = events_topic, dlq_topic, source
        self._on_commit, self._clock, self._rng = on_commit, clock, rng or random.Random()
        self.breakers: dict[str, CircuitBreaker] = {}
        self._wake = asyncio.Event()
        self._recorder: Batcher[_Outcome, None] = Batcher(self._write)

    def wake(self) -> None:
        self._wake.set()

    def breaker(self, endpoint: str) -> CircuitBreaker:
        if endpoint not in self.breakers:
            self.breakers[endpoint] = CircuitBreaker(
                self.policy.circuit_threshold, self.policy.circuit_cooldown_s
            )
        return self.breakers[endpoint]

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then let sends in progress finish (their leases cover the rest)."""
        in_flight: set[asyncio.Task] = set()
        backoff = 0.5
        # Claim again when a quarter of the slots is free (or nothing is in flight): one claim per handful
        # of messages under a backlog, not one per finished send.
        refill = max(1, self.policy.max_in_flight // 4)
        while not stop.is_set():
            free = self.policy.max_in_flight - len(in_flight)
            try:
                rows = await self.claim(free) if free >= refill or not in_flight else []
                backoff = 0.5
            except Exception as exc:  # the database is down or restarting: wait and claim again
                if not is_infrastructure_error(exc):
                    raise
                log.warning("notify.claim_failed", error=f"{type(exc).__name__}: {exc}")
                await _wait_any(stop, backoff, in_flight)
                backoff = min(backoff * 2, 10.0)
                continue
            for row in rows:
                task = asyncio.create_task(self.deliver(row), name=f"deliver-{row.id}")
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if len(rows) < free or free < refill:
                self._wake.clear()
                await _wait_any(stop, self.policy.poll_interval_s, in_flight, self._wake)
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.policy.send_timeout_s + 5)

    async def claim(self, limit: int) -> list:
        """Lease up to ``limit`` due rows to this worker."""
        now = self._clock()
        async with self._engine.begin() as conn, local_settings(conn, to_commit=True, **CLAIM_SETTINGS):
            result = await conn.execute(CLAIM, claim_parameters(now, now + self.policy.lease, limit))
            return sorted(result.all(), key=lambda r: r.seq)

    async def deliver(self, row) -> None:
        """One attempt at one message (or a deferral when quiet hours or an open circuit forbid it)."""
        now = self._clock()
        if row.quiet_hours and self.policy.quiet_hours.contains(now):
            await self._defer(row, self.policy.quiet_hours.next_allowed(now), "quiet-hours")
            return
        breaker = self.breaker(row.endpoint)
        if not breaker.allow(time.monotonic()):
            wait = breaker.retry_after(time.monotonic()) + self._rng.uniform(0, 0.5)
            await self._defer(row, now + timedelta(seconds=wait), "circuit-open")
            return
        token = otel_context.attach(extract(row.trace_headers or {}))
        try:
            with tracer.start_as_current_span(f"{row.endpoint} deliver", kind=trace.SpanKind.CLIENT):
                await asyncio.wait_for(self._send(row), timeout=self.policy.send_timeout_s)
        except DeliveryError as exc:
            (breaker.record_failure(time.monotonic()) if exc.endpoint_fault else breaker.release())
            await self._failed(row, str(exc), exc.retryable)
        except TimeoutError:
            breaker.record_failure(time.monotonic())
            await self._failed(row, f"timeout after {self.policy.send_timeout_s}s", True)
        except Exception as exc:  # a bug or an unforeseen client error: keep the row, retry later
            breaker.release()
            log.exception("notify.send_crashed", notification_id=row.id)
            await self._failed(row, mask_pii(f"{type(exc).__name__}: {exc}")[:500], True)
        else:
            breaker.record_success()
            await self._sent(row)
        finally:
            otel_context.detach(token)

    async def _send(self, row) -> None:
        route = self._directory.route(row.recipient, row.channel)
        if route is None:
            raise DeliveryError(
                f"{row.recipient} has no {row.channel} route", retryable=False, endpoint_fault=False
            )
        address = route.address
        if row.recipient_kind == "citizen":
            address = await self._contacts.phone_for(row.case_id, row.recipient.partition(":")[2])
        message = Outgoing(
            notification_id=row.id,
            case_id=row.case_id,
            trigger_event_id=row.trigger_event_id,
            trigger_type=row.trigger_type,
            recipient=row.recipient,
            template=row.template,
            title=row.title,
            body=row.body,
            created_at=row.created_at,
            payload=row.payload,
        )
        await self._senders[row.channel].send(message, address, route.endpoint)

    async def _defer(self, row, until: datetime, reason: str) -> None:
        await self._record(row, next_attempt_at=until, deferred_reason=reason)
        ATTEMPTS.labels(row.channel, row.endpoint, reason).inc()

    async def _sent(self, row) -> None:
        attempts = row.attempts + 1
        event = NotificationSent(
            case_id=row.case_id, occurred_at=self._clock(), actor="notify", notification_id=row.id,
            trigger_event_id=row.trigger_event_id, recipient=row.recipient, channel=row.channel,
            template=row.template, attempts=attempts, title=row.title,
        )  # fmt: skip
        await self._record(
            row, [self._encode(event, row, "sent")], status="sent", attempts=attempts,
            sent_at=event.occurred_at, last_error=None, deferred_reason=None,
        )  # fmt: skip
        ATTEMPTS.labels(row.channel, row.endpoint, "sent").inc()
        log.info(
            "notify.sent", case_id=row.case_id, notification_id=row.id, channel=row.channel, attempts=attempts
        )

    async def _failed(self, row, error: str, retryable: bool) -> None:
        attempts = row.attempts + 1
        now = self._clock()
        ATTEMPTS.labels(row.channel, row.endpoint, "failed").inc()
        if retryable and attempts < self.policy.max_attempts:
            delay = backoff_delay(
                attempts, base_s=self.policy.backoff_base_s, cap_s=self.policy.backoff_cap_s, rng=self._rng
            )
            later = now + timedelta(seconds=delay)
            if row.quiet_hours:
                later = self.policy.quiet_hours.next_allowed(later)
            await self._record(
                row, attempts=attempts, next_attempt_at=later, last_error=error, deferred_reason="retry"
            )
            log.info(
                "notify.retry_scheduled",
                notification_id=row.id,
                attempts=attempts,
                delay_s=round(delay, 3),
                error=error,
            )
            return
        event = NotificationFailed(
            case_id=row.case_id, occurred_at=now, actor="notify", notification_id=row.id,
            trigger_event_id=row.trigger_event_id, recipient=row.recipient, channel=row.channel,
            attempts=attempts, error=error, template=row.template,
        )  # fmt: skip
        await self._record(
            row, [self._encode(event, row, "failed"), self._dead_letter(row, attempts, error)],
            status="failed", attempts=attempts, failed_at=now, last_error=error, deferred_reason=None,
        )  # fmt: skip
        log.warning(
            "notify.failed", case_id=row.case_id, notification_id=row.id, attempts=attempts, error=error
        )

    async def _record(self, row, messages: Sequence[OutboundMessage] = (), **changes) -> None:
        """Record a row's new state (and, if it was still pending, its outbox messages); returns once the
        transaction that holds it has committed. Unchanged columns keep the values the claim read: only
        this worker's lease writes a claimed row."""
        state = {column: getattr(row, column) for column in _STATE}
        state.update(changes)
        await self._recorder.submit(_Outcome(row.id, state, list(messages)))

    async def _write(self, outcomes: list[_Outcome]) -> list[None]:
        """One transaction for every outcome that was waiting (group commit)."""
        async with self._engine.begin() as conn:
            async with custom_plans(conn):
                result = await conn.execute(
                    _RECORD,
                    {"ids": [o.row_id for o in outcomes]}
                    | {column: [o.state[column] for o in outcomes] for column in _STATE},
                )
            recorded = set(result.scalars())
            await enqueue(conn, [m for o in outcomes if o.row_id in recorded for m in o.messages])
        self._on_commit()
        return [None] * len(outcomes)

    def _encode(self, event, row, outcome: str) -> OutboundMessage:
        return encode_event(
            event,
            source=self._source,
            topic=self._events_topic,
            trace_headers=row.trace_headers,
            event_id=str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{row.id}|{outcome}")),
        )

    def _dead_letter(self, row, attempts: int, error: str) -> OutboundMessage:
        record = {
            "notification_id": row.id, "case_id": row.case_id, "trigger_event_id": row.trigger_event_id,
            "trigger_type": row.trigger_type, "recipient": row.recipient, "channel": row.channel,
            "endpoint": row.endpoint, "template": row.template, "title": row.title, "attempts": attempts,
            "error": error,
        }  # fmt: skip
        headers = [
            ("dlq_reason", b"notification-failed"),
            ("dlq_error", error.encode()),
            ("dlq_consumer", b"notify-delivery"),
            ("dlq_notification_id", row.id.encode()),
            ("dlq_trigger_event_id", row.trigger_event_id.encode()),
        ]
        return OutboundMessage(
            event_id=str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{row.id}|dlq")),
            topic=self._dlq_topic,
            key=row.case_id,
            headers=headers,
            value=orjson.dumps(record),
            type="gridline.notify.delivery-failed",
        )


# The claim walks ``deliveries_due`` in order and stops once it has its rows, whatever the statistics say.
# With statistics from an ANALYZE taken when little was pending, the planner expected a handful of due
# rows and fetched them all through a bitmap to sort them: during a replay's backlog 1,560 rows and
# 3,555 buffers for 8 (auto_explain, 2026-11-28), a claim's cost growing with the backlog (after a
# channel's outage, the worst time). Sorting off leaves the ordered index scan as the plan.
CLAIM_SETTINGS = {"enable_sort": "off"}


def claim_parameters(now: datetime, lease_until: datetime, limit: int) -> dict[str, Any]:
    """The values ``CLAIM`` runs with."""
    return {"now": now, "lease_until": lease_until, "limit": limit}


def _claim_statement() -> sa.Update:
    """Lease (``next_attempt_at`` = ``lease_until``) up to ``limit`` rows due by ``now``, returning them;
    built once (a statement built for each claim left its aliased columns to the cyclic collector).

    Messages about one case to one recipient on one channel go in order: a row waits while an earlier one
    is still pending (in flight or retrying). OFFSET 0 keeps that check a per-row probe: as an anti-join,
    with statistics that took the pending rows for a handful (they come in bursts), PostgreSQL compared
    every due row with every pending one (402 × 643 rows, 81 ms per claim in a 2,000-case replay). The
    probe reads the case's few deliveries (an index led by case_id): written ``status = 'pending'``, the
    condition implied the partial index deliveries_due, which the same statistics took for a handful of
    rows, and every probe read the whole backlog (3,000 rows a probe); the coalesce says the same (status
    is never NULL) without implying any partial index."""
    earlier = deliveries.alias("earlier")
    earlier_pending = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.case_id == deliveries.c.case_id,
            earlier.c.recipient == deliveries.c.recipient,
            earlier.c.channel == deliveries.c.channel,
            sa.func.coalesce(earlier.c.status, "") == "pending",
            earlier.c.seq < deliveries.c.seq,
        )
        .offset(0)
        .exists()
    )
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= sa.bindparam("now", type_=deliveries.c.next_attempt_at.type),
            ~earlier_pending,
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        sa.update(deliveries)
        .where(deliveries.c.id.in_(due))
        .values(next_attempt_at=sa.bindparam("lease_until", type_=deliveries.c.next_attempt_at.type))
        .returning(*deliveries.c)
    )


CLAIM = _claim_statement()


@dataclass(frozen=True)
class _Outcome:
    row_id: str
    state: dict
    messages: list[OutboundMessage]


# The columns an attempt changes; each outcome carries all of them.
_STATE = ("status", "attempts", "next_attempt_at", "deferred_reason", "last_error", "sent_at", "failed_at")
_RECORD = sa.text(
    """
    UPDATE deliveries AS d
    SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
        deferred_reason = v.deferred_reason, last_error = v.last_error, sent_at = v.sent_at,
        failed_at = v.failed_at
    FROM unnest(
        CAST(:ids AS text[]), CAST(:status AS text[]), CAST(:attempts AS int[]),
        CAST(:next_attempt_at AS timestamptz[]), CAST(:deferred_reason AS text[]),
        CAST(:last_error AS text[]), CAST(:sent_at AS timestamptz[]), CAST(:failed_at AS timestamptz[])
    ) AS v(id, status, attempts, next_attempt_at, deferred_reason, last_error, sent_at, failed_at)
    WHERE d.id = ANY(CAST(:ids AS text[])) AND d.id = v.id AND coalesce(d.status, '') = 'pending'
    RETURNING d.id
    """
)
# Each row by its primary key whatever the statistics: written ``d.status = 'pending'``, the condition
# matched the partial index ``deliveries_due``, which a table not yet analysed (a fresh database, the
# first minutes of bench/e2e) seemed to hold one row, so the planner read every pending delivery and
# hashed them: 6 ms a call for ~5 rows at 100 cases/s. The coalesce says the same (status is never NULL)
# without implying that index's predicate; ``id = ANY`` is the primary key's index condition. Planned
# for its values (custom_plans): a generic plan made while the table was small scanned all of it, 5,741
# rows for 19 (auto_explain, 2026-11-28).


async def _wait_any(
    stop: asyncio.Event, seconds: float, tasks: set[asyncio.Task], *events: asyncio.Event
) -> None:
    """Sleep until stop, a wake-up, a finished send, or ``seconds``."""
    waiters = [asyncio.create_task(e.wait()) for e in (stop, *events)]
    try:
        await asyncio.wait({*waiters, *tasks}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
