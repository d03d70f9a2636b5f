"""The one fixture that decides where Kafka and PostgreSQL come from, for every test that needs them.

1. ``GRIDLINE_TEST_KAFKA`` and ``GRIDLINE_TEST_POSTGRES_URL`` set: use those servers.
2. Otherwise, a Docker engine answers: testcontainers.
3. Otherwise: start the project's own local Kafka (KRaft, Maven Central jars) and PostgreSQL (Debian
   binaries) on test ports, with fresh data directories, once per test run.

Whatever the source, the versions are printed at the end of the run, so the log shows they were real.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import infra

REPO = Path(__file__).resolve().parent.parent
# Several test runs can share a machine by choosing different port bases (GRIDLINE_TEST_PORT_BASE).
PORT_BASE = int(os.environ.get("GRIDLINE_TEST_PORT_BASE", "29000"))
TEST_DIR = REPO / ".local" / f"test-{PORT_BASE}"
TEST_KAFKA_PORT, TEST_KAFKA_CONTROLLER_PORT = PORT_BASE + 92, PORT_BASE + 93
TEST_POSTGRES_PORT = PORT_BASE + 432
TEST_SERVICE_PORT_OFFSET = PORT_BASE + 100 - 8000  # services on PORT_BASE+101 ... +105

_report: list[str] = []


@dataclass(frozen=True)
class Infrastructure:
    """Endpoints of the real Kafka and PostgreSQL the tests run against."""

    kafka_bootstrap: str
    postgres_url: str  # server URL without a database: postgresql://user@host:port
    kafka_version: str
    postgres_version: str
    origin: str  # environment | testcontainers | local
    run_id: str

    def database_url(self, database: str) -> str:
        return f"{self.postgres_url}/{database}"

    def create_databases(self, *names: str) -> None:
        infra.create_databases_at(self.postgres_url, list(names))


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    run_id = uuid.uuid4().hex[:8]
    kafka_env, pg_env = os.environ.get("GRIDLINE_TEST_KAFKA"), os.environ.get("GRIDLINE_TEST_POSTGRES_URL")
    if kafka_env and pg_env:
        infra.wait_kafka(kafka_env, timeout=60)
        version = infra.postgres_server_version(pg_env)
        yield _announce(
            Infrastructure(kafka_env, pg_env.rstrip("/"), "external", version, "environment", run_id)
        )
        return
    if infra.docker_available():
        kafka, postgres = infra.start_with_testcontainers()
        origin = "testcontainers"
    else:
        kafka = infra.start_kafka(TEST_DIR / "kafka", TEST_KAFKA_PORT, TEST_KAFKA_CONTROLLER_PORT, fresh=True)
        postgres = infra.start_postgres(
            TEST_DIR / "postgres", TEST_POSTGRES_PORT, fresh=True, fast_unsafe=True
        )
        origin = "local"
    try:
        yield _announce(
            Infrastructure(
                kafka.bootstrap_servers,
                postgres.dsn("").rstrip("/"),
                kafka.version,
                postgres.version,
                origin,
                run_id,
            )
        )
    finally:
        kafka.stop()
        postgres.stop()


def _announce(found: Infrastructure) -> Infrastructure:
    _report.append(
        f"infrastructure ({found.origin}): Apache Kafka {found.kafka_version} at {found.kafka_bootstrap}; "
        f"PostgreSQL {found.postgres_version} at {found.postgres_url}"
    )
    print(f"\n{_report[-1]}")
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _report:
        terminalreporter.write_line(line)
