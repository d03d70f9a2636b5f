"""The running system: all five services as real processes on the test infrastructure.

Databases and topics carry the run id, so a run never meets another run's state even on shared servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from contracts.envelope import encode_event
from devtools.system import SERVICES, LocalSystem
from runtime import kafka
from tests.conftest import TEST_DIR, TEST_SERVICE_PORT_OFFSET
from tests.trace_collector import TraceCollector

pytestmark = pytest.mark.e2e

# Extra environment for the services under test (e.g. where notify finds the test SMTP server).
# Add entries here, one per line, rather than changing the fixture.
E2E_EXTRA_ENV: dict[str, str] = {
    "GRIDLINE_HOUSEKEEPING_INTERVAL_S": "2",  # every worker sweeps often (nothing is old enough to go)
}


@pytest.fixture(scope="session")
def trace_collector() -> Iterator[TraceCollector]:
    """Where every service under test exports its spans (OTLP/HTTP on loopback)."""
    collector = TraceCollector(TEST_SERVICE_PORT_OFFSET + 8000 + 20).start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
def system(infrastructure, trace_collector) -> Iterator[LocalSystem]:
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": trace_collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    running = LocalSystem(
        kafka_bootstrap=infrastructure.kafka_bootstrap,
        postgres_url=infrastructure.postgres_url,
        log_dir=TEST_DIR / "logs" / infrastructure.run_id,
        port_offset=TEST_SERVICE_PORT_OFFSET,
        extra_env={**tracing, **E2E_EXTRA_ENV},
        topic_suffix=f".e2e{infrastructure.run_id}",
        database_suffix=f"_e2e{infrastructure.run_id}",
    )
    infrastructure.create_databases(*(running.database_name(name) for name in SERVICES))
    try:
        running.start()
        yield running
    finally:
        codes = running.stop()
        print(f"\nservice exit codes after SIGTERM: {codes}")


# Development keys from deploy/local/api-keys.dev.yaml.
DEV_KEYS = {
    "hotline": "dev-hotline-key",
    "grid": "dev-grid-key",
    "open311": "dev-open311-key",
    "operator": "dev-operator-key",
    "sre": "dev-sre-key",
}


async def publish_event(system: LocalSystem, event, *, source: str, client_id: str) -> None:
    """Put one case event on the system's case log, as the service named by ``source`` would."""
    message = encode_event(event, source=source, topic=system.case_events_topic)
    producer = kafka.create_producer(system.kafka_bootstrap, client_id)
    await producer.start()
    try:
        await producer.send_and_wait(
            message.topic, message.value, key=message.key.encode(), headers=message.headers
        )
    finally:
        await producer.stop()


def client_for(system: LocalSystem, service: str, key: str | None) -> httpx.Client:
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(base_url=system.url(service), timeout=10, headers=headers)


@pytest.fixture
def intake(system) -> Iterator[httpx.Client]:
    """Intake, as the 12345 hotline system."""
    with client_for(system, "intake", DEV_KEYS["hotline"]) as client:
        yield client


@pytest.fixture
def cases(system) -> Iterator[httpx.Client]:
    """Projection's query API, as an operator."""
    with client_for(system, "projection", DEV_KEYS["operator"]) as client:
        yield client
