"""Operators pause and resume a case's clocks; a case in triage runs on its case clock.

Same harness as test_sla_clocks.py: events through sla's consumer entry point, timers fired with an
injected clock, HTTP through the ASGI app on the same database and clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from contracts.events.routing import CaseSentToTriage, ExtensionDecided
from contracts.events.sla import DeadlineStage
from services.sla.bootstrap import build_app
from services.sla.domain.calendar import SHANGHAI
from services.sla.tables import timers
from tests import factories
from tests.integration.test_sla_clocks import MONDAY, Sla, assigned, kinds, sla  # noqa: F401

pytestmark = pytest.mark.integration
WAITING = {"reason": "waiting for citizen"}


@pytest.fixture
async def operator(sla: Sla) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    """sla's HTTP API on the test database and clock, as an operator."""
    app = build_app(sla.settings)
    app.state.sla = sla.ctx
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sla",
        headers={"X-API-Key": "dev-operator-key"},
    ) as client:
        yield client


async def assigned_case(sla: Sla, appeal_type: str = "help") -> str:  # noqa: F811
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type=appeal_type))
    await sla.apply(assigned(case, MONDAY))
    return case


async def pending(sla: Sla, case: str) -> set[tuple[str, str, int]]:  # noqa: F811
    async with sla.engine.connect() as conn:
        query = sa.select(timers).where(
            timers.c.case_id == case, timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None)
        )
        return {(row.stage, row.kind, row.generation) for row in (await conn.execute(query)).all()}


async def test_a_pause_cancels_the_cards_and_a_resume_moves_each_deadline_by_the_paused_office_time(
    sla: Sla,  # noqa: F811
    operator: httpx.AsyncClient,
) -> None:
    case = await assigned_case(sla)
    sla.clock.now = MONDAY + timedelta(hours=1)  # Monday 09:30
    paused = await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING)
    assert paused.status_code == 200, paused.text
    assert set(paused.json()["stages"]) == {"sign_for", "return_window", "reply", "case"}
    assert await pending(sla, case) == set()
    assert await sla.fire_until(MONDAY + timedelta(days=1, hours=1)) == 0  # no card while paused

    resumed = await operator.post(f"/v1/sla/cases/{case}/resume")  # Tuesday 09:30: one office day later
    assert resumed.status_code == 200, resumed.text
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert reply.state == "running" and reply.generation == 2 and reply.paused_seconds == 7.5 * 3600
    assert reply.due_at == datetime(2025, 3, 11, 17, 30, tzinfo=SHANGHAI)  # 5 working days + 1
    sign_for = await sla.deadline(case, DeadlineStage.SIGN_FOR)
    assert sign_for.due_at == datetime(2025, 3, 4, 14, 0, tzinfo=SHANGHAI)  # 4 office hours + 7.5
    assert {(stage, generation) for stage, _, generation in await pending(sla, case)} == {
        ("sign_for", 2),
        ("reply", 2),
        ("case", 2),
    }

    emitted = await sla.emitted(case)
    pauses = [data for name, data in emitted if name == "clock-paused"]
    resumes = [data for name, data in emitted if name == "clock-resumed"]
    assert {p["stage"] for p in pauses} == {"sign_for", "return_window", "reply", "case"}
    assert {p["reason"] for p in pauses} == {"waiting for citizen"}
    assert {r["paused_seconds"] for r in resumes} == {7.5 * 3600}
    moved = {d["stage"]: d["due_at"] for name, d in emitted[-8:] if name == "deadline-set"}
    assert datetime.fromisoformat(moved["reply"]) == reply.due_at


