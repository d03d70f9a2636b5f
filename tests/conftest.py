"""The one fixture that decides where Kafka and PostgreSQL come from, for every test that needs them.

1. ``GRIDLINE_TEST_KAFKA`` and ``GRIDLINE_TEST_POSTGRES_URL`` set: use those servers.
2. Otherwise, a Docker engine answers: testcontainers.
3. Otherwise: start the project's own local Kafka (KRaft, Maven Central jars) and PostgreSQL (Debian
   binaries) on test ports, with fresh data directories, once per test run.

Whatever the source, the versions are printed at the end of the run, so the log shows they were real.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools import infra

REPO = Path(__file__).resolve().parent.parent
# Several test runs can share a machine by choosing different port bases (GRIDLINE_TEST_PORT_BASE).
PORT_BASE = int(os.environ.get("GRIDLINE_TEST_PORT_BASE", "29000"))
PORT_SPAN = 1000  # every port a test run listens on is in PORT_BASE ... PORT_BASE + 999


def ephemeral_port_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range | None:
    """The ports the kernel hands to outgoing connections (None where it does not say)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def check_port_base(base: int, ephemeral: range | None) -> None:
    """Refuse a port base whose ports the kernel may give to outgoing connections: a restarted service
    then finds its port taken (a 100,000-case fault run at base 33000 saw notify fail to bind for 80 s)."""
    if ephemeral is not None and base < ephemeral.stop and ephemeral.start < base + PORT_SPAN:
        raise pytest.UsageError(
            f"GRIDLINE_TEST_PORT_BASE={base} overlaps the ephemeral port range "
            f"{ephemeral.start}-{ephemeral.stop - 1}; choose a base below {ephemeral.start - PORT_SPAN}"
        )


check_port_base(PORT_BASE, ephemeral_port_range())
TEST_DIR = REPO / ".local" / f"test-{PORT_BASE}"
TEST_KAFKA_PORT, TEST_KAFKA_CONTROLLER_PORT = PORT_BASE + 92, PORT_BASE + 93
TEST_POSTGRES_PORT = PORT_BASE + 432
TEST_SERVICE_PORT_OFFSET = PORT_BASE + 100 - 8000  # services on PORT_BASE+101 ... +105

_report: list[str] = []


@dataclass
class LocalServers:
    """The session's own Kafka and PostgreSQL processes, which fault tests may crash and restart.

    Restarts reuse the same ports and data directories (never fresh): what was committed must survive.
    """

    kafka: infra.LocalKafka
    postgres: infra.LocalPostgres

    def restart_kafka(self) -> float:
        """SIGKILL the broker (no controlled shutdown) and start it again; returns seconds it was down."""
        down = time.monotonic()
        self.kafka.kill()
        self.kafka = infra.start_kafka(
            TEST_DIR / "kafka", TEST_KAFKA_PORT, TEST_KAFKA_CONTROLLER_PORT, fresh=False
        )
        return time.monotonic() - down

    def stop_postgres(self) -> None:
        """Fast shutdown: every session is disconnected, new connections are refused."""
        self.postgres.stop()

    def start_postgres(self) -> None:
        """Start the stopped cluster again on its data directory."""
        self.postgres = infra.start_postgres(
            TEST_DIR / "postgres", TEST_POSTGRES_PORT, fresh=False, fast_unsafe=True
        )

    def stop(self) -> None:
        self.kafka.stop()
        self.postgres.stop()


@dataclass(frozen=True)
class Infrastructure:
    """Endpoints of the real Kafka and PostgreSQL the tests run against."""

    kafka_bootstrap: str
    postgres_url: str  # server URL without a database: postgresql://user@host:port
    kafka_version: str
    postgres_version: str
    origin: str  # environment | testcontainers | local
    run_id: str
    # Only when origin == "local": the processes themselves, for fault injection.
    servers: LocalServers | None = field(default=None, repr=False, compare=False)

    def database_url(self, database: str) -> str:
        return f"{self.postgres_url}/{database}"

    def create_databases(self, *names: str) -> None:
        infra.create_databases_at(self.postgres_url, list(names))

    @property
    def server_faults_unsupported(self) -> str | None:
        """Why Kafka and PostgreSQL cannot be crashed here, or None when they can."""
        if self.servers is None:
            return f"Kafka and PostgreSQL come from {self.origin!r}: not ours to kill (local servers only)"
        return None


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
        servers = None
    else:
        kafka = infra.start_kafka(TEST_DIR / "kafka", TEST_KAFKA_PORT, TEST_KAFKA_CONTROLLER_PORT, fresh=True)
        postgres = infra.start_postgres(
            TEST_DIR / "postgres", TEST_POSTGRES_PORT, fresh=True, fast_unsafe=True
        )
        origin = "local"
        servers = LocalServers(kafka, postgres)
    try:
        yield _announce(
            Infrastructure(
                kafka.bootstrap_servers,
                postgres.dsn("").rstrip("/"),
                kafka.version,
                postgres.version,
                origin,
                run_id,
                servers,
            )
        )
    finally:
        if servers is not None:  # the processes running now, which a fault test may have replaced
            servers.stop()
        else:
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
