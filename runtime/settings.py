"""Settings base shared by every service (pydantic-settings, environment prefix ``GRIDLINE_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CASE_EVENTS_TOPIC = "gridline.case-events"


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set ``service_name``, ``http_port`` and ``database_name``.

    Every field can be set from the environment as ``GRIDLINE_<FIELD>`` (for example
    ``GRIDLINE_KAFKA_BOOTSTRAP_SERVERS``).
    """

    model_config = SettingsConfigDict(env_prefix="GRIDLINE_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", description="Deployment environment; production refuses development defaults."
    )
    service_name: str = Field(..., description="Service name used in logs, traces and CloudEvents source.")
    http_host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    http_port: int = Field(..., description="HTTP port of this service.")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    postgres_url: str = Field(
        "postgresql://gridline@127.0.0.1:15432",
        description="PostgreSQL server URL without a database; the service appends its own database name.",
    )
    database_name: str = Field(..., description="This service's own database.")
    case_events_topic: str = Field(CASE_EVENTS_TOPIC, description="The case event log topic.")
    case_events_partitions: int = Field(6, description="Partitions of the case event log when created.")
    kafka_replication_factor: int = Field(1, description="Replication factor of topics this service creates.")
    consumer_batch_size: int = Field(500, description="Most events a consumer handles in one transaction.")
    consumer_commit_interval_s: float = Field(
        1.0,
        ge=0,
        description="Most seconds between Kafka offset commits of a busy consumer (the database's inbox "
        "and tracking rows are the record; a commit only saves re-reading), and longest a tracking row waits "
        "for the positions of polls that brought only events this service ignores. 0: after every poll.",
    )
    process_role: Literal["all", "http", "worker"] = Field(
        "all",
        description=(
            "What this process runs. all: the HTTP API, the consumers, the outbox relay and background "
            "jobs. http: the HTTP API only (requests commit to the database and its outbox; no Kafka "
            "client at all). worker: the consumers, the relay and background jobs, with only the health "
            "and metrics endpoints; its relay is woken by the database (LISTEN/NOTIFY) when an http "
            "process commits outbox rows. A busy intake runs one or more http processes beside a worker."
        ),
    )
    consumer_linger_s: float = Field(
        0.0,
        ge=0,
        description=(
            "After a poll that was not full, wait this long before the next, so the events that arrive "
            "meanwhile are handled in one transaction. Default 0, and 0.2 in a worker process, which "
            "nothing else keeps busy: polling eagerly, it handled a few events per transaction and spent "
            "three times the CPU per event."
        ),
    )
    outbox_linger_s: float = Field(
        0.0,
        ge=0,
        description=(
            "After a wake, wait this long before claiming outbox rows, so the rows of the commits that "
            "arrive meanwhile are published together. Default 0, and 0.02 in a worker process (woken by "
            "every commit of the http processes)."
        ),
    )
    outbox_batch_size: int = Field(500, description="Most outbox rows the relay publishes in one claim.")
    outbox_poll_interval_s: float = Field(0.2, description="Relay poll interval when no write woke it.")
    inbox_keep_days: float = Field(
        30,
        gt=0,
        description="Days an inbox row (an event a consumer handled) is kept before housekeeping deletes it. "
        "It only has to outlive a repeated delivery: a re-published event comes again within minutes.",
    )
    housekeeping_interval_s: float = Field(
        900,
        ge=0,
        description="Seconds between housekeeping passes of the worker (outbox, inbox and a service's own "
        "expiring rows; runtime/housekeeping.py). 0 turns housekeeping off.",
    )
    housekeeping_batch_size: int = Field(
        2000, ge=1, description="Most rows housekeeping deletes in one statement (one short transaction)."
    )
    gc_freeze_after_start: bool = Field(
        True,
        description="Once started, collect garbage once and freeze what is alive (gc.freeze): later "
        "collections skip the ~150,000 objects of modules, compiled statements and reference data "
        "(runtime/gc_tuning.py).",
    )
    gc_young_threshold: int = Field(
        10_000,
        ge=0,
        description="Young-generation threshold of the garbage collector once started (CPython's default "
        "700 was crossed every few requests by objects freed right after); 0 keeps CPython's.",
    )
    db_pool_size: int = Field(
        10,
        description=(
            "Most database connections of the process (SQLAlchemy pool, opened as needed and kept; no "
            "overflow connections, which were opened and closed again under bursts)."
        ),
    )
    db_pool_pre_ping: bool = Field(
        False,
        description=(
            "Test a pooled connection with a round trip each time it is taken. Off (the default), a "
            "connection the server closed is still replaced when taken, without a round trip; one dropped "
            "silently by the network fails one operation, answered or retried as an outage (503, rewind)."
        ),
    )
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool = Field(True, description="Emit JSON log lines (structlog); false gives console lines.")
    run_migrations_on_start: bool = Field(True, description="Apply Alembic migrations before serving.")
    api_keys_file: str | None = Field(
        None,
        description=(
            "YAML file of client API keys (runtime/auth.py). Unset: the development key file, which is "
            "refused in production."
        ),
    )
    fault_exit_after_db_commit: int = Field(
        0,
        description=(
            "Fault injection for tests: hard-exit the process right after the N-th consumer database "
            "commit and before the Kafka offset commit. 0 disables it. Refused in production."
        ),
    )

    @property
    def database_url(self) -> str:
        """SQLAlchemy async URL of this service's database."""
        base = self.postgres_url.rstrip("/")
        if base.startswith("postgresql://"):
            base = "postgresql+asyncpg://" + base.removeprefix("postgresql://")
        return f"{base}/{self.database_name}"

    def model_post_init(self, __context: object) -> None:
        if self.process_role == "worker":
            for name, linger in (("consumer_linger_s", 0.2), ("outbox_linger_s", 0.02)):
                if name not in self.model_fields_set:
                    setattr(self, name, linger)
        if self.environment == "production" and self.fault_exit_after_db_commit:
            raise ValueError("fault injection is not allowed in production")
        if self.environment == "production" and not self.api_keys_file:
            raise ValueError("GRIDLINE_API_KEYS_FILE must be set in production")
