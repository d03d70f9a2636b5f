"""Intake's limits on a real process: an oversize body is 413 and a client over its budget 429 with
Retry-After, in problem+json on intake's own routes and as Open311's error array under /open311/v2/.

The limits are made small on a second intake process with its own database and topic, so the test can
reach them in a handful of requests without starving the shared system's clients.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devtools.sample import hotline_order
from devtools.system import ServiceProcess
from tests.conftest import TEST_SERVICE_PORT_OFFSET
from tests.e2e.api_surface import dev_key

pytestmark = pytest.mark.e2e
MAX_BODY = 4096
BURST = 3
HOTLINE = {"X-API-Key": dev_key("hotline-12345")}
PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def limited_intake(system, infrastructure) -> Iterator[str]:
    """An intake that takes bodies up to 4 KiB and 3 requests per key, then one per 100 s."""
    port = TEST_SERVICE_PORT_OFFSET + 8000 + 31
    database = f"gridline_intake_limits_{infrastructure.run_id}"
    infrastructure.create_databases(database)
    env = system.env_for("intake") | {
        "GRIDLINE_HTTP_PORT": str(port),
        "GRIDLINE_DATABASE_NAME": database,
        "GRIDLINE_CASE_EVENTS_TOPIC": f"{system.case_events_topic}.limits",
        "GRIDLINE_CONSUMER_GROUP": "gridline-intake-limits",
        "GRIDLINE_MAX_BODY_BYTES": str(MAX_BODY),
        "GRIDLINE_RATE_LIMIT_BURST": str(BURST),
        "GRIDLINE_RATE_LIMIT_PER_S": "0.01",
    }
    process = ServiceProcess("intake", port, env, system.log_dir / "intake-limits.log")
    process.start()
    try:
        process.wait_ready()
        yield process.url
    finally:
        process.stop()


def _assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    return body


def test_an_oversize_body_is_refused_with_413_whether_announced_or_streamed(limited_intake):
    order = hotline_order(1, seed=911) | {"content": "很" * MAX_BODY}
    announced = httpx.post(f"{limited_intake}/v1/intake/hotline", json=order, headers=HOTLINE, timeout=10)
    assert _assert_problem(announced, 413)["max_bytes"] == MAX_BODY

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must count what arrives
        yield b'{"content": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    streamed = httpx.post(
        f"{limited_intake}/v1/intake/hotline",
        content=chunks(),
        headers=HOTLINE | {"content-type": "application/json"},
        timeout=10,
    )
    _assert_problem(streamed, 413)

    open311 = httpx.post(
        f"{limited_intake}/open311/v2/requests.json",
        data={"api_key": dev_key("open311-demo-client"), "description": "很" * MAX_BODY},
        timeout=10,
    )
    assert open311.status_code == 413
    assert open311.json()[0]["code"] == 413


def test_a_client_over_its_budget_gets_429_with_retry_after_and_other_clients_do_not(limited_intake):
    url = f"{limited_intake}/v1/intake/hotline"
    answers = [
        httpx.post(url, json=hotline_order(10 + i, seed=911), headers=HOTLINE, timeout=10)
        for i in range(BURST + 1)
    ]
    assert [r.status_code for r in answers[:BURST]] == [201] * BURST, answers[0].text
    _assert_problem(answers[BURST], 429)
    assert int(answers[BURST].headers["retry-after"]) >= 1

    grid = httpx.post(
        f"{limited_intake}/v1/intake/grid", json={}, headers={"X-API-Key": dev_key("grid-app-mingshui")}
    )
    assert grid.status_code == 422  # another key's budget is untouched: it gets as far as validation

    browsing = [httpx.get(f"{limited_intake}/open311/v2/requests.json", timeout=10) for _ in range(BURST + 1)]
    assert [r.status_code for r in browsing[:BURST]] == [200] * BURST
    assert browsing[BURST].status_code == 429
    assert browsing[BURST].json()[0]["code"] == 429
    assert int(browsing[BURST].headers["retry-after"]) >= 1
