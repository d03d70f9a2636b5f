"""Each native feed through the running system: realistic Chinese payloads come back from Kafka normalised."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.envelope import decode_message
from devtools.sample import hotline_order
from tests.e2e.conftest import DEV_KEYS, client_for

pytestmark = pytest.mark.e2e


async def events_of(system, case_id: str, count: int, timeout: float = 30) -> list:
    """The first ``count`` events of one case on the case log (read from the beginning)."""
    consumer = AIOKafkaConsumer(
        system.case_events_topic, bootstrap_servers=system.kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    found: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key == case_id.encode():
                        found.append(decode_message(r.key, r.headers, r.value).event)
    finally:
        await consumer.stop()
    assert len(found) >= count, f"only {len(found)} of {count} events of {case_id} on the log"
    return sorted(found, key=lambda e: e.occurred_at)[:count]


async def test_a_hotline_order_in_full_width_text_arrives_on_kafka_normalised_and_masked(system, intake):
    order = hotline_order(1, seed=3102) | {
        "caller_name": "王秀英",
        "caller_phone": "０５３１－８３２１　３０３０",
        "content": "  明水街道百脉泉路１２号　路灯不亮\n\n已经一周，请回电13905318888  ",
        "address": "章丘区明水街道明一社区百脉泉路１２号",
        "category_code": "9001",
        "coordinates": {"lat": 36.712, "lon": 117.5395, "crs": "BD09"},
    }
    response = intake.post("/v1/intake/hotline", json=order)
    assert response.status_code == 201, response.text
    (received,) = await events_of(system, response.json()["case_id"], 1)
    assert received.description == "明水街道百脉泉路12号路灯不亮已经一周，请回电139****8888"
    assert received.citizen.phone_masked == "0531****3030" and received.citizen.name_masked == "王**"
    assert received.town_code == "370114001000" and received.community_code == "370114001001"
    assert received.category == "noise" and received.location.reported_crs == "BD09"
    assert received.received_at.utcoffset().total_seconds() == 0
    assert "83213030" not in received.model_dump_json() and "13905318888" not in received.model_dump_json()


async def test_a_grid_report_resolved_on_the_spot_arrives_received_then_closed(system):
    report = {
        "report_id": "SS-0203-20261126-0001",
        "grid_code": "370114002003-02",
        "member_id": "WGY-0203-01",
        "event_class_code": "event:09006",
        "coordinates": {"lat": 36.7170, "lon": 117.5290, "crs": "GCJ02"},
        "address": "章丘区双山街道山泉路与汇泉路交叉口",
        "photos": ["https://files.example.cn/grid/ss0203/0001-before.jpg",
                   "https://files.example.cn/grid/ss0203/0001-after.jpg"],
        "description": "流动摊贩占道经营，已劝离",
        "found_at": "2026-11-26T07:45:00+08:00",
        "resolved_on_spot": True,
    }  # fmt: skip
    with client_for(system, "intake", DEV_KEYS["grid"]) as grid:
        response = grid.post("/v1/intake/grid", json=report)
    assert response.status_code == 201, response.text
    received, closed = await events_of(system, response.json()["case_id"], 2)
    assert received.source == "grid" and received.resolved_on_spot and received.category == "street_order"
    assert received.town_code == "370114002000" and len(received.attachments) == 2
    assert closed.reason == "resolved_on_spot"


def test_fifty_concurrent_retries_of_one_work_order_over_http_create_one_case(system):
    order = hotline_order(2, seed=3102)

    def post(_: int) -> httpx.Response:
        with client_for(system, "intake", DEV_KEYS["hotline"]) as client:
            return client.post("/v1/intake/hotline", json=order)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(post, range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.json()["case_id"] for r in responses}) == 1
