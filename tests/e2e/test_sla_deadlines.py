"""Through the running system: once routing assigns a hotline case, sla sets its deadlines on the log,
and an operator's pause and resume travel the log like every other event."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from contracts.events.routing import CaseAssigned
from devtools.sample import hotline_order
from tests.e2e.conftest import DEV_KEYS, client_for, publish_event

_orders = itertools.count(1)


@pytest.fixture
def sla(system):
    with client_for(system, "sla", DEV_KEYS["operator"]) as client:
        yield client


@pytest.fixture
def routing(system):
    with client_for(system, "routing", DEV_KEYS["operator"]) as client:
        yield client


def poll(what: str, probe: Callable[[], dict | None], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} not seen within {timeout}s")


def post_noise_appeal(intake: httpx.Client) -> str:
    """A 施工扰民 (08001) appeal, which routing's matrix assigns to a department."""
    n = next(_orders)
    order = hotline_order(7000 + n, seed=606) | {
        "category_code": "08001",
        "content": f"双山街道第{n}号楼旁工地凌晨两点还在浇筑混凝土，噪音很大。",
        "address": f"章丘区双山街道汇泉路{n}号",
    }
    response = intake.post("/v1/intake/hotline", json=order)
    assert response.status_code == 201, response.text
    return response.json()["case_id"]


async def assignment_of(system, routing: httpx.Client, case_id: str) -> str:
    """Routing's assignment of the case; if routing sent it elsewhere (triage), an operator-style
    CaseAssigned is put on the log instead, as routing would write it."""
    decided = poll(
        "routing's decision",
        lambda: (
            (r := routing.get(f"/v1/routing/cases/{case_id}")).status_code == 200
            and r.json()["status"] != "new"
            and r.json()
            or None
        ),
    )
    if decided.get("assignment"):
        return decided["assignment"]["assignment_id"]
    event = CaseAssigned(
        case_id=case_id,
        occurred_at=datetime.now(UTC),
        actor="e2e-operator",
        assignment_id=f"E2E-{case_id}",
        assignee={"kind": "department", "code": "ZJJ", "name": "区住建局"},
        basis={"method": "operator"},
    )
    await publish_event(system, event, source="/gridline/routing", client_id="e2e-sla")
    return event.assignment_id


def timeline_types(cases: httpx.Client, case_id: str) -> list[str]:
    response = cases.get(f"/v1/cases/{case_id}")
    return [e["event_type"] for e in response.json()["timeline"]] if response.status_code == 200 else []


async def test_an_assigned_hotline_case_gets_deadlines_that_an_operator_can_pause_and_resume(
    system, intake, cases, sla, routing
) -> None:
    case_id = post_noise_appeal(intake)
    assignment_id = await assignment_of(system, routing, case_id)

    def stage_deadlines() -> dict | None:
        response = sla.get(f"/v1/sla/cases/{case_id}/deadlines")
        if response.status_code != 200:
            return None
        found = {d["stage"]: d for d in response.json()["deadlines"]}
        return found if found.get("reply", {}).get("assignment_id") == assignment_id else None

    deadlines = await asyncio.to_thread(poll, "sla's deadlines for the assignment", stage_deadlines)
    assert {"sign_for", "reply", "case"} <= set(deadlines)
    reply = deadlines["reply"]
    assert reply["state"] == "running" and reply["generation"] >= 1
    assert datetime.fromisoformat(reply["due_at"]) > datetime.fromisoformat(reply["started_at"])
    await asyncio.to_thread(
        poll,
        "DeadlineSet events in the case timeline",
        lambda: timeline_types(cases, case_id).count("gridline.case.deadline-set.v1") >= 3 or None,
    )

    paused = sla.post(f"/v1/sla/cases/{case_id}/pause", json={"reason": "waiting for citizen"})
    assert paused.status_code == 200, paused.text
    assert "reply" in paused.json()["stages"]
    assert sla.post(f"/v1/sla/cases/{case_id}/pause", json={"reason": "again"}).status_code == 409
    resumed = sla.post(f"/v1/sla/cases/{case_id}/resume")
    assert resumed.status_code == 200, resumed.text
    after = {d["stage"]: d for d in resumed.json()["case"]["deadlines"]}
    assert after["reply"]["state"] == "running" and after["reply"]["generation"] == reply["generation"] + 1

    def paused_and_resumed() -> bool | None:
        types = timeline_types(cases, case_id)
        return (
            "gridline.case.clock-paused.v1" in types and "gridline.case.clock-resumed.v1" in types
        ) or None

    await asyncio.to_thread(poll, "ClockPaused and ClockResumed in the timeline", paused_and_resumed)
