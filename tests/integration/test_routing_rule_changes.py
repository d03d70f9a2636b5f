"""A rule change applies to the running service: an operator activates a changed responsibility matrix
over HTTP, the same consumer handler decides the next case with the new version (no restart, no new
process), and a return (退单) of a case routed under the old version is re-routed under the new one and
says so, on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from contracts.envelope import decode_message, encode_event
from contracts.events.routing import CaseAssigned
from runtime import kafka, migrations
from runtime.consumer import Delivery, UnitOfWorkFactory, apply_in_unit
from runtime.outbox import OutboxRelay
from services.routing import consumer
from services.routing.bootstrap import MIGRATIONS, build_app, load_reference_data
from services.routing.config import RoutingSettings
from services.routing.refdata_files import read_bundle
from tests import factories

pytestmark = pytest.mark.integration
_names = itertools.count(1)
OPERATOR = {"X-API-Key": "dev-operator-key"}
STHJJ = {"X-API-Key": "dev-dept-sthjj-key"}
NOISE_RULE = "R-UM-06028"  # shipped matrix: 生态环境分局 (STHJJ), then CGJ, then GAJ


@dataclass
class RunningRouting:
    """Routing's app and its consumer's unit of work in this process, sharing one context (and rule cache),
    as in the service process; the lifespan is not run, so the test drives the outbox relay itself."""

    settings: RoutingSettings
    app: FastAPI
    unit_of_work: UnitOfWorkFactory
    client: httpx.AsyncClient

    async def receive(self, event) -> None:
        message = encode_event(event, source="/gridline/intake", topic=self.settings.case_events_topic)
        envelope = decode_message(message.key.encode(), message.headers, message.value)
        async with self.app.state.runtime.engine.begin() as conn:
            delivery = Delivery(envelope, self.settings.case_events_topic, 0, 0)
            await apply_in_unit(self.unit_of_work, conn, [delivery])


@pytest.fixture
async def routing(infrastructure) -> AsyncIterator[RunningRouting]:
    n = next(_names)
    database = f"it_routing_rules_{infrastructure.run_id}_{n}"
    infrastructure.create_databases(database)
    settings = RoutingSettings(
        environment="test",
        postgres_url=infrastructure.postgres_url,
        database_name=database,
        case_events_topic=f"gridline.case-events.itrules{infrastructure.run_id}{n}",
    )
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, settings.database_url)
    await load_reference_data(settings, actor="it")  # version 1, as `load-refdata` does
    topics = {settings.case_events_topic: 1} | {settings.dispatch_topic(c): 1 for c in ("STHJJ", "GAJ")}
    await kafka.ensure_topics(infrastructure.kafka_bootstrap, topics)
    app = build_app(settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing")
    yield RunningRouting(settings, app, consumer.unit_of_work(app.state.routing), client)
    await client.aclose()
    await app.state.runtime.engine.dispose()


def noise_case():
    return factories.case_received(
        category_code="06028",
        description="明水街道汇泉路夜里KTV噪声扰民",
        address="章丘区明水街道汇泉路",
    )


def matrix_moving_noise_to_police() -> list[dict]:
    """The shipped matrix with 噪声扰民 moved from 生态环境分局 to 公安分局 (then 城管局)."""
    return [r | {"assignees": ["GAJ", "CGJ"]} if r["id"] == NOISE_RULE else r for r in read_bundle().rules]


async def read_all(infrastructure, topic: str, expected: int, timeout: float = 20) -> list:
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=infrastructure.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    records: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            for part in (await reader.getmany(timeout_ms=500)).values():
                records.extend(part)
    finally:
        await reader.stop()
    return records


async def assignment_of(routing: RunningRouting, case_id: str) -> dict:
    response = await routing.client.get(f"/v1/routing/cases/{case_id}", headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()["assignment"]


async def test_a_rule_change_applies_to_the_next_decision_and_to_a_re_route_which_names_the_new_version(
    infrastructure, routing, producer
):
    first = noise_case()
    await routing.receive(first)
    before = await assignment_of(routing, first.case_id)
    assert before["assignee"]["code"] == "STHJJ" and before["basis"]["rule_set_version"] == 1

    change = {"label": "噪声扰民改由公安分局首办", "rules": matrix_moving_noise_to_police()}
    loaded = await routing.client.post("/v1/routing/rule-sets", json=change, headers=OPERATOR)
    assert loaded.status_code == 201, loaded.text
    assert loaded.json()["version"] == 2 and loaded.json()["changes"]["rules"]["changed"] == [NOISE_RULE]

    second = noise_case()
    await routing.receive(second)  # the same handler and rule cache that decided the first case
    decided = await assignment_of(routing, second.case_id)
    assert decided["assignee"]["code"] == "GAJ" and decided["basis"]["rule_set_version"] == 2
    assert "第2版职责清单" in decided["basis"]["reason"]

    returned = await routing.client.post(
        f"/v1/cases/{first.case_id}/return", json={"reason": "娱乐场所噪声不归环保"}, headers=STHJJ
    )
    assert returned.status_code == 200, returned.text
    assert returned.json()["assignment"]["assignee"]["code"] == "GAJ"  # version 1 would have said CGJ

    relay = OutboxRelay(routing.app.state.runtime.engine, producer)
    while await relay.publish_batch():
        pass
    records = await read_all(infrastructure, routing.settings.case_events_topic, expected=4)
    events = [decode_message(r.key, r.headers, r.value).event for r in records]
    assigned = [e for e in events if isinstance(e, CaseAssigned) and e.case_id == first.case_id]
    assert [(e.assignee.code, e.basis.rule_set_version) for e in assigned] == [("STHJJ", 1), ("GAJ", 2)]
    assert assigned[1].basis.reason.startswith("职责清单已由第1版更新为第2版")
    assert "按第2版职责清单规则 R-UM-06028" in assigned[1].basis.reason

    items = await read_all(infrastructure, routing.settings.dispatch_topic("GAJ"), expected=2)
    work = {item["case_id"]: item for item in (orjson.loads(r.value) for r in items)}
    assert {case: item["basis"]["rule_set_version"] for case, item in work.items()} == {
        first.case_id: 2,
        second.case_id: 2,
    }


async def test_loading_the_same_matrix_again_keeps_the_version_and_only_operators_may_load(routing):
    change = {"label": "噪声扰民改由公安分局首办", "rules": matrix_moving_noise_to_police()}
    first = await routing.client.post("/v1/routing/rule-sets", json=change, headers=OPERATOR)
    again = await routing.client.post(
        "/v1/routing/rule-sets", json=change | {"label": "same rules, other name"}, headers=OPERATOR
    )
    assert (first.status_code, first.json()["version"], first.json()["created"]) == (201, 2, True)
    assert (again.status_code, again.json()["version"], again.json()["created"]) == (200, 2, False)
    assert again.json()["label"] == "噪声扰民改由公安分局首办"

    shipped = {"label": "back to the shipped matrix", "rules": read_bundle().rules}
    back = await routing.client.post("/v1/routing/rule-sets", json=shipped, headers=OPERATOR)
    assert (back.status_code, back.json()["version"]) == (201, 1)  # an earlier version is re-activated

    unknown = [r | {"assignees": ["NOBODY"]} if r["id"] == NOISE_RULE else r for r in shipped["rules"]]
    refused = await routing.client.post(
        "/v1/routing/rule-sets", json={"label": "bad", "rules": unknown}, headers=OPERATOR
    )
    assert refused.status_code == 422 and "NOBODY" in refused.json()["detail"]
    forbidden = await routing.client.post("/v1/routing/rule-sets", json=change, headers=STHJJ)
    assert forbidden.status_code == 403

    listed = await routing.client.get("/v1/routing/rule-sets", headers=OPERATOR)
    assert [a["actor"] for a in listed.json()["audit"]][:3] == ["api:operator-console"] * 3


async def test_a_dry_run_decision_refuses_coordinates_off_the_globe_with_a_problem(routing) -> None:
    """Latitude and longitude are bounded as intake bounds them: a longitude of -1.8e308 in BD-09 (found by
    the API fuzzing) made the datum conversion raise, a 500; now a 422 problem names the field."""
    body = {"crs": "BD09", "lat": 2.2, "lon": -1.7976931348623157e308, "description": "噪声"}
    refused = await routing.client.post("/v1/routing/decisions", json=body, headers=OPERATOR)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "lon" in refused.text
    located = body | {"lat": 36.712, "lon": 117.5405}
    decided = await routing.client.post("/v1/routing/decisions", json=located, headers=OPERATOR)
    assert decided.status_code == 200, decided.text
