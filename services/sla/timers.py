"""The timer runner: fires due timers exactly once, across restarts and replicas.

Each round claims due timers with ``FOR UPDATE SKIP LOCKED`` (replicas share the work), writes the
card or escalation event to the outbox and marks the timer fired, all in one transaction: a crash before
commit leaves the timer pending, a commit makes both visible, so a timer fires at most once and at
least once. Between rounds it sleeps until the next due time, never longer than ``idle_poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import OutboundMessage
from contracts.events import CaseEvent
from contracts.events.sla import CaseEscalated, DeadlineApproaching, DeadlineBreached
from runtime.outbox import enqueue
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
        self._loop_time = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Fire timers until ``stop`` is set; database errors back off and retry."""
        backoff = 0.5
        await self._record_policy_version()
        counted_at = -ACTIVE_REFRESH_S
        while not stop.is_set():
            try:
                await self._maybe_refresh_calendar()
                if asyncio.get_running_loop().time() - counted_at >= ACTIVE_REFRESH_S:
                    counted_at = asyncio.get_running_loop().time()
                    async with self._engine.connect() as conn:
                        ACTIVE.set(await store.pending_count(conn))
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

    async def _maybe_refresh_calendar(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._loop_time < self._ctx.settings.sla_calendar_refresh_s:
            return
        self._loop_time = now
        async with self._engine.connect() as conn:
            await self._ctx.calendars.refresh(conn)

    async def _seconds_to_next(self) -> float:
        idle = self._ctx.settings.sla_timer_idle_poll_s
        async with self._engine.connect() as conn:
            due = await store.next_due_at(conn)
        if due is None:
            return idle
        return min(idle, max(0.0, real_wait(self._ctx.clock, due - self._ctx.now())))

    async def fire_due(self) -> int:
        """Fire one batch of due timers; returns how many fired.

        The batch is written with a handful of statements whatever its size (one outbox insert, one
        update per kind of state change), so firing keeps up when thousands fall due at once.
        """
        ctx = self._ctx
        async with self._engine.begin() as conn:
            now = ctx.now()
            rows = await store.claim_due(conn, now, ctx.settings.sla_timer_batch_size)
            if not rows:
                return 0
            messages = [self._message(row, now) for row in rows]
            await self._start_ladders(conn, [row for row in rows if row.kind == TimerKind.RED])
            levels: dict[str, int] = {}
            for row in rows:
                if (level := TimerKind(row.kind).level) is not None:
                    levels[row.case_id] = max(level, levels.get(row.case_id, 0))
            await store.raise_escalation_levels(conn, levels)
            await enqueue(conn, messages)
            await store.mark_fired(conn, [row.id for row in rows], now)
        for row in rows:
            LAG.observe(max(0.0, (now - row.due_at).total_seconds()))
            FIRED.labels(row.kind).inc()
        self._wake_relay()
        return len(rows)

    def _message(self, row: sa.Row, now: datetime) -> OutboundMessage:
        """The card or escalation event of a timer, with an id derived from the timer's identity."""
        ctx = self._ctx
        kind = TimerKind(row.kind)
        common = {"case_id": row.case_id, "occurred_at": now, "actor": "sla"}
        event: CaseEvent
        if kind is TimerKind.YELLOW:
            event = DeadlineApproaching(
                **common, stage=row.stage, due_at=row.deadline_due_at, assignment_id=row.assignment_id
            )
        elif kind is TimerKind.RED:
            event = DeadlineBreached(
                **common, stage=row.stage, due_at=row.deadline_due_at, assignment_id=row.assignment_id
            )
        else:
            level = kind.level or 1
            step = next(s for s in ctx.table.escalation if s.level == level)
            event = CaseEscalated(**common, level=level, reason=f"超期未办结：{step.name}")
        return ctx.message(event, row.stage, row.kind, row.generation)

    async def _start_ladders(self, conn: AsyncConnection, reds: list[sa.Row]) -> None:
        """The first red card of a stage that escalates starts the case's ladder (once per case)."""
        if not reds:
            return
        ctx = self._ctx
        stages = await store.deadlines_of(conn, [(row.case_id, row.stage) for row in reds])
        first: dict[str, sa.Row] = {}
        for row in reds:  # claimed in due order: a case's earliest red card in the batch counts
            deadline = stages.get((row.case_id, row.stage))
            if deadline is not None and not handlers.stage_limit(ctx, deadline).escalate:
                continue
            first.setdefault(row.case_id, row)
        started = await store.mark_first_breach(conn, {case: row.due_at for case, row in first.items()})
        plans: dict[datetime, list[PlannedTimer]] = {}
        ladders = []
        for case_id in started:
            breach, assignment = first[case_id].due_at, first[case_id].assignment_id
            if breach not in plans:
                plans[breach] = plan_escalations(ctx.calendar, ctx.table.escalation, breach)
            ladders += [
                store.NewTimer(case_id, handlers.LADDER, str(t.kind), 0, t.due_at, breach, assignment)
                for t in plans[breach]
            ]
        await store.schedule_many(conn, ladders)
