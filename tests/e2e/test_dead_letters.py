"""A malformed event on the case log lands in the DLQ with its reason; the services keep going."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from devtools.sample import hotline_order
from devtools.system import SERVICES
from runtime import kafka
from tests import factories
from tests.e2e.test_walking_skeleton import wait_for_case
from tests.integration.test_consumer_loop import _read_all
from tests.support import eventually


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
        await producer.send_and_wait(  # a type nobody knows: every consumer must judge it
            topic,
            b"{}",
            key=b"POISON-2",
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"poison-2"),
                ("ce_source", b"/somewhere/else"),
                ("ce_type", b"gridline.case.teleported.v1"),
                ("ce_subject", b"POISON-2"),
                ("content-type", b"application/json"),
            ],
        )
    finally:
        await producer.stop()


def test_a_malformed_event_is_dead_lettered_by_every_consumer_that_reads_its_type_and_the_next_case_flows(
    system, infrastructure, intake, cases
):
    asyncio.run(_produce_garbage(infrastructure.kafka_bootstrap, system.case_events_topic))
    case_id = intake.post("/v1/intake/hotline", json=hotline_order(1, seed=303)).json()["case_id"]
    wait_for_case(cases, case_id)

    # Intake does not consume CaseReceived (it writes them), so it passes over the poison undecoded;
    # every consumer that reads the type judges it, and dead-letters it.
    consumers = {
        "gridline-routing",
        "gridline-sla",
        "gridline-notify",
        "gridline-projection",
    }
    everyone = consumers | {"gridline-intake"}
    dead = asyncio.run(
        _read_all(
            infrastructure,
            kafka.dlq_topic(system.case_events_topic),
            expected=len(consumers) + len(everyone),
        )
    )
    poison = [dict(r.headers) for r in dead if r.key == b"POISON-1"]
    assert sorted(h["dlq_consumer"].decode() for h in poison) == sorted(consumers)
    assert all(h["dlq_reason"] == b"bad-json" for h in poison)
    assert all(h["dlq_source_topic"].decode() == system.case_events_topic for h in poison)
    unknown = [dict(r.headers) for r in dead if r.key == b"POISON-2"]
    assert sorted(h["dlq_consumer"].decode() for h in unknown) == sorted(everyone)
    assert all(h["dlq_reason"] == b"unknown-type" for h in unknown)


# --- schema drift: what the contract tolerates, and what it dead-letters -------------------------------

CONSUMERS = {f"gridline-{service}": service for service in SERVICES}


def _ce(type_name: str, event_id: str, subject: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"/e2e/drift"),
        ("ce_type", type_name.encode()),
        ("ce_subject", subject.encode()),
        ("content-type", b"application/json"),
    ]


def _drifted(message, **extra_fields) -> bytes:
    """The message's payload as a newer producer of the same type version might send it."""
    payload = orjson.loads(message.value) | extra_fields
    if payload.get("citizen"):
        payload["citizen"] = payload["citizen"] | {"preferred_channel": "wechat"}
    return orjson.dumps(payload)


async def _dead_letters_for(infrastructure, topic: str, key: bytes, expected: int) -> list:
    client = AIOKafkaConsumer(
        topic, bootstrap_servers=infrastructure.kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await client.start()
    found: list = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await client.getmany(timeout_ms=500)).values():
                found.extend(r for r in records if r.key == key)
    finally:
        await client.stop()
    return found


async def _inbox_outcomes(system, infrastructure, event_id: str) -> dict[str, str]:
    """Each consumer's inbox verdict on one event id (absent: not reached yet)."""
    outcomes = {}
    for consumer, service in CONSUMERS.items():
        conn = await asyncpg.connect(infrastructure.database_url(system.database_name(service)))
        try:
            outcome = await conn.fetchval(
                "SELECT outcome FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
            )
        finally:
            await conn.close()
        if outcome is not None:
            outcomes[consumer] = outcome
    return outcomes


