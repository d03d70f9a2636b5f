"""CloudEvents 1.0 in Kafka binary mode: ``ce_*`` headers, JSON data, W3C ``traceparent`` header.

Encoding writes the binary-mode headers directly, exactly as the CloudEvents SDK's Kafka binding would
(``encode_event``; a test compares the two). A record shaped exactly as ``encode_event`` writes it is
decoded without the SDK too (the SDK cost more than everything else a consumer does per event); anything
else, and every error, takes the SDK's path. This module adds Gridline's rules (subject = case id = Kafka
key, type names from contracts.events, upcasting, validation).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from pydantic import ValidationError

from contracts.events import UPCASTERS, CaseEvent, event_class_for, upcast

_FORMAT = JSONFormat()
TRACE_HEADERS = ("traceparent", "tracestate")
# The headers encode_event writes; a record with any other header is decoded by the SDK.
_OWN_HEADERS = frozenset(
    {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "content-type",
        *TRACE_HEADERS,
    }
)
# RFC 3339 as the SDK writes it: both datetime.fromisoformat and the SDK's isoparse read it alike.
_RFC3339 = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")


class ContractError(ValueError):
    """A message on the log that does not honour the contract (it goes to the dead-letter topic)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Envelope:
    """A decoded event: its CloudEvents attributes and its validated payload."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    event: CaseEvent
    trace_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """A Kafka message ready to publish: what the outbox stores and the relay sends."""

    event_id: str
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes
    type: str


def encode_event(
    event: CaseEvent,
    *,
    source: str,
    topic: str,
    trace_headers: dict[str, str] | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> OutboundMessage:
    """Wrap a payload in a CloudEvent and encode it in Kafka binary mode; ``ce_time`` is ``time``, or
    now when unset (an event encoded ahead of its occurrence, like sla's prepared cards, gives it).

    The headers are written here, exactly as the SDK's binding writes them (``binary_headers``;
    tests/unit/test_contracts.py compares the two): building and validating the SDK's CloudEvent object
    cost more than the rest of firing an sla timer. Records it writes are decoded
    without the SDK as well (``_decode_own``)."""
    # Serialised once, with orjson, as the SDK passes bytes data through unchanged.
    value = orjson.dumps(event.model_dump(mode="json"))
    type_name = event.type_name()
    event_id = event_id or str(uuid.uuid4())
    headers = binary_headers(event_id, source, type_name, event.case_id, time or datetime.now(UTC))
    for name, header in (trace_headers or {}).items():
        if name in TRACE_HEADERS:
            headers.append((name, header.encode()))
    return OutboundMessage(
        event_id=event_id, topic=topic, key=event.case_id, headers=headers, value=value, type=type_name
    )


def binary_headers(
    event_id: str, source: str, type_name: str, subject: str, time: datetime
) -> list[tuple[str, bytes]]:
    """The CloudEvents headers of a JSON event in Kafka binary mode, in the SDK's order (its
    ``partitionkey`` extension is the Kafka key, not a header)."""
    stamp = time.isoformat()
    if stamp.endswith("+00:00"):
        stamp = stamp[:-6] + "Z"
    return [
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type_name.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", stamp.encode()),
        ("content-type", b"application/json"),
        ("ce_specversion", b"1.0"),
    ]


def decode_message(
    key: bytes | None, headers: list[tuple[str, bytes]] | tuple, value: bytes | None
) -> Envelope:
    """Decode and validate one Kafka record; raise ContractError saying exactly what is wrong."""
    header_map: dict[str, bytes] = {name: val for name, val in headers if val is not None}
    if value is not None:
        envelope = _decode_own(header_map, value)
        if envelope is not None:
            return envelope
    if "ce_specversion" not in header_map:
        raise ContractError("not-a-cloudevent", "missing ce_specversion header")
    if value is None:
        raise ContractError("empty-value", "record has no value")
    try:
        ce = from_binary(KafkaMessage(headers=header_map, key=key, value=value), _FORMAT)
    except Exception as exc:  # the SDK raises several types for bad attributes or bodies
        raise ContractError("bad-envelope", f"{type(exc).__name__}: {exc}") from exc
    data = ce.get_data()
    if isinstance(data, bytes | str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ContractError("bad-json", str(exc)) from exc
    if not isinstance(data, dict):
        raise ContractError("bad-json", "event data is not a JSON object")
    type_name, data = upcast(str(ce.get_type()), data)
    cls = event_class_for(type_name)
    if cls is None:
        raise ContractError("unknown-type", type_name)
    try:
        event = cls.model_validate(data)
    except ValidationError as exc:
        raise ContractError("invalid-payload", _summarise(exc)) from exc
    subject = ce.get_subject()
    if subject is not None and subject != event.case_id:
        raise ContractError("subject-mismatch", f"subject {subject!r} != case_id {event.case_id!r}")
    time = ce.get_time() or event.occurred_at
    trace = {name: header_map[name].decode() for name in TRACE_HEADERS if name in header_map}
    return Envelope(
        id=str(ce.get_id()),
        type=type_name,
        source=str(ce.get_source()),
        subject=event.case_id,
        time=time,
        event=event,
        trace_headers=trace,
    )


def _decode_own(header_map: dict[str, bytes], value: bytes) -> Envelope | None:
    """The envelope of a valid record written by encode_event, else None (the SDK's path decides).

    Accepts only what the SDK's path accepts with the same result: the same attributes, no extensions,
    JSON data of a type without upcasters, a payload valid for its class and naming the subject.
    """
    if not header_map.keys() <= _OWN_HEADERS or header_map.get("content-type") != b"application/json":
        return None
    if header_map.get("ce_specversion") != b"1.0":
        return None
    raw_id, raw_source, raw_type = (
        header_map.get("ce_id"),
        header_map.get("ce_source"),
        header_map.get("ce_type"),
    )
    at = header_map.get("ce_time")
    if not (raw_id and raw_source and raw_type) or at is None or _RFC3339.fullmatch(at) is None:
        return None
    raw_subject = header_map.get("ce_subject")
    try:
        event_id, source, type_name = raw_id.decode(), raw_source.decode(), raw_type.decode()
        subject = None if raw_subject is None else raw_subject.decode()
        trace = {name: header_map[name].decode() for name in TRACE_HEADERS if name in header_map}
    except UnicodeDecodeError:
        return None
    if subject == "" or type_name in UPCASTERS:
        return None
    cls = event_class_for(type_name)
    if cls is None:
        return None
    try:
        event = cls.model_validate_json(value)
    except ValidationError:
        return None
    if subject is not None and subject != event.case_id:
        return None
    return Envelope(
        id=event_id,
        type=type_name,
        source=source,
        subject=event.case_id,
        time=datetime.fromisoformat(at.decode()),
        event=event,
        trace_headers=trace,
    )


def _summarise(exc: ValidationError) -> str:
    parts: list[Any] = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
