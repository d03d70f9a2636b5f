"""Database access: one async engine per service, and the tables every service shares (outbox, inbox)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime.settings import ServiceSettings

# Tables the runtime owns inside each service's database. Each service's first Alembic migration creates
# them through runtime.migrations.create_runtime_tables(), so they live beside the service's own tables.
runtime_metadata = sa.MetaData()

# Events written with the state change and not yet published: the relay deletes each row once Kafka has
# acknowledged it (runtime.outbox).
outbox = sa.Table(
    "outbox",
    runtime_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# One row per event a consumer has taken in: the idempotency record written in the same transaction as
# the event's effect, so a redelivered event is recognised and skipped.
inbox = sa.Table(
    "inbox",
    runtime_metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # applied | dead-lettered
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Highest offset whose effect is committed, per consumer and partition: the consumer's position,
# also what read-your-writes waits on.
tracking = sa.Table(
    "tracking",
    runtime_metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    """The service's async engine (asyncpg), pool sized for small boxes.

    No overflow: an overflow connection is closed as soon as it is returned, so bursts above the pool
    size opened a PostgreSQL backend per transaction (notify's 32 deliveries in flight opened 90
    connections in a 600-case replay).

    A pooled connection the server has closed (a restart or shutdown: PostgreSQL tells its idle
    backends' clients, and asyncpg marks the connection closed) is replaced when taken, without the round
    trip of SQLAlchemy's pre-ping, which cost intake ~6 % of its CPU per request and PostgreSQL a
    statement per transaction. ``db_pool_pre_ping`` adds that round trip back, for networks that drop
    connections silently."""
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_pre_ping=settings.db_pool_pre_ping,
        pool_recycle=1800,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
    )
    sa.event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def json_text(value: object) -> str:
    """JSON and JSONB parameters as orjson writes them: the stdlib's ``json.dumps``, SQLAlchemy's default,
    was 3–5 % of projection's and notify's CPU under bench/e2e (the projection's summaries and timeline
    carry JSONB). Non-string keys become strings, as ``json.dumps`` makes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _refuse_closed_connection(dbapi_connection, connection_record, connection_proxy) -> None:  # type: ignore[no-untyped-def]
    """Pool checkout hook: a connection the server closed is invalidated and another taken (SQLAlchemy
    retries the checkout on DisconnectionError)."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the database server closed this pooled connection")


def asyncpg_dsn(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://…``) as the DSN asyncpg connects with."""
    return sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class DirectPool:
    """asyncpg's own pool, for a hot path that speaks asyncpg directly (intake's recording of appeals).

    Taking a connection from SQLAlchemy's async pool and giving it back cost ~60 µs of CPU (greenlet
    switches, pool events); from asyncpg's pool ~17 µs, with a reset that only rolls back a transaction
    left open instead of asyncpg's default round trip (``RESET ALL`` etc.: the hot path leaves no session
    state, its advisory locks are transaction-level). Opened on first use, in the running event loop.

    A connection the server closed is replaced when taken (asyncpg reconnects it); waiting longer than
    ``acquire_timeout_s`` for a free one raises ``TimeoutError``, answered 503 like SQLAlchemy's
    pool timeout.
    """

    def __init__(self, database_url: str, size: int, acquire_timeout_s: float = 30.0) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._size = size
        self._timeout = acquire_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._open()
        # asyncio.timeout, not acquire(timeout=…): asyncpg waits for that in a task of its own (~4 % of a
        # request's CPU)
        async with asyncio.timeout(self._timeout):
            connection = await pool.acquire()
        try:
            yield connection
        finally:
            await pool.release(connection)

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._size,
                    reset=_rollback_if_open,
                    # A batch's statements look costly to the planner (a row per appeal, each probing
                    # indexes), enough for JIT compilation, which took 20-40 ms to save microseconds.
                    server_settings={"jit": "off"},
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _rollback_if_open(connection: asyncpg.Connection) -> None:
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


@contextlib.asynccontextmanager
async def transaction_with_locks(db: asyncpg.Connection, locks: list[int]) -> AsyncIterator[None]:
    """A transaction that starts holding transaction-level advisory ``locks`` (signed 64-bit keys).

    BEGIN and the locks go in one round trip (a simple query of two statements), taken in key order so
    that transactions needing overlapping sets cannot deadlock; PostgreSQL evaluates the volatile output
    expression after ORDER BY. The keys are integers, written into the statement as such."""
    begin = "BEGIN"
    if locks:
        keys = ",".join(str(int(key)) for key in sorted(set(locks)))
        begin += f"; SELECT pg_advisory_xact_lock(k) FROM unnest('{{{keys}}}'::bigint[]) AS k ORDER BY k"
    try:
        await db.execute(begin)
        yield
    except BaseException:
        if not _closed(db):
            try:
                await db.execute("ROLLBACK")
            except Exception:  # the connection broke under us: drop it; the pool opens another
                db.terminate()
        raise
    await db.execute("COMMIT")


def _closed(db: asyncpg.Connection) -> bool:
    """Whether the connection is gone. When the server closes a pooled connection, asyncpg hands it back
    to the pool at once and the proxy then refuses every call (InterfaceError "released back to the
    pool"), which raised in place of the server's error: a 500 in the fault suite where a 503 was due."""
    try:
        return db.is_closed()
    except asyncpg.InterfaceError:
        return True