async def test_pausing_twice_is_a_conflict_but_a_retry_with_the_same_key_gets_the_first_answer(
    sla: Sla,  # noqa: F811
    operator: httpx.AsyncClient,
) -> None:
    case = await assigned_case(sla)
    key = {"Idempotency-Key": f"pause-{case}"}
    first = await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING, headers=key)
    retried = await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING, headers=key)
    assert first.status_code == retried.status_code == 200
    assert retried.json() == first.json() and retried.headers.get("idempotent-replayed") == "true"
    assert [n for n, _ in await sla.emitted(case)].count("clock-paused") == 4  # one per stage, once

    again = await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"].endswith("/clock-already-paused")
    assert again.json()["clocks"]["reply"] == "paused"
    other_body = await operator.post(f"/v1/sla/cases/{case}/pause", json={"reason": "另一原因"}, headers=key)
    assert other_body.status_code == 422

    assert (await operator.post(f"/v1/sla/cases/{case}/resume")).status_code == 200
    not_paused = await operator.post(f"/v1/sla/cases/{case}/resume")
    assert not_paused.status_code == 409 and not_paused.json()["type"].endswith("/clock-not-paused")


async def test_only_operators_pause_known_cases_with_a_reason(
    sla: Sla,  # noqa: F811
    operator: httpx.AsyncClient,
) -> None:
    case = await assigned_case(sla)
    for key in ("dev-grid-key", "dev-sre-key"):
        refused = await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING, headers={"X-API-Key": key})
        assert refused.status_code == 403
    assert (await operator.post(f"/v1/sla/cases/{case}/pause", json={"reason": ""})).status_code == 422
    unknown = await operator.post("/v1/sla/cases/nope/pause", json=WAITING)
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("/case-not-found")
    assert (await sla.deadline(case, DeadlineStage.REPLY)).state == "running"


async def test_a_card_shown_before_the_pause_is_not_shown_again_after_it(
    sla: Sla,  # noqa: F811
    operator: httpx.AsyncClient,
) -> None:
    case = await assigned_case(sla)
    await sla.fire_until(MONDAY + timedelta(hours=3, minutes=30))  # 12:00: sign-for yellow (11:30) shown
    assert ("deadline-approaching", "sign_for") in kinds(await sla.emitted(case))
    assert (await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING)).status_code == 200
    sla.clock.now = MONDAY + timedelta(days=1)
    assert (await operator.post(f"/v1/sla/cases/{case}/resume")).status_code == 200
    assert ("sign_for", "yellow", 2) not in await pending(sla, case)
    for day in range(1, 30):
        await sla.fire_until(MONDAY + timedelta(days=day))
    cards = [k for k in kinds(await sla.emitted(case)) if k[0].startswith("deadline-a") or "breached" in k[0]]
    assert cards.count(("deadline-approaching", "sign_for")) == 1
    assert cards.count(("deadline-breached", "sign_for")) == 1


async def test_an_extension_decided_while_paused_keeps_the_clock_paused(
    sla: Sla,  # noqa: F811
    operator: httpx.AsyncClient,
) -> None:
    case = await assigned_case(sla)
    assert (await operator.post(f"/v1/sla/cases/{case}/pause", json=WAITING)).status_code == 200
    decision = ExtensionDecided(
        case_id=case, occurred_at=MONDAY, actor="op", assignment_id="A1", approved=True, working_days=3
    )
    await sla.apply(decision)
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert reply.state == "paused" and reply.extension_days == 3 and reply.paused_at is not None
    assert await pending(sla, case) == set()


async def test_a_case_waiting_in_triage_runs_on_its_case_clock_and_gets_its_red_card(sla: Sla) -> None:  # noqa: F811
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(CaseSentToTriage(case_id=case, occurred_at=MONDAY, actor="routing", reason="无匹配规则"))
    case_clock = await sla.deadline(case, DeadlineStage.CASE)
    assert case_clock.started_at == MONDAY and case_clock.due_at == datetime(
        2025, 3, 10, 17, 30, tzinfo=SHANGHAI
    )

    await sla.apply(assigned(case, MONDAY + timedelta(days=2)))  # the operator assigns it later
    assert (await sla.deadline(case, DeadlineStage.CASE)).due_at == case_clock.due_at  # same clock
    await sla.fire_until(datetime(2025, 3, 10, 17, 30, tzinfo=SHANGHAI))
    assert ("deadline-breached", "case") in kinds(await sla.emitted(case))
