"""Housekeeping on real PostgreSQL: expired inbox and Idempotency-Key rows go; the rest and outboxes stay."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime import housekeeping
from services.intake import bootstrap as intake_bootstrap
from services.intake.config import IntakeSettings
from services.projection.config import ProjectionSettings
from tests.integration.conftest import migrated_engine


async def _add_outbox(engine: AsyncEngine, event_id: str, created_hours_ago: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO outbox (event_id, topic, key, event_type, headers, value, created_at)"
                " VALUES (:id, 't', 'k', 'x', '[]', '\\x00', now() - make_interval(hours => :created))"
            ),
            {"id": event_id, "created": created_hours_ago},
        )


async def _add_inbox(engine: AsyncEngine, event_id: str, days_ago: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                'INSERT INTO inbox (consumer, event_id, topic, partition, "offset", outcome, processed_at)'
                " VALUES ('c', :id, 't', 0, 0, 'applied', now() - make_interval(days => :days))"
            ),
            {"id": event_id, "days": days_ago},
        )


async def _ids(engine: AsyncEngine, table: str, column: str = "event_id") -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(sa.text(f"SELECT {column} FROM {table}"))).scalars())


async def test_a_pass_deletes_inbox_rows_past_their_age_and_keeps_the_rest_and_every_outbox_row(
    projection_engine,
):
    settings = ProjectionSettings()  # defaults: inbox 30 days
    for name in ("old-1", "old-2", "old-3"):
        await _add_inbox(projection_engine, name, 40)
    await _add_inbox(projection_engine, "handled-yesterday", 1)
    await _add_outbox(projection_engine, "unpublished", 1000)  # the relay deletes what it publishes

    retentions = housekeeping.runtime_retentions(settings)
    deleted = await housekeeping.sweep(projection_engine, retentions, batch_size=2)  # batches of 2: 2 + 1

    assert deleted == {"inbox": 3}
    assert await _ids(projection_engine, "inbox") == {"handled-yesterday"}
    assert await _ids(projection_engine, "outbox") == {"unpublished"}
    assert await housekeeping.sweep(projection_engine, retentions, batch_size=2) == {"inbox": 0}


async def test_intake_expires_idempotency_key_answers_after_its_keep_hours(infrastructure):
    engine = await migrated_engine(infrastructure, "intake")
    try:
        async with engine.begin() as conn:
            for key, hours in (("expired", 200), ("fresh", 2)):
                await conn.execute(
                    sa.text(
                        "INSERT INTO idempotency_keys"
                        " (client_id, key, fingerprint, case_id, response, created_at)"
                        " VALUES ('hotline', :key, 'f', 'ZQ-1', '{}', now() - make_interval(hours => :hours))"
                    ),
                    {"key": key, "hours": hours},
                )
        retentions = intake_bootstrap.retentions(IntakeSettings(idempotency_keep_hours=24))
        deleted = await housekeeping.sweep(engine, retentions, batch_size=100)
        assert deleted == {"idempotency_keys": 1}
        assert await _ids(engine, "idempotency_keys", "key") == {"fresh"}
    finally:
        await engine.dispose()


async def test_the_worker_job_sweeps_at_its_interval_and_ends_when_stopped(projection_engine):
    stop = asyncio.Event()
    retentions = [housekeeping.Retention("inbox", "processed_at", 86400)]
    job = asyncio.create_task(
        housekeeping.run(projection_engine, retentions, stop, interval_s=0.05, batch_size=10, first_delay_s=0)
    )
    try:
        for round_ in range(3):  # each row added after a pass is found by a later one
            await _add_inbox(projection_engine, f"old-{round_}", 2)
            for _ in range(100):
                if not await _ids(projection_engine, "inbox"):
                    break
                await asyncio.sleep(0.05)
            assert await _ids(projection_engine, "inbox") == set()
    finally:
        stop.set()
        await asyncio.wait_for(job, timeout=5)
    assert job.done() and job.exception() is None


async def test_a_batch_reads_from_where_the_last_one_ended_not_the_whole_table(projection_engine):
    """Each batch is a TID range scan from the last place deleted and deletes by place: no sequential
    scan, which would read every row (and every row deleted before, dead until vacuum) for each batch."""
    async with projection_engine.begin() as conn:
        await conn.execute(
            sa.text(
                'INSERT INTO inbox (consumer, event_id, topic, partition, "offset", outcome, processed_at)'
                " SELECT 'c', g::text, 't', 0, g, 'applied', now() - make_interval(days => 40)"
                " FROM generate_series(1, 5000) g"
            )
        )
        await conn.execute(sa.text("ANALYZE inbox"))
    (inbox,) = housekeeping.runtime_retentions(ProjectionSettings())
    async with projection_engine.connect() as conn:
        db = (await conn.get_raw_connection()).driver_connection
        plan = "\n".join(
            row[0] for row in await db.fetch(f"EXPLAIN {inbox.statement}", (120, 7), inbox.keep_s, 500)
        )
    assert "Tid Range Scan on inbox" in plan and "TID Cond: (ctid > '(120,7)'::tid)" in plan, plan
    assert "Tid Scan on inbox" in plan and "Seq Scan" not in plan, plan
