"""Sla's decisions on case events: start, stop, restart and extend stage clocks; raise supervision.

Each function runs inside the consumer's transaction and returns nothing: state changes, timers and
outgoing events (through the outbox) are written together, so a crash leaves all or none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events.sla import CaseEscalated, DeadlineSet, DeadlineStage
from runtime.outbox import enqueue
from services.sla import store
from services.sla.context import SlaContext
from services.sla.domain.deadlines import (
    compute_deadline,
    next_escalation_level,
    plan_cards,
)
from services.sla.domain.policy import Limit, Policy, StageLimit

log = structlog.get_logger(__name__)

ASSIGNMENT_STAGES = (DeadlineStage.SIGN_FOR, DeadlineStage.RETURN_WINDOW, DeadlineStage.REPLY)
LADDER = "ladder"  # the timers' stage label of the escalation ladder (one per case)


async def start_assignment_clocks(
    conn: AsyncConnection,
    ctx: SlaContext,
    case_id: str,
    at: datetime,
    assignment_id: str | None,
    category_code: str | None = None,
) -> None:
    """A (new) assignee: fresh sign-for, return and reply clocks; the case clock starts if none runs."""
    case = await store.ensure_case(conn, case_id, category_code=category_code)
    policy = ctx.table.select(case.appeal_type, case.urgency, case.category_code)
    existing = await store.deadline_rows(conn, case_id)
    for stage in ASSIGNMENT_STAGES:
        if stage in policy.stages:
            await _start_stage(conn, ctx, case_id, stage, at, policy, assignment_id, existing.get(stage))
    case_row = existing.get(DeadlineStage.CASE)
    if case_row is None or case_row.state == "cancelled":
        await _start_stage(conn, ctx, case_id, DeadlineStage.CASE, at, policy, None, case_row)
    if case.status != "open":
        await store.update_case(conn, case_id, status="open")


async def _start_stage(
    conn: AsyncConnection,
    ctx: SlaContext,
    case_id: str,
    stage: DeadlineStage,
    start: datetime,
    policy: Policy,
    assignment_id: str | None,
    previous: sa.Row | None,
) -> None:
    await _set_clock(
        conn,
        ctx,
        case_id=case_id,
        stage=stage,
        start=start,
        limit=policy.stages[stage],
        policy_id=policy.id,
        policy_version=ctx.table.version,
        assignment_id=assignment_id,
        generation=(previous.generation + 1) if previous is not None else 1,
    )


async def _set_clock(
    conn: AsyncConnection,
    ctx: SlaContext,
    *,
    case_id: str,
    stage: DeadlineStage,
    start: datetime,
    limit: StageLimit,
    policy_id: str,
    policy_version: int,
    assignment_id: str | None,
    generation: int,
    extension_days: int = 0,
    paused_seconds: float = 0.0,
) -> None:
    """Compute a stage deadline, replace its row and timers, and announce it (DeadlineSet)."""
    deadline = compute_deadline(
        ctx.calendar, stage, start, limit, extension_days, timedelta(seconds=paused_seconds)
    )
    await store.save_deadline(
        conn,
        {
            "case_id": case_id,
            "stage": str(stage),
            "generation": generation,
            "assignment_id": assignment_id,
            "policy_id": policy_id,
            "policy_version": policy_version,
            "clock": str(limit.clock),
            "amount": limit.amount,
            "started_at": start,
            "due_at": deadline.due_at,
            "extension_days": extension_days,
            "paused_seconds": paused_seconds,
            "paused_at": None,
            "state": "running",
            "provisional": deadline.provisional,
            "calendar_basis": deadline.calendar_basis,
            "stopped_at": None,
        },
    )
    await store.cancel_timers(conn, case_id, ctx.now(), stages=[stage])
    await store.schedule(
        conn,
        case_id,
        str(stage),
        generation,
        plan_cards(ctx.calendar, ctx.table, deadline, limit),
        deadline.due_at,
        assignment_id,
    )
    event = DeadlineSet(
        case_id=case_id,
        occurred_at=ctx.now(),
        actor="sla",
        stage=stage,
        due_at=deadline.due_at,
        clock=limit.clock,
        amount=limit.amount,
        policy_id=policy_id,
        policy_version=policy_version,
        calendar_basis=deadline.calendar_basis,
        provisional=deadline.provisional,
        assignment_id=assignment_id,
    )
    await enqueue(conn, [ctx.message(event, stage, generation, "deadline-set")])


def stage_limit(ctx: SlaContext, row: sa.Row) -> StageLimit:
    """The stored clock of a row, with card flags from its policy when that policy still exists."""
    limit = Limit(clock=row.clock, amount=row.amount)
    for policy in ctx.table.policies:
        if policy.id == row.policy_id and row.stage in policy.stages:
            flags = policy.stages[DeadlineStage(row.stage)]
            return StageLimit(
                clock=limit.clock,
                amount=limit.amount,
                yellow=flags.yellow,
                red=flags.red,
                escalate=flags.escalate,
            )
    return StageLimit(clock=limit.clock, amount=limit.amount)


async def recompute(
    conn: AsyncConnection, ctx: SlaContext, row: sa.Row, *, extension_days: int | None = None
) -> None:
    """Recompute an active clock from its start (after an extension or a calendar change)."""
    await _set_clock(
        conn,
        ctx,
        case_id=row.case_id,
        stage=DeadlineStage(row.stage),
        start=row.started_at,
        limit=stage_limit(ctx, row),
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        assignment_id=row.assignment_id,
        generation=row.generation + 1,
        extension_days=row.extension_days if extension_days is None else extension_days,
        paused_seconds=row.paused_seconds,
    )


async def stop_clocks(
    conn: AsyncConnection,
    ctx: SlaContext,
    case_id: str,
    stages: Sequence[DeadlineStage],
    state: str = "stopped",
    assignment_id: str | None = None,
) -> None:
    """Stop (or cancel) clocks and their pending timers; with ``assignment_id``, only that assignee's."""
    if assignment_id is not None:
        rows = await store.deadline_rows(conn, case_id, stages)
        stages = [DeadlineStage(s) for s, r in rows.items() if r.assignment_id in (assignment_id, None)]
    if not stages:
        return
    await store.set_deadline_state(conn, case_id, stages, state, ctx.now())
    await store.cancel_timers(conn, case_id, ctx.now(), stages=[str(s) for s in stages])


