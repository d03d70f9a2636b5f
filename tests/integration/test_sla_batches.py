"""Sla's consumer applies a batch of case events as one unit of work (one ClockBook: the batch's cases
read at once, decided in memory, written at once). Applied as a batch or one event per transaction, the
same events must leave the same cases, clocks, timers and outgoing events."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from contracts.envelope import decode_message, encode_event
from contracts.events import CaseEvent
from runtime.consumer import Delivery, apply_in_unit
from runtime.db import outbox
from runtime.sql import custom_plans
from services.sla import consumer, store
from services.sla.book import _LOCK_CASES, _READ_CLOCKS
from services.sla.tables import cases, deadlines, timers
from tests import factories
from tests.integration.conftest import migrated_engine, plan_nodes
from tests.integration.test_sla_clocks import MONDAY, Sla, new_sla, sla  # noqa: F401

pytestmark = pytest.mark.integration


def story() -> list[CaseEvent]:
    """Four cases' lives, interleaved as the case log interleaves them: an extension, a dissatisfied
    citizen and a reopening; triage, a return and a re-assignment (a clock's second generation in the
    same batch as its first), a transfer; a withdrawal; a reply for a case sla never saw."""
    a, b, c, d = (factories.case_id() for _ in range(4))
    t = [MONDAY + timedelta(minutes=m) for m in range(40)]
    lives = [
        [
            factories.case_received(a, occurred_at=t[0], received_at=t[0], appeal_type="help"),
            factories.case_assigned(a, at=t[1]),
            factories.assignment_accepted(a, at=t[2]),
            factories.extension_decided(a, at=t[3], days=3),
            factories.reply_submitted(a, at=t[4]),
            factories.feedback_received(a, "dissatisfied", at=t[5]),
            factories.case_reopened(a, at=t[6]),
            factories.case_assigned(a, "ZJJ", at=t[7], attempt=2),
            factories.case_closed_at(a, at=t[8]),
        ],
        [
            factories.case_received(b, occurred_at=t[0], received_at=t[0]),
            factories.case_sent_to_triage(b, at=t[1]),
            factories.case_assigned(b, at=t[2]),
            factories.assignment_returned(b, at=t[3]),
            factories.case_assigned(b, "ZJJ", at=t[4], attempt=2),
            factories.case_transferred(b, "ZJJ", "CGJ", at=t[5]),
            factories.reply_submitted(b, at=t[6]),
        ],
        [
            factories.case_received(c, occurred_at=t[0], received_at=t[0], appeal_type="consultation"),
            factories.case_assigned(c, at=t[1]),
            factories.appeal_withdrawn(c, at=t[2]),
        ],
        [factories.reply_submitted(d, at=t[0]), factories.case_assigned(d, at=t[1])],
    ]
    return [life[i] for i in range(max(map(len, lives))) for life in lives if i < len(life)]


def delivered(events: list[CaseEvent]) -> list[Delivery]:
    """The events as the consumer gets them (envelope ids fixed once: a supervision's id derives from one)."""
    out = []
    for offset, event in enumerate(events):
        message = encode_event(event, source="/gridline/tests", topic="t")
        envelope = decode_message(message.key.encode(), message.headers, message.value)
        out.append(Delivery(envelope, "t", 0, offset))
    return out


async def stored(service: Sla) -> dict[str, list]:
    """Everything sla wrote, without surrogate ids and write times."""
    async with service.engine.connect() as conn:

        async def rows(query: sa.Select) -> list[tuple]:
            return [tuple(r) for r in (await conn.execute(query)).all()]

        return {
            "cases": await rows(
                sa.select(*[c for c in cases.c if c.name != "updated_at"]).order_by(cases.c.case_id)
            ),
            "deadlines": await rows(
                sa.select(*[c for c in deadlines.c if c.name != "updated_at"]).order_by(
                    deadlines.c.case_id, deadlines.c.stage
                )
            ),
            "timers": await rows(
                sa.select(*[c for c in timers.c if c.name != "id"]).order_by(
                    timers.c.case_id, timers.c.stage, timers.c.kind, timers.c.generation
                )
            ),
            "outbox": await rows(
                sa.select(outbox.c.event_id, outbox.c.key, outbox.c.event_type, outbox.c.value).order_by(
                    outbox.c.id
                )
            ),
        }


async def test_a_batch_of_events_leaves_exactly_what_applying_them_one_by_one_leaves(infrastructure) -> None:
    one_by_one, batched = await new_sla(infrastructure), await new_sla(infrastructure)
    try:
        deliveries = delivered(story())
        handle = consumer.make_handler(one_by_one.ctx)
        for delivery in deliveries:
            async with one_by_one.engine.begin() as conn:
                await handle(conn, delivery)
        async with batched.engine.begin() as conn:
            await apply_in_unit(consumer.unit_of_work(batched.ctx), conn, deliveries)

        expected, got = await stored(one_by_one), await stored(batched)
        assert got == expected
        # the story exercised what it is meant to: clocks restarted and cancelled, cards cancelled, events
        assert {row[1] for row in expected["deadlines"] if row[2] > 1}  # a second generation
        assert any(row[-1] is not None for row in expected["timers"])  # a cancelled timer
        assert {row[-1] is None for row in expected["timers"]} == {True, False}  # and pending ones
        kinds = {row[2] for row in expected["outbox"]}
        assert {"gridline.case.deadline-set.v1", "gridline.case.escalated.v1"} <= kinds, kinds
        assert [row[0] for row in expected["cases"]].count(None) == 0 and len(expected["cases"]) == 4
    finally:
        await one_by_one.engine.dispose()
        await batched.engine.dispose()


async def test_cancelling_reads_the_cases_timers_on_their_index_even_before_statistics_exist(
    sla: Sla,  # noqa: F811 - the fixture
) -> None:
    """A fresh table (never analysed): the planner must not take the partial index of pending timers,
    which it then believes holds one row, and filter every pending timer by case."""
    now = MONDAY
    timers_ = [
        store.NewTimer(f"ZQ{n:08d}", stage, kind, 1, now + timedelta(minutes=n % 997), now, "A1")
        for n in range(3000)
        for stage in ("sign_for", "reply")
        for kind in ("yellow", "red")
    ]
    async with sla.engine.begin() as conn:
        await store.schedule_many(conn, timers_)
        await conn.exec_driver_sql("UPDATE sla_timers SET cancelled_at = due_at WHERE id % 3 = 0")
        which = [(f"ZQ{n:08d}", "reply" if n % 2 else None, now) for n in range(0, 3000, 150)]
        columns = ([c for c, _, _ in which], [s for _, s, _ in which], [at for _, _, at in which])
        plan = "\n".join(
            r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + store._CANCEL, columns)).all()
        )
        assert "sla_timers_pending" not in plan, plan
        assert "sla_timers_once" in plan, plan
        pending = "SELECT count(*) FROM sla_timers WHERE fired_at IS NULL AND cancelled_at IS NULL"
        before = (await conn.exec_driver_sql(pending)).scalar_one()
        cancelled = await store.cancel_timers_of(conn, which)
        after = (await conn.exec_driver_sql(pending)).scalar_one()
    assert cancelled == before - after > 0


