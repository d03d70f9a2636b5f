"""A case posted to intake reaches the right department's dispatch topic (read by a plain aiokafka
consumer, as a department's own system would), and the department answers through routing's HTTP API."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from devtools.sample import hotline_order
from tests.e2e.conftest import DEV_KEYS, client_for

DEPARTMENT_KEYS = {code: f"dev-dept-{code.lower()}-key" for code in ("CGJ", "STHJJ", "ZJJ", "SWJ")}
_orders = itertools.count(1)


@pytest.fixture
def departments(system):
    clients = {code: client_for(system, "routing", key) for code, key in DEPARTMENT_KEYS.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def operator(system):
    with client_for(system, "routing", DEV_KEYS["operator"]) as client:
        yield client


def post_construction_noise(intake) -> str:
    """A 施工扰民 (08001) appeal: the matrix says 住建局 first, then 城管局."""
    n = next(_orders)
    order = hotline_order(9000 + n, seed=404) | {
        "category_code": "08001",
        "content": f"明水街道第{n}号工地夜间施工扰民，凌晨还在打桩。",
        "address": f"章丘区明水街道山泉路{n}号工地",
    }
    response = intake.post("/v1/intake/hotline", json=order)
    assert response.status_code == 201, response.text
    return response.json()["case_id"]


def routed(operator: httpx.Client, case_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = operator.get(f"/v1/routing/cases/{case_id}")
        if response.status_code == 200 and response.json()["status"] != "new":
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"routing did not decide {case_id} within {timeout}s")


async def work_item_for(system, department: str, case_id: str, timeout: float = 30) -> dict:
    """Read the department's dispatch topic from the start, like a department's own consumer."""
    topic = f"gridline.dispatch.{department.lower()}{system.topic_suffix}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=system.kafka_bootstrap,
        group_id=f"e2e-dept-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    item = orjson.loads(record.value)
                    if item["case_id"] == case_id and item["action"] == "assigned":
                        assert dict(record.headers)["ce_type"] == b"gridline.dispatch.work-item.v1"
                        return item
    finally:
        await consumer.stop()
    raise AssertionError(f"no work item for {case_id} on {topic} within {timeout}s")


async def test_a_hotline_case_reaches_the_responsible_departments_topic_and_is_accepted(
    system, intake, operator, departments
):
    case_id = post_construction_noise(intake)
    case = routed(operator, case_id)
    assert case["status"] == "assigned" and case["assignment"]["assignee"]["code"] == "ZJJ"
    assert case["assignment"]["basis"]["rule_id"] == "R-UM-08001"

    item = await work_item_for(system, "ZJJ", case_id)
    assert item["department"]["code"] == "ZJJ" and item["category"]["code"] == "UM-E08001"
    assert item["citizen"]["phone_masked"] and "****" in item["citizen"]["phone_masked"]

    key = {"Idempotency-Key": f"accept-{case_id}"}
    accepted = departments["ZJJ"].post(f"/v1/cases/{case_id}/accept", headers=key)
    retried = departments["ZJJ"].post(f"/v1/cases/{case_id}/accept", headers=key)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and retried.json() == accepted.json()
    assert retried.headers.get("idempotent-replayed") == "true"


async def test_a_return_goes_to_the_next_department_and_a_second_return_to_triage(
    system, intake, operator, departments
):
    case_id = post_construction_noise(intake)
    routed(operator, case_id)

    no_reason = departments["ZJJ"].post(f"/v1/cases/{case_id}/return", json={"reason": ""})
    assert no_reason.status_code == 422
    first = departments["ZJJ"].post(f"/v1/cases/{case_id}/return", json={"reason": "夜间施工噪音属城管执法"})
    assert first.status_code == 200, first.text
    assert first.json()["assignment"]["assignee"]["code"] == "CGJ" and first.json()["returns"] == 1
    item = await work_item_for(system, "CGJ", case_id)
    assert item["attempt"] == 2 and "已退单" in item["basis"]["reason"]
    assert departments["ZJJ"].post(f"/v1/cases/{case_id}/accept").status_code == 404  # no longer theirs

    second = departments["CGJ"].post(f"/v1/cases/{case_id}/return", json={"reason": "工地审批归住建"})
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "triage" and second.json()["assignment"] is None

    assigned = operator.post(
        f"/v1/cases/{case_id}/assign", json={"to": {"code": "ZJJ"}, "reason": "仲裁：工地归住建"}
    )
    assert assigned.status_code == 200 and assigned.json()["assignment"]["assignee"]["code"] == "ZJJ"


def test_another_departments_key_gets_404_and_an_illegal_step_409_naming_the_status(
    intake, operator, departments
):
    case_id = post_construction_noise(intake)
    routed(operator, case_id)

    for code in ("CGJ", "SWJ"):
        foreign = departments[code].post(f"/v1/cases/{case_id}/accept")
        assert foreign.status_code == 404
        assert foreign.headers["content-type"].startswith("application/problem+json")
    assert departments["SWJ"].get(f"/v1/routing/cases/{case_id}").status_code == 404
    as_hotline = httpx.post(
        f"{str(operator.base_url).rstrip('/')}/v1/cases/{case_id}/accept",
        headers={"X-API-Key": DEV_KEYS["hotline"]},
        timeout=10,
    )
    assert as_hotline.status_code == 403
    assert (
        operator.post(f"/v1/cases/{case_id}/extension-decision", json={"approved": True}).status_code == 409
    )

    early = departments["ZJJ"].post(f"/v1/cases/{case_id}/reply", json={"reply": "已处理"})
    assert early.status_code == 409
    assert early.headers["content-type"].startswith("application/problem+json")
    assert early.json()["current_status"] == "assigned"
