"""Sla's decisions on case events: start, stop, restart and extend stage clocks; raise supervision.

Each decision changes a ClockBook (book.py) in memory: the cases' rows, their stage clocks, the timers to
cancel and store, the events to send. The book is written in the consumer's (or the API's) transaction,
so state changes, timers and outgoing events (through the outbox) are stored together, and a crash leaves
all or none of them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import structlog

from contracts.events.sla import CaseEscalated, ClockPaused, ClockResumed, DeadlineSet, DeadlineStage
from services.sla import store
from services.sla.book import ClockBook, SlaCase, StageClock
from services.sla.context import SlaContext
from services.sla.domain.deadlines import (
    compute_deadline,
    next_escalation_level,
    paused_in_clock,
    plan_cards,
)
from services.sla.domain.policy import Policy, StageLimit

log = structlog.get_logger(__name__)

ASSIGNMENT_STAGES = (DeadlineStage.SIGN_FOR, DeadlineStage.RETURN_WINDOW, DeadlineStage.REPLY)
LADDER = "ladder"  # the timers' stage label of the escalation ladder (one per case)


def start_assignment_clocks(
    book: ClockBook,
    ctx: SlaContext,
    case_id: str,
    at: datetime,
    assignment_id: str | None,
    category_code: str | None = None,
) -> None:
    """A (new) assignee: fresh sign-for, return and reply clocks; the case clock starts if none runs."""
    case = book.ensure_case(case_id, category_code=category_code)
    policy = ctx.table.select(case.appeal_type, case.urgency, case.category_code)
    existing = book.clock_rows(case_id)
    for stage in ASSIGNMENT_STAGES:
        if stage in policy.stages:
            _start_stage(book, ctx, case_id, stage, at, policy, assignment_id, existing.get(stage))
    _ensure_case_clock(book, ctx, case, policy, at, existing.get(DeadlineStage.CASE))


def start_triage_clock(
    book: ClockBook, ctx: SlaContext, case_id: str, at: datetime, category_code: str | None = None
) -> None:
    """A case waiting in district triage (人工分拨) runs on its case clock, so lateness there is carded
    too; the assignment that follows keeps that clock and adds the stage clocks."""
    case = book.ensure_case(case_id, category_code=category_code)
    policy = ctx.table.select(case.appeal_type, case.urgency, case.category_code)
    _ensure_case_clock(book, ctx, case, policy, at, book.clock_rows(case_id).get(DeadlineStage.CASE))


def _ensure_case_clock(
    book: ClockBook, ctx: SlaContext, case: SlaCase, policy: Policy, at: datetime, row: StageClock | None
) -> None:
    """Start the overall case clock unless one runs (or is paused, or has stopped)."""
    if row is None or row.state == "cancelled":
        _start_stage(book, ctx, case.case_id, DeadlineStage.CASE, at, policy, None, row)
    if case.status != "open":
        book.update_case(case.case_id, status="open")


def _start_stage(
    book: ClockBook,
    ctx: SlaContext,
    case_id: str,
    stage: DeadlineStage,
    start: datetime,
    policy: Policy,
    assignment_id: str | None,
    previous: StageClock | None,
) -> None:
    _set_clock(
        book,
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


def _set_clock(
    book: ClockBook,
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
    paused_at: datetime | None = None,
    skip_kinds: Collection[str] = (),
) -> None:
    """Compute a stage deadline, replace its clock and timers, and announce it (DeadlineSet).

    A clock recomputed while paused stays paused and gets no timers (its resumption schedules them);
    ``skip_kinds`` are cards already shown for this clock, not planned again."""
    deadline = compute_deadline(
        ctx.calendar, stage, start, limit, extension_days, timedelta(seconds=paused_seconds)
    )
    book.save_clocks(
        [
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
                "paused_at": paused_at,
                "state": "running" if paused_at is None else "paused",
                "provisional": deadline.provisional,
                "calendar_basis": deadline.calendar_basis,
                "stopped_at": None,
            }
        ]
    )
    if generation > 1:  # a first generation has no earlier timers to cancel
        book.cancel_timers(case_id, ctx.now(), stages=[str(stage)])
    if paused_at is None:
        planned = plan_cards(ctx.calendar, ctx.table, deadline, limit)
        book.schedule(
            store.NewTimer(
                case_id, str(stage), str(p.kind), generation, p.due_at, deadline.due_at, assignment_id
            )
            for p in planned
            if p.kind not in skip_kinds
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
    book.emit([ctx.message(event, stage, generation, "deadline-set")])


def stage_limit(ctx: SlaContext, row: StageClock) -> StageLimit:
    """The stored clock of a row, with card flags from its policy when that policy still exists."""
    flags = _stage_flags(ctx, row.policy_id, row.stage)
    if flags is None:
        return StageLimit(clock=row.clock, amount=row.amount)
    return StageLimit(
        clock=row.clock, amount=row.amount, yellow=flags.yellow, red=flags.red, escalate=flags.escalate
    )


def escalates(ctx: SlaContext, policy_id: str, stage: str) -> bool:
    """Whether a red card on a stage of this policy starts the escalation ladder (yes, when the policy
    no longer has the stage)."""
    flags = _stage_flags(ctx, policy_id, stage)
    return flags.escalate if flags is not None else StageLimit.model_fields["escalate"].default


def _stage_flags(ctx: SlaContext, policy_id: str, stage: str) -> StageLimit | None:
    for policy in ctx.table.policies:
        if policy.id == policy_id and stage in policy.stages:
            return policy.stages[DeadlineStage(stage)]
    return None


def recompute(
    book: ClockBook, ctx: SlaContext, row: StageClock, *, extension_days: int | None = None
) -> None:
    """Recompute an active clock from its start (after an extension or a calendar change)."""
    _set_clock(
        book,
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
        paused_at=row.paused_at if row.state == "paused" else None,
    )


def stop_clocks(
    book: ClockBook,
    ctx: SlaContext,
    case_id: str,
    stages: Sequence[DeadlineStage],
    state: str = "stopped",
    assignment_id: str | None = None,
) -> None:
    """Stop (or cancel) clocks and their pending timers; with ``assignment_id``, only that assignee's."""
    if assignment_id is not None:
        rows = book.clock_rows(case_id, stages)
        stages = [DeadlineStage(s) for s, r in rows.items() if r.assignment_id in (assignment_id, None)]
    if not stages:
        return
    book.set_state(case_id, [str(s) for s in stages], state, ctx.now())
    book.cancel_timers(case_id, ctx.now(), stages=[str(s) for s in stages])


