"""Routing's service layer on real PostgreSQL and Kafka: decisions through the outbox, work items on the
dispatch topics, duplicates, refdata versions, and idempotent actions."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import decode_message, encode_event
from contracts.events import Location
from contracts.events.intake import DuplicateLinked
from runtime import kafka, migrations
from runtime.auth import Principal
from runtime.consumer import Delivery, apply_in_unit
from runtime.db import outbox
from runtime.outbox import OutboxRelay
from runtime.problems import Problem
from services.routing.commands import actor_for, execute
from services.routing.config import RoutingSettings
from services.routing.consumer import unit_of_work
from services.routing.domain import assignment as sm
from services.routing.handlers import RoutingContext, load_case
from services.routing.refdata_files import read_bundle
from services.routing.refdata_store import RefDataCache, load_refdata
from services.routing.tables import refdata_audit, rule_sets
from tests import factories

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@pytest.fixture
async def engine(infrastructure) -> AsyncIterator[AsyncEngine]:
    """A fresh routing database: migrations applied, the shipped reference data loaded."""
    name = f"it_routing_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(name)
    url = infrastructure.database_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await asyncio.to_thread(migrations.upgrade, REPO / "services" / "routing" / "migrations", url)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await load_refdata(conn, read_bundle(), "it")
    yield engine
    await engine.dispose()


@pytest.fixture
async def ctx(infrastructure) -> RoutingContext:
    suffix = f".it{infrastructure.run_id}{next(_names)}"
    settings = RoutingSettings(case_events_topic=f"gridline.case-events{suffix}")
    topics = {
        settings.case_events_topic: 3,
        settings.dispatch_topic("STHJJ"): 1,
        settings.dispatch_topic("CGJ"): 1,
    }
    await kafka.ensure_topics(infrastructure.kafka_bootstrap, topics)
    return RoutingContext(settings, "/gridline/routing", RefDataCache())


def delivered(event, topic: str = "t") -> Delivery:
    message = encode_event(event, source="/gridline/intake", topic=topic)
    return Delivery(decode_message(message.key.encode(), message.headers, message.value), topic, 0, 0)


async def handle(ctx: RoutingContext, conn, *events) -> None:
    """Routing's consumer work on ``events`` as one consumed batch: one unit of work, as the loop does."""
    await apply_in_unit(unit_of_work(ctx), conn, [delivered(event) for event in events])


def duplicate_link(case_id: str) -> DuplicateLinked:
    return DuplicateLinked(
        case_id=case_id, occurred_at=datetime.now(UTC), actor="intake",
        primary_case_id="ZQ-PRIMARY", similarity=0.93, reason="同一地点同类诉求",
    )  # fmt: skip


def noise_case(**overrides):
    values = dict(
        category_code="06028",
        description="明水街道汇泉路夜里KTV噪声扰民，联系电话13805311234",
        address="章丘区明水街道汇泉路",
    )
    return factories.case_received(**(values | overrides))


async def outbox_rows(engine: AsyncEngine):
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(outbox.c.topic, outbox.c.event_type).order_by(outbox.c.id))
        ).all()


async def read_topic(infrastructure, topic: str, expected: int, timeout: float = 20) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infrastructure.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def test_a_received_case_is_assigned_and_a_masked_work_item_reaches_the_department_topic(
    infrastructure, engine, ctx, producer
):
    received = noise_case()
    async with engine.begin() as conn:
        await handle(ctx, conn, received)

    rows = await outbox_rows(engine)
    sthjj_topic = ctx.settings.dispatch_topic("STHJJ")
    assert [(r.topic, r.event_type) for r in rows] == [
        (ctx.settings.case_events_topic, "gridline.case.assigned.v1"),
        (sthjj_topic, "gridline.dispatch.work-item.v1"),
    ]
    assert await OutboxRelay(engine, producer).publish_batch() == 2

    records = await read_topic(infrastructure, sthjj_topic, expected=1)
    assert len(records) == 1 and records[0].key == received.case_id.encode()
    headers = dict(records[0].headers)
    assert headers["ce_type"] == b"gridline.dispatch.work-item.v1"
    item = orjson.loads(records[0].value)
    assert item["case_id"] == received.case_id and item["action"] == "assigned"
    assert item["department"]["code"] == "STHJJ" and item["category"]["code"] == "UM-E06028"
    assert "13805311234" not in records[0].value.decode() and "138****1234" in item["description"]
    assert item["citizen"] == {"name_masked": "张*", "phone_masked": "138****1234"}
    assert item["basis"]["rule_id"] == "R-UM-06028" and item["basis"]["rule_set_version"] == 1
    assert item["actions"]["accept"] == f"/v1/cases/{received.case_id}/accept"


async def test_a_duplicate_linked_in_the_same_batch_withdraws_the_unpublished_decision(engine, ctx):
    received = noise_case()
    link = duplicate_link(received.case_id)
    async with engine.begin() as conn:
        await handle(ctx, conn, received, link)
    assert await outbox_rows(engine) == []
    async with engine.connect() as conn:
        assert (await load_case(conn, received.case_id)).state.status is sm.Status.DUPLICATE


async def test_a_duplicate_linked_after_its_decision_was_written_but_not_published_withdraws_it(engine, ctx):
    received = noise_case()
    link = duplicate_link(received.case_id)
    async with engine.begin() as conn:
        await handle(ctx, conn, received)
    assert len(await outbox_rows(engine)) == 2  # decided and written, the relay has not run
    async with engine.begin() as conn:
        await handle(ctx, conn, link)
    assert await outbox_rows(engine) == []
    async with engine.connect() as conn:
        assert (await load_case(conn, received.case_id)).state.status is sm.Status.DUPLICATE


