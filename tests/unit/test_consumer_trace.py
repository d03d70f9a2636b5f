"""An event's trace context reaches the events it causes whether or not the process exports traces."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import structlog

from contracts.envelope import Envelope
from runtime import telemetry
from runtime.consumer import Delivery, EventConsumer
from runtime.outbox import current_trace_headers
from tests import factories

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("exporting", [False, True])
def test_a_handled_event_passes_its_trace_on_and_names_its_case_in_the_logs(monkeypatch, exporting):
    monkeypatch.setattr(telemetry, "_enabled", exporting)  # True here: the no-op tracer (no provider)
    event = factories.case_received()
    envelope = Envelope(
        id="e-1",
        type=type(event).type_name(),
        source="/gridline/intake",
        subject=event.case_id,
        time=event.occurred_at,
        event=event,
        trace_headers={"traceparent": PARENT},
    )
    receiving = EventConsumer._receive_span(
        SimpleNamespace(name="gridline-test"), Delivery(envelope, "t", 0, 7)
    )  # type: ignore[arg-type]
    with receiving:
        carried = current_trace_headers()
        bound = structlog.contextvars.get_contextvars()

    assert carried["traceparent"] == PARENT
    assert bound == {"case_id": event.case_id, "event_type": envelope.type}
    assert current_trace_headers() == {} and structlog.contextvars.get_contextvars() == {}
