"""The transactional outbox and its relay on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from aiokafka.errors import KafkaError

from contracts.envelope import decode_message
from runtime import migrations
from runtime.db import outbox
from runtime.outbox import _CLAIM, OutboxRelay, enqueue
from tests import factories
from tests.integration.conftest import REPO
from tests.integration.test_consumer_loop import _read_all

MIGRATIONS = REPO / "services" / "projection" / "migrations"


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
    assert await _outbox_ids(projection_engine) == []  # published rows are deleted: Kafka has them


async def test_a_batch_kafka_refused_stays_in_the_outbox_and_is_published_by_the_next_claim(
    infrastructure, projection_engine, producer, topic
):
    events = [factories.case_received(), factories.case_received()]
    async with projection_engine.begin() as conn:
        await enqueue(conn, [factories.message(event, topic) for event in events])

    with pytest.raises(KafkaError):
        await OutboxRelay(projection_engine, _RefusingProducer()).publish_batch()  # type: ignore[arg-type]
    assert len(await _outbox_ids(projection_engine)) == 2

    assert await OutboxRelay(projection_engine, producer).publish_batch() == 2
    assert await _outbox_ids(projection_engine) == []
    records = await _read_all(infrastructure, topic, expected=2, timeout=10)
    published = {decode_message(r.key, r.headers, r.value).event.case_id for r in records}
    assert published == {event.case_id for event in events}  # once each (keys on two partitions)


class _RefusingProducer:
    async def send(self, *args, **kwargs):
        raise KafkaError("the broker refused the batch")


async def _outbox_ids(engine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(outbox.c.event_id))).scalars())


async def test_enqueueing_the_same_event_twice_stores_it_once(projection_engine, topic):
    message = factories.message(factories.case_received(), topic)
    for _ in range(2):
        async with projection_engine.begin() as conn:
            await enqueue(conn, [message])
    async with projection_engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()
    assert count == 1


async def test_the_migration_to_delete_on_publish_keeps_unpublished_rows_and_reverts(projection_engine):
    """projection_0004: rows already published go (Kafka has them), unpublished ones stay for the relay;
    the downgrade brings the mark and its partial index back."""
    from alembic import command

    url = projection_engine.url.render_as_string(hide_password=False)
    config = migrations.alembic_config(MIGRATIONS, url)
    await asyncio.to_thread(command.downgrade, config, "projection_0003")
    async with projection_engine.begin() as conn:
        for event_id, published in (("sent", "now()"), ("waiting", "NULL")):
            await conn.execute(
                sa.text(
                    "INSERT INTO outbox (event_id, topic, key, event_type, headers, value, published_at)"
                    f" VALUES (:id, 't', 'k', 'x', '[]', '\\x00', {published})"
                ),
                {"id": event_id},
            )

    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, url)
    assert await _outbox_ids(projection_engine) == ["waiting"]
    assert "published_at" not in await _outbox_columns(projection_engine)

    await asyncio.to_thread(command.downgrade, config, "projection_0003")
    assert {"published_at", "attempts", "last_error"} <= await _outbox_columns(projection_engine)
    async with projection_engine.connect() as conn:
        query = "SELECT event_id FROM outbox WHERE published_at IS NULL"
        assert list((await conn.execute(sa.text(query))).scalars()) == ["waiting"]
        query = "SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'"
        assert "outbox_unpublished" in set((await conn.execute(sa.text(query))).scalars())


async def _outbox_columns(engine) -> set[str]:
    async with engine.connect() as conn:
        query = sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox'")
        return set((await conn.execute(query)).scalars())


async def test_relays_take_turns_one_claims_nothing_while_another_publishes(
    projection_engine, producer, topic
):
    """Two relays claiming side by side could publish a case's later event before its earlier one."""
    async with projection_engine.begin() as conn:
        await enqueue(conn, [factories.message(factories.case_received(), topic) for _ in range(3)])
    relay = OutboxRelay(projection_engine, producer)
    async with projection_engine.connect() as other:  # another replica's relay, mid-batch
        db = (await other.get_raw_connection()).driver_connection
        async with db.transaction():
            assert (await db.fetch(_CLAIM, 1))[0]["id"] is not None
            assert await relay.publish_batch() == 0  # not its turn: nothing claimed, nothing published
        assert len(await _outbox_ids(projection_engine)) == 3  # the other one rolled back
    assert await relay.publish_batch() == 3
