"""Carrying a case's ``FollowUpPlan`` out over HTTP, as its assignee, an operator and the citizen would.

Steps, each after the plan's delay (simulated hours × ``seconds_per_hour``, capped): 退单 by the first
assignee if planned, then 签收 by whoever holds it, 延期申请 and the operator's decision, 答复, and the
citizen's 回访评价 through intake; 不满意 reopens the case, and the driver does the rework (签收 and
答复 once more). Who holds a case comes from an ``AssignmentSource``: routing's query API
(``RoutingPoller``) or a department dispatch topic (``DispatchFeed``, fed by the caller's consumer).

Development keys only (deploy/local/api-keys.dev.yaml): departments without a key there are counted as
``no-key`` and left alone, like a department that has not connected its system yet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from devtools.workload.generator import KEYS, FollowUpPlan, Submission

OPERATOR_KEY = "dev-operator-key"
GRID_KEY = "dev-grid-key"
DEPARTMENTS_WITH_KEYS = frozenset({"CGJ", "STHJJ", "ZJJ", "SWJ"})


async def submit(client: Any, submission: Submission) -> str | None:
    """Post one submission to intake (or the gateway); its case id, or None if it was refused."""
    if submission.is_form:
        response = await client.post(submission.path, data=submission.body)
        ok = response.status_code in (200, 201)
        return response.json()[0]["service_request_id"] if ok else None
    response = await client.post(
        submission.path, json=submission.body, headers={"X-API-Key": submission.api_key}
    )
    return response.json()["case_id"] if response.status_code in (200, 201) else None


@dataclass(frozen=True)
class Assignment:
    """Who holds a case now."""

    case_id: str
    kind: str  # department | grid
    code: str
    attempt: int
    work_item_id: str | None = None

    @property
    def key(self) -> str | None:
        if self.kind == "grid":
            return GRID_KEY
        return f"dev-dept-{self.code.lower()}-key" if self.code in DEPARTMENTS_WITH_KEYS else None


class AssignmentSource(Protocol):
    async def next(self, case_id: str, after_attempt: int, timeout_s: float) -> Assignment | None:
        """The case's assignment with an attempt number above ``after_attempt`` (None: none came)."""
        ...


class RoutingPoller:
    """Asks routing (``GET /v1/routing/cases/{id}`` as an operator) until an assignment shows up."""

    def __init__(self, client: Any, interval_s: float = 1.0) -> None:
        self.client, self.interval_s = client, interval_s

    async def next(self, case_id: str, after_attempt: int, timeout_s: float) -> Assignment | None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(httpx.HTTPError, OSError):
                response = await self.client.get(
                    f"/v1/routing/cases/{case_id}", headers={"X-API-Key": OPERATOR_KEY}
                )
                current = response.json().get("assignment") if response.status_code == 200 else None
                if current and current["attempt"] > after_attempt:
                    assignee = current["assignee"]
                    return Assignment(case_id, assignee["kind"], assignee["code"], current["attempt"])
                if response.status_code == 200 and response.json().get("status") == "triage":
                    return None
            await asyncio.sleep(self.interval_s)
        return None


class DispatchFeed:
    """Assignments as department dispatch topics announce them; the caller ``offer``s each work item."""

    def __init__(self) -> None:
        self._latest: dict[str, Assignment] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def offer(self, item: dict[str, Any]) -> None:
        """One work item (the JSON value of a dispatch record)."""
        if item.get("action") != "assigned" or item.get("role") != "primary":
            return
        case_id = item["case_id"]
        seen = self._latest.get(case_id)
        if seen is None or item["attempt"] > seen.attempt:
            code = item["department"]["code"]
            self._latest[case_id] = Assignment(
                case_id, "department", code, item["attempt"], item["work_item_id"]
            )
            self._changed.setdefault(case_id, asyncio.Event()).set()

    async def next(self, case_id: str, after_attempt: int, timeout_s: float) -> Assignment | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    seen = self._latest.get(case_id)
                    if seen is not None and seen.attempt > after_attempt:
                        return seen
                    event = self._changed.setdefault(case_id, asyncio.Event())
                    event.clear()
                    await event.wait()
        return None

    def forget(self, case_id: str) -> None:
        self._latest.pop(case_id, None)
        self._changed.pop(case_id, None)


