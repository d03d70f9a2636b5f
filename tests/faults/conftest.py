"""The system under fault: all five services as processes on the session's shared infrastructure, with
notify delivering to recording sinks. Sized by environment variables (``FaultSettings``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devtools.system import SERVICES, LocalSystem
from services.notify.config import DATA_DIR as NOTIFY_DATA
from tests.conftest import PORT_BASE, TEST_DIR
from tests.faults.sinks import WEBHOOK_PATH, RecordingSinks

FAULT_SERVICE_PORT_OFFSET = PORT_BASE + 200 - 8000  # services on PORT_BASE+201 ... +205
SMTP_PORT, SINK_HTTP_PORT = PORT_BASE + 620, PORT_BASE + 621
_systems = itertools.count(1)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GRIDLINE_FAULT_{name}", default)


@dataclass(frozen=True)
class FaultSettings:
    """How big and how rough a run is; every field is a ``GRIDLINE_FAULT_<NAME>`` variable."""

    cases: int = int(_env("CASES", "2000"))  # uniquely identified submissions
    seed_s: float = float(_env("SEED_S", "240"))  # seeding window: cases arrive at cases/seed_s per second
    kills: int = int(_env("KILLS", "3"))  # SIGKILLs per service during the window
    pg_outage_s: float = float(_env("PG_OUTAGE_S", "30"))  # PostgreSQL stopped this long
    seed: int = int(_env("SEED", "20269"))  # the RNG seed: same seed, same fault plan and submissions
    clients: int = int(_env("CLIENTS", "8"))  # concurrent client threads
    drain_s: float = float(_env("DRAIN_S", "1200"))  # how long the system may take to catch up
    log_level: str = _env("LOG_LEVEL", "INFO")  # the services' log level

    @property
    def rate(self) -> float:
        return self.cases / self.seed_s

    @property
    def budget_s(self) -> float:
        """The test's timeout: seeding, faults, drain and checking, generously."""
        return self.seed_s * 2 + self.drain_s + 900


@pytest.fixture(scope="session")
def fault_settings() -> FaultSettings:
    return FaultSettings()


@pytest.fixture(scope="module")
def sinks() -> Iterator[RecordingSinks]:
    running = RecordingSinks(SMTP_PORT, SINK_HTTP_PORT).start()
    yield running
    running.stop()


def recipients_file(directory: Path, webhook_url: str) -> Path:
    """notify's recipient table with the grid app's webhook pointed at the recording sink."""
    table = yaml.safe_load((NOTIFY_DATA / "recipients.yaml").read_text())
    for endpoint in table["webhook_endpoints"].values():
        endpoint["url"] = webhook_url
    path = directory / "recipients.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """Extra environment for every service of the module's system (a module may override this)."""
    return {}


@pytest.fixture(scope="module")
def fault_system(infrastructure, sinks, fault_settings, service_env) -> Iterator[LocalSystem]:
    """Five services on their own topics and databases, the only users of this module's sinks."""
    tag = f"faults{infrastructure.run_id}x{next(_systems)}"
    log_dir = TEST_DIR / "logs" / tag
    log_dir.mkdir(parents=True, exist_ok=True)
    system = LocalSystem(
        kafka_bootstrap=infrastructure.kafka_bootstrap,
        postgres_url=infrastructure.postgres_url,
        log_dir=log_dir,
        port_offset=FAULT_SERVICE_PORT_OFFSET,
        topic_suffix=f".{tag}",
        database_suffix=f"_{tag}",
    )
    system.extra_env.update(
        GRIDLINE_LOG_LEVEL=fault_settings.log_level,
        GRIDLINE_NOTIFY_SMTP_PORT=str(SMTP_PORT),
        GRIDLINE_NOTIFY_SMS_GATEWAY_URL=sinks.http_url,
        GRIDLINE_NOTIFY_RECIPIENTS_FILE=str(recipients_file(log_dir, sinks.http_url + WEBHOOK_PATH)),
        GRIDLINE_NOTIFY_INTAKE_URL=system.url("intake"),
        GRIDLINE_NOTIFY_DELIVERY_DLQ_TOPIC=delivery_dlq_topic(system),
        GRIDLINE_NOTIFY_QUIET_HOURS_START="00:00",  # equal ends: no quiet hours, whatever the hour
        GRIDLINE_NOTIFY_QUIET_HOURS_END="00:00",
        **service_env,
    )
    infrastructure.create_databases(*(system.database_name(name) for name in SERVICES))
    try:
        system.start(timeout=240)
        yield system
    finally:
        codes = system.stop()
        print(f"\nfault system exit codes after SIGTERM: {codes}; logs in {log_dir}")


def delivery_dlq_topic(system: LocalSystem) -> str:
    return f"gridline.notify.deliveries{system.topic_suffix}.dlq"