async def test_a_duplicate_linked_after_publication_recalls_the_work_item(engine, ctx, producer):
    received = noise_case()
    async with engine.begin() as conn:
        await handle(ctx, conn, received)
    await OutboxRelay(engine, producer).publish_batch()
    async with engine.begin() as conn:
        await handle(ctx, conn, duplicate_link(received.case_id))
    rows = await outbox_rows(engine)  # the decision's two rows went with their publication
    assert [r.event_type for r in rows] == ["gridline.dispatch.work-item.v1"]  # the recall


async def test_resolved_on_spot_reports_and_marked_duplicates_are_not_routed(engine, ctx):
    fixed = noise_case(resolved_on_spot=True, source="grid", actor="grid")
    async with engine.begin() as conn:
        await handle(ctx, conn, fixed)
    assert await outbox_rows(engine) == []
    async with engine.connect() as conn:
        assert (await load_case(conn, fixed.case_id)).state.status is sm.Status.RESOLVED_ON_SPOT


async def test_a_case_without_coordinates_or_known_category_goes_to_triage_and_a_point_to_its_grid(
    engine, ctx
):
    unknown = noise_case(category_code="ZZ-404")
    async with engine.begin() as conn:
        await handle(ctx, conn, unknown)
        ref = await ctx.refdata.get(conn)
    grid = ref.grids[10]
    point = grid.geometry.representative_point()
    garbage = noise_case(category_code="06010", location=Location(lat=point.y, lon=point.x))
    async with engine.begin() as conn:
        await handle(ctx, conn, garbage)
    async with engine.connect() as conn:
        triaged = await load_case(conn, unknown.case_id)
        gridded = await load_case(conn, garbage.case_id)
    assert triaged.state.status is sm.Status.TRIAGE
    assert gridded.state.current.assignee.code == grid.code
    assert gridded.state.current.basis.method == "point-in-polygon"


async def test_loading_unchanged_data_keeps_the_version_and_a_change_makes_a_new_audited_one(engine):
    bundle = read_bundle()
    async with engine.begin() as conn:
        again = await load_refdata(conn, bundle, "it-again")
    assert (again.version, again.created) == (1, False)
    changed_rules = [r | {"assignees": ["CGJ"]} if r["id"] == "R-UM-06028" else r for r in bundle.rules]
    async with engine.begin() as conn:
        changed = await load_refdata(conn, replace(bundle, rules=changed_rules), "it-change")
    assert (changed.version, changed.created) == (2, True)
    assert changed.changes["rules"]["changed"] == ["R-UM-06028"]
    async with engine.connect() as conn:
        active = (await conn.execute(sa.select(rule_sets.c.version).where(rule_sets.c.active))).scalar_one()
        audit = (await conn.execute(sa.select(refdata_audit.c.action, refdata_audit.c.actor))).all()
    assert active == 2
    assert [(a.action, a.actor) for a in audit] == [
        ("loaded", "it"),
        ("unchanged", "it-again"),
        ("loaded", "it-change"),
    ]


async def test_actions_are_idempotent_by_key_and_illegal_ones_are_409_naming_the_status(engine, ctx):
    received = noise_case()
    async with engine.begin() as conn:
        await handle(ctx, conn, received)
    sthjj = Principal("dept-sthjj", frozenset({"department:STHJJ"}))
    actor = actor_for(sthjj)

    def reply(rec, ref, now):
        return sm.reply(rec.state, actor, "已处理", True, now)

    def act(principal, action, command, request, key=None):
        return execute(
            engine, ctx, case_id=received.case_id, action=action, principal=principal,
            actor=actor_for(principal), command=command, request=request, idempotency_key=key,
        )  # fmt: skip

    with pytest.raises(Problem) as refused:
        await act(sthjj, "reply", reply, {"reply": "已处理"})
    assert refused.value.status == 409 and refused.value.extensions["current_status"] == "assigned"

    def accept(rec, ref, now):
        return sm.accept(rec.state, actor, now)

    first = await act(sthjj, "accept", accept, {}, "k-1")
    again = await act(sthjj, "accept", accept, {}, "k-1")
    assert first.body == again.body and again.replayed and first.body["status"] == "accepted"
    assert [r.event_type for r in await outbox_rows(engine)].count(
        "gridline.case.assignment-accepted.v1"
    ) == 1

    cgj = Principal("dept-cgj", frozenset({"department:CGJ"}))
    with pytest.raises(Problem) as hidden:
        await act(cgj, "accept", accept, {})
    assert hidden.value.status == 404


def test_the_load_refdata_command_migrates_loads_once_and_reports_no_change_the_second_time(infrastructure):
    import json
    import os
    import re
    import subprocess
    import sys

    name = f"it_routing_cli_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLINE_")}
    env |= {"GRIDLINE_POSTGRES_URL": infrastructure.postgres_url, "GRIDLINE_DATABASE_NAME": name}
    runs = [
        subprocess.run(
            [sys.executable, "-m", "services.routing", "load-refdata", "--actor", "it-cli"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr + runs[1].stderr
    # the report is the indented JSON document at the end (log lines before it are one-line JSON)
    first, second = (json.loads(run.stdout[re.search(r"^\{$", run.stdout, re.M).start() :]) for run in runs)
    assert (first["version"], first["created"]) == (1, True)
    assert first["changes"]["rules"]["added"] and first["changes"]["grids"]["added"] == 594
    assert (second["version"], second["created"]) == (1, False)
