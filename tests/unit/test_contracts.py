from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from contracts.envelope import ContractError, binary_headers, decode_message, encode_event
from contracts.events import EVENT_TYPES, CaseReceived
from contracts.generate import stale_files
from tests import factories


def test_an_event_survives_the_cloudevents_kafka_binary_round_trip():
    event = factories.case_received()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    message = encode_event(event, source="/gridline/intake", topic="t", trace_headers={"traceparent": trace})
    headers = dict(message.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"gridline.case.received.v1"
    assert headers["ce_subject"] == event.case_id.encode()
    assert headers["traceparent"] == trace.encode()
    assert message.key == event.case_id

    envelope = decode_message(message.key.encode(), message.headers, message.value)
    assert envelope.event == event
    assert envelope.id == message.event_id
    assert envelope.trace_headers == {"traceparent": trace}


@pytest.mark.parametrize(
    "event",
    [
        factories.case_received(),
        factories.deadline_breached("BP2025000001", datetime(2025, 3, 3, 17, 30, tzinfo=UTC)),
        factories.case_escalated("BP2025000002", 2),
    ],
    ids=["received", "breached", "escalated"],
)
def test_encoded_headers_and_value_are_the_cloudevents_sdks(event):
    message = encode_event(event, source="/gridline/sla", topic="t", event_id="e-1")
    stamp = dict(message.headers)["ce_time"].decode()
    sdk = to_binary(
        CloudEvent(
            attributes={
                "id": "e-1",
                "source": "/gridline/sla",
                "type": event.type_name(),
                "subject": event.case_id,
                "time": datetime.fromisoformat(stamp),
                "datacontenttype": "application/json",
            },
            data=message.value,
        ),
        JSONFormat(),
    )
    assert message.headers == list(sdk.headers.items())
    assert message.value == sdk.value


def test_a_time_without_microseconds_or_in_another_zone_is_written_as_the_sdk_writes_it():
    for time in (
        datetime(2025, 3, 3, 9, 0, tzinfo=UTC),
        datetime(2025, 3, 3, 17, 0, 0, 1, tzinfo=timezone(timedelta(hours=8))),
    ):
        ours = dict(binary_headers("e", "/s", "t", "c", time))["ce_time"]
        attributes = {"id": "e", "source": "/s", "type": "t", "subject": "c", "time": time}
        assert ours == to_binary(CloudEvent(attributes=attributes), JSONFormat()).headers["ce_time"]


def test_a_newer_producer_with_extra_fields_is_tolerated():
    event = factories.case_received()
    message = encode_event(event, source="/x", topic="t")
    value = message.value[:-1] + b',"field_from_the_future":42}'
    assert decode_message(None, message.headers, value).event == event


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, v: ([x for x in h if x[0] != "ce_specversion"], v), "not-a-cloudevent"),
        (lambda h, v: (h, b"{oops"), "bad-json"),
        (
            lambda h, v: ([(k, b"gridline.case.unheard-of.v1" if k == "ce_type" else x) for k, x in h], v),
            "unknown-type",
        ),
        (lambda h, v: (h, b'{"case_id": "C1"}'), "invalid-payload"),
        (lambda h, v: ([(k, b"OTHER" if k == "ce_subject" else x) for k, x in h], v), "subject-mismatch"),
    ],
)
def test_each_contract_violation_is_named(mutate, reason):
    message = encode_event(factories.case_received(), source="/x", topic="t")
    headers, value = mutate(list(message.headers), message.value)
    with pytest.raises(ContractError) as caught:
        decode_message(None, headers, value)
    assert caught.value.reason == reason


def every_kind_of_event() -> list:
    case, due = factories.case_id(), factories._at(None)
    return [
        factories.case_received(case),
        factories.case_assigned(case, "CGJ", area_code="370114001002"),
        factories.deadline_set(case, due),
        factories.deadline_breached(case, due),
        factories.assignment_returned(case),
        factories.case_transferred(case),
        factories.reply_submitted(case),
        factories.feedback_received(case),
        factories.notification_sent(case),
        factories.case_closed_at(case),
    ]


@pytest.mark.parametrize("event", every_kind_of_event(), ids=lambda e: type(e).__name__)
def test_our_own_records_decode_without_the_sdk_to_what_the_sdk_decodes(event):
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    message = encode_event(event, source="/gridline/x", topic="t", trace_headers=trace)
    direct = decode_message(message.key.encode(), message.headers, message.value)
    # an extension attribute is not our shape, so this one goes through the SDK
    through_sdk = decode_message(message.key.encode(), [*message.headers, ("ce_extra", b"1")], message.value)
    assert direct == through_sdk
    assert direct.time == datetime.fromisoformat(dict(message.headers)["ce_time"].decode())


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("ce_id", b"", "bad-envelope"),
        ("ce_specversion", b"0.9", "bad-envelope"),
        ("ce_subject", b"", "bad-envelope"),
        ("ce_time", b"yesterday", "bad-envelope"),
    ],
)
def test_a_record_that_is_not_quite_ours_is_judged_by_the_sdk(header, value, reason):
    message = encode_event(factories.case_received(), source="/x", topic="t")
    headers = [(k, value if k == header else v) for k, v in message.headers]
    with pytest.raises(ContractError) as caught:
        decode_message(None, headers, message.value)
    assert caught.value.reason == reason


def test_event_payloads_are_immutable():
    event = factories.case_received()
    with pytest.raises(Exception, match="frozen"):
        event.description = "changed"  # type: ignore[misc]


def test_type_names_are_versioned_and_unique():
    assert all(name.startswith("gridline.case.") and ".v" in name for name in EVENT_TYPES)
    assert EVENT_TYPES["gridline.case.received.v1"] is CaseReceived


def test_generated_schemas_and_asyncapi_are_up_to_date():
    assert stale_files() == [], "run `make contracts` and commit the result"
