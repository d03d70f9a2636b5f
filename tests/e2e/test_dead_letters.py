"""A malformed event on the case log lands in the DLQ with its reason; the services keep going."""

from __future__ import annotations

import asyncio

from devtools.sample import hotline_order
from runtime import kafka
from tests.e2e.test_walking_skeleton import wait_for_case
from tests.integration.test_consumer_loop import _read_all


async def _produce_garbage(bootstrap: str, topic: str) -> None:
    producer = kafka.create_producer(bootstrap, "e2e-poison")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b"{definitely not json",
            key=b"POISON-1",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"poison-1"),
                ("ce_source", b"/somewhere/else"),
                ("ce_type", b"gridline.case.received.v1"),
                ("ce_subject", b"POISON-1"),
                ("content-type", b"application/json"),
            ],
        )
    finally:
        await producer.stop()


def test_a_malformed_event_is_dead_lettered_by_every_consumer_and_the_next_case_still_flows(
    system, infrastructure, intake, cases
):
    asyncio.run(_produce_garbage(infrastructure.kafka_bootstrap, system.case_events_topic))
    case_id = intake.post("/v1/intake/hotline", json=hotline_order(1, seed=303)).json()["case_id"]
    wait_for_case(cases, case_id)

    consumers = {
        "gridline-intake",
        "gridline-routing",
        "gridline-sla",
        "gridline-notify",
        "gridline-projection",
    }
    dead = asyncio.run(
        _read_all(infrastructure, kafka.dlq_topic(system.case_events_topic), expected=len(consumers))
    )
    poison = [dict(r.headers) for r in dead if r.key == b"POISON-1"]
    assert {h["dlq_consumer"].decode() for h in poison} == consumers
    assert all(h["dlq_reason"] == b"bad-json" for h in poison)
    assert all(h["dlq_source_topic"].decode() == system.case_events_topic for h in poison)
