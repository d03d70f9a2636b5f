"""Notify's reaction to case events."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.consumer import Delivery

log = structlog.get_logger(__name__)


async def handle(conn: AsyncConnection, delivery: Delivery) -> None:
    """Walking-skeleton stage: take the event in (the runtime records it in the inbox) and log it.

    The notify issue replaces this with the service's real decisions.
    """
    log.debug("notify.event_seen", case_id=delivery.envelope.subject, event_type=delivery.envelope.type)
