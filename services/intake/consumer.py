"""Intake's reaction to case events: keep each appeal's status, notes and responsible agency in step with
the log (for Open311 reads and citizen actions), and close duplicates with their primary case."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.envelope import encode_event
from contracts.events import CaseClosed
from contracts.events.intake import AppealWithdrawn, CaseReopened, DuplicateLinked
from contracts.events.routing import (
    AssignmentAccepted,
    CaseAssigned,
    CaseSentToTriage,
    CaseTransferred,
    ReplySubmitted,
)
from runtime.consumer import Delivery
from runtime.outbox import enqueue
from services.intake.tables import appeals

SOURCE = "/gridline/intake"


# The event types ``handle`` acts on; the consumer loop passes over the others without decoding them.
HANDLES = (
    CaseClosed,
    AppealWithdrawn,
    CaseReopened,
    CaseAssigned,
    CaseTransferred,
    AssignmentAccepted,
    CaseSentToTriage,
    ReplySubmitted,
    DuplicateLinked,
)


async def handle(conn: AsyncConnection, delivery: Delivery) -> None:
    """Apply one case event to intake's appeal row (the consumer loop records it in the inbox)."""
    event = delivery.envelope.event
    values: dict = {}
    if isinstance(event, CaseClosed):
        values = {
            "status": sa.case((appeals.c.status == "withdrawn", "withdrawn"), else_="closed"),
            "status_notes": _CLOSED_NOTES.get(event.reason, "已办结"),
        }
        await _close_duplicates(conn, delivery, event)
    elif isinstance(event, AppealWithdrawn):
        values = {"status": "withdrawn", "status_notes": "市民已撤诉"}
    elif isinstance(event, CaseReopened):
        values = {"status": "open", "reopen_count": event.reopen_count, "status_notes": "市民不满意，已重办"}
    elif isinstance(event, CaseAssigned):
        values = {"agency_responsible": event.assignee.name, "status_notes": f"已派发至{event.assignee.name}"}
    elif isinstance(event, CaseTransferred):
        values = {
            "agency_responsible": event.to_assignee.name,
            "status_notes": f"已转办至{event.to_assignee.name}",
        }
    elif isinstance(event, AssignmentAccepted):
        values = {"agency_responsible": event.assignee.name, "status_notes": f"{event.assignee.name}已签收"}
    elif isinstance(event, CaseSentToTriage):
        values = {"status_notes": "待人工分拨"}
    elif isinstance(event, ReplySubmitted):
        values = {
            "status": sa.case(
                (appeals.c.status.in_(["closed", "withdrawn"]), appeals.c.status), else_="replied"
            ),
            "reply_count": appeals.c.reply_count + 1,
            "status_notes": f"{event.assignee.name}已答复",
        }
    elif isinstance(event, DuplicateLinked):
        values = {
            "duplicate_of": event.primary_case_id,
            "status_notes": f"重复件，并入{event.primary_case_id}",
        }
    if values:
        await conn.execute(
            sa.update(appeals)
            .where(appeals.c.case_id == event.case_id)
            .values(**values, updated_at=event.occurred_at)
        )


_CLOSED_NOTES = {
    "resolved_on_spot": "即知即改，已办结",
    "citizen_satisfied": "市民满意，已办结",
    "no_feedback": "回访期满，已办结",
    "withdrawn": "市民已撤诉",
    "duplicate": "重复件，随主件办结",
}


async def _close_duplicates(conn: AsyncConnection, delivery: Delivery, primary: CaseClosed) -> None:
    """A duplicate is closed with its primary case (one CaseClosed each, emitted once thanks to the inbox)."""
    if primary.reason == "duplicate":
        return
    rows = (
        await conn.execute(
            sa.select(appeals.c.case_id).where(
                appeals.c.duplicate_of == primary.case_id, appeals.c.status.in_(["open", "replied"])
            )
        )
    ).all()
    now = datetime.now(UTC)
    messages = [
        encode_event(
            CaseClosed(
                case_id=row.case_id,
                occurred_at=now,
                actor="intake",
                reason="duplicate",
                note=f"随主件 {primary.case_id} 办结",
            ),
            source=SOURCE,
            topic=delivery.topic,
            trace_headers=delivery.envelope.trace_headers,
        )
        for row in rows
    ]
    await enqueue(conn, messages)
