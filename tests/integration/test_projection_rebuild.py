"""Rebuild from offset 0 into a fresh schema while the live projector runs, then swap atomically."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from services.projection import schema_ops
from services.projection.config import ProjectionSettings
from services.projection.first_pass import FirstPassFailed
from services.projection.rebuild import rebuild
from services.projection.tables import case_search, case_summary
from tests import factories as f
from tests.integration.test_consumer_loop import publish, running_consumer
from tests.support import eventually

LIVE_CONSUMER = "it-projection"


def lifecycle(case: str) -> list:
    """A realistic run of one case across all four producing services."""
    return [
        f.case_received(case),
        f.case_assigned(case, "CGJ", area_code="370114001002", grid_code="G-01"),
        f.deadline_set(case, f._at(None), stage="reply"),
        f.notification_sent(case),
        f.assignment_accepted(case),
        f.deadline_approaching(case, f._at(None)),
        f.reply_submitted(case),
        f.feedback_received(case, "basically_satisfied"),
        f.case_closed_at(case),
    ]


async def processed(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.sum(case_summary.c.events_applied)))).scalar() or 0


def rebuild_settings(infrastructure, projection_engine, topic) -> ProjectionSettings:
    """The live projection's settings, as the rebuild CLI would read them."""
    return ProjectionSettings(
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        postgres_url=infrastructure.postgres_url,
        database_name=projection_engine.url.database,
        case_events_topic=topic,
        consumer_group=LIVE_CONSUMER,
    )


async def test_a_rebuild_from_zero_gives_read_models_identical_to_the_live_ones_and_swaps_in(
    infrastructure, projection_engine, producer, topic
):
    cases = [f.case_id() for _ in range(30)]
    events = [e for k, c in enumerate(cases) for e in lifecycle(c)[: 3 + k % 7]]
    events.append(f.case_escalated("NEVER-RECEIVED"))  # an unknown case in the log too
    await publish(producer, [f.message(e, topic) for e in events])
    settings = rebuild_settings(infrastructure, projection_engine, topic)
    async with running_consumer(infrastructure, projection_engine, producer, topic, name=LIVE_CONSUMER):
        await eventually(lambda: _at_least(projection_engine, len(events)))

        # two processes fold the first pass, each its share of the three partitions
        report = await rebuild(settings, batch_size=50, workers=2, progress=False, verify=True)

        assert report.events == len(events) and report.processes == 2
        assert report.identical is True, (report.live_checksums, report.rebuilt_checksums)
        assert report.rebuilt_checksums["case_summary"].startswith(f"{len(cases) + 1}:")

        # The live projector keeps working on the swapped-in schema and nothing is applied twice.
        late = f.case_received()
        await publish(producer, [f.message(late, topic), f.message(f.case_closed_at(cases[0]), topic)])
        await eventually(lambda: _at_least(projection_engine, len(events) + 2))

    async with projection_engine.connect() as conn:
        schemas = (await conn.execute(sa.text("SELECT nspname FROM pg_namespace"))).scalars().all()
        late_row = (
            await conn.execute(sa.select(case_summary).where(case_summary.c.case_id == late.case_id))
        ).first()
    assert not [s for s in schemas if s.startswith("projection_")]  # the retired schema was dropped
    assert late_row is not None and late_row.events_applied == 1
    assert await processed(projection_engine) == len(events) + 2


async def test_cases_that_leave_the_rebuilds_memory_and_re_published_events_rebuild_identically(
    infrastructure, projection_engine, producer, topic
):
    cases = [f.case_id() for _ in range(12)]
    runs = [lifecycle(c)[: 4 + k % 6] for k, c in enumerate(cases)]
    # interleaved, so every case spans many batches; every fifth message is published twice
    messages = [f.message(run[step], topic) for step in range(9) for run in runs if step < len(run)]
    log = [m for k, m in enumerate(messages) for _ in range(2 if k % 5 == 0 else 1)]
    await publish(producer, log)
    settings = rebuild_settings(infrastructure, projection_engine, topic)
    async with running_consumer(infrastructure, projection_engine, producer, topic, name=LIVE_CONSUMER):
        await eventually(lambda: _at_least(projection_engine, len(messages)))

        report = await rebuild(settings, batch_size=7, cached_cases=3, progress=False, verify=True)

    assert report.events == len(log)
    assert report.reloaded > 0
    assert report.identical is True, (report.live_checksums, report.rebuilt_checksums)
    assert await processed(projection_engine) == len(messages)


async def test_a_rebuild_without_switch_leaves_the_live_schema_serving(
    infrastructure, projection_engine, producer, topic
):
    case = f.case_id()
    await publish(producer, [f.message(e, topic) for e in lifecycle(case)])
    settings = rebuild_settings(infrastructure, projection_engine, topic)
    report = await rebuild(settings, switch=False, progress=False)
    assert report.rebuilt_checksums["case_summary"].startswith("1:")
    async with projection_engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(case_summary))).scalar() == 0
        found = await conn.scalar(
            sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": report.schema}
        )
    assert found == 1


