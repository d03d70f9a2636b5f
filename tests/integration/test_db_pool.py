"""The services' connection pool on a real PostgreSQL: a connection the server closed is not handed out."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa

from runtime.db import create_engine
from services.sla.config import SlaSettings

pytestmark = pytest.mark.integration


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
        admin = await asyncpg.connect(infrastructure.database_url(name))
        try:  # what a restart does to every idle pooled connection
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.5)  # let the event loop read the server's goodbye
        async with engine.connect() as conn:  # the pool's only connection was the closed one
            second = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()
