"""The timer runner: fires due timers exactly once, across restarts and replicas.

Each round claims due timers with ``FOR UPDATE SKIP LOCKED`` (replicas share the work), writes the
card or escalation event to the outbox and marks the timer fired, all in one transaction: a crash before
commit leaves the timer pending, a commit makes both visible, so a timer fires at most once and at
least once. Between rounds it sleeps until the next due time, never longer than ``idle_poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import OutboundMessage
from contracts.events import CaseEvent
from contracts.events.sla import CaseEscalated, DeadlineApproaching, DeadlineBreached
from services.sla import handlers, store
from services.sla.clock import real_wait
from services.sla.context import SlaContext
from services.sla.domain.deadlines import PlannedTimer, TimerKind, plan_escalations
from services.sla.tables import policy_sets

log = structlog.get_logger(__name__)
FIRED = Counter("gridline_sla_timers_fired_total", "Timers fired", ["kind"])
LAG = Histogram(
    "gridline_sla_timer_lag_seconds",
    "Clock time between a timer's due time and its firing",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300),
)
ACTIVE = Gauge("gridline_sla_active_timers", "Timers scheduled and not yet fired or cancelled")
ACTIVE_REFRESH_S = 10.0  # counting a million-row table every round would cost more than the timers


class TimerRunner:
    """Background task of sla: claim, fire, sleep until the next due timer."""

    def __init__(self, engine: AsyncEngine, ctx: SlaContext, wake_relay: Callable[[], None]) -> None:
        self._engine = engine
        self._ctx = ctx
        self._wake_relay = wake_relay
        self._calendar_loaded = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire timers until ``stop`` is set; database errors back off and retry.

        ``sla_timer_concurrency`` firing loops take disjoint batches (as replicas do), so one batch's
        events are built while another's are written; a separate loop keeps the calendar and the
        active-timers gauge fresh. Firing waits for the first calendar load (ladders are planned on it).
        """
        await self._record_policy_version()
        loops = [self._fire_loop(stop) for _ in range(max(1, self._ctx.settings.sla_timer_concurrency))]
        await asyncio.gather(self._housekeeping(stop), *loops)

    async def _fire_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        await _until(stop, self._calendar_loaded)
        while not stop.is_set():
            try:
                fired = await self.fire_due()
                backoff = 0.5
                if fired >= self._ctx.settings.sla_timer_batch_size:
                    continue  # more may be due right now
                wait = await self._seconds_to_next()
            except Exception as exc:  # the runner must outlive a database restart
                log.warning("sla.timers_failed", error=f"{type(exc).__name__}: {exc}")
                wait, backoff = backoff, min(backoff * 2, 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Re-read the operator holiday table and count the active timers, each at its own interval."""
        every = min(self._ctx.settings.sla_calendar_refresh_s, ACTIVE_REFRESH_S)
        loop = asyncio.get_running_loop()
        refreshed_at = counted_at = -float("inf")
        while not stop.is_set():
            try:
                if loop.time() - refreshed_at >= self._ctx.settings.sla_calendar_refresh_s:
                    async with self._engine.connect() as conn:
                        await self._ctx.calendars.refresh(conn)
                    refreshed_at = loop.time()
                    self._calendar_loaded.set()
                if loop.time() - counted_at >= ACTIVE_REFRESH_S:
                    async with self._engine.connect() as conn:
                        ACTIVE.set(await store.pending_count(conn))
                    counted_at = loop.time()
                wait = every
            except Exception as exc:
                log.warning("sla.timers_housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
                wait = 0.5
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    async def _record_policy_version(self) -> None:
        """Keep each policy table version ever used, so old DeadlineSets stay explainable."""
        table = self._ctx.table
        with contextlib.suppress(Exception):  # a missing record must not stop the timers
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(policy_sets)
                    .values(version=table.version, document=table.model_dump(mode="json"))
                    .on_conflict_do_nothing(index_elements=["version"])
                )

    async def _seconds_to_next(self) -> float:
        idle = self._ctx.settings.sla_timer_idle_poll_s
        async with self._engine.connect() as conn:
            due = await store.next_due_at(conn)
        if due is None:
            return idle
        return min(idle, max(0.0, real_wait(self._ctx.clock, due - self._ctx.now())))

    async def fire_due(self) -> int:
        """Fire one batch of due timers; returns how many fired.

        Two statements whatever the batch's size: one claims the timers and marks them fired, one writes
        their events, their cases' changes and any escalation ladders they start; both commit together.
        """
        ctx = self._ctx
        async with self._engine.begin() as conn:
            now = ctx.now()
            rows = await store.fire_due(conn, now, ctx.settings.sla_timer_batch_size)
            if not rows:
                return 0
            breaches, levels, ladders = self._case_changes(rows)
            await store.record_fired(conn, self._messages(rows, now), breaches, levels, ladders)
        fired: dict[str, int] = {}
        for row in rows:
            LAG.observe(max(0.0, (now - row.due_at).total_seconds()))
            fired[row.kind] = fired.get(row.kind, 0) + 1
        for kind, count in fired.items():
            FIRED.labels(kind).inc(count)
        self._wake_relay()
        return len(rows)

    def _messages(self, rows: Sequence[sa.Row], now: datetime) -> list[OutboundMessage]:
        """The card or escalation event of each timer, with an id derived from the timer's identity."""
        ctx = self._ctx
        reasons = {step.level: f"超期未办结：{step.name}" for step in ctx.table.escalation}
        events: list[tuple[CaseEvent, tuple[object, ...]]] = []
        for row in rows:
            kind = TimerKind(row.kind)
            event: CaseEvent
            if kind is TimerKind.YELLOW or kind is TimerKind.RED:
                card = DeadlineApproaching if kind is TimerKind.YELLOW else DeadlineBreached
                event = card(
                    case_id=row.case_id,
                    occurred_at=now,
                    actor="sla",
                    stage=row.stage,
                    due_at=row.deadline_due_at,
                    assignment_id=row.assignment_id,
                )
            else:
                level = kind.level or 1
                event = CaseEscalated(
                    case_id=row.case_id, occurred_at=now, actor="sla", level=level, reason=reasons[level]
                )
            events.append((event, (row.stage, row.kind, row.generation)))
        return ctx.messages(events)

    def _case_changes(
        self, rows: Sequence[sa.Row]
    ) -> tuple[dict[str, datetime], dict[str, int], list[store.NewTimer]]:
        """What the fired timers change on their cases: the first red card (on a stage that escalates)
        of each case in the batch, the supervision levels reached, and the escalation ladder each of
        those red cards starts unless its case had an earlier one (the database decides)."""
        ctx = self._ctx
        breaches: dict[str, sa.Row] = {}
        levels: dict[str, int] = {}
        for row in rows:  # in due order: a case's earliest red card in the batch counts
            if row.kind == TimerKind.RED:
                if row.case_id not in breaches and self._escalates(row):
                    breaches[row.case_id] = row
            elif (level := TimerKind(row.kind).level) is not None:
                levels[row.case_id] = max(level, levels.get(row.case_id, 0))
        plans: dict[datetime, list[PlannedTimer]] = {}
        ladders = []
        for case_id, red in breaches.items():
            breach = red.due_at
            if breach not in plans:
                plans[breach] = plan_escalations(ctx.calendar, ctx.table.escalation, breach)
            ladders += [
                store.NewTimer(case_id, handlers.LADDER, str(t.kind), 0, t.due_at, breach, red.assignment_id)
                for t in plans[breach]
            ]
        return {case_id: red.due_at for case_id, red in breaches.items()}, levels, ladders

    def _escalates(self, red: sa.Row) -> bool:
        """Whether a red card's stage starts the ladder (a stage without a deadline row does)."""
        return red.policy_id is None or handlers.escalates(self._ctx, red.policy_id, red.stage)


async def _until(stop: asyncio.Event, ready: asyncio.Event) -> None:
    """Wait for ``ready`` or ``stop``, whichever is set first."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(ready.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