async def analysed_with_nothing_pending(sla: Sla) -> None:  # noqa: F811 - the fixture's type
    """Statistics from an ANALYZE taken when every timer had fired (a fresh database's first timers):
    the pending timers' partial index then looks like one row to the planner."""
    fired = [store.NewTimer(f"ZQ{n:08d}", "reply", "red", 1, MONDAY, MONDAY, "A1") for n in range(300)]
    async with sla.engine.begin() as conn:
        await store.schedule_many(conn, fired)
        await conn.exec_driver_sql("UPDATE sla_timers SET fired_at = due_at")
    async with sla.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE sla_timers")
        await conn.commit()


async def test_the_next_due_timer_is_the_first_entry_of_the_pending_index_even_on_stale_statistics(
    sla: Sla,  # noqa: F811 - the fixture
) -> None:
    """Statistics from an ANALYZE taken when no timer was pending: the planner must still read one entry
    of the pending timers' index, not aggregate every pending timer (min() did, 22 ms a call)."""
    await analysed_with_nothing_pending(sla)
    pending = [
        store.NewTimer(f"ZQ{n:08d}", "sign_for", kind, 1, MONDAY + timedelta(minutes=n % 997), MONDAY, "A1")
        for n in range(5000)
        for kind in ("yellow", "red")
    ]
    async with sla.engine.begin() as conn:
        await store.schedule_many(conn, pending)
        query = str(store.NEXT_DUE.compile(conn.sync_connection, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(
            r[0] for r in (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, TIMING OFF) {query}")).all()
        )
        assert "sla_timers_pending" in plan and "(actual rows=1 loops=1)" in plan, plan
        assert "actual rows=10000" not in plan, plan
        assert await store.next_due_at(conn) == MONDAY


async def test_firing_prepared_timers_finds_each_by_its_key_even_with_an_overdue_backlog(
    sla: Sla,  # noqa: F811 - the fixture
) -> None:
    """Statistics from an ANALYZE taken when no timer was pending, then an overdue backlog (sla was down):
    firing timers picked by id must look each up by its key, not read the pending index from its start
    and filter the ids (the whole backlog per call)."""
    await analysed_with_nothing_pending(sla)
    backlog = [
        store.NewTimer(f"ZQ{n:08d}", "sign_for", "yellow", 1, MONDAY + timedelta(seconds=n), MONDAY, "A1")
        for n in range(6000)
    ]
    now = MONDAY + timedelta(days=1)
    async with sla.engine.begin() as conn:
        await store.schedule_many(conn, backlog)
        ids = list(
            (
                await conn.exec_driver_sql(
                    "SELECT id FROM sla_timers WHERE fired_at IS NULL ORDER BY id DESC LIMIT 40"
                )
            ).scalars()
        )
        plan = "\n".join(
            r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + store._FIRE_THESE, (now, ids))).all()
        )
        assert "sla_timers_pending" not in plan and "sla_timers_pkey" in plan, plan
        rows = await store.fire_these(conn, now, ids)
    assert sorted(r.id for r in rows) == sorted(ids)


