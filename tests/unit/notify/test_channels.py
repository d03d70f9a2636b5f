"""The HTTP adapters' wire format and error classification, against httpx mock transports."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from services.notify.channels import DeliveryError, Outgoing
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
DIRECTORY = Directory(
    webhook_endpoints={"grid-app": WebhookEndpoint(url="http://grid.test/hook", secret="s")}
)


def client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_webhook_carries_a_verifiable_signature_and_the_delivery_id():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["request"] = request
        return httpx.Response(204)

    async with client(handler) as http:
        await WebhookSender(http, DIRECTORY, clock=lambda: 1_764_115_200).send(MESSAGE, None, "grid-app")
    request = seen["request"]
    body = request.content
    assert verify("s", 1_764_115_200, body, request.headers["X-Gridline-Signature"], now=1_764_115_200)
    assert request.headers["X-Gridline-Delivery"] == "n-1"
    assert orjson.loads(body)["data"] == {"citizen_phone_masked": "138****1234"}


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (410, False)]
)
async def test_webhook_answers_are_classified_as_worth_retrying_or_not(status, retryable):
    async with client(lambda request: httpx.Response(status)) as http:
        with pytest.raises(DeliveryError) as failure:
            await WebhookSender(http, DIRECTORY).send(MESSAGE, None, "grid-app")
    assert failure.value.retryable is retryable and failure.value.endpoint_fault


async def test_the_sms_gateway_gets_number_text_segments_and_an_idempotency_key():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["request"] = request
        return httpx.Response(202, json={"message_id": "n-1", "status": "accepted"})

    async with client(handler) as http:
        await SmsGatewaySender(http, "http://sms.test/", "k").send(MESSAGE, "13812341234", None)
    request = seen["request"]
    assert request.url == "http://sms.test/v1/sms"
    assert request.headers["Authorization"] == "Bearer k" and request.headers["Idempotency-Key"] == "n-1"
    assert orjson.loads(request.content) == {
        "message_id": "n-1", "to": "13812341234", "text": "请前往现场核查", "segments": 1
    }  # fmt: skip


async def test_a_gateway_failure_message_never_contains_the_phone_number():
    async with client(lambda request: httpx.Response(500, text="bad number 13812341234")) as http:
        with pytest.raises(DeliveryError) as failure:
            await SmsGatewaySender(http, "http://sms.test", "k").send(MESSAGE, "13812341234", None)
    assert "13812341234" not in str(failure.value)


async def test_the_contact_adapter_asks_intake_with_its_key_and_a_purpose_and_reads_the_phone():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["request"] = request
        return httpx.Response(200, json={"case_id": "ZQ1", "phone": "13812341234", "access_id": 7})

    async with client(handler) as http:
        contacts = IntakeContactDirectory(
            http, "http://intake.test", "/v1/intake/cases/{case_id}/contact", "key"
        )
        assert await contacts.phone_for("ZQ1", "cz_1") == "13812341234"
    request = seen["request"]
    assert request.url.path == "/v1/intake/cases/ZQ1/contact"
    assert request.url.params["purpose"] == "notify-sms" and request.headers["X-API-Key"] == "key"


async def test_a_case_without_contact_data_means_no_number_and_an_intake_outage_means_try_later():
    async with client(lambda request: httpx.Response(404)) as http:
        contacts = IntakeContactDirectory(http, "http://intake.test", "/c/{case_id}", "key")
        assert await contacts.phone_for("ZQ1", "cz_1") is None
    async with client(lambda request: httpx.Response(503)) as http:
        contacts = IntakeContactDirectory(http, "http://intake.test", "/c/{case_id}", "key")
        with pytest.raises(DeliveryError) as failure:
            await contacts.phone_for("ZQ1", "cz_1")
    assert failure.value.retryable and not failure.value.endpoint_fault
