"""The services' connection pools on a real PostgreSQL: a connection the server closed is not handed out;
intake's direct pool and its locked transactions."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from runtime.consumer import is_infrastructure_error
from runtime.db import DirectPool, create_engine, transaction_with_locks
from runtime.sql import ArrayInsert, custom_plans, do_update
from services.sla.config import SlaSettings

pytestmark = pytest.mark.integration


async def _terminate(url: str, backend: int) -> None:
    """What a restart does to every idle pooled connection: the server ends the backend."""
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
    finally:
        await admin.close()
    await asyncio.sleep(0.5)  # let the event loop read the server's goodbye


async def test_a_pooled_connection_the_server_closed_is_replaced_when_taken(infrastructure) -> None:
    name = f"it_pool_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    settings = SlaSettings(
        postgres_url=infrastructure.postgres_url, database_name=name, environment="test", db_pool_size=1
    )
    assert not settings.db_pool_pre_ping  # no round trip per checkout
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        await _terminate(infrastructure.database_url(name), first)
        async with engine.connect() as conn:  # the pool's only connection was the closed one
            second = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()


@pytest.fixture
def direct_database(infrastructure, request) -> str:
    """A fresh database for one test: its plain URL (the DirectPool takes the SQLAlchemy form)."""
    name = f"it_{request.node.name[5:30]}_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    return infrastructure.database_url(name)


def _direct_pool(url: str, size: int) -> DirectPool:
    return DirectPool(url.replace("postgresql://", "postgresql+asyncpg://", 1), size=size)


async def test_the_direct_pool_replaces_a_connection_the_server_closed_and_keeps_no_transaction_open(
    direct_database,
) -> None:
    pool = _direct_pool(direct_database, size=1)
    try:
        async with pool.acquire() as db:
            first = await db.fetchval("SELECT pg_backend_pid()")
            await db.execute("BEGIN")  # left open, as a cancelled request would leave it
        async with pool.acquire() as db:  # the same (only) connection, its transaction rolled back
            assert await db.fetchval("SELECT pg_backend_pid()") == first
            assert not db.is_in_transaction()
        await _terminate(direct_database, first)
        async with pool.acquire() as db:
            assert await db.fetchval("SELECT pg_backend_pid()") != first
    finally:
        await pool.close()


async def test_a_transaction_with_locks_holds_them_until_it_ends_and_rolls_back_on_error(
    direct_database,
) -> None:
    pool = _direct_pool(direct_database, size=2)
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    try:
        async with pool.acquire() as db, pool.acquire() as other:
            await db.execute("CREATE TABLE t (n int)")
            async with transaction_with_locks(db, [7, -3, 7]):
                await db.execute("INSERT INTO t VALUES (1)")
                assert db.is_in_transaction()
                assert await other.fetchval(held) == 2  # -3 and 7, the repeat taken once
                # another transaction asking for one of them waits until this one ends
                waiting = asyncio.create_task(other.execute("SELECT pg_advisory_xact_lock(7)"))
                await asyncio.sleep(0.3)
                assert not waiting.done()
            await asyncio.wait_for(waiting, 5)
            assert await db.fetchval("SELECT count(*) FROM t") == 1  # committed
            with pytest.raises(asyncpg.UniqueViolationError):
                async with transaction_with_locks(db, [1]):
                    await db.execute("INSERT INTO t VALUES (2)")
                    await db.execute("CREATE UNIQUE INDEX t_n ON t (n); INSERT INTO t VALUES (1)")
            assert not db.is_in_transaction()
            assert await db.fetchval("SELECT count(*) FROM t") == 1  # the failed transaction left nothing
            assert await other.fetchval(held) == 0
    finally:
        await pool.close()


async def test_jsonb_parameters_and_results_round_trip_through_orjson_like_the_stdlib(infrastructure) -> None:
    """The engines write JSON with orjson; what the stdlib accepted (integer keys, Chinese text) is kept."""
    name = f"it_json_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    settings = SlaSettings(postgres_url=infrastructure.postgres_url, database_name=name, environment="test")
    engine = create_engine(settings)
    doc = {"投诉": "明水街道路灯不亮", 3: [1.5, None, True], "nested": {"n": 2**40}}
    try:
        async with engine.connect() as conn:
            query = sa.select(
                sa.bindparam("doc", doc, type_=JSONB), sa.cast(sa.bindparam("raw", type_=JSONB), sa.Text)
            )
            back, text = (await conn.execute(query, {"raw": doc})).one()
    finally:
        await engine.dispose()
    assert back == json.loads(json.dumps(doc))  # the keys as json.dumps writes them
    assert json.loads(text) == back and "明水街道" in text  # stored as UTF-8 text, not \\u escapes


async def test_an_array_insert_writes_a_batch_in_one_statement_in_order_and_upserts(infrastructure) -> None:
    """ArrayInsert: one statement per batch (not one per row), rows numbered in the order given, every
    column type the services write (NULLs, Chinese text, JSONB, a quoted name) kept, and its ON CONFLICT
    clause applied: an update of the other columns, or the first of two rows with one key."""
    name = f"it_arrays_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    settings = SlaSettings(postgres_url=infrastructure.postgres_url, database_name=name, environment="test")
    engine = create_engine(settings)
    table = sa.Table(
        "queue",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity()),
        sa.Column("offset", sa.Integer),
        sa.Column("amount", sa.Float),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("urgent", sa.Boolean),
        sa.Column("payload", JSONB),
        sa.Column("tags", ARRAY(sa.Text)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("'2000-01-01'")),
    )
    columns = ["id", "offset", "amount", "due_at", "urgent", "payload", "tags"]
    tags = ['a "quoted", {braced} tag', "back\\slash\\", "NULL", None, "", " 明水 "]
    upsert = ArrayInsert(table, columns, do_update(["id"], columns, updated_at="now()"))
    once = ArrayInsert(table, columns, "ON CONFLICT (id) DO NOTHING")
    due = datetime.fromisoformat("2026-11-29T09:30:00+08:00")
    rows = [
        {
            "id": "GL-3",
            "offset": 7,
            "amount": 1.5,
            "due_at": due,
            "urgent": True,
            "payload": {"街": "明水"},
            "tags": tags,
        },
        {
            "id": "GL-1",
            "offset": None,
            "amount": 2,
            "due_at": None,
            "urgent": False,
            "payload": None,
            "tags": None,
        },
        {
            "id": "GL-2",
            "offset": 0,
            "amount": None,
            "due_at": due,
            "urgent": None,
            "payload": [1, {"n": 2}],
            "tags": [],
        },
    ]
    statements: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            statements.clear()
            await upsert.execute(conn, rows)
            assert len(statements) == 1  # executemany would have run three
            stored = (await conn.execute(sa.select(table).order_by(table.c.seq))).mappings().all()
            assert [{k: r[k] for k in columns} for r in stored] == rows
            assert [r["updated_at"].year for r in stored] == [2000] * 3  # the server default on insert
            await upsert.execute(conn, [{**rows[1], "offset": 9, "payload": {"改": True}}])
            await once.execute(conn, [{**rows[2], "offset": 5}])  # a key already there: nothing
            new = [{**rows[0], "id": "GL-4", "offset": 1}, {**rows[0], "id": "GL-4", "offset": 2}]
            await once.execute(conn, new)  # the same key twice in one batch: the first is kept
            await upsert.execute(conn, [])  # no rows, no statement
            after = {r.id: r for r in (await conn.execute(sa.select(table))).all()}
            assert (after["GL-1"].offset, after["GL-1"].payload) == (9, {"改": True})
            assert after["GL-1"].updated_at.year > 2000 and after["GL-1"].seq == stored[1]["seq"]
            assert after["GL-2"].offset == 0 and after["GL-4"].offset == 1
            assert len(statements) == 6
    finally:
        await engine.dispose()


async def test_statements_inside_custom_plans_are_planned_for_their_values_every_time(infrastructure) -> None:
    """After five executions PostgreSQL may keep a generic plan for a prepared statement (asyncpg prepares
    them all), costed for the table as it then was; inside ``custom_plans`` it never does, on either kind
    of connection the services use, and the setting ends with the block."""
    name = f"it_plans_{infrastructure.run_id}"
    infrastructure.create_databases(name)
    settings = SlaSettings(postgres_url=infrastructure.postgres_url, database_name=name, environment="test")
    engine = create_engine(settings)
    query = "SELECT count(*) FROM queue WHERE id = $1 AND status = 'pending'"
    plans = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1"
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE queue (id int PRIMARY KEY, status text)")
            await conn.exec_driver_sql("INSERT INTO queue SELECT i, 'pending' FROM generate_series(1, 10) i")
        raw = await asyncpg.connect(infrastructure.database_url(name))  # intake's kind of connection
        try:
            statement = await raw.prepare(query)
            for _ in range(8):
                async with raw.transaction():
                    async with custom_plans(raw):
                        assert await statement.fetchval(2) == 1
                    assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
            assert tuple(await raw.fetchrow(plans, query)) == (0, 8)
            for _ in range(8):
                async with raw.transaction():
                    await statement.fetchval(2)
            generic, custom = await raw.fetchrow(plans, query)
            assert generic > 0  # what the block prevents: the test would catch a block that does nothing
        finally:
            await raw.close()
        async with engine.begin() as conn:  # a SQLAlchemy connection: exec_driver_sql
            async with custom_plans(conn):
                assert (
                    await conn.exec_driver_sql("SHOW plan_cache_mode")
                ).scalar_one() == "force_custom_plan"
            assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one() == "auto"
        async with engine.begin() as conn:  # to_commit: the transaction's end resets it, not the block's
            async with custom_plans(conn, to_commit=True):
                pass
            assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one() == "auto"
    finally:
        await engine.dispose()


async def test_a_transaction_whose_connection_the_server_ends_fails_with_the_servers_error(
    direct_database,
) -> None:
    """The server ends the backend while the transaction begins (PostgreSQL stopping; here: while it waits
    for a lock): the caller gets the server's error, an infrastructure error (a 503), not the pool proxy's
    complaint about a connection asyncpg had already handed back (a 500 in the fault suite)."""
    pool = _direct_pool(direct_database, size=2)
    try:
        async with pool.acquire() as db, pool.acquire() as other:
            backend = await db.fetchval("SELECT pg_backend_pid()")
            await other.execute("BEGIN; SELECT pg_advisory_xact_lock(5)")

            async def begin_waiting_for_the_lock() -> None:
                async with transaction_with_locks(db, [5]):
                    await db.execute("SELECT 1")

            waiting = asyncio.create_task(begin_waiting_for_the_lock())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await _terminate(direct_database, backend)
            with pytest.raises(Exception) as raised:
                await asyncio.wait_for(waiting, 10)
            await other.execute("ROLLBACK")
        assert "released back to the pool" not in str(raised.value), repr(raised.value)
        assert is_infrastructure_error(raised.value), repr(raised.value)
        async with pool.acquire() as db:  # the pool opens a fresh connection
            assert await db.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
