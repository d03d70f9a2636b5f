"""Notify's consumer handler: fold the event into the case facts, decide the messages, queue them.

Runs inside the consumer's transaction and never touches the network: sending is the delivery worker's
job, so a slow or dead endpoint can never hold up the case event log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.consumer import Delivery
from runtime.sql import precompiled
from services.notify.domain import facts as case_facts
from services.notify.domain.directory import Directory
from services.notify.domain.planning import Notice, plan
from services.notify.domain.policy import QuietHours
from services.notify.domain.subscriptions import SubscriptionTable
from services.notify.domain.templates import Renderer
from services.notify.tables import case_facts as case_facts_table
from services.notify.tables import deliveries

NOTIFICATION_NAMESPACE = uuid.UUID("5b0f6a3e-6c1d-4f7e-9a54-2b8f8d0c6e11")


def notification_id(trigger_event_id: str, recipient: str, channel: str) -> str:
    """Stable id of the one message for (event, recipient, channel): the same on every redelivery."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{trigger_event_id}|{recipient}|{channel}"))


@dataclass
class Notifier:
    """Decides and queues notifications for case events (the consumer handler)."""

    table: SubscriptionTable
    directory: Directory
    renderer: Renderer
    quiet_hours: QuietHours
    satisfaction_url: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def handle(self, conn: AsyncConnection, delivery: Delivery) -> None:
        """Consumer handler: queue every message this event causes (at most once each)."""
        envelope = delivery.envelope
        event = envelope.event
        if event.producer == "notify":
            return  # our own NotificationSent/Failed on the shared log
        facts = await self._fold(conn, event)
        links = {"satisfaction": self.satisfaction_url.format(case_id=event.case_id)}
        now = self.clock()
        rows = []
        for notice in plan(event, facts, self.table, self.directory, self.renderer, links):
            if notice.once_per_case and await _already_told(conn, event.case_id, notice):
                continue
            rows.append(
                {
                    "id": notification_id(envelope.id, notice.recipient, notice.channel),
                    "case_id": event.case_id,
                    "trigger_event_id": envelope.id,
                    "trigger_type": envelope.type,
                    "subscription": notice.subscription,
                    "recipient": notice.recipient,
                    "recipient_kind": notice.recipient_kind,
                    "channel": notice.channel,
                    "endpoint": notice.endpoint,
                    "template": notice.template,
                    "title": notice.title,
                    "body": notice.body,
                    "payload": notice.payload,
                    "quiet_hours": notice.quiet_hours,
                    "trace_headers": envelope.trace_headers,
                    "next_attempt_at": self.quiet_hours.next_allowed(now) if notice.quiet_hours else now,
                    "deferred_reason": "quiet-hours"
                    if notice.quiet_hours and self.quiet_hours.contains(now)
                    else None,
                }
            )
        if rows:
            await conn.execute(_QUEUE_DELIVERY, rows)

    async def _fold(self, conn: AsyncConnection, event) -> case_facts.CaseFacts:
        row = (
            await conn.execute(
                sa.select(case_facts_table.c.facts)
                .where(case_facts_table.c.case_id == event.case_id)
                .with_for_update()
            )
        ).first()
        before = case_facts.CaseFacts.model_validate(row.facts) if row else None
        after = case_facts.apply(before, event)
        if after != before:
            data = after.model_dump(mode="json")
            await conn.execute(_SAVE_FACTS, {"case_id": event.case_id, "facts": data})
        return after


_DELIVERY_COLUMNS = (
    "id",
    "case_id",
    "trigger_event_id",
    "trigger_type",
    "subscription",
    "recipient",
    "recipient_kind",
    "channel",
    "endpoint",
    "template",
    "title",
    "body",
    "payload",
    "quiet_hours",
    "trace_headers",
    "next_attempt_at",
    "deferred_reason",
)
_QUEUE_DELIVERY = precompiled(
    insert(deliveries).on_conflict_do_nothing(constraint="deliveries_once"), _DELIVERY_COLUMNS
)
_facts_insert = insert(case_facts_table)
_SAVE_FACTS = precompiled(
    _facts_insert.on_conflict_do_update(
        index_elements=["case_id"], set_={"facts": _facts_insert.excluded.facts, "updated_at": sa.func.now()}
    ),
    ["case_id", "facts"],
)


async def _already_told(conn: AsyncConnection, case_id: str, notice: Notice) -> bool:
    found = await conn.execute(
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.case_id == case_id,
            deliveries.c.recipient == notice.recipient,
            deliveries.c.template == notice.template,
        )
        .limit(1)
    )
    return found.first() is not None