@dataclass
class FollowUpDriver:
    """Runs plans; ``outcomes`` counts what happened (``accept``, ``no-key:GAJ``, ``reply:409`` …)."""

    routing: Any  # an httpx.AsyncClient (or alike) on routing's base URL, or the gateway's
    intake: Any  # ... on intake's base URL, or the gateway's
    assignments: AssignmentSource
    seconds_per_hour: float = 1.0
    max_delay_s: float = 30.0
    assignment_timeout_s: float = 60.0
    outcomes: Counter[str] = field(default_factory=Counter)

    async def carry_out(self, case_id: str, source: str, plan: FollowUpPlan) -> None:
        """Every step of ``plan`` for one case; failures are counted, never raised."""
        try:
            await self._run(case_id, source, plan)
        except Exception as exc:  # a broken connection must not stop the other cases' follow-ups
            self.outcomes[f"error:{type(exc).__name__}"] += 1

    async def _run(self, case_id: str, source: str, plan: FollowUpPlan) -> None:
        held = await self._holder(case_id, 0)
        if held is None:
            return
        if plan.return_reason:
            await self._wait(plan.accept_after_h)
            if not await self._act(held, "return", plan.body("return")):
                return
            held = await self._holder(case_id, held.attempt)
            if held is None:
                return
        await self._wait(plan.accept_after_h)
        if not await self._act(held, "accept", {}):
            return
        if plan.extension:
            await self._wait(plan.reply_after_h / 4)
            if await self._act(held, "extension", plan.body("extension")):
                await self._act(held, "extension-decision", plan.body("extension-decision"), OPERATOR_KEY)
        await self._wait(plan.reply_after_h)
        if not await self._act(held, "reply", plan.body("reply")) or plan.feedback is None:
            return
        await self._wait(plan.feedback.after_h)
        if not await self._feedback(case_id, source, plan) or plan.feedback.satisfaction != "不满意":
            return
        rework = await self._holder(case_id, held.attempt)  # 重办: routing gives it back to the replier
        if rework is not None and await self._act(rework, "accept", {}):
            await self._wait(plan.reply_after_h / 2)
            await self._act(rework, "reply", {"reply": "重新办理：" + plan.reply, "resolved": True})

    async def _holder(self, case_id: str, after_attempt: int) -> Assignment | None:
        held = await self.assignments.next(case_id, after_attempt, self.assignment_timeout_s)
        if held is None:
            self.outcomes["not-assigned"] += 1
        elif held.key is None:
            self.outcomes[f"no-key:{held.code}"] += 1
            return None
        return held

    async def _wait(self, hours: float) -> None:
        await asyncio.sleep(min(self.max_delay_s, hours * self.seconds_per_hour))

    async def _act(self, held: Assignment, step: str, body: dict, key: str | None = None) -> bool:
        response = await self.routing.post(
            f"/v1/cases/{held.case_id}/{step}",
            json=body,
            headers={
                "X-API-Key": key or held.key or "",
                "Idempotency-Key": f"{held.case_id}:{step}:{held.attempt}",
            },
        )
        return self._count(step, response)

    async def _feedback(self, case_id: str, source: str, plan: FollowUpPlan) -> bool:
        """回访评价; intake accepts it once its consumer has seen the reply, so 409 is retried a while."""
        for attempt in range(8):
            response = await self.intake.post(
                f"/v1/cases/{case_id}/feedback",
                json=plan.body("feedback"),
                headers={"X-API-Key": KEYS.get(source, KEYS["hotline"])},
            )
            if response.status_code != 409 or attempt == 7:
                return self._count("feedback", response)
            await asyncio.sleep(0.5 * (attempt + 1))
        return False

    def _count(self, step: str, response: Any) -> bool:
        ok = response.status_code < 300
        self.outcomes[step if ok else f"{step}:{response.status_code}"] += 1
        return ok