def extend(book: ClockBook, ctx: SlaContext, case_id: str, working_days: int) -> None:
    """An approved extension (延期) moves the reply and case deadlines, once per case, capped by policy."""
    case = book.ensure_case(case_id)
    rules = ctx.table.extension
    if case.extensions_used >= rules.max_count:
        log.warning("sla.extension_over_limit", case_id=case_id, used=case.extensions_used)
        return
    days = min(working_days, rules.max_working_days)
    rows = book.clock_rows(case_id, (DeadlineStage.REPLY, DeadlineStage.CASE))
    for row in rows.values():
        if row.state in store.ACTIVE:
            recompute(book, ctx, row, extension_days=row.extension_days + days)
    book.update_case(case_id, extensions_used=case.extensions_used + 1)


def supervise(book: ClockBook, ctx: SlaContext, case_id: str, reason: str, *identity: object) -> None:
    """Raise the case's supervision level by one (督办), e.g. for a dissatisfied citizen."""
    case = book.ensure_case(case_id)
    level = next_escalation_level(case.escalation_level)
    book.update_case(case_id, escalation_level=level)
    event = CaseEscalated(case_id=case_id, occurred_at=ctx.now(), actor="sla", level=level, reason=reason)
    book.emit([ctx.message(event, "supervise", *identity)])


class ClockConflict(Exception):
    """The case's clocks are not in the state the operator's action needs (answered with 409)."""

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem


def pause_clocks(book: ClockBook, ctx: SlaContext, case_id: str, reason: str) -> list[str]:
    """Stop every running clock of the case (e.g. waiting for the citizen); their pending cards are
    cancelled and each stage announces ClockPaused. Returns the paused stages."""
    rows = book.clock_rows(case_id)
    running = [row for row in rows.values() if row.state == "running"]
    if not running:
        if any(row.state == "paused" for row in rows.values()):
            raise ClockConflict("clock-already-paused", f"The clocks of {case_id} are already paused.")
        raise ClockConflict("no-running-clock", f"{case_id} has no running clock to pause.")
    now = ctx.now()
    stages = [row.stage for row in running]
    book.pause(case_id, stages, now)
    book.cancel_timers(case_id, now, stages=stages)
    events = [
        ctx.message(
            ClockPaused(case_id=case_id, occurred_at=now, actor="sla", stage=row.stage, reason=reason),
            row.stage,
            row.generation,
            "clock-paused",
        )
        for row in running
    ]
    book.emit(events)
    return stages


async def resume_clocks(book: ClockBook, ctx: SlaContext, case_id: str) -> list[str]:
    """Run the paused clocks again: each deadline moves by the pause's length in its own clock (office
    time for working clocks), a new generation is scheduled (DeadlineSet) and ClockResumed announced.
    Cards already shown for a clock are not shown again (read from the stored timers). Returns the
    resumed stages."""
    rows = book.clock_rows(case_id)
    paused = [row for row in rows.values() if row.state == "paused"]
    if not paused:
        raise ClockConflict("clock-not-paused", f"No clock of {case_id} is paused.")
    now = ctx.now()
    for row in paused:
        limit = stage_limit(ctx, row)
        pause = paused_in_clock(ctx.calendar, limit.clock, row.paused_at, now)
        _set_clock(
            book,
            ctx,
            case_id=case_id,
            stage=DeadlineStage(row.stage),
            start=row.started_at,
            limit=limit,
            policy_id=row.policy_id,
            policy_version=row.policy_version,
            assignment_id=row.assignment_id,
            generation=row.generation + 1,
            extension_days=row.extension_days,
            paused_seconds=row.paused_seconds + pause.total_seconds(),
            skip_kinds=await store.fired_kinds(book.conn, case_id, row.stage, since=row.started_at),
        )
        event = ClockResumed(
            case_id=case_id,
            occurred_at=now,
            actor="sla",
            stage=row.stage,
            paused_seconds=pause.total_seconds(),
        )
        book.emit([ctx.message(event, row.stage, row.generation, "clock-resumed")])
    return [row.stage for row in paused]
