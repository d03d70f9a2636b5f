"""The HTTP adapters' wire format and error classification, against a scripted HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider

from services.notify.channels import DeliveryError, Outgoing
from services.notify.channels.http import new_session
from services.notify.channels.sms import SmsGatewaySender
from services.notify.channels.webhook import WebhookSender
from services.notify.contacts import IntakeContactDirectory
from services.notify.domain.directory import Directory, WebhookEndpoint
from services.notify.domain.signing import verify

MESSAGE = Outgoing(
    notification_id="n-1", case_id="ZQ1", trigger_event_id="e-1", trigger_type="gridline.case.assigned.v1",
    recipient="grid:370114001001", template="grid_task", title="【网格任务】工单ZQ1", body="请前往现场核查",
    created_at=datetime(2026, 11, 26, tzinfo=UTC), payload={"citizen_phone_masked": "138****1234"},
)  # fmt: skip


@dataclass
class Seen:
    """The last request the server got: method, path, query, headers, body."""

    method: str = ""
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@contextlib.asynccontextmanager
async def server(status: int, body: bytes = b"", content_type: str = "application/json"):
    """A server answering every request with ``status`` and ``body``; yields (base URL, Seen, session)."""
    seen = Seen()

    async def answer(request: web.Request) -> web.Response:
        seen.method, seen.path, seen.query = request.method, request.path, dict(request.query)
        seen.headers, seen.body = dict(request.headers), await request.read()
        return web.Response(status=status, body=body or None, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        async with new_session(5) as session:
            yield str(test_server.make_url("")).rstrip("/"), seen, session
    finally:
        await test_server.close()


def directory(base: str) -> Directory:
    return Directory(webhook_endpoints={"grid-app": WebhookEndpoint(url=f"{base}/hook", secret="s")})


async def test_a_webhook_carries_a_verifiable_signature_and_the_delivery_id():
    async with server(204) as (base, seen, session):
        await WebhookSender(session, directory(base), clock=lambda: 1_764_115_200).send(
            MESSAGE, None, "grid-app"
        )
    assert (seen.method, seen.path) == ("POST", "/hook")
    assert verify("s", 1_764_115_200, seen.body, seen.headers["X-Gridline-Signature"], now=1_764_115_200)
    assert seen.headers["X-Gridline-Delivery"] == "n-1"
    assert orjson.loads(seen.body)["data"] == {"citizen_phone_masked": "138****1234"}


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (410, False)]
)
async def test_webhook_answers_are_classified_as_worth_retrying_or_not(status, retryable):
    async with server(status) as (base, _, session):
        with pytest.raises(DeliveryError) as failure:
            await WebhookSender(session, directory(base)).send(MESSAGE, None, "grid-app")
    assert failure.value.retryable is retryable and failure.value.endpoint_fault


async def test_the_sms_gateway_gets_number_text_segments_and_an_idempotency_key():
    accepted = orjson.dumps({"message_id": "n-1", "status": "accepted"})
    async with server(202, accepted) as (base, seen, session):
        await SmsGatewaySender(session, base + "/", "k").send(MESSAGE, "13812341234", None)
    assert (seen.method, seen.path) == ("POST", "/v1/sms")
    assert seen.headers["Authorization"] == "Bearer k" and seen.headers["Idempotency-Key"] == "n-1"
    assert orjson.loads(seen.body) == {
        "message_id": "n-1", "to": "13812341234", "text": "请前往现场核查", "segments": 1
    }  # fmt: skip


async def test_a_gateway_failure_message_never_contains_the_phone_number():
    async with server(500, b"bad number 13812341234", "text/plain") as (base, _, session):
        with pytest.raises(DeliveryError) as failure:
            await SmsGatewaySender(session, base, "k").send(MESSAGE, "13812341234", None)
    assert "13812341234" not in str(failure.value)


PATH = "/v1/intake/contacts/reveal"


def revealed(*contacts: tuple[str, str, str]) -> bytes:
    """Intake's answer holding (case_id, citizen_ref, phone) for each case found."""
    found = [{"case_id": c, "citizen_ref": r, "phone": p, "access_id": 7} for c, r, p in contacts]
    return orjson.dumps({"contacts": found, "not_found": []})


async def test_the_contact_adapter_asks_intake_for_the_phone_alone_with_its_key_and_a_purpose():
    async with server(200, revealed(("ZQ1", "cz_1", "13812341234"))) as (base, seen, session):
        contacts = IntakeContactDirectory(session, base, PATH, "key")
        assert await contacts.phone_for("ZQ1", "cz_1") == "13812341234"
    assert (seen.method, seen.path) == ("POST", PATH) and seen.headers["X-API-Key"] == "key"
    assert orjson.loads(seen.body) == {"case_ids": ["ZQ1"], "purpose": "notify-sms", "fields": ["phone"]}


async def test_lookups_made_while_one_is_answered_go_to_intake_together_and_each_gets_its_own_number():
    answer = revealed(("ZQ2", "cz_2", "13900000002"), ("ZQ3", "cz_3", "13900000003"))
    async with server(200, answer) as (base, seen, session):
        contacts = IntakeContactDirectory(session, base, PATH, "key")
        phones = await asyncio.gather(
            contacts.phone_for("ZQ2", "cz_2"), contacts.phone_for("ZQ3", "cz_3"),
            contacts.phone_for("ZQ4", "cz_4"), contacts.phone_for("ZQ2", "cz_2"),
        )  # fmt: skip
    assert phones == ["13900000002", "13900000003", None, "13900000002"]  # ZQ4: intake holds none
    assert orjson.loads(seen.body)["case_ids"] == ["ZQ2", "ZQ3", "ZQ4"]  # one request, each case once


async def test_a_phone_the_vault_holds_for_another_citizen_is_not_used():
    async with server(200, revealed(("ZQ1", "cz_2", "13812341234"))) as (base, _, session):
        contacts = IntakeContactDirectory(session, base, PATH, "key")
        assert await contacts.phone_for("ZQ1", "cz_1") is None


async def test_a_case_without_contact_data_means_no_number_and_an_intake_outage_means_try_later():
    nothing = orjson.dumps({"contacts": [], "not_found": ["ZQ1"]})
    async with server(200, nothing) as (base, _, session):
        contacts = IntakeContactDirectory(session, base, PATH, "key")
        assert await contacts.phone_for("ZQ1", "cz_1") is None
    async with server(503) as (base, _, session):
        contacts = IntakeContactDirectory(session, base, PATH, "key")
        with pytest.raises(DeliveryError) as failure:
            await contacts.phone_for("ZQ1", "cz_1")
    assert failure.value.retryable and not failure.value.endpoint_fault


async def test_an_unreachable_endpoint_is_a_retryable_fault_of_that_endpoint():
    async with server(204) as (base, _, session):
        pass  # the server is gone: its port refuses connections
    async with new_session(5) as session:
        with pytest.raises(DeliveryError) as failure:
            await WebhookSender(session, directory(base)).send(MESSAGE, None, "grid-app")
    assert failure.value.retryable and failure.value.endpoint_fault
    assert "webhook grid-app" in str(failure.value)


async def test_a_request_carries_the_trace_context_of_the_delivery():
    tracer = TracerProvider().get_tracer("test")
    async with server(204) as (base, seen, session):
        with tracer.start_as_current_span("deliver") as span:
            await WebhookSender(session, directory(base)).send(MESSAGE, None, "grid-app")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert seen.headers["traceparent"].split("-")[1] == trace_id
