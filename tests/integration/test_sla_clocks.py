"""Sla on a real PostgreSQL: deadlines from case events, durable timers, holiday-table recomputation.

Events are applied through sla's consumer entry point (as the consumer loop would, inside one
transaction) and timers are fired with an injected clock, so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts.envelope import decode_message, encode_event
from contracts.events import CaseEvent, Urgency
from contracts.events.routing import (
    AssignmentAccepted,
    CaseAssigned,
    ExtensionDecided,
    ReplySubmitted,
)
from contracts.events.sla import DeadlineStage
from runtime import migrations
from runtime.consumer import Delivery
from runtime.db import outbox
from services.sla import consumer, handlers, store
from services.sla.book import ClockBook
from services.sla.bootstrap import build_app
from services.sla.config import SlaSettings
from services.sla.context import SlaContext
from services.sla.domain.calendar import SHANGHAI
from services.sla.tables import cases, deadlines, timers
from services.sla.timers import QUIET_S, TimerRunner
from tests import factories

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
_names = itertools.count(1)
MONDAY = datetime(2025, 3, 3, 8, 30, tzinfo=SHANGHAI)


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sla:
    engine: AsyncEngine
    ctx: SlaContext
    clock: FakeClock
    settings: SlaSettings

    async def apply(self, event: CaseEvent) -> None:
        message = encode_event(event, source="/gridline/tests", topic="t")
        delivery = Delivery(decode_message(message.key.encode(), message.headers, message.value), "t", 0, 0)
        async with self.engine.begin() as conn:
            await consumer.make_handler(self.ctx)(conn, delivery)

    async def fire_until(self, at: datetime) -> int:
        self.clock.now = at
        runner = TimerRunner(self.engine, self.ctx, lambda: None)
        fired = 0
        while count := await runner.fire_due():
            fired += count
        return fired

    async def emitted(self, case_id: str) -> list[tuple[str, dict]]:
        import orjson

        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(outbox).where(outbox.c.key == case_id).order_by(outbox.c.id))
            ).all()
        return [(r.event_type.split(".")[2], orjson.loads(r.value)) for r in rows]

    async def deadline(self, case_id: str, stage: DeadlineStage) -> sa.Row:
        async with self.engine.connect() as conn:
            query = sa.select(deadlines).where(
                deadlines.c.case_id == case_id, deadlines.c.stage == str(stage)
            )
            return (await conn.execute(query)).one()


async def new_sla(infrastructure) -> Sla:
    """A fresh migrated sla database and a context with a hand-driven clock (dispose its engine)."""
    name = f"it_sla_{infrastructure.run_id}_{next(_names)}"
    infrastructure.create_databases(name)
    url = infrastructure.database_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await asyncio.to_thread(migrations.upgrade, REPO / "services" / "sla" / "migrations", url)
    settings = SlaSettings(postgres_url=infrastructure.postgres_url, database_name=name, environment="test")
    engine = create_async_engine(url)
    clock = FakeClock(MONDAY)
    ctx = SlaContext.from_settings(settings)
    ctx.clock = clock
    return Sla(engine, ctx, clock, settings)


@pytest.fixture
async def sla(infrastructure) -> AsyncIterator[Sla]:
    """A fresh migrated sla database and a context with a hand-driven clock."""
    sla = await new_sla(infrastructure)
    yield sla
    await sla.engine.dispose()


def assigned(case_id: str, at: datetime, assignment: str = "A1") -> CaseAssigned:
    return CaseAssigned(
        case_id=case_id,
        occurred_at=at,
        actor="routing",
        assignment_id=assignment,
        assignee={"kind": "department", "code": "CGJ", "name": "区城管局"},
        basis={"method": "operator"},
    )


def kinds(emitted: list[tuple[str, dict]]) -> list[tuple[str, str | int]]:
    return [(name, data.get("stage") or data.get("level")) for name, data in emitted]


async def test_an_assignment_sets_every_stage_deadline_on_the_working_calendar(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="complaint"))
    await sla.apply(assigned(case, MONDAY))
    sets = {data["stage"]: data for name, data in await sla.emitted(case) if name == "deadline-set"}
    assert set(sets) == {"sign_for", "return_window", "reply", "case"}
    assert datetime.fromisoformat(sets["sign_for"]["due_at"]) == datetime(2025, 3, 3, 14, 0, tzinfo=SHANGHAI)
    assert datetime.fromisoformat(sets["reply"]["due_at"]) == datetime(2025, 3, 24, 17, 30, tzinfo=SHANGHAI)
    assert sets["reply"]["policy_id"] == "complaint-report" and sets["reply"]["clock"] == "working_days"
    assert sets["reply"]["calendar_basis"] == "chinese-calendar 1.11.0" and not sets["reply"]["provisional"]


async def test_a_never_accepted_case_gets_each_card_and_escalation_once(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(assigned(case, MONDAY))
    for hours in range(0, 24 * 30, 5):  # a month, five hours at a time, firing repeatedly
        await sla.fire_until(MONDAY + timedelta(hours=hours))
        await sla.fire_until(MONDAY + timedelta(hours=hours))
    fired = [k for k in kinds(await sla.emitted(case)) if k[0] != "deadline-set"]
    assert sorted(fired, key=str) == sorted(
        [
            ("deadline-approaching", "sign_for"),
            ("deadline-breached", "sign_for"),
            ("deadline-approaching", "reply"),
            ("deadline-breached", "reply"),
            ("deadline-breached", "case"),
            ("escalated", 1),
            ("escalated", 2),
            ("escalated", 3),
        ],
        key=str,
    )


async def test_concurrent_firing_loops_fire_every_timer_once_and_start_each_ladder_once(sla: Sla) -> None:
    cases = [factories.case_id() for _ in range(40)]
    for case in cases:
        await sla.apply(factories.case_received(case, appeal_type="help"))
        await sla.apply(assigned(case, MONDAY))
    sla.clock.now = MONDAY + timedelta(days=60)
    sla.ctx.settings.sla_timer_batch_size = 7  # many small batches, claimed side by side
    runner = TimerRunner(sla.engine, sla.ctx, lambda: None)
    fired = 0
    while counts := [n for n in await asyncio.gather(*(runner.fire_due() for _ in range(3))) if n]:
        fired += sum(counts)
    async with sla.engine.connect() as conn:
        rows = (await conn.execute(sa.select(timers.c.kind, timers.c.fired_at))).all()
    assert all(row.fired_at is not None for row in rows) and fired == len(rows)
    for case in cases:
        escalations = sorted(level for name, level in kinds(await sla.emitted(case)) if name == "escalated")
        assert escalations == [1, 2, 3]


async def pending_timers(sla: Sla, case_id: str) -> list[sa.Row]:
    async with sla.engine.connect() as conn:
        rows = await store.case_timers(conn, case_id)
    return [row for row in rows if row.fired_at is None and row.cancelled_at is None]


async def outbox_rows(sla: Sla, case_id: str) -> list[tuple]:
    async with sla.engine.connect() as conn:
        query = sa.select(outbox.c.event_id, outbox.c.headers, outbox.c.value).where(
            outbox.c.key == case_id, outbox.c.event_type != "gridline.case.deadline-set.v1"
        )
        return sorted(tuple(row) for row in (await conn.execute(query)).all())


async def test_events_prepared_ahead_are_written_when_due_exactly_as_firing_builds_them(
    sla: Sla, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [factories.case_id() for _ in range(3)]
    for case in cases:
        await sla.apply(factories.case_received(case, appeal_type="help"))
        await sla.apply(assigned(case, MONDAY))
    due = min(t.due_at for t in await pending_timers(sla, cases[0]))
    runner = TimerRunner(sla.engine, sla.ctx, lambda: None)
    sla.clock.now = due - timedelta(seconds=1)
    assert await runner.prepare() == 3  # each case's first timer, due in a second
    assert await runner.prepare() == 0  # prepared once
    assert await runner.fire_due() == 0  # not due yet
    sla.clock.now = due

    def not_built(rows: object) -> None:
        raise AssertionError("a prepared event was built again")

    monkeypatch.setattr(runner, "_messages", not_built)
    assert await runner.fire_due() == 3
    prepared = {case: await outbox_rows(sla, case) for case in cases}
    assert all(len(rows) == 1 for rows in prepared.values())
    event = orjson.loads(prepared[cases[0]][0][2])
    assert datetime.fromisoformat(event["occurred_at"]) == due  # the card occurred when it fell due

    async with sla.engine.begin() as conn:  # undo the firing, then fire the same timers unprepared
        await conn.execute(sa.delete(outbox).where(outbox.c.key.in_(cases), outbox.c.headers.isnot(None)))
        await conn.execute(sa.update(timers).where(timers.c.fired_at == due).values(fired_at=None))
    monkeypatch.undo()
    built = TimerRunner(sla.engine, sla.ctx, lambda: None)
    sla.clock.now = due + timedelta(minutes=5)  # firing late changes nothing in the event
    assert await built.fire_due() == 3
    assert {case: await outbox_rows(sla, case) for case in cases} == prepared


async def test_a_timer_cancelled_after_preparing_does_not_fire_and_one_stored_after_it_does(
    sla: Sla,
) -> None:
    early, late = factories.case_id(), factories.case_id()
    await sla.apply(factories.case_received(early, appeal_type="help"))
    await sla.apply(assigned(early, MONDAY))
    first = min(await pending_timers(sla, early), key=lambda t: t.due_at)
    runner = TimerRunner(sla.engine, sla.ctx, lambda: None)
    sla.clock.now = first.due_at - timedelta(seconds=1)
    assert await runner.prepare() == 1
    async with sla.engine.begin() as conn:
        book = await ClockBook.open(conn, [early, late])
        book.cancel_timers(early, sla.clock.now, stages=[first.stage])
        book.ensure_case(late)
        book.schedule([store.NewTimer(late, "reply", "yellow", 1, first.due_at, first.due_at, "A1")])
        await book.write()
    sla.clock.now = first.due_at
    fired = 0
    while count := await runner.fire_due():
        fired += count
    assert fired == 1
    assert [k for k in kinds(await sla.emitted(early)) if k[0] != "deadline-set"] == []
    assert kinds(await sla.emitted(late)) == [("deadline-approaching", "reply")]


async def test_the_active_timer_count_waits_while_timers_fall_due(sla: Sla) -> None:
    """Counting a million timers costs PostgreSQL ~160 ms: not while a burst of cards needs it."""
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(assigned(case, MONDAY))
    first = min(await pending_timers(sla, case), key=lambda t: t.due_at)
    runner = TimerRunner(sla.engine, sla.ctx, lambda: None)
    sla.clock.now = first.due_at - timedelta(seconds=1)
    assert runner._quiet()  # nothing prepared, nothing fired
    assert await runner.prepare() == 1
    assert not runner._quiet()  # a prepared timer falls due within QUIET_S
    sla.clock.now = first.due_at
    assert await runner.fire_due() == 1
    assert not runner._quiet()  # a batch just fired
    await asyncio.sleep(QUIET_S)
    assert runner._quiet()


async def just_before_the_first_red_card(sla: Sla) -> tuple[str, sa.Row]:
    """A never-accepted case, every timer before its first red card fired; the case and that timer."""
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(assigned(case, MONDAY))
    red = min((t for t in await pending_timers(sla, case) if t.kind == "red"), key=lambda t: t.due_at)
    await sla.fire_until(red.due_at - timedelta(microseconds=1))
    return case, red


async def test_the_ladder_climbs_one_timer_at_a_time_and_a_reply_stops_it(sla: Sla) -> None:
    case, red = await just_before_the_first_red_card(sla)
    sla.clock.now = red.due_at
    runner = TimerRunner(sla.engine, sla.ctx, lambda: None)
    assert await runner.fire_due() >= 1  # the first red card (level 1 is due at once)
    ladder = [t for t in await pending_timers(sla, case) if t.stage == handlers.LADDER]
    assert [(t.kind, t.due_at, t.deadline_due_at) for t in ladder] == [("escalate-1", red.due_at, red.due_at)]
    assert await runner.fire_due() == 1  # level 1 stores level 2, one office day later
    ladder = [t for t in await pending_timers(sla, case) if t.stage == handlers.LADDER]
    assert [(t.kind, t.due_at) for t in ladder] == [("escalate-2", red.due_at + timedelta(days=1))]
    async with sla.engine.begin() as conn:  # as if a reply committed while level 2 was being fired
        await conn.execute(sa.update(cases).where(cases.c.case_id == case).values(status="replied"))
    assert await sla.fire_until(red.due_at + timedelta(days=1)) >= 1
    assert [t for t in await pending_timers(sla, case) if t.stage == handlers.LADDER] == []
    assert await sla.fire_until(red.due_at + timedelta(days=60)) >= 0
    escalations = [k for k in kinds(await sla.emitted(case)) if k[0] == "escalated"]
    assert escalations == [("escalated", 1), ("escalated", 2)]  # level 3 never stored


async def test_a_red_card_on_a_case_replied_meanwhile_starts_no_ladder(sla: Sla) -> None:
    case, red = await just_before_the_first_red_card(sla)
    async with sla.engine.begin() as conn:  # as if the reply committed while the red card was being fired
        await conn.execute(sa.update(cases).where(cases.c.case_id == case).values(status="replied"))
    assert await sla.fire_until(red.due_at) >= 1
    assert ("deadline-breached", red.stage) in kinds(await sla.emitted(case))  # the deadline did pass
    assert [t for t in await pending_timers(sla, case) if t.stage == handlers.LADDER] == []
    assert await sla.fire_until(red.due_at + timedelta(days=60)) >= 0
    assert [k for k in kinds(await sla.emitted(case)) if k[0] == "escalated"] == []


async def test_accepting_stops_the_sign_for_clock_and_replying_stops_the_rest(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case))
    await sla.apply(assigned(case, MONDAY))
    assignee = {"kind": "department", "code": "CGJ", "name": "区城管局"}
    await sla.apply(
        AssignmentAccepted(
            case_id=case, occurred_at=MONDAY, actor="CGJ", assignment_id="A1", assignee=assignee
        )
    )
    await sla.apply(
        ReplySubmitted(
            case_id=case,
            occurred_at=MONDAY,
            actor="CGJ",
            assignment_id="A1",
            assignee=assignee,
            reply="已修复",
        )
    )
    assert await sla.fire_until(MONDAY + timedelta(days=60)) == 0
    assert (await sla.deadline(case, DeadlineStage.SIGN_FOR)).state == "stopped"
    assert (await sla.deadline(case, DeadlineStage.REPLY)).state == "stopped"


async def test_a_return_restarts_stage_clocks_while_the_case_clock_keeps_running(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case))
    await sla.apply(assigned(case, MONDAY, "A1"))
    case_due = (await sla.deadline(case, DeadlineStage.CASE)).due_at
    later = MONDAY + timedelta(days=1)
    await sla.apply(assigned(case, later, "A2"))
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert reply.assignment_id == "A2" and reply.generation == 2 and reply.started_at == later
    assert (await sla.deadline(case, DeadlineStage.CASE)).due_at == case_due


async def test_an_approved_extension_moves_reply_and_case_deadlines_once(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(assigned(case, MONDAY))
    for _ in range(2):  # a second extension exceeds the policy's one
        await sla.apply(
            ExtensionDecided(
                case_id=case,
                occurred_at=MONDAY,
                actor="op",
                assignment_id="A1",
                approved=True,
                working_days=12,
            )
        )
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert reply.extension_days == 10  # capped at the policy's 10 working days
    assert reply.due_at == datetime(2025, 3, 24, 17, 30, tzinfo=SHANGHAI)  # 5 + 10 working days


async def test_urgent_cases_run_on_natural_time(sla: Sla) -> None:
    case = factories.case_id()
    await sla.apply(factories.case_received(case, urgency=Urgency.URGENT))
    await sla.apply(assigned(case, MONDAY))
    assert (await sla.deadline(case, DeadlineStage.REPLY)).due_at == MONDAY + timedelta(hours=24)


async def test_a_deadline_past_the_calendar_data_is_provisional_until_the_holiday_table_arrives(
    sla: Sla,
) -> None:
    case = factories.case_id()
    start = datetime(2026, 12, 30, 10, 0, tzinfo=SHANGHAI)
    sla.clock.now = start
    await sla.apply(factories.case_received(case, appeal_type="help"))
    await sla.apply(assigned(case, start))
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert reply.provisional and reply.due_at == datetime(2027, 1, 6, 17, 30, tzinfo=SHANGHAI)

    app = build_app(sla.settings)
    app.state.sla = sla.ctx
    body = {
        "source": "国办发明电〔2026〕 (test)",
        "entries": [{"date": "2027-01-01", "kind": "holiday", "name": "元旦"}],
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sla", headers={"X-API-Key": "dev-operator-key"}
    ) as client:
        response = await client.put("/v1/sla/calendar/2027", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["recomputed_deadlines"] >= 1
        again = await client.put("/v1/sla/calendar/2027", json=body)
        assert again.json()["version"] == 1  # the same table twice is one version
        bad = await client.put("/v1/sla/calendar/2027", json={"entries": [{"date": "2028-01-01"}]})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        listed = await client.get(f"/v1/sla/cases/{case}/deadlines")
        assert listed.status_code == 200
        missing = await client.get("/v1/sla/cases/nope/deadlines")
        assert missing.status_code == 404 and missing.json()["type"].endswith("case-not-found")
    reply = await sla.deadline(case, DeadlineStage.REPLY)
    assert not reply.provisional and reply.due_at == datetime(2027, 1, 7, 17, 30, tzinfo=SHANGHAI)
    assert "operator table 2027-v1" in reply.calendar_basis
    async with sla.engine.connect() as conn:
        pending = (
            await conn.execute(
                sa.select(timers.c.generation).where(
                    timers.c.case_id == case, timers.c.stage == "reply", timers.c.cancelled_at.is_(None)
                )
            )
        ).all()
    assert {row.generation for row in pending} == {reply.generation}
