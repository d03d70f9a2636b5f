"""Gridline's event contracts: frozen pydantic payloads and the CloudEvents envelope for Kafka.

The contracts package is the source of truth for every event on the case log; JSON Schemas and the
AsyncAPI document under contracts/schemas and contracts/asyncapi.yaml are generated from it.
"""

from contracts.envelope import ContractError, Envelope, decode_message, encode_event
from contracts.events import EVENT_TYPES, CaseEvent, event_class_for

__all__ = [
    "EVENT_TYPES",
    "CaseEvent",
    "ContractError",
    "Envelope",
    "decode_message",
    "encode_event",
    "event_class_for",
]
