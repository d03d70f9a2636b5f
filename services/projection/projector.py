"""Projection's consumer handler: fold each case event into the read models, in the consumer's transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.consumer import Delivery
from services.projection import domain
from services.projection.tables import case_summary, case_timeline


async def project(conn: AsyncConnection, delivery: Delivery) -> None:
    """Apply one event to the case summary and append it to the timeline."""
    envelope = delivery.envelope
    event = envelope.event
    appended = await conn.execute(
        insert(case_timeline)
        .values(
            event_id=envelope.id,
            case_id=event.case_id,
            event_type=envelope.type,
            occurred_at=event.occurred_at,
            actor=event.actor,
            source=envelope.source,
            data=event.model_dump(mode="json"),
            log_partition=delivery.partition,
            log_offset=delivery.offset,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(case_timeline.c.event_id)
    )
    if appended.first() is None:
        return  # already projected (the inbox normally catches this first)
    row = (
        (
            await conn.execute(
                sa.select(case_summary).where(case_summary.c.case_id == event.case_id).with_for_update()
            )
        )
        .mappings()
        .first()
    )
    state = domain.apply(dict(row) if row else None, event, event.occurred_at)
    columns = {c.name for c in case_summary.columns}
    values = {k: v for k, v in state.items() if k in columns}
    await conn.execute(
        insert(case_summary)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["case_id"], set_={k: v for k, v in values.items() if k != "case_id"}
        )
    )
