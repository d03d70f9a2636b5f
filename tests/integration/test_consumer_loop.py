"""The shared consumer loop on real Kafka and PostgreSQL, driving projection's handler."""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from runtime import kafka
from runtime.consumer import EventConsumer
from services.projection.projector import project
from services.projection.tables import case_summary, case_timeline
from tests import factories
from tests.support import eventually


@contextlib.asynccontextmanager
async def running_consumer(infrastructure, engine, producer, topic, *, name="it-projection", group=None):
    client = kafka.create_consumer(infrastructure.kafka_bootstrap, group or name, topic)
    await client.start()
    consumer = EventConsumer(name=name, consumer=client, producer=producer, engine=engine, handler=project)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task
        await client.stop()


async def publish(producer, messages) -> None:
    for m in messages:
        await producer.send_and_wait(m.topic, m.value, key=m.key.encode(), headers=m.headers)


async def summary_of(engine, case_id):
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(case_summary).where(case_summary.c.case_id == case_id))).first()


async def timeline_count(engine, case_id) -> int:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(sa.func.count()).where(case_timeline.c.case_id == case_id))
        ).scalar_one()


async def test_a_redelivered_event_is_applied_exactly_once(
    infrastructure, projection_engine, producer, topic
):
    received = factories.case_received()
    closed = factories.case_closed(received.case_id)
    await publish(producer, [factories.message(received, topic), factories.message(closed, topic)])

    async with running_consumer(infrastructure, projection_engine, producer, topic, group="group-a"):
        await eventually(lambda: _applied(projection_engine, received.case_id, 2))

    # A second consumer group under the same consumer name reads the whole topic again: a full redelivery.
    async with running_consumer(infrastructure, projection_engine, producer, topic, group="group-b") as again:
        await eventually(lambda: _consumed(again, 2))

    row = await summary_of(projection_engine, received.case_id)
    assert row.events_applied == 2
    assert row.status == "closed"
    assert await timeline_count(projection_engine, received.case_id) == 2


async def test_malformed_events_go_to_the_dlq_with_their_reason_and_the_consumer_keeps_going(
    infrastructure, projection_engine, producer, topic
):
    before = factories.case_received()
    after = factories.case_received()
    good_before = factories.message(before, topic)
    not_cloudevent = (b"X1", [], b'{"hello": "world"}')
    bad_json = (b"X2", _ce_headers("gridline.case.received.v1", "X2"), b"{not json")
    unknown_type = (b"X3", _ce_headers("gridline.case.teleported.v1", "X3"), b"{}")
    missing_fields = (b"X4", _ce_headers("gridline.case.received.v1", "X4"), b'{"case_id": "X4"}')
    await publish(producer, [good_before])
    for key, headers, value in (not_cloudevent, bad_json, unknown_type, missing_fields):
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    await publish(producer, [factories.message(after, topic)])

    async with running_consumer(infrastructure, projection_engine, producer, topic):
        await eventually(lambda: _applied(projection_engine, after.case_id, 1))

    assert (await summary_of(projection_engine, before.case_id)).status == "received"
    dead = await _read_all(infrastructure, kafka.dlq_topic(topic), expected=4)
    reasons = {record.key: dict(record.headers)["dlq_reason"].decode() for record in dead}
    assert reasons == {
        b"X1": "not-a-cloudevent",
        b"X2": "bad-json",
        b"X3": "unknown-type",
        b"X4": "invalid-payload",
    }
    x4 = next(r for r in dead if r.key == b"X4")
    headers = dict(x4.headers)
    assert b"occurred_at" in headers["dlq_error"] or b"Field required" in headers["dlq_error"]
    assert headers["dlq_source_topic"].decode() == topic
    assert int(headers["dlq_source_offset"]) >= 0
    assert x4.value == b'{"case_id": "X4"}'  # the original bytes, untouched


async def test_an_event_for_an_unknown_case_or_out_of_order_is_projected_not_fatal(
    infrastructure, projection_engine, producer, topic
):
    received = factories.case_received()
    closed = factories.case_closed(received.case_id)
    await publish(producer, [factories.message(closed, topic), factories.message(received, topic)])
    async with running_consumer(infrastructure, projection_engine, producer, topic):
        await eventually(lambda: _applied(projection_engine, received.case_id, 2))
    row = await summary_of(projection_engine, received.case_id)
    assert row.status == "closed"  # the late CaseReceived filled details without reopening the case
    assert row.description == received.description


def _ce_headers(type_name: str, subject: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"id-{subject}".encode()),
        ("ce_source", b"/tests"),
        ("ce_type", type_name.encode()),
        ("ce_subject", subject.encode()),
        ("content-type", b"application/json"),
    ]


async def _applied(engine, case_id, count) -> bool:
    row = await summary_of(engine, case_id)
    return row is not None and row.events_applied >= count


async def _consumed(consumer: EventConsumer, count: int) -> bool:
    return consumer.status.processed >= count


async def _read_all(infrastructure, topic: str, expected: int, timeout: float = 30.0):
    client = AIOKafkaConsumer(
        topic, bootstrap_servers=infrastructure.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await client.start()
    records = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await client.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
    finally:
        await client.stop()
    return records
