"""Read what the running system recorded, straight from its databases and Kafka topics.

No service API is trusted to report on itself: intake's appeals, projection's read models, sla's clocks
and notify's delivery queue are read with SQL, the case log and the dead-letter topics record by record.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from devtools.kafka_lag import consumer_lag, end_offsets
from runtime import kafka
from tests.faults.invariants import (
    Appeal,
    DeadLetter,
    Deadline,
    DeliveryRow,
    LogRecord,
    Observed,
    Summary,
    TimelineRow,
    Timer,
    card_identity,
)

SERVICES_WITH_OUTBOX = ("intake", "routing", "sla", "notify")
T = TypeVar("T")


@dataclass(frozen=True)
class Where:
    """Where one run of the system keeps its state."""

    kafka_bootstrap: str
    case_topic: str
    dlq_topics: tuple[str, ...]
    consumer_groups: tuple[str, ...]
    database_urls: dict[str, str]  # service -> postgresql:// URL


# --- drain -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """Work the system still has in hand; all zero means drained."""

    lag: dict[str, int]  # consumer group -> records not yet committed
    unpublished: dict[str, int]  # service -> outbox rows not yet published
    pending_deliveries: int

    @property
    def empty(self) -> bool:
        return (
            not any(self.lag.values()) and not any(self.unpublished.values()) and not self.pending_deliveries
        )


async def backlog(where: Where) -> Backlog:
    lag = await consumer_lag(where.kafka_bootstrap, where.case_topic, where.consumer_groups)
    unpublished = {}
    for service in SERVICES_WITH_OUTBOX:
        unpublished[service] = await _scalar(where.database_urls[service], "SELECT count(*) FROM outbox")
    pending = await _scalar(
        where.database_urls["notify"], "SELECT count(*) FROM deliveries WHERE status = 'pending'"
    )
    return Backlog(lag, unpublished, pending)


def wait_until_drained(
    where: Where,
    timeout: float,
    settled_checks: int = 3,
    every: float = 3.0,
    say: Callable[[str], None] = print,
) -> Backlog:
    """Block until nothing is in flight for ``settled_checks`` polls in a row (events cause events)."""
    deadline = time.monotonic() + timeout
    calm, last = 0, None
    while time.monotonic() < deadline:
        try:
            last = asyncio.run(backlog(where))
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:  # a server still recovering
            say(f"drain: backlog unreadable ({type(exc).__name__}: {exc})")
            calm = 0
            time.sleep(every)
            continue
        calm = calm + 1 if last.empty else 0
        if calm >= settled_checks:
            return last
        if not last.empty:
            say(f"drain: lag {last.lag} outbox {last.unpublished} pending {last.pending_deliveries}")
        time.sleep(every)
    raise AssertionError(f"the system did not drain within {timeout:.0f}s; last backlog: {last}")


# --- gather ------------------------------------------------------------------------------------------


async def gather(where: Where) -> Observed:
    """Everything but the clients' answers and the sinks' receipts (the test process holds those)."""
    urls = where.database_urls
    appeals = [
        Appeal(r["case_id"], r["source"], _submission_key(r["source"], r["external_id"]))
        for r in await _rows(urls["intake"], "SELECT case_id, source, external_id FROM appeals")
    ]
    summaries = [
        Summary(r["case_id"], r["events_applied"], r["notifications_sent"], _due_dates(r["deadlines"]))
        for r in await _rows(
            urls["projection"],
            "SELECT case_id, events_applied, notifications_sent, deadlines FROM case_summary",
        )
    ]
    timeline = [
        TimelineRow(*r)
        for r in await _rows(
            urls["projection"],
            "SELECT event_id, case_id, event_type, log_partition, log_offset, data->>'assignment_id', "
            "data->>'trigger_event_id' FROM case_timeline",
        )
    ]
    deadlines = [
        Deadline(*r)
        for r in await _rows(urls["sla"], "SELECT case_id, stage, assignment_id, due_at FROM sla_deadlines")
    ]
    deliveries = [
        DeliveryRow(*r)
        for r in await _rows(
            urls["notify"], "SELECT id, case_id, trigger_event_id, recipient, channel, status FROM deliveries"
        )
    ]
    timers = [
        Timer(*r[:5], r["fired_at"] is not None, r["cancelled_at"] is not None)
        for r in await _rows(
            urls["sla"],
            "SELECT case_id, stage, kind, due_at, deadline_due_at, fired_at, cancelled_at FROM sla_timers",
        )
    ]
    log = await read_topic(where.kafka_bootstrap, where.case_topic, _log_record)
    letters: list[DeadLetter] = []
    for topic in await dead_letter_topics(where):
        letters += await read_topic(where.kafka_bootstrap, topic, functools.partial(_dead_letter, topic))
    return Observed([], appeals, log, timeline, summaries, deadlines, deliveries, [], letters, timers)


async def dead_letter_topics(where: Where) -> list[str]:
    """This run's ``*.dlq`` topics: the expected ones, and any other that carries the run's suffix."""
    admin = AIOKafkaAdminClient(bootstrap_servers=where.kafka_bootstrap)
    await admin.start()
    try:
        names = set(await admin.list_topics())
    finally:
        await admin.close()
    suffix = where.case_topic.removeprefix("gridline.case-events")
    ours = {n for n in names if n.endswith(".dlq") and suffix and suffix in n}
    return sorted(ours | (set(where.dlq_topics) & names))


async def read_topic(
    bootstrap: str, topic: str, convert: Callable[[Any], T], timeout: float = 600
) -> list[T]:
    """Every record of ``topic`` from the beginning up to its current end, each passed through ``convert``."""
    ends = await end_offsets(bootstrap, topic)
    records: list[T] = []
    remaining = {tp for tp, end in ends.items() if end > 0}
    if not remaining:
        return records
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(remaining))
        await consumer.seek_to_beginning(*remaining)
        deadline = asyncio.get_running_loop().time() + timeout
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(remaining)} short of their end")
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, batch in batches.items():
                records += [convert(r) for r in batch if r.offset < ends[tp]]
                if batch and batch[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


def _headers(record) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers or () if v is not None}


def _log_record(record) -> LogRecord:
    headers = _headers(record)
    key = record.key.decode(errors="replace") if record.key else ""
    try:
        data = orjson.loads(record.value) if record.value else {}
    except orjson.JSONDecodeError:
        data = {}  # a deliberately malformed record: its key still says which "case" it claims
    data = data if isinstance(data, dict) else {}
    return LogRecord(
        event_id=headers.get("ce_id", f"{record.partition}@{record.offset}"),
        case_id=data.get("case_id") or key,
        type=headers.get("ce_type", "?"),
        partition=record.partition,
        offset=record.offset,
        assignment_id=data.get("assignment_id"),
        trigger_event_id=data.get("trigger_event_id"),
        notification_id=data.get("notification_id"),
        timer=_timer_identity(data),
    )


def _timer_identity(data: dict) -> str | None:
    """``LogRecord.timer`` of a card (stage and due time) or an escalation (level); None otherwise."""
    if "level" in data:
        return f"level {data['level']}"
    if "stage" in data and "due_at" in data and "clock" not in data:  # a DeadlineSet has a clock
        return card_identity(data["stage"], datetime.fromisoformat(data["due_at"]))
    return None


def _dead_letter(topic: str, record) -> DeadLetter:
    headers = _headers(record)
    return DeadLetter(
        topic=topic,
        key=record.key.decode(errors="replace") if record.key else None,
        reason=headers.get("dlq_reason"),
        consumer=headers.get("dlq_consumer"),
        notification_id=headers.get("dlq_notification_id"),
    )


def _submission_key(source: str, external_id: str) -> str:
    """The client's own id: Open311 retries are keyed ``idem:<client>:<Idempotency-Key>``."""
    if source == "open311" and external_id.startswith("idem:"):
        return external_id.split(":", 2)[2]
    return external_id


def _due_dates(deadlines) -> dict[str, datetime]:
    data = orjson.loads(deadlines) if isinstance(deadlines, str | bytes) else deadlines or {}
    return {stage: datetime.fromisoformat(value["due_at"]) for stage, value in data.items()}


async def _rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetch(sql, timeout=300)
    finally:
        await conn.close()


async def _scalar(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return int(await conn.fetchval(sql, timeout=60))
    finally:
        await conn.close()


async def produce_poison(bootstrap: str, topic: str, key: str, ce_type: str) -> None:
    """A deliberately malformed record on the case log: a CloudEvent of ``ce_type`` whose body is not JSON."""
    producer = kafka.create_producer(bootstrap, "fault-suite-poison")
    try:
        await producer.start()
        await producer.send_and_wait(
            topic,
            b"{definitely not json",
            key=key.encode(),
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", f"poison-{key}".encode()),
                ("ce_source", b"/fault-suite"),
                ("ce_type", ce_type.encode()),
                ("ce_subject", key.encode()),
                ("content-type", b"application/json"),
            ],
        )
    finally:
        await producer.stop()
