"""Intake's reaction to case events: keep each appeal's status, notes and responsible agency in step with
the log (for Open311 reads and citizen actions), and close duplicates with their primary case.

A unit of work per consumed batch (runtime.consumer): one read locks the appeal rows the batch's events
concern (a second, the open duplicates of every primary it closes), each event then changes the rows in
memory, in log order, and ``finish`` writes the changed rows (one pipelined round trip) and the
duplicates' CaseClosed events. The rows end as the events applied one by one would leave them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.envelope import OutboundMessage, encode_event
from contracts.events import CaseClosed
from contracts.events.intake import AppealWithdrawn, CaseReopened, DuplicateLinked
from contracts.events.routing import (
    AssignmentAccepted,
    CaseAssigned,
    CaseSentToTriage,
    CaseTransferred,
    ReplySubmitted,
)
from runtime.consumer import Delivery, UnitOfWork
from runtime.outbox import enqueue

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

_CLOSED_NOTES = {
    "resolved_on_spot": "即知即改，已办结",
    "citizen_satisfied": "市民满意，已办结",
    "no_feedback": "回访期满，已办结",
    "withdrawn": "市民已撤诉",
    "duplicate": "重复件，随主件办结",
}
_OPEN = ("open", "replied")


@dataclass
class AppealRow:
    """The columns of an appeal row that case events change."""

    case_id: str
    status: str
    duplicate_of: str | None
    status_notes: str | None
    agency_responsible: str | None
    reply_count: int
    reopen_count: int
    updated_at: datetime
    changed: bool = False


class AppealEvents:
    """The unit of work over one batch of case events (see the module's docstring)."""

    def __init__(self, conn: AsyncConnection, rows: dict[str, AppealRow]) -> None:
        self._conn = conn
        self._rows = rows
        self._messages: list[OutboundMessage] = []

    @classmethod
    async def open(cls, conn: AsyncConnection, deliveries: Sequence[Delivery]) -> AppealEvents:
        events = [d.envelope.event for d in deliveries]
        closing = [e.case_id for e in events if isinstance(e, CaseClosed) and e.reason != "duplicate"]
        db: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
        # Locked in case_id order, so two batches that share rows cannot wait for each other in a cycle.
        locked = await db.fetch(_LOCK_APPEALS, sorted({e.case_id for e in events}))
        rows = {r["case_id"]: AppealRow(**r) for r in locked}
        if closing:  # most batches close no primary
            for r in await db.fetch(_LOCK_OPEN_DUPLICATES, sorted(set(closing))):
                rows.setdefault(r["case_id"], AppealRow(**r))
        return cls(conn, rows)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.envelope.event
        row = self._rows.get(event.case_id)
        if row is None:
            return  # not an appeal of this intake (or not yet recorded): nothing to keep in step
        if isinstance(event, CaseClosed):
            row.status = "withdrawn" if row.status == "withdrawn" else "closed"
            row.status_notes = _CLOSED_NOTES.get(event.reason, "已办结")
            if event.reason != "duplicate":
                self._close_duplicates(delivery, event)
        elif isinstance(event, AppealWithdrawn):
            row.status, row.status_notes = "withdrawn", "市民已撤诉"
        elif isinstance(event, CaseReopened):
            row.status, row.reopen_count, row.status_notes = "open", event.reopen_count, "市民不满意，已重办"
        elif isinstance(event, CaseAssigned):
            row.agency_responsible = event.assignee.name
            row.status_notes = f"已派发至{event.assignee.name}"
        elif isinstance(event, CaseTransferred):
            row.agency_responsible = event.to_assignee.name
            row.status_notes = f"已转办至{event.to_assignee.name}"
        elif isinstance(event, AssignmentAccepted):
            row.agency_responsible = event.assignee.name
            row.status_notes = f"{event.assignee.name}已签收"
        elif isinstance(event, CaseSentToTriage):
            row.status_notes = "待人工分拨"
        elif isinstance(event, ReplySubmitted):
            if row.status not in ("closed", "withdrawn"):
                row.status = "replied"
            row.reply_count += 1
            row.status_notes = f"{event.assignee.name}已答复"
        elif isinstance(event, DuplicateLinked):
            row.duplicate_of = event.primary_case_id
            row.status_notes = f"重复件，并入{event.primary_case_id}"
        else:
            return
        row.updated_at = event.occurred_at
        row.changed = True

    def _close_duplicates(self, delivery: Delivery, primary: CaseClosed) -> None:
        """A duplicate is closed with its primary case: one CaseClosed for each that is still open (emitted
        once thanks to the inbox; the duplicate's row changes when its own CaseClosed comes back)."""
        now = datetime.now(UTC)
        for row in self._rows.values():
            if row.duplicate_of == primary.case_id and row.status in _OPEN:
                closed = CaseClosed(
                    case_id=row.case_id,
                    occurred_at=now,
                    actor="intake",
                    reason="duplicate",
                    note=f"随主件 {primary.case_id} 办结",
                )
                self._messages.append(
                    encode_event(
                        closed,
                        source=SOURCE,
                        topic=delivery.topic,
                        trace_headers=delivery.envelope.trace_headers,
                    )
                )

    async def finish(self) -> None:
        changed = [row for row in self._rows.values() if row.changed]
        if changed:
            db: asyncpg.Connection = (await self._conn.get_raw_connection()).driver_connection
            await db.executemany(
                _WRITE_APPEAL,
                [
                    (
                        row.case_id,
                        row.status,
                        row.duplicate_of,
                        row.status_notes,
                        row.agency_responsible,
                        row.reply_count,
                        row.reopen_count,
                        row.updated_at,
                    )
                    for row in changed
                ],  # fmt: skip
            )
        await enqueue(self._conn, self._messages)


# Every statement finds its rows by equality on an index, one lookup per key. A cached generic plan made
# while the table was small (a fresh database under a burst, before autovacuum's first ANALYZE) read the
# whole table for ``case_id = ANY($1)`` and for an UPDATE joined to unnest(): 4-15 ms per batch at 5,000
# appeals, growing with the table (auto_explain, 2026-11-28).
_COLUMNS = (
    "case_id, status, duplicate_of, status_notes, agency_responsible, reply_count, reopen_count, updated_at"
)
_LOCK_APPEALS = f"""
SELECT a.* FROM unnest($1::text[]) AS k(case_id)
CROSS JOIN LATERAL (SELECT {_COLUMNS} FROM appeals WHERE appeals.case_id = k.case_id FOR UPDATE) a
"""
_LOCK_OPEN_DUPLICATES = f"""
SELECT a.* FROM unnest($1::text[]) AS k(primary_case_id)
CROSS JOIN LATERAL (
    SELECT {_COLUMNS} FROM appeals
    WHERE appeals.duplicate_of = k.primary_case_id AND appeals.status IN ('open', 'replied')
    ORDER BY case_id
    FOR UPDATE
) a
"""
_WRITE_APPEAL = """
UPDATE appeals SET
    status = $2, duplicate_of = $3, status_notes = $4, agency_responsible = $5, reply_count = $6,
    reopen_count = $7, updated_at = $8
WHERE case_id = $1
"""


async def open_unit(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> UnitOfWork:
    """runtime.consumer's unit-of-work factory for intake's case-event consumer."""
    return await AppealEvents.open(conn, deliveries)