async def test_a_case_split_over_partitions_stops_a_rebuild_in_two_processes_and_one_rebuilds_it(
    infrastructure, projection_engine, producer, topic
):
    """Only a topic that gained partitions after its events were written splits a case; two workers must
    not each fold half of it."""
    case = f.case_id()
    first, *rest = lifecycle(case)[:4]
    sent = [(f.message(first, topic), 0), *((f.message(e, topic), 1) for e in rest)]
    for message, partition in sent:
        await producer.send_and_wait(
            message.topic,
            message.value,
            key=message.key.encode(),
            headers=message.headers,
            partition=partition,
        )
    settings = rebuild_settings(infrastructure, projection_engine, topic)

    with pytest.raises(FirstPassFailed, match="UniqueViolation|duplicate key"):
        await rebuild(settings, workers=2, progress=False)
    async with projection_engine.connect() as conn:
        left = await conn.scalar(
            sa.text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'projection_%'")
        )
    assert left == 0  # the failed rebuild's schema is dropped

    report = await rebuild(settings, workers=1, progress=False)
    assert report.events == 4 and report.processes == 0
    async with projection_engine.connect() as conn:
        row = (await conn.execute(sa.select(case_summary).where(case_summary.c.case_id == case))).one()
    assert row.events_applied == 4


async def test_the_rebuild_command_folds_in_worker_processes_verifies_and_swaps_in(
    infrastructure, projection_engine, producer, topic
):
    """``python -m services.projection rebuild`` as an operator runs it, configured by the environment."""
    cases = [f.case_id() for _ in range(6)]
    events = [e for c in cases for e in lifecycle(c)[:5]]
    await publish(producer, [f.message(e, topic) for e in events])
    async with running_consumer(infrastructure, projection_engine, producer, topic, name=LIVE_CONSUMER):
        await eventually(lambda: _at_least(projection_engine, len(events)))
        env = os.environ | {
            "GRIDLINE_KAFKA_BOOTSTRAP_SERVERS": infrastructure.kafka_bootstrap,
            "GRIDLINE_POSTGRES_URL": infrastructure.postgres_url,
            "GRIDLINE_DATABASE_NAME": projection_engine.url.database,
            "GRIDLINE_CASE_EVENTS_TOPIC": topic,
            "GRIDLINE_CONSUMER_GROUP": LIVE_CONSUMER,
        }
        command = [sys.executable, "-m", "services.projection", "rebuild", "--workers", "2", "--verify"]
        done = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=180
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"rebuilt {len(events)} events" in done.stdout
    tables = [line for line in done.stdout.splitlines() if line.startswith("  case_")]
    assert len(tables) == 4 and all(line.endswith("same") for line in tables), done.stdout
    assert await processed(projection_engine) == len(events)


async def test_checksums_tell_a_changed_missing_or_extra_row_but_not_the_rows_order(projection_engine):
    rows = [{"case_id": f"CK{k:04d}", "grams": ["章丘", f"网格{k}"]} for k in range(50)]

    async def checksum(ordered: list[dict]) -> str:
        async with projection_engine.begin() as conn:
            await conn.execute(sa.delete(case_search))
            await conn.execute(sa.insert(case_search), ordered)  # stored in this order
            return (await schema_ops.checksums(conn, schema_ops.LIVE))["case_search"]

    baseline = await checksum(rows)
    assert baseline.startswith("50:")
    assert await checksum(rows[::-1]) == baseline
    changed = [*rows[:-1], {"case_id": "CK0049", "grams": ["章丘", "网格48"]}]
    assert await checksum(changed) != baseline
    assert await checksum(rows[:-1]) != baseline
    assert await checksum([*rows, {"case_id": "CK9999", "grams": []}]) != baseline


async def _at_least(engine, count: int) -> bool:
    return await processed(engine) >= count


async def test_the_switch_lock_holds_the_live_writers_but_not_the_readers(projection_engine):
    """While the switch catches up and checksums, operators' queries answer; the consumer's writes wait."""
    async with projection_engine.connect() as switch, switch.begin():
        await schema_ops.lock_live(switch)
        async with projection_engine.connect() as other:
            async with other.begin():
                await other.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                assert await other.scalar(sa.select(sa.func.count()).select_from(case_summary)) >= 0
            for table in schema_ops.LOCK_ORDER:
                with pytest.raises(DBAPIError) as refused:
                    async with other.begin():
                        await other.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                        await other.execute(sa.text(f"DELETE FROM public.{table} WHERE false"))
                assert getattr(refused.value.orig, "sqlstate", None) == "55P03", table  # lock_not_available
