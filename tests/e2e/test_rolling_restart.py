"""SIGTERM drains and commits: restarting every service in turn while cases keep arriving loses nothing."""

from __future__ import annotations

import threading
import time

import httpx

from devtools.sample import DEV_HOTLINE_KEY, hotline_order
from devtools.system import SERVICES
from tests.e2e.test_walking_skeleton import wait_for_case

CASES = 60


def post_until_accepted(url: str, order: dict, give_up_after: float = 120) -> str:
    """A hotline system's behaviour: retry the same order (same order number) until intake accepts it."""
    deadline = time.monotonic() + give_up_after
    last = "no answer"
    while True:
        try:
            response = httpx.post(url, json=order, headers={"X-API-Key": DEV_HOTLINE_KEY}, timeout=5)
            if response.status_code in (200, 201):
                return response.json()["case_id"]
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order['order_no']} never accepted; last answer: {last}")
        time.sleep(0.2)


def test_a_rolling_restart_of_every_service_under_load_loses_nothing(system, cases):
    url = f"{system.url('intake')}/v1/intake/hotline"
    accepted: list[str] = []

    def feed() -> None:
        for i in range(CASES):
            accepted.append(post_until_accepted(url, hotline_order(i, seed=707)))
            time.sleep(0.05)

    feeder = threading.Thread(target=feed)
    feeder.start()
    exit_codes = {}
    for name in ("projection", "routing", "sla", "notify", "intake"):
        time.sleep(0.5)
        exit_codes[name] = system.services[name].stop(timeout=30)
        restarted = system.process(name)
        restarted.start()
        restarted.wait_ready()
    feeder.join(timeout=300)

    # Graceful: each process ended on its own after SIGTERM (uvicorn re-raises the signal: -15), not killed.
    assert set(exit_codes) == set(SERVICES)
    assert all(code in (0, -15) for code in exit_codes.values()), exit_codes
    assert len(accepted) == CASES and len(set(accepted)) == CASES
    for case_id in accepted:
        case = wait_for_case(cases, case_id, timeout=60)
        received = [e for e in case["timeline"] if e["event_type"] == "gridline.case.received.v1"]
        assert len(received) == 1, case_id
