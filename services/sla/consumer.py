"""Sla's reaction to case events: each event type maps to one decision in handlers.py."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import intake, routing
from contracts.events.sla import DeadlineStage
from runtime.consumer import Delivery, Handler
from services.sla import handlers, store
from services.sla.context import SlaContext

log = structlog.get_logger(__name__)
STAGE = DeadlineStage
ALL_STAGES = tuple(DeadlineStage)


# The event types ``apply`` acts on; the consumer loop passes over the others without decoding them.
HANDLES = (
    intake.CaseReceived,
    routing.CaseAssigned,
    routing.CaseSentToTriage,
    routing.AssignmentAccepted,
    routing.AssignmentReturned,
    routing.CaseTransferred,
    routing.ReplySubmitted,
    routing.ExtensionDecided,
    intake.FeedbackReceived,
    intake.CaseReopened,
    intake.CaseClosed,
    intake.AppealWithdrawn,
)


def make_handler(ctx: SlaContext) -> Handler:
    """The consumer handler bound to sla's context (policy table, calendar, clock)."""

    async def handle(conn: AsyncConnection, delivery: Delivery) -> None:
        if ctx.calendars.stamp == (-1, -1):  # first event after start: read the operator holiday table
            await ctx.calendars.refresh(conn)
        await apply(conn, ctx, delivery)

    return handle


async def apply(conn: AsyncConnection, ctx: SlaContext, delivery: Delivery) -> None:
    """Apply one case event to sla's clocks (runs in the consumer's transaction)."""
    event = delivery.envelope.event
    case_id = event.case_id
    match event:
        case intake.CaseReceived():
            await store.ensure_case(
                conn,
                case_id,
                appeal_type=event.appeal_type and str(event.appeal_type),
                urgency=str(event.urgency),
                category_code=event.category_code,
            )
        case routing.CaseAssigned():
            await handlers.start_assignment_clocks(
                conn, ctx, case_id, event.occurred_at, event.assignment_id, event.basis.category_code
            )
        case routing.CaseSentToTriage():
            await handlers.start_triage_clock(
                conn, ctx, case_id, event.occurred_at, event.basis.category_code
            )
        case routing.AssignmentAccepted():
            await handlers.stop_clocks(
                conn, ctx, case_id, [STAGE.SIGN_FOR], assignment_id=event.assignment_id
            )
        case routing.AssignmentReturned():
            await handlers.stop_clocks(
                conn, ctx, case_id, handlers.ASSIGNMENT_STAGES, "cancelled", event.assignment_id
            )
        case routing.CaseTransferred():
            # the overall case clock keeps running; the new assignee gets fresh stage clocks
            await handlers.stop_clocks(
                conn, ctx, case_id, handlers.ASSIGNMENT_STAGES, "cancelled", event.from_assignment_id
            )
            await handlers.start_assignment_clocks(conn, ctx, case_id, event.occurred_at, None)
        case routing.ReplySubmitted():
            await handlers.stop_clocks(conn, ctx, case_id, [STAGE.SIGN_FOR, STAGE.REPLY, STAGE.CASE])
            await store.cancel_timers(conn, case_id, ctx.now(), stages=[handlers.LADDER])
            await store.update_case(conn, case_id, status="replied")
        case routing.ExtensionDecided() if event.approved and event.working_days > 0:
            await handlers.extend(conn, ctx, case_id, event.working_days)
        case intake.FeedbackReceived() if event.satisfaction == "dissatisfied":
            await handlers.supervise(conn, ctx, case_id, "群众不满意（回访评价）", delivery.envelope.id)
        case intake.CaseReopened():
            # 重办: the next assignment starts a fresh case clock
            await handlers.stop_clocks(conn, ctx, case_id, ALL_STAGES, "cancelled")
            await store.ensure_case(conn, case_id)
            await store.update_case(conn, case_id, status="open")
        case intake.CaseClosed() | intake.AppealWithdrawn():
            await handlers.stop_clocks(conn, ctx, case_id, ALL_STAGES, "cancelled")
            await store.cancel_timers(conn, case_id, ctx.now())
            await store.ensure_case(conn, case_id)
            await store.update_case(conn, case_id, status="closed")
        case _:
            log.debug("sla.event_ignored", case_id=case_id, event_type=delivery.envelope.type)
