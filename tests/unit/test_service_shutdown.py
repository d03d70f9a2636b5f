"""A Kafka client that fails to stop does not fail the service's shutdown; a real cancellation still does."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from runtime.service import stop_kafka_client


async def _cancelled_inside() -> None:
    """What aiokafka's consumer.stop() does when the broker went first: a task it cancelled and awaited."""
    inner = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    inner.cancel()
    await inner


async def _broker_gone() -> None:
    raise ConnectionError("Connection at 127.0.0.1:9092 closed")


@pytest.mark.parametrize(
    ("stop", "event"),
    [
        (_cancelled_inside, "service.kafka_client_stop_interrupted"),
        (_broker_gone, "service.kafka_client_stop_failed"),
    ],
)
async def test_a_client_that_cannot_stop_cleanly_is_a_warning_not_a_failed_shutdown(stop, event) -> None:
    with structlog.testing.capture_logs() as logs:
        await stop_kafka_client("consumer gridline-routing", stop)
    assert [(e["event"], e["log_level"], e["client"]) for e in logs] == [
        (event, "warning", "consumer gridline-routing")
    ]


async def test_cancelling_the_shutdown_itself_still_cancels_it() -> None:
    started = asyncio.Event()

    async def slow_stop() -> None:
        started.set()
        await asyncio.sleep(10)

    shutdown = asyncio.create_task(stop_kafka_client("producer", slow_stop))
    await started.wait()
    shutdown.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shutdown
