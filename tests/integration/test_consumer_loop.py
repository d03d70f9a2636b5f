"""The shared consumer loop on real Kafka and PostgreSQL, driving projection's handler."""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from contracts.events import CaseReceived
from runtime import kafka
from runtime.consumer import EventConsumer, EventRejected
from runtime.db import inbox, tracking
from runtime.outbox import enqueue
from services.projection.projector import project, project_batch
from services.projection.tables import case_summary, case_timeline
from tests import factories
from tests.support import eventually


@contextlib.asynccontextmanager
async def running_consumer(
    infrastructure,
    engine,
    producer,
    topic,
    *,
    name="it-projection",
    group=None,
    handler=project,
    batch_handler=project_batch,
    commit_interval_s=1.0,
    handles=None,
    wake_relay=None,
):
    client = kafka.create_consumer(infrastructure.kafka_bootstrap, group or name)
    consumer = EventConsumer(
        name=name,
        consumer=client,
        producer=producer,
        engine=engine,
        handler=handler,
        batch_handler=batch_handler,
        commit_interval_s=commit_interval_s,
        handles=handles,
        wake_relay=wake_relay,
    )
    client.subscribe([topic], listener=consumer.rebalance_listener())  # as runtime.service does
    await client.start()
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


async def test_an_event_the_handler_rejects_mid_batch_is_dead_lettered_and_its_writes_undone(
    infrastructure, projection_engine, producer, topic
):
    """The optimistic pass (no savepoints) meets a rejection: the batch is redone event by event, so
    the events around the bad one are applied once and the bad one's partial writes are rolled back."""
    first, bad, last = factories.case_received(), factories.case_received(), factories.case_received()

    async def rejecting(conn, delivery):
        await project(conn, delivery)  # writes, then refuses: the savepoint must undo the writes
        if delivery.envelope.event.case_id == bad.case_id:
            raise EventRejected("not-applicable", "this case is refused by the test")

    async def rejecting_batch(conn, deliveries):
        await project_batch(conn, deliveries)
        if any(d.envelope.event.case_id == bad.case_id for d in deliveries):
            raise EventRejected("not-applicable", "this case is refused by the test")

    for m in (factories.message(e, topic) for e in (first, bad, last)):  # one partition: one batch
        await producer.send_and_wait(m.topic, m.value, key=m.key.encode(), headers=m.headers, partition=0)
    async with running_consumer(
        infrastructure, projection_engine, producer, topic, handler=rejecting, batch_handler=rejecting_batch
    ) as consumer:
        await eventually(lambda: _consumed(consumer, 3))

    assert (await summary_of(projection_engine, first.case_id)).events_applied == 1
    assert (await summary_of(projection_engine, last.case_id)).events_applied == 1
    assert await summary_of(projection_engine, bad.case_id) is None
    assert await timeline_count(projection_engine, bad.case_id) == 0
    dead = await _read_all(infrastructure, kafka.dlq_topic(topic), expected=1)
    assert [(r.key.decode(), dict(r.headers)["dlq_reason"]) for r in dead] == [
        (bad.case_id, b"not-applicable")
    ]
    async with projection_engine.connect() as conn:
        outcome = (
            await conn.execute(sa.select(inbox.c.outcome).where(inbox.c.consumer == "it-projection"))
        ).scalars()
        assert sorted(outcome) == ["applied", "applied", "dead-lettered"]


async def test_one_poll_across_partitions_is_one_transaction_that_tracks_each_partition(
    infrastructure, projection_engine, producer, topic
):
    """Events waiting in three partitions are applied in one transaction (not one per partition); a
    rejected event in one partition is dead-lettered and the other partitions' events are applied; each
    partition's tracking row holds its last offset."""
    cases = {p: [factories.case_received() for _ in range(3)] for p in range(3)}
    bad = cases[1][1]

    async def rejecting_batch(conn, deliveries):
        await project_batch(conn, deliveries)
        if any(d.envelope.event.case_id == bad.case_id for d in deliveries):
            raise EventRejected("not-applicable", "this case is refused by the test")

    async def rejecting(conn, delivery):
        await project(conn, delivery)
        if delivery.envelope.event.case_id == bad.case_id:
            raise EventRejected("not-applicable", "this case is refused by the test")

    for partition, events in cases.items():
        for m in (factories.message(e, topic) for e in events):
            await producer.send_and_wait(
                m.topic, m.value, key=m.key.encode(), headers=m.headers, partition=partition
            )
    async with running_consumer(
        infrastructure, projection_engine, producer, topic, handler=rejecting, batch_handler=rejecting_batch
    ) as consumer:
        await eventually(lambda: _consumed(consumer, 9))

    assert consumer._db_commits < 3  # per-partition transactions would take three
    for events in cases.values():
        for event in events:
            row = await summary_of(projection_engine, event.case_id)
            assert (row is None) if event is bad else (row.events_applied == 1), event.case_id
    async with projection_engine.connect() as conn:
        positions = (
            await conn.execute(
                sa.select(tracking.c.partition, tracking.c.offset).where(
                    tracking.c.consumer == "it-projection", tracking.c.topic == topic
                )
            )
        ).all()
    assert sorted(positions) == [(0, 2), (1, 2), (2, 2)]


def _ce_headers(type_name: str, subject: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"id-{subject}".encode()),
        ("ce_source", b"/tests"),
        ("ce_type", type_name.encode()),
        ("ce_subject", subject.encode()),
        ("content-type", b"application/json"),
    ]


