"""Intake in two kinds of process (``GRIDLINE_PROCESS_ROLE``): an HTTP process that only records appeals
(no Kafka client at all), and a worker that runs the case-event consumer and the outbox relay.

The worker's relay polls only once a minute here, so a CaseReceived that reaches Kafka within seconds
was published because PostgreSQL notified the worker of the HTTP process's commit (LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from contracts.events.routing import Assignee, AssigneeKind, CaseAssigned, RoutingBasis
from devtools.sample import hotline_order
from devtools.system import LocalSystem, ServiceProcess
from tests.conftest import PORT_BASE, TEST_DIR
from tests.e2e.conftest import DEV_KEYS, publish_event
from tests.e2e.test_intake_feeds import events_of

pytestmark = pytest.mark.e2e
POLL_ONCE_A_MINUTE = {"GRIDLINE_OUTBOX_POLL_INTERVAL_S": "60"}


@pytest.fixture(scope="module")
def split_intake(infrastructure) -> Iterator[tuple[LocalSystem, ServiceProcess, ServiceProcess]]:
    system = LocalSystem(
        kafka_bootstrap=infrastructure.kafka_bootstrap,
        postgres_url=infrastructure.postgres_url,
        log_dir=TEST_DIR / "logs" / infrastructure.run_id / "split-intake",
        port_offset=PORT_BASE + 300 - 8000,  # intake on PORT_BASE+301, its worker on +351
        topic_suffix=f".split{infrastructure.run_id}",
        database_suffix=f"_split{infrastructure.run_id}",
        extra_env=POLL_ONCE_A_MINUTE,
    )
    infrastructure.create_databases(system.database_name("intake"))
    front = system.process("intake", GRIDLINE_PROCESS_ROLE="http")
    worker = system.worker("intake")
    try:
        for process in (front, worker):
            process.start()
            process.wait_ready(120)
        yield system, front, worker
    finally:
        system.stop()


def test_the_http_process_serves_the_api_without_kafka_and_the_worker_only_its_health(split_intake):
    _, front, worker = split_intake
    front_ready = httpx.get(f"{front.url}/readyz", timeout=5).json()
    worker_ready = httpx.get(f"{worker.url}/readyz", timeout=5).json()
    assert front_ready == {"status": "ready", "checks": {"database": "ok"}}
    assert worker_ready["status"] == "ready" and worker_ready["checks"]["kafka"] == "ok"
    assert any(name.startswith("consumer:") for name in worker_ready["checks"])
    order = hotline_order(1, seed=3501)
    refused = httpx.post(f"{worker.url}/v1/intake/hotline", json=order, timeout=5)
    assert refused.status_code == 404  # the worker has no API routes


async def test_an_appeal_recorded_by_the_http_process_is_published_by_the_worker_at_once(split_intake):
    system, front, worker = split_intake
    headers = {"X-API-Key": DEV_KEYS["hotline"]}
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{front.url}/v1/intake/hotline", json=hotline_order(2, seed=3501), headers=headers
        )
        assert answer.status_code == 201, answer.text
        case_id = answer.json()["case_id"]
        (received,) = await events_of(system, case_id, 1, timeout=20)  # the relay's next poll: 60 s
        assert received.case_id == case_id

        # The worker's consumer keeps the appeal in step with the log; the HTTP process reads it.
        department = Assignee(kind=AssigneeKind.DEPARTMENT, code="CGJ", name="区城管局")
        assigned = CaseAssigned(
            case_id=case_id, occurred_at=datetime.now(UTC), actor="routing", assignment_id="a1",
            assignee=department, basis=RoutingBasis(method="operator", reason="test"),
        )  # fmt: skip
        await publish_event(system, assigned, source="/gridline/routing", client_id="e2e-intake-worker")
        agency = None
        for _ in range(100):
            read = await http.get(f"{front.url}/open311/v2/requests/{case_id}.json")
            agency = read.json()[0].get("agency_responsible")
            if agency:
                break
            await asyncio.sleep(0.2)
        assert agency == "区城管局"