async def test_drifted_events_are_tolerated_broken_ones_dead_lettered_with_their_reason_and_none_stalls(
    system, infrastructure
):
    case_id = f"DRIFT{uuid.uuid4().hex[:10].upper()}"  # one key: every record below shares a partition
    topic = system.case_events_topic
    received = factories.case_received(case_id, description="章丘区明水街道百脉泉路路灯不亮（schema drift）")
    received_message = factories.message(received, topic)
    closed_message = factories.message(factories.case_closed(case_id), topic)
    closed_v1 = "gridline.case.closed.v1"  # a type every consumer reads
    poison = {  # the reason each consumer must give -> (headers, value)
        "unknown-type": (_ce("gridline.case.teleported.v1", f"{case_id}-1", case_id), b"{}"),
        "unknown-type (a major version nobody upcasts)": (
            _ce("gridline.case.closed.v9", f"{case_id}-2", case_id),
            closed_message.value,
        ),
        "invalid-payload": (  # no occurred_at, no actor
            _ce(closed_v1, f"{case_id}-3", case_id),
            orjson.dumps({"case_id": case_id, "reason": "citizen_satisfied"}),
        ),
        "bad-json": (_ce(closed_v1, f"{case_id}-4", case_id), b'{"case_id": "' + b"\xff"),
        "subject-mismatch": (_ce(closed_v1, f"{case_id}-5", "SOMEBODY"), closed_message.value),
        "not-a-cloudevent": ([("content-type", b"application/json")], orjson.dumps({"case_id": case_id})),
    }
    # The same type versions from a newer producer: extra fields in the payload and in nested objects,
    # and a CloudEvents extension attribute nobody here knows. The contract says: ignore them.
    newer_received = _drifted(received_message, channel_details={"ivr_path": [1, 3]}, schema_minor=2)
    newer_closed = _drifted(closed_message, closed_by_rule="auto-close-7d")
    good = [
        ([*received_message.headers, ("ce_gridlineshard", b"7")], newer_received),
        (closed_message.headers, newer_closed),
    ]

    producer = kafka.create_producer(infrastructure.kafka_bootstrap, "e2e-drift")
    await producer.start()
    try:
        for headers, value in [*poison.values(), *good]:
            await producer.send_and_wait(topic, value, key=case_id.encode(), headers=headers)
    finally:
        await producer.stop()

    everyone_applied = {consumer: "applied" for consumer in CONSUMERS}

    async def last_event_applied_everywhere() -> bool:  # it sits behind all the poison
        return await _inbox_outcomes(system, infrastructure, closed_message.event_id) == everyone_applied

    await eventually(last_event_applied_everywhere, timeout=60, every=0.2)

    expected = len(poison) * len(CONSUMERS)
    dead = await _dead_letters_for(infrastructure, kafka.dlq_topic(topic), case_id.encode(), expected)
    headers_of = [dict(r.headers) for r in dead]
    judged = sorted(
        (h["dlq_consumer"].decode(), h["dlq_reason"].decode(), r.value)
        for h, r in zip(headers_of, dead, strict=True)
    )
    assert judged == sorted(
        (consumer, reason.split(" (")[0], value)
        for consumer in CONSUMERS
        for reason, (_headers, value) in poison.items()
    )  # each poison record once per consumer, with its reason, its bytes untouched
    assert all(h["dlq_error"] for h in headers_of)
    assert not {h.get("ce_id") for h in headers_of} & {
        received_message.event_id.encode(),
        closed_message.event_id.encode(),
    }  # the drifted events were applied, not dead-lettered

    async with httpx.AsyncClient(headers={"X-API-Key": "dev-operator-key"}, timeout=10) as http:
        projected = (await http.get(f"{system.url('projection')}/v1/cases/{case_id}")).json()
        assert projected["description"] == received.description
        timeline = {(e["event_type"], e["event_id"]) for e in projected["timeline"]}
        assert ("gridline.case.closed.v1", closed_message.event_id) in timeline
        assert (await http.get(f"{system.url('routing')}/v1/routing/cases/{case_id}")).status_code == 200
        assert (await http.get(f"{system.url('sla')}/v1/sla/cases/{case_id}/deadlines")).status_code == 200
