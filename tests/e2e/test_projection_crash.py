"""Kill the projection consumer between events: on restart nothing is lost and nothing applied twice."""

from __future__ import annotations

import re

import httpx

from devtools.sample import hotline_order
from tests.e2e.test_walking_skeleton import received_events, wait_for_case

FAULT_EXIT_CODE = 17


def duplicates_dropped(system) -> float:
    """How many redelivered events the running projection recognised and skipped (its own metric)."""
    text = httpx.get(f"{system.url('projection')}/metrics", timeout=5).text
    pattern = re.compile(r'^gridline_events_consumed_total\{[^}]*outcome="duplicate"[^}]*\} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


def test_killing_projection_between_two_events_loses_nothing_and_applies_nothing_twice(system, intake, cases):
    first = intake.post("/v1/intake/hotline", json=hotline_order(1, seed=202)).json()["case_id"]
    wait_for_case(cases, first)

    # 1. SIGKILL while idle; a case arrives while projection is down.
    system.services["projection"].kill()
    second = intake.post("/v1/intake/hotline", json=hotline_order(2, seed=202)).json()["case_id"]

    # 2. Restart with a fault: die right after the database commit, before the Kafka offset commit.
    crashing = system.process("projection", GRIDLINE_FAULT_EXIT_AFTER_DB_COMMIT="1")
    crashing.start()
    assert crashing.process.wait(120) == FAULT_EXIT_CODE

    # 3. Restart normally: the uncommitted batch is delivered again and must be recognised.
    restarted = system.process("projection")
    restarted.start()
    restarted.wait_ready()
    third = intake.post("/v1/intake/hotline", json=hotline_order(3, seed=202)).json()["case_id"]

    for case_id in (first, second, third):
        case = wait_for_case(cases, case_id)
        # Other services add events of their own; each event is folded exactly once.
        assert case["events_applied"] == len(case["timeline"]), case
        assert len({e["event_id"] for e in case["timeline"]}) == len(case["timeline"]), case
        assert received_events(case) == 1, case
    assert duplicates_dropped(system) >= 1  # the redelivery really happened, and was dropped