async def extend(conn: AsyncConnection, ctx: SlaContext, case_id: str, working_days: int) -> None:
    """An approved extension (延期) moves the reply and case deadlines, once per case, capped by policy."""
    case = await store.ensure_case(conn, case_id)
    rules = ctx.table.extension
    if case.extensions_used >= rules.max_count:
        log.warning("sla.extension_over_limit", case_id=case_id, used=case.extensions_used)
        return
    days = min(working_days, rules.max_working_days)
    rows = await store.deadline_rows(conn, case_id, (DeadlineStage.REPLY, DeadlineStage.CASE))
    for row in rows.values():
        if row.state in store.ACTIVE:
            await recompute(conn, ctx, row, extension_days=row.extension_days + days)
    await store.update_case(conn, case_id, extensions_used=case.extensions_used + 1)


async def supervise(
    conn: AsyncConnection, ctx: SlaContext, case_id: str, reason: str, *identity: object
) -> None:
    """Raise the case's supervision level by one (督办), e.g. for a dissatisfied citizen."""
    case = await store.ensure_case(conn, case_id)
    level = next_escalation_level(case.escalation_level)
    await store.update_case(conn, case_id, escalation_level=level)
    event = CaseEscalated(case_id=case_id, occurred_at=ctx.now(), actor="sla", level=level, reason=reason)
    await enqueue(conn, [ctx.message(event, "supervise", *identity)])