async def test_a_member_joining_the_group_starts_where_the_database_is(
    infrastructure, projection_engine, producer, topic
):
    cases = [factories.case_received() for _ in range(30)]
    one_hour = 3600.0  # inside the interval the loop commits the first poll's offsets only
    async with running_consumer(
        infrastructure, projection_engine, producer, topic, group="grow", commit_interval_s=one_hour
    ) as first:
        await publish(producer, [factories.message(case, topic) for case in cases[:5]])
        await eventually(lambda: _consumed(first, 5))
        await publish(producer, [factories.message(case, topic) for case in cases[5:]])
        await eventually(lambda: _consumed(first, 30))
        async with running_consumer(
            infrastructure, projection_engine, producer, topic, name="it-projection-2", group="grow"
        ) as second:
            await eventually(lambda: _assigned(first, second))
            more = [factories.case_received() for _ in range(12)]
            await publish(producer, [factories.message(case, topic) for case in more])
            await eventually(lambda: _consumed_together(first, second, 30 + 12))
            # the member that joined read none of what the first had put in the database: the first
            # committed it when the rebalance took partitions away, not an hour later
            assert first.status.processed + second.status.processed == 42
            for case in [*cases, *more]:
                assert (await summary_of(projection_engine, case.case_id)).events_applied == 1


async def _assigned(*consumers: EventConsumer) -> bool:
    return all(c.status.assigned > 0 for c in consumers)


async def _consumed_together(first: EventConsumer, second: EventConsumer, count: int) -> bool:
    return first.status.processed + second.status.processed >= count


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


async def _positions(engine, consumer: str, topic: str) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tracking.c.partition, tracking.c.offset).where(
                tracking.c.consumer == consumer, tracking.c.topic == topic
            )
        )
        return dict(rows.all())


def _last_offsets(records) -> dict[int, int]:
    last: dict[int, int] = {}
    for record in records:
        last[record.partition] = max(record.offset, last.get(record.partition, -1))
    return last


async def test_a_poll_of_only_ignored_events_opens_no_transaction_and_the_next_one_tracks_its_place(
    infrastructure, projection_engine, producer, topic
):
    """Events of types the consumer does not handle are passed over without a transaction; their
    partitions' positions are written with the next transaction that applies an event."""
    cases = [factories.case_id() for _ in range(6)]
    ignored = [factories.case_closed(case) for case in cases]  # this consumer handles CaseReceived only
    wakes: list[int] = []
    async with running_consumer(
        infrastructure,
        projection_engine,
        producer,
        topic,
        handles=[CaseReceived],
        commit_interval_s=3600.0,  # positions of ignored events are kept that long if nothing else comes
        wake_relay=lambda: wakes.append(1),
    ) as consumer:
        await publish(producer, [factories.message(event, topic) for event in ignored])
        await eventually(lambda: _consumed(consumer, 6))
        assert consumer._db_commits == 0
        assert await _positions(projection_engine, "it-projection", topic) == {}
        received = factories.case_received()
        message = factories.message(received, topic)
        await publish(producer, [message])
        await eventually(lambda: _consumed(consumer, 7))
        assert consumer._db_commits == 1
        assert (await summary_of(projection_engine, received.case_id)).events_applied == 1
        everything = await _read_all(infrastructure, topic, 7)
        assert await _positions(projection_engine, "it-projection", topic) == _last_offsets(everything)
        assert wakes == []  # the projection's handler writes no outbox rows: no relay to wake
    async with projection_engine.connect() as conn:
        claimed = await conn.execute(sa.select(inbox.c.event_id).where(inbox.c.consumer == "it-projection"))
        assert set(claimed.scalars()) == {message.event_id}


async def test_the_positions_of_ignored_events_are_written_once_the_interval_passes_and_on_stop(
    infrastructure, projection_engine, producer, topic
):
    ignored = [factories.case_closed(factories.case_id()) for _ in range(4)]
    async with running_consumer(
        infrastructure, projection_engine, producer, topic, handles=[CaseReceived], commit_interval_s=0.3
    ) as consumer:
        await publish(producer, [factories.message(event, topic) for event in ignored[:2]])
        first = _last_offsets(await _read_all(infrastructure, topic, 2))
        await eventually(lambda: _positions_are(projection_engine, topic, first))
    assert consumer._db_commits == 0  # the positions' own transactions are no events' commits
    async with running_consumer(
        infrastructure, projection_engine, producer, topic, handles=[CaseReceived], commit_interval_s=3600.0
    ) as consumer:
        await publish(producer, [factories.message(event, topic) for event in ignored[2:]])
        await eventually(lambda: _consumed(consumer, 2))
        assert await _positions(projection_engine, "it-projection", topic) == first
    # stopping wrote what it had kept
    assert await _positions(projection_engine, "it-projection", topic) == _last_offsets(
        await _read_all(infrastructure, topic, 4)
    )


async def _positions_are(engine, topic: str, expected: dict[int, int]) -> bool:
    return await _positions(engine, "it-projection", topic) == expected


async def test_the_relay_is_woken_after_a_transaction_that_left_outbox_rows(
    infrastructure, projection_engine, producer, topic
):
    cases = [factories.case_received() for _ in range(2)]
    wakes: list[str] = []

    async def project_and_announce(conn, delivery):
        await project(conn, delivery)
        if delivery.envelope.event.case_id == cases[1].case_id:
            await enqueue(conn, [factories.message(factories.case_closed(cases[1].case_id), "it.announced")])

    async with running_consumer(
        infrastructure,
        projection_engine,
        producer,
        topic,
        handler=project_and_announce,
        batch_handler=None,
        wake_relay=lambda: wakes.append("woken"),
    ) as consumer:
        await publish(producer, [factories.message(cases[0], topic)])
        await eventually(lambda: _consumed(consumer, 1))
        assert wakes == []
        await publish(producer, [factories.message(cases[1], topic)])
        await eventually(lambda: _consumed(consumer, 2))
        assert wakes == ["woken"]
