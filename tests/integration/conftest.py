"""Integration fixtures: a migrated database and fresh topics on the real servers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runtime import kafka, migrations

REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)

pytestmark = pytest.mark.integration


def _async_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def migrated_engine(infrastructure, service: str) -> AsyncEngine:
    """An engine on a fresh database with ``service``'s migrations applied (its tables and the runtime
    tables); the caller disposes of it."""
    name = f"it_{service}_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(name)
    url = _async_url(infrastructure.database_url(name))
    await asyncio.to_thread(migrations.upgrade, REPO / "services" / service / "migrations", url)
    return create_async_engine(url)


@pytest.fixture
async def projection_engine(infrastructure) -> AsyncIterator[AsyncEngine]:
    """A fresh database with projection's migrations applied (read models + runtime tables)."""
    engine = await migrated_engine(infrastructure, "projection")
    yield engine
    await engine.dispose()


@pytest.fixture
async def topic(infrastructure) -> str:
    """A fresh 3-partition topic (plus its DLQ) for one test."""
    name = f"it.case-events.{infrastructure.run_id}.{next(_names)}"
    await kafka.ensure_topics(infrastructure.kafka_bootstrap, {name: 3, kafka.dlq_topic(name): 1})
    return name


@pytest.fixture
async def producer(infrastructure) -> AsyncIterator[AIOKafkaProducer]:
    client = kafka.create_producer(infrastructure.kafka_bootstrap, "it-producer")
    await client.start()
    yield client
    await client.stop()


def plan_nodes(plan: list | str | bytes) -> list[dict]:
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan (as text, or decoded), depth first."""
    nodes, todo = [], [(orjson.loads(plan) if isinstance(plan, str | bytes) else plan)[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(reversed(node.get("Plans", ())))
    return nodes
