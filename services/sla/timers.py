"""The timer runner: fires due timers exactly once, across restarts and replicas.

Each round claims due timers with ``FOR UPDATE SKIP LOCKED`` (replicas share the work), writes the
card or escalation event to the outbox and marks the timer fired, all in one transaction: a crash before
commit leaves the timer pending, a commit makes both visible, so a timer fires at most once and at
least once. Between rounds it sleeps until the next due time, never longer than ``idle_poll_s``.

While it waits it prepares: it builds the events of the timers falling due within
``sla_timer_prepare_ahead_s`` and keeps them in memory, so that when thousands fall due in the same
second the firing only claims them and writes. A stored timer never changes (only ``fired_at`` or
``cancelled_at`` are ever set), so a prepared event is the event firing would build; the claim decides,
as always, which timers fire. A timer stored after its time was prepared, or beyond the memory bound, is
built when it falls due.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import OutboundMessage
from contracts.events import CaseEvent
from contracts.events.sla import CaseEscalated, DeadlineApproaching, DeadlineBreached
from runtime.outbox import OutboxRow, outbox_row
from runtime.stopping import sleep_or_stop
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
# The count (~160 ms of PostgreSQL at 1,000,000 timers) waits while timers fire or are about to, so it
# never competes with a burst of cards for the database; it is at most this stale under constant firing.
ACTIVE_STALE_MAX_S = 60.0
QUIET_S = 1.0  # "about to fire": a prepared timer due, or a batch fired, within this many seconds
PREPARED = Gauge("gridline_sla_prepared_events", "Events of timers about to fall due, built ahead")
PREPARE_CHUNK = 500  # timers per preparing round (~50 ms of building), so firing is never held up long
_LAST_ID = 2**63 - 1


class TimerRunner:
    """Background task of sla: claim, fire, sleep until the next due timer."""

    def __init__(self, engine: AsyncEngine, ctx: SlaContext, wake_relay: Callable[[], None]) -> None:
        self._engine = engine
        self._ctx = ctx
        self._wake_relay = wake_relay
        self._calendar_loaded = asyncio.Event()
        self._prepared: dict[int, OutboxRow] = {}  # timer id → its event's outbox row, built ahead
        self._prepared_due: list[tuple[datetime, int]] = []  # heap of (due time, timer id)
        self._prepared_to: tuple[datetime, int] | None = None  # every pending timer up to here is prepared
        self._preparing = False
        self._escalating: dict[tuple[str, str], bool] = {}  # (policy, stage) → whether a red card escalates
        self._fired_at = -float("inf")  # event-loop time of the last batch fired

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
                if fired >= self._ctx.settings.sla_timer_batch_size or self._prepared_ready():
                    continue  # more may be due right now
                if await self.prepare() >= PREPARE_CHUNK:
                    continue  # more to prepare; fire what fell due meanwhile first
                wait = await self._seconds_to_next()
            except Exception as exc:  # the runner must outlive a database restart
                log.warning("sla.timers_failed", error=f"{type(exc).__name__}: {exc}")
                wait, backoff = backoff, min(backoff * 2, 10.0)
            await sleep_or_stop(stop, wait)

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
                wait = every
                since = loop.time() - counted_at
                if since >= ACTIVE_STALE_MAX_S or (since >= ACTIVE_REFRESH_S and self._quiet()):
                    async with self._engine.connect() as conn:
                        ACTIVE.set(await store.pending_count(conn))
                    counted_at = loop.time()
                elif since >= ACTIVE_REFRESH_S:
                    wait = min(every, QUIET_S)  # count as soon as the burst is over
            except Exception as exc:
                log.warning("sla.timers_housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
                wait = 0.5
            await sleep_or_stop(stop, wait)

    def _quiet(self) -> bool:
        """No batch fired within ``QUIET_S`` and no prepared timer falls due within it."""
        if asyncio.get_running_loop().time() - self._fired_at < QUIET_S:
            return False
        soon = self._ctx.now() + timedelta(seconds=QUIET_S)
        return not (self._prepared_due and self._prepared_due[0][0] <= soon)

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

    async def prepare(self) -> int:
        """Build the events of pending timers due within ``sla_timer_prepare_ahead_s``, one chunk of at
        most ``PREPARE_CHUNK``; returns how many timers the chunk read (0: nothing to do, or memory full).

        Only timers not yet due are prepared (an overdue backlog gains nothing from it), each once: the
        runner remembers up to which (due time, id) every pending timer has been read."""
        settings = self._ctx.settings
        room = settings.sla_timer_prepare_max - len(self._prepared)
        if settings.sla_timer_prepare_ahead_s <= 0 or room <= 0 or self._preparing:
            return 0
        self._preparing = True  # firing loops run side by side; one prepares at a time
        try:
            now = self._ctx.now()
            until = now + timedelta(seconds=settings.sla_timer_prepare_ahead_s)
            after = max(self._prepared_to or (now, _LAST_ID), (now, _LAST_ID))
            limit = min(room, PREPARE_CHUNK)
            async with self._engine.connect() as conn:
                rows = await store.pending_after(conn, after, until, limit)
            self._prepared_to = (rows[-1].due_at, rows[-1].id) if len(rows) == limit else (until, _LAST_ID)
            for row, message in zip(rows, self._messages(rows), strict=True):
                self._prepared[row.id] = outbox_row(message)
                heapq.heappush(self._prepared_due, (row.due_at, row.id))
            PREPARED.set(len(self._prepared))
            return len(rows)
        finally:
            self._preparing = False

    def _prepared_ready(self) -> bool:
        return bool(self._prepared_due) and self._prepared_due[0][0] <= self._ctx.now()

    def _take_prepared(self, now: datetime, limit: int) -> dict[int, OutboxRow]:
        """Up to ``limit`` prepared events of timers due by ``now``, earliest first, out of the cache."""
        taken: dict[int, OutboxRow] = {}
        while self._prepared_due and self._prepared_due[0][0] <= now and len(taken) < limit:
            _, timer_id = heapq.heappop(self._prepared_due)
            if (message := self._prepared.pop(timer_id, None)) is not None:
                taken[timer_id] = message
        PREPARED.set(len(self._prepared))
        return taken

    async def fire_due(self) -> int:
        """Fire one batch of due timers; returns how many fired.

        Two statements whatever the batch's size: one claims the timers and marks them fired, one writes
        their events, their cases' changes and any escalation ladders they start; both commit together.
        Timers whose events were prepared are claimed by id first, their events taken as prepared.
        """
        ctx = self._ctx
        limit = ctx.settings.sla_timer_batch_size
        async with self._engine.begin() as conn:
            now = ctx.now()
            rows: Sequence[sa.Row] = ()
            prepared: dict[int, OutboxRow] = {}
            while not rows and (prepared := self._take_prepared(now, limit)):
                rows = await store.fire_these(conn, now, list(prepared))  # may all be gone: cancelled
            if not rows:
                rows = await store.fire_due(conn, now, limit)
            if not rows:
                return 0
            if unprepared := [row for row in rows if row.id not in prepared]:
                built = zip(unprepared, self._messages(unprepared), strict=True)
                prepared |= {row.id: outbox_row(message) for row, message in built}
            outbox = [prepared[row.id] for row in rows]
            await store.record_fired(conn, outbox, self._case_changes(rows), handlers.LADDER)
        self._fired_at = asyncio.get_running_loop().time()
        fired: dict[str, int] = {}
        for row in rows:
            LAG.observe(max(0.0, (now - row.due_at).total_seconds()))
            fired[row.kind] = fired.get(row.kind, 0) + 1
        for kind, count in fired.items():
            FIRED.labels(kind).inc(count)
        self._wake_relay()
        return len(rows)

    def _messages(self, rows: Sequence[sa.Row]) -> list[OutboundMessage]:
        """The card or escalation event of each timer, with an id derived from the timer's identity. It
        occurred when the timer fell due (its due time stamps the event and its CloudEvent), so it is the
        same whenever it is built."""
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
                    occurred_at=row.due_at,
                    actor="sla",
                    stage=row.stage,
                    due_at=row.deadline_due_at,
                    assignment_id=row.assignment_id,
                )
            else:
                level = kind.level or 1
                event = CaseEscalated(
                    case_id=row.case_id,
                    occurred_at=row.due_at,
                    actor="sla",
                    level=level,
                    reason=reasons[level],
                )
            events.append((event, (row.stage, row.kind, row.generation)))
        return ctx.messages(events, stamp_occurrence=True)

    def _case_changes(self, rows: Sequence[sa.Row]) -> store.CaseChanges:
        """What the fired timers change on their cases: the first red card (on a stage that escalates)
        of each case in the batch and the first escalation level it starts (the database stores it for
        the cases whose first red card this is), the supervision levels reached, and the next level's
        timer of each fired level."""
        ctx = self._ctx
        changes = store.CaseChanges()
        breaches, levels = changes.breaches, changes.levels
        plans: dict[datetime, dict[int, PlannedTimer]] = {}

        def ladder(breach: datetime) -> dict[int, PlannedTimer]:
            if breach not in plans:
                steps = plan_escalations(ctx.calendar, ctx.table.escalation, breach)
                plans[breach] = {step.kind.level or 0: step for step in steps}
            return plans[breach]

        for row in rows:  # in due order: a case's earliest red card in the batch counts
            if row.kind == TimerKind.RED:
                if row.case_id not in breaches and self._escalates(row):
                    breaches[row.case_id] = (row.due_at, row.assignment_id)
            elif (level := TimerKind(row.kind).level) is not None:
                levels[row.case_id] = max(level, levels.get(row.case_id, 0))
                if (step := ladder(row.deadline_due_at).get(level + 1)) is not None:  # its breach time
                    changes.next_steps.append(
                        store.NewTimer(
                            row.case_id,
                            row.stage,
                            str(step.kind),
                            row.generation,
                            step.due_at,
                            row.deadline_due_at,
                            row.assignment_id,
                        )
                    )
        for breach, _ in breaches.values():
            if breach not in changes.first_steps and (first := min(ladder(breach).items(), default=None)):
                changes.first_steps[breach] = (str(first[1].kind), first[1].due_at)
        return changes

    def _escalates(self, red: sa.Row) -> bool:
        """Whether a red card's stage starts the ladder (a stage without a deadline row does)."""
        if red.policy_id is None:
            return True
        key = (red.policy_id, red.stage)
        if (escalates := self._escalating.get(key)) is None:
            escalates = self._escalating[key] = handlers.escalates(self._ctx, red.policy_id, red.stage)
        return escalates


async def _until(stop: asyncio.Event, ready: asyncio.Event) -> None:
    """Wait for ``ready`` or ``stop``, whichever is set first."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(ready.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
