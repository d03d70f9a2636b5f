"""The follow-up driver carries a plan out in the right order, with the right keys, against fakes."""

from __future__ import annotations

import json

import httpx

from devtools.workload import Extension, Feedback, FollowUpPlan
from devtools.workload.followups import DispatchFeed, FollowUpDriver, RoutingPoller


def a_plan(**changes) -> FollowUpPlan:
    plan = {
        "return_reason": None,
        "accept_after_h": 0.5,
        "extension": None,
        "reply_after_h": 4.0,
        "reply": "已处理完毕。",
        "resolved": True,
        "feedback": Feedback("满意", True, None, 2.0),
    }
    return FollowUpPlan(**(plan | changes))


class FakeGridline:
    """Routing's assignments and actions, and intake's feedback, answering like the real services."""

    def __init__(self, assignees: list[str]) -> None:
        self.assignees = assignees  # department code per attempt
        self.attempt = 1
        self.calls: list[tuple[str, str, str]] = []  # (path, API key, body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("X-API-Key", "")
        path = request.url.path
        self.calls.append((path, key, request.content.decode()))
        if request.method == "GET":
            code = self.assignees[self.attempt - 1]
            assignment = {"assignee": {"kind": "department", "code": code}, "attempt": self.attempt}
            return httpx.Response(200, json={"status": "assigned", "assignment": assignment})
        if path.endswith("/return") or (path.endswith("/feedback") and "不满意" in request.content.decode()):
            self.attempt += 1
        return httpx.Response(200, json={"status": "ok", "events": ["x"]})

    def driver(self) -> FollowUpDriver:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler), base_url="http://fake")
        return FollowUpDriver(client, client, RoutingPoller(client, 0.0), seconds_per_hour=0.0)

    def steps(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for path, _, _ in self.calls if "/v1/cases/" in path]


async def test_a_plain_case_is_accepted_replied_and_rated_by_the_citizen():
    fake = FakeGridline(["CGJ"])
    await fake.driver().carry_out("ZQ1", "hotline", a_plan())
    assert fake.steps() == ["accept", "reply", "feedback"]
    keys = {path.rsplit("/", 1)[1]: key for path, key, _ in fake.calls if "/v1/cases/" in path}
    assert keys == {"accept": "dev-dept-cgj-key", "reply": "dev-dept-cgj-key", "feedback": "dev-hotline-key"}


async def test_a_returned_case_is_accepted_by_the_next_assignee_and_an_extension_is_decided_by_an_operator():
    fake = FakeGridline(["CGJ", "ZJJ"])
    plan = a_plan(return_reason="不属于本单位职责。", extension=Extension(5, "需协调。", True), feedback=None)
    await fake.driver().carry_out("ZQ2", "grid", plan)
    assert fake.steps() == ["return", "accept", "extension", "extension-decision", "reply"]
    by_step = {path.rsplit("/", 1)[1]: (key, body) for path, key, body in fake.calls if "/v1/cases/" in path}
    assert by_step["return"][0] == "dev-dept-cgj-key"
    assert by_step["accept"][0] == "dev-dept-zjj-key"
    assert by_step["extension-decision"] == (
        "dev-operator-key",
        json.dumps({"approved": True}).replace(" ", ""),
    )


async def test_a_dissatisfied_citizen_gets_the_case_reworked():
    fake = FakeGridline(["SWJ", "SWJ"])
    await fake.driver().carry_out("ZQ3", "open311", a_plan(feedback=Feedback("不满意", False, "没解决", 1.0)))
    assert fake.steps() == ["accept", "reply", "feedback", "accept", "reply"]
    assert next(key for path, key, _ in fake.calls if path.endswith("/feedback")) == "dev-open311-key"


async def test_a_department_without_a_development_key_is_left_alone():
    fake = FakeGridline(["GAJ"])
    driver = fake.driver()
    await driver.carry_out("ZQ4", "hotline", a_plan())
    assert fake.steps() == []
    assert driver.outcomes["no-key:GAJ"] == 1


async def test_the_dispatch_feed_hands_out_the_newest_primary_assignment():
    feed = DispatchFeed()
    item = {"action": "assigned", "role": "primary", "case_id": "ZQ5", "attempt": 1, "work_item_id": "w1",
            "department": {"code": "CGJ"}}  # fmt: skip
    feed.offer(item | {"role": "co-handler", "department": {"code": "ZJJ"}})
    feed.offer(item)
    first = await feed.next("ZQ5", 0, 1.0)
    assert (first.code, first.attempt, first.key) == ("CGJ", 1, "dev-dept-cgj-key")
    assert await feed.next("ZQ5", 1, 0.05) is None