async def test_a_batch_reads_its_cases_and_clocks_by_key_on_a_large_table_with_no_statistics(infrastructure):
    """A fresh district's first minutes: 20,000 cases' clocks and no ANALYZE yet. The batch's reads, planned
    as ClockBook.open plans them, probe the primary keys case by case; as ``case_id IN (…)`` the planner
    took each case for 0.5 % of the rows and read the whole table for a batch of 63 cases."""
    engine = await migrated_engine(infrastructure, "sla")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE sla_cases SET (autovacuum_enabled = false)"))
            await conn.execute(sa.text("ALTER TABLE sla_deadlines SET (autovacuum_enabled = false)"))
            await conn.execute(
                sa.text("INSERT INTO sla_cases (case_id) SELECT 'ZQ' || g FROM generate_series(1, 20000) g")
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO sla_deadlines (case_id, stage, generation, policy_id, policy_version, clock,"
                    " amount, started_at, due_at, state, provisional, calendar_basis)"
                    " SELECT 'ZQ' || g, stage, 0, 'p', 1, 'working_days', 1, now(), now(), 'running', false,"
                    " 'cn' FROM generate_series(1, 20000) g, unnest(ARRAY['accept', 'handle', 'reply']) stage"
                )
            )
        batch = sorted(f"ZQ{n}" for n in range(1000, 1063))
        scans: list[str] = []  # sequential scans, and the indexes probed (directly or for a bitmap)

        async with engine.begin() as conn, custom_plans(conn):
            db = (await conn.get_raw_connection()).driver_connection
            for statement in (_LOCK_CASES, _READ_CLOCKS):
                compiled = statement.compile(dialect=engine.dialect)
                params = compiled.params | {"case_ids": batch}
                plan = await db.fetchval(
                    f"EXPLAIN (FORMAT JSON) {compiled}", *(params[name] for name in compiled.positiontup)
                )
                for node in plan_nodes(plan):  # json, decoded by the engine's codec
                    if node["Node Type"] == "Seq Scan":
                        scans.append(f"Seq Scan on {node['Relation Name']}")
                    if "Index Name" in node:
                        scans.append(node["Index Name"])
        assert scans == ["sla_cases_pkey", "sla_deadlines_pkey"]
    finally:
        await engine.dispose()


async def test_cancelling_a_batch_finds_the_timers_case_by_case_on_a_large_table_with_no_statistics(
    sla: Sla,  # noqa: F811 - the fixture
) -> None:
    """60,000 timers never analysed and a batch cancelling 40 cases' timers (half of them one stage only):
    the timers are found on ``sla_timers_once`` case by case and updated by id, never by a scan of every
    timer (as ``case_id = ANY`` joined to the list, the planner took each case for 0.5 % of the rows)."""
    async with sla.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE sla_timers SET (autovacuum_enabled = false)")
        await conn.exec_driver_sql(
            "INSERT INTO sla_timers (case_id, stage, kind, generation, due_at, deadline_due_at)"
            " SELECT 'ZQ' || g, stage, 'red', 1, now() + interval '1 day', now() + interval '1 day'"
            " FROM generate_series(1, 20000) g, unnest(ARRAY['sign_for', 'handle', 'reply']) stage"
        )
        which = [(f"ZQ{n}", "reply" if n % 2 else None, MONDAY) for n in range(1000, 1040)]
        columns = ([c for c, _, _ in which], [s for _, s, _ in which], [at for _, _, at in which])
        async with custom_plans(conn):  # as cancel_timers_of plans it
            plan = (
                await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + store._CANCEL, columns)
            ).scalar_one()
        nodes = plan_nodes(plan)
        scans = {n["Index Name"] for n in nodes if "Index Name" in n}
        scans |= {f"Seq Scan on {n['Relation Name']}" for n in nodes if n["Node Type"] == "Seq Scan"}
        assert scans == {"sla_timers_once", "sla_timers_pkey"}, scans
        cancelled = await store.cancel_timers_of(conn, which)
        left = "SELECT count(*) FROM sla_timers WHERE cancelled_at IS NULL AND case_id = ANY($1::text[])"
        pending_left = (await conn.exec_driver_sql(left, (columns[0],))).scalar_one()
    assert cancelled == 20 * 3 + 20 * 1  # every stage of the 20 even cases, the reply of the 20 odd ones
    assert pending_left == 20 * 2
