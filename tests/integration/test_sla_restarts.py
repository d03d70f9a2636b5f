"""Sla as a real process on a fast clock: a never-accepted case gets its yellow card, red card and each
escalation level exactly once, although sla is killed (SIGKILL) and restarted between them."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from contracts.envelope import decode_message
from contracts.events.routing import CaseAssigned
from runtime import kafka
from runtime.db import outbox
from services.sla.domain.calendar import SHANGHAI
from tests import factories
from tests.conftest import PORT_BASE
from tests.support import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)
SPEED = 1800.0  # one virtual hour every two real seconds
ORIGIN = datetime(2025, 3, 3, 8, 0, tzinfo=SHANGHAI)

# Natural-hour limits keep the test short (working-hour arithmetic is covered by the unit tests).
FAST_POLICY = """
version: 99
yellow_fraction: 0.75
escalation:
  - {level: 1, name: 部门负责人督办, after: {clock: natural, amount: 0}}
  - {level: 2, name: 区督查办督办, after: {clock: natural, amount: 3}}
  - {level: 3, name: 公开通报, after: {clock: natural, amount: 6}}
policies:
  - id: fast
    stages:
      sign_for: {clock: natural, amount: 4}
      reply: {clock: natural, amount: 200, yellow: false, red: false}
      case: {clock: natural, amount: 200, yellow: false, red: false}
"""


class SlaProcess:
    """``python -m services.sla`` with a fixed virtual clock, so restarts agree on the time."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None
        self.url = f"http://127.0.0.1:{env['GRIDLINE_HTTP_PORT']}"

    async def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.sla", cwd=REPO, env=self.env, stdout=out, stderr=out
            )

        async def ready() -> bool:
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()[-3000:]
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(self.url + "/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=90, every=0.2)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), timeout=30)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=30)
            except TimeoutError:
                await self.kill()


async def test_a_never_accepted_case_gets_each_card_and_level_once_across_kills(
    infrastructure, topic, producer, tmp_path
) -> None:
    database = f"it_sla_proc_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(database)
    policy = tmp_path / "policies.yaml"
    policy.write_text(FAST_POLICY, encoding="utf-8")
    anchor = time.time()
    env = dict(
        os.environ,
        GRIDLINE_ENVIRONMENT="test",
        GRIDLINE_KAFKA_BOOTSTRAP_SERVERS=infrastructure.kafka_bootstrap,
        GRIDLINE_POSTGRES_URL=infrastructure.postgres_url,
        GRIDLINE_DATABASE_NAME=database,
        GRIDLINE_CASE_EVENTS_TOPIC=topic,
        GRIDLINE_CONSUMER_GROUP=f"it-sla-{infrastructure.run_id}-{next(_names)}",
        GRIDLINE_HTTP_PORT=str(PORT_BASE + 150),
        GRIDLINE_LOG_JSON="false",
        GRIDLINE_SLA_POLICY_FILE=str(policy),
        GRIDLINE_SLA_CLOCK_SPEED=str(SPEED),
        GRIDLINE_SLA_CLOCK_ORIGIN=ORIGIN.isoformat(),
        GRIDLINE_SLA_CLOCK_ANCHOR=str(anchor),
        GRIDLINE_SLA_TIMER_IDLE_POLL_S="0.1",
    )
    sla = SlaProcess(env, tmp_path / "sla.log")
    # Event ids per (type, stage or level). Counting ids, not records: the outbox relay may publish a
    # record again after a kill (at-least-once), with the same id, which every consumer's inbox drops.
    seen: collections.defaultdict[tuple[str, object], set[str]] = collections.defaultdict(set)
    reader = kafka.create_consumer(
        infrastructure.kafka_bootstrap, f"it-reader-{infrastructure.run_id}", topic
    )
    await reader.start()

    async def read() -> None:
        while True:
            batches = await reader.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = decode_message(record.key, record.headers, record.value)
                    data = envelope.event.model_dump()
                    name = envelope.type.split(".")[2]
                    if envelope.source.endswith("/sla"):
                        seen[(name, data.get("stage") and str(data["stage"]) or data.get("level"))].add(
                            envelope.id
                        )

    reading = asyncio.create_task(read())

    def saw(*key: object) -> bool:
        return bool(seen.get(tuple(key)))

    try:
        await sla.start()
        case = factories.case_id()
        virtual_now = ORIGIN + timedelta(seconds=(time.time() - anchor) * SPEED)
        assigned = CaseAssigned(
            case_id=case,
            occurred_at=virtual_now,
            actor="routing",
            assignment_id="A1",
            assignee={"kind": "grid", "code": "370181001001", "name": "明水街道第一网格"},
            basis={"method": "operator"},
        )
        for event in (factories.case_received(case, appeal_type="help"), assigned):
            await producer.send_and_wait(topic, **_kafka(factories.message(event, topic)))

        for awaited in (
            ("deadline-approaching", "sign_for"),
            ("deadline-breached", "sign_for"),
            ("escalated", 2),
        ):
            await eventually(lambda awaited=awaited: asyncio.sleep(0, saw(*awaited)), timeout=120)
            await sla.kill()
            await sla.start()
        await eventually(lambda: asyncio.sleep(0, saw("escalated", 3)), timeout=120)

        await eventually(lambda: _outbox_drained(infrastructure.database_url(database)), timeout=60)
        end = await reader.end_offsets(list(reader.assignment()))

        async def caught_up() -> bool:
            return all([await reader.position(tp) >= offset for tp, offset in end.items()])

        await eventually(caught_up, timeout=60)
    finally:
        reading.cancel()
        await reader.stop()
        await sla.stop()

    cards = {key: len(ids) for key, ids in seen.items() if key[0] != "deadline-set"}
    assert cards == {
        ("deadline-approaching", "sign_for"): 1,
        ("deadline-breached", "sign_for"): 1,
        ("escalated", 1): 1,
        ("escalated", 2): 1,
        ("escalated", 3): 1,
    }, cards


async def _outbox_drained(url: str) -> bool:
    """True once sla has published every event it wrote (so the topic holds all it will ever emit)."""
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(outbox)  # the relay deletes what it publishes
            return (await conn.execute(query)).scalar_one() == 0
    finally:
        await engine.dispose()


def _kafka(message) -> dict:
    return {"value": message.value, "key": message.key.encode(), "headers": message.headers}
