"""The benchmarks' own infrastructure: a fresh Kafka and PostgreSQL and a LocalSystem configured for them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools import infra
from devtools.system import LocalSystem
from runtime.settings import ServiceSettings

# Services as deployed, not as the tests run them: the relay's own poll interval (the tests poll faster),
# and no per-client rate limit (intake's would refuse the benchmark's own load).
BENCH_ENV = {
    "GRIDLINE_OUTBOX_POLL_INTERVAL_S": str(ServiceSettings.model_fields["outbox_poll_interval_s"].default),
    "GRIDLINE_RATE_LIMIT_PER_S": "1000000",
    "GRIDLINE_RATE_LIMIT_BURST": "1000000",
}


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    postgres: int
    service_offset: int  # added to each service's usual port (devtools.system.SERVICES)


@dataclass
class Stack:
    broker: infra.LocalKafka
    postgres: infra.LocalPostgres
    system: LocalSystem


@contextlib.contextmanager
def local_stack(
    work: Path,
    ports: Ports,
    services: Iterable[str],
    *,
    extra_databases: Iterable[str] = (),
    extra_env: dict[str, str] | None = None,
    statement_stats: bool = False,
    postgres_settings: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Kafka and PostgreSQL started fresh under ``work`` with the databases of ``services`` (and
    ``extra_databases``) created; the services' processes are the caller's to start. Everything is
    stopped on the way out. ``statement_stats``: PostgreSQL keeps pg_stat_statements;
    ``postgres_settings``: PostgreSQL's settings that differ from the local cluster's."""
    broker = infra.start_kafka(work / "kafka", ports.kafka, ports.kafka_controller, fresh=True)
    try:
        postgres = infra.start_postgres(
            work / "postgres",
            ports.postgres,
            fresh=True,
            statement_stats=statement_stats,
            server_settings=postgres_settings,
        )
        system = LocalSystem(
            kafka_bootstrap=broker.bootstrap_servers,
            postgres_url=f"postgresql://{postgres.user}@{postgres.host}:{postgres.port}",
            log_dir=work / "logs",
            port_offset=ports.service_offset,
            extra_env=BENCH_ENV | (extra_env or {}),
        )
        try:
            postgres.create_databases([system.database_name(name) for name in services] + [*extra_databases])
            yield Stack(broker, postgres, system)
        finally:
            system.stop()
            postgres.stop()
    finally:
        broker.stop()
