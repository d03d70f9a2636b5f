"""The transactional outbox and its relay on real PostgreSQL and Kafka."""

from __future__ import annotations

import sqlalchemy as sa

from contracts.envelope import decode_message
from runtime.db import outbox
from runtime.outbox import OutboxRelay, enqueue
from tests import factories
from tests.integration.test_consumer_loop import _read_all


async def test_a_rolled_back_write_publishes_nothing_and_a_committed_one_publishes_once(
    infrastructure, projection_engine, producer, topic
):
    kept, dropped = factories.case_received(), factories.case_received()
    async with projection_engine.begin() as conn:
        await enqueue(conn, [factories.message(kept, topic)])
    try:
        async with projection_engine.begin() as conn:
            await enqueue(conn, [factories.message(dropped, topic)])
            raise RuntimeError("the business write failed")
    except RuntimeError:
        pass

    relay = OutboxRelay(projection_engine, producer)
    assert await relay.publish_batch() == 1
    assert await relay.publish_batch() == 0  # nothing left; no re-publication

    records = await _read_all(infrastructure, topic, expected=1, timeout=10)
    assert len(records) == 1
    envelope = decode_message(records[0].key, records[0].headers, records[0].value)
    assert envelope.event == kept
    assert records[0].key == kept.case_id.encode()
    async with projection_engine.connect() as conn:
        published = (await conn.execute(sa.select(outbox.c.published_at))).scalars().all()
    assert len(published) == 1 and published[0] is not None


async def test_enqueueing_the_same_event_twice_stores_it_once(projection_engine, topic):
    message = factories.message(factories.case_received(), topic)
    for _ in range(2):
        async with projection_engine.begin() as conn:
            await enqueue(conn, [message])
    async with projection_engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()
    assert count == 1
