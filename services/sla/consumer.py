"""Sla's reaction to case events: each event type maps to one decision in handlers.py, taken on the
batch's ClockBook (book.py) and written with the rest of the batch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import intake, routing
from contracts.events.sla import DeadlineStage
from runtime.consumer import Delivery, Handler, UnitOfWorkFactory, apply_in_unit
from services.sla import handlers
from services.sla.book import ClockBook
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


class SlaBatch:
    """Sla's unit of work over one batch of case events: one ClockBook for every case in the batch (two
    reads), each event decided in memory in log order, everything written at ``finish``."""

    def __init__(self, ctx: SlaContext, book: ClockBook) -> None:
        self._ctx, self._book = ctx, book

    @classmethod
    def factory(cls, ctx: SlaContext) -> UnitOfWorkFactory:
        async def open_unit(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> SlaBatch:
            if ctx.calendars.stamp == (-1, -1):  # first batch after start: read the operator holiday table
                await ctx.calendars.refresh(conn)
            book = await ClockBook.open(conn, (d.envelope.event.case_id for d in deliveries))
            return cls(ctx, book)

        return open_unit

    async def handle(self, delivery: Delivery) -> None:
        apply(self._book, self._ctx, delivery)

    async def finish(self) -> None:
        await self._book.write()


def unit_of_work(ctx: SlaContext) -> UnitOfWorkFactory:
    """What the runtime's consumer loop opens for every batch of case events."""
    return SlaBatch.factory(ctx)


def make_handler(ctx: SlaContext) -> Handler:
    """One event at a time through the same unit of work (tests apply events this way)."""
    open_unit = unit_of_work(ctx)

    async def handle(conn: AsyncConnection, delivery: Delivery) -> None:
        await apply_in_unit(open_unit, conn, [delivery])

    return handle


def apply(book: ClockBook, ctx: SlaContext, delivery: Delivery) -> None:
    """Decide one case event on sla's clocks (in the book; written with the batch)."""
    event = delivery.envelope.event
    case_id = event.case_id
    match event:
        case intake.CaseReceived():
            book.ensure_case(
                case_id,
                appeal_type=event.appeal_type and str(event.appeal_type),
                urgency=str(event.urgency),
                category_code=event.category_code,
            )
        case routing.CaseAssigned():
            handlers.start_assignment_clocks(
                book, ctx, case_id, event.occurred_at, event.assignment_id, event.basis.category_code
            )
        case routing.CaseSentToTriage():
            handlers.start_triage_clock(book, ctx, case_id, event.occurred_at, event.basis.category_code)
        case routing.AssignmentAccepted():
            handlers.stop_clocks(book, ctx, case_id, [STAGE.SIGN_FOR], assignment_id=event.assignment_id)
        case routing.AssignmentReturned():
            handlers.stop_clocks(
                book, ctx, case_id, handlers.ASSIGNMENT_STAGES, "cancelled", event.assignment_id
            )
        case routing.CaseTransferred():
            # the overall case clock keeps running; the new assignee gets fresh stage clocks
            handlers.stop_clocks(
                book, ctx, case_id, handlers.ASSIGNMENT_STAGES, "cancelled", event.from_assignment_id
            )
            handlers.start_assignment_clocks(book, ctx, case_id, event.occurred_at, None)
        case routing.ReplySubmitted():
            handlers.stop_clocks(book, ctx, case_id, [STAGE.SIGN_FOR, STAGE.REPLY, STAGE.CASE])
            book.cancel_timers(case_id, ctx.now(), stages=[handlers.LADDER])
            book.update_case(case_id, status="replied")
        case routing.ExtensionDecided() if event.approved and event.working_days > 0:
            handlers.extend(book, ctx, case_id, event.working_days)
        case intake.FeedbackReceived() if event.satisfaction == "dissatisfied":
            handlers.supervise(book, ctx, case_id, "群众不满意（回访评价）", delivery.envelope.id)
        case intake.CaseReopened():
            # 重办: the next assignment starts a fresh case clock
            handlers.stop_clocks(book, ctx, case_id, ALL_STAGES, "cancelled")
            book.ensure_case(case_id)
            book.update_case(case_id, status="open")
        case intake.CaseClosed() | intake.AppealWithdrawn():
            handlers.stop_clocks(book, ctx, case_id, ALL_STAGES, "cancelled")
            book.cancel_timers(case_id, ctx.now())
            book.ensure_case(case_id)
            book.update_case(case_id, status="closed")
        case _:
            log.debug("sla.event_ignored", case_id=case_id, event_type=delivery.envelope.type)
