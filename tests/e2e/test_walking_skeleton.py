"""A hotline appeal crosses intake, the outbox, Kafka and projection, and comes back over HTTP."""

from __future__ import annotations

import time

import httpx

from devtools.sample import hotline_order


def wait_for_case(cases: httpx.Client, case_id: str, *, events: int = 1, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = cases.get(f"/v1/cases/{case_id}")
        if response.status_code == 200 and response.json()["events_applied"] >= events:
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"case {case_id} not projected within {timeout}s (last: {response.status_code})")


def received_events(case: dict) -> int:
    return sum(e["event_type"] == "gridline.case.received.v1" for e in case["timeline"])


def test_a_hotline_case_posted_over_http_is_readable_after_crossing_kafka(intake, cases):
    order = hotline_order(1, seed=101)
    response = intake.post("/v1/intake/hotline", json=order)
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    assert response.headers["location"] == f"/v1/cases/{case_id}"

    case = wait_for_case(cases, case_id)

    assert case["status"] in {"received", "triage", "assigned"}  # routing may already have decided
    assert case["source"] == "hotline"
    assert case["external_id"] == order["order_no"]
    assert case["description"] == order["content"]
    assert case["citizen_phone_masked"] == order["caller_phone"][:3] + "****" + order["caller_phone"][-4:]
    # Routing, sla and notify may already have added their events; reception comes first, once.
    assert case["timeline"][0]["event_type"] == "gridline.case.received.v1"
    assert received_events(case) == 1
    assert order["caller_phone"] not in str(case)  # the full number never leaves intake


def test_resubmitting_the_same_order_returns_the_same_case_and_a_changed_one_conflicts(intake, cases):
    order = hotline_order(2, seed=101)
    first = intake.post("/v1/intake/hotline", json=order)
    again = intake.post("/v1/intake/hotline", json=order)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["case_id"] == first.json()["case_id"]
    assert again.json()["duplicate_submission"] is True

    changed = intake.post("/v1/intake/hotline", json={**order, "content": "另一件事"})
    assert changed.status_code == 409
    assert changed.headers["content-type"].startswith("application/problem+json")
    assert changed.json()["case_id"] == first.json()["case_id"]

    case = wait_for_case(cases, first.json()["case_id"])
    assert received_events(case) == 1  # one case, one CaseReceived, however many retries


def test_invalid_input_gets_a_problem_json_naming_each_field(intake):
    response = intake.post(
        "/v1/intake/hotline",
        json={"order_no": "", "called_at": "2026-11-26T09:30:00", "appeal_type": "抱怨", "content": "x"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422 and body["type"].endswith("/validation-error")
    located = {error["location"] for error in body["errors"]}
    assert {"body.order_no", "body.called_at", "body.appeal_type"} <= located


def test_intake_refuses_a_missing_key_with_401_and_a_wrong_scope_with_403(system):
    order = hotline_order(9, seed=101)
    anonymous = httpx.post(f"{system.url('intake')}/v1/intake/hotline", json=order, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    as_grid = httpx.post(
        f"{system.url('intake')}/v1/intake/hotline",
        json=order,
        headers={"X-API-Key": "dev-grid-key"},
        timeout=10,
    )
    assert as_grid.status_code == 403


def test_an_unknown_case_is_a_404_problem(cases):
    response = cases.get("/v1/cases/ZQ19700101000000")
    assert response.status_code == 404
    assert response.json()["type"].endswith("/case-not-found")
