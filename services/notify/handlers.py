"""Notify's consumer side: fold each event into the case facts, decide the messages, queue them.

Runs inside the consumer's transaction and never touches the network: sending is the delivery worker's
job, so a slow or dead endpoint can never hold up the case event log. A consumed batch is one unit of
work: one read locks the facts of every case in it, events fold in memory, and the changed facts and
the queued messages are written once at the end.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.consumer import Delivery, apply_in_unit
from runtime.sql import ArrayInsert, do_update, keys_in
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

    @functools.cached_property
    def once_templates(self) -> list[str]:
        """Templates of the subscriptions that send at most once per case and recipient."""
        return sorted({rule.template for rule in self.table.subscriptions if rule.once_per_case})

    async def open_unit(self, conn: AsyncConnection, deliveries: Sequence[Delivery]) -> NotifyBatch:
        """The unit of work of one consumed batch (runtime.consumer), the facts of its cases locked."""
        batch = NotifyBatch(self, conn)
        await batch.lock(
            {d.envelope.event.case_id for d in deliveries if d.envelope.event.producer != "notify"}
        )
        return batch

    async def handle(self, conn: AsyncConnection, delivery: Delivery) -> None:
        """Queue every message one event causes (at most once each), as a batch of one."""
        await apply_in_unit(self.open_unit, conn, [delivery])


@dataclass
class NotifyBatch:
    """Notify's work on one consumed batch: facts folded in memory, written with the messages at the end."""

    notifier: Notifier
    conn: AsyncConnection
    facts: dict[str, case_facts.CaseFacts | None] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)
    # (case, recipient, template) of once-per-case messages queued, for the cases in ``told_cases``
    told: set[tuple[str, str, str]] = field(default_factory=set)
    told_cases: set[str] = field(default_factory=set)

    async def lock(self, case_ids: set[str]) -> None:
        wanted = sorted(case_ids - self.facts.keys())
        if not wanted:
            return
        found = await self.conn.execute(_LOCK_FACTS, {"case_ids": wanted})
        self.facts.update(dict.fromkeys(wanted))
        self.facts.update((row.case_id, case_facts.CaseFacts.model_validate(row.facts)) for row in found)

    async def handle(self, delivery: Delivery) -> None:
        envelope = delivery.envelope
        event = envelope.event
        if event.producer == "notify":
            return  # our own NotificationSent/Failed on the shared log
        await self.lock({event.case_id})
        before = self.facts[event.case_id]
        facts = case_facts.apply(before, event)
        if facts != before:
            self.facts[event.case_id] = facts
            self.changed.add(event.case_id)
        notifier = self.notifier
        links = {"satisfaction": notifier.satisfaction_url.format(case_id=event.case_id)}
        now = notifier.clock()
        quiet = notifier.quiet_hours
        for notice in plan(event, facts, notifier.table, notifier.directory, notifier.renderer, links):
            if notice.once_per_case and not await self._tell_once(event.case_id, notice):
                continue
            self.rows.append(
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
                    "next_attempt_at": quiet.next_allowed(now) if notice.quiet_hours else now,
                    "deferred_reason": "quiet-hours" if notice.quiet_hours and quiet.contains(now) else None,
                }
            )

    async def finish(self) -> None:
        if self.changed:
            await _SAVE_FACTS.execute(
                self.conn,
                [
                    {"case_id": case_id, "facts": self.facts[case_id].model_dump(mode="json")}  # type: ignore[union-attr]
                    for case_id in sorted(self.changed)
                ],
            )
        await _QUEUE_DELIVERY.execute(self.conn, self.rows)
        self.changed, self.rows = set(), []

    async def _tell_once(self, case_id: str, notice: Notice) -> bool:
        """Claim a once-per-case message: True (and noted as told) the first time, in this batch or
        before; False when it was already queued.

        The first such question in a batch reads the once-per-case messages of every case the batch has
        locked, in one statement; later ones are answered from memory."""
        if case_id not in self.told_cases:
            cases = sorted(self.facts.keys() - self.told_cases)
            found = await self.conn.execute(
                _TOLD, {"case_ids": cases, "templates": self.notifier.once_templates}
            )
            self.told.update((row.case_id, row.recipient, row.template) for row in found)
            self.told_cases.update(cases)
        key = (case_id, notice.recipient, notice.template)
        if key in self.told:
            return False
        self.told.add(key)
        return True


# Built once, at import (runtime.sql.keys_in says why).
_LOCK_FACTS = (
    sa.select(case_facts_table.c.case_id, case_facts_table.c.facts)
    .where(keys_in(case_facts_table.c.case_id, "case_ids"))
    .order_by(case_facts_table.c.case_id)
    .with_for_update()
)
_TOLD = sa.select(deliveries.c.case_id, deliveries.c.recipient, deliveries.c.template).where(
    keys_in(deliveries.c.case_id, "case_ids"), keys_in(deliveries.c.template, "templates")
)

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
# Each batch's rows in one statement of arrays (runtime.sql.ArrayInsert), in order: seq numbers them so.
_QUEUE_DELIVERY = ArrayInsert(
    deliveries, _DELIVERY_COLUMNS, "ON CONFLICT ON CONSTRAINT deliveries_once DO NOTHING"
)
_SAVE_FACTS = ArrayInsert(
    case_facts_table, ["case_id", "facts"], do_update(["case_id"], ["case_id", "facts"], updated_at="now()")
)
