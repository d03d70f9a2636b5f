"""Intake's reaction to case events: keep each appeal's status in step with the log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import CaseClosed
from runtime.consumer import Delivery
from services.intake.tables import appeals


async def handle(conn: AsyncConnection, delivery: Delivery) -> None:
    """A closed case closes its appeal (so a later duplicate is not linked to a finished case)."""
    event = delivery.envelope.event
    if isinstance(event, CaseClosed):
        await conn.execute(
            sa.update(appeals).where(appeals.c.case_id == event.case_id).values(status="closed")
        )
