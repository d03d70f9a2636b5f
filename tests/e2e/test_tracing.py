"""One case's journey is one trace: from the hotline's POST through the broker to every consumer."""

from __future__ import annotations

import time

from devtools.sample import hotline_order
from tests.e2e.test_walking_skeleton import wait_for_case

CONSUMERS = {"gridline-intake", "gridline-routing", "gridline-sla", "gridline-notify", "gridline-projection"}


def test_a_hotline_case_is_followed_in_one_trace_across_every_service(intake, cases, trace_collector):
    response = intake.post("/v1/intake/hotline", json=hotline_order(1, seed=404))
    case_id = response.json()["case_id"]
    wait_for_case(cases, case_id)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = trace_collector.snapshot()
        received = [s for s in spans if s.attributes.get("gridline.case_id") == case_id and s.kind == 5]
        if {s.attributes.get("messaging.consumer.group.name") for s in received} >= CONSUMERS:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"receive spans for {case_id} not all seen: {received}")

    trace_ids = {s.trace_id for s in received}
    assert len(trace_ids) == 1, "every consumer's receive span belongs to the same trace"
    trace = [s for s in trace_collector.snapshot() if s.trace_id in trace_ids]
    names = {(s.service, s.name) for s in trace}
    assert ("gridline-intake", "POST /v1/intake/hotline") in names
    assert any(name.endswith(" publish") and service == "gridline-intake" for service, name in names)
    assert {s.service for s in received} == CONSUMERS  # service names match their consumer groups
    for span in trace:  # spans never carry personal data
        assert hotline_order(1, seed=404)["caller_phone"] not in str(span.attributes)
