"""Notify's own state: case facts (for addressing) and the delivery queue, which is also the delivery log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# Fold of each case's events (services.notify.domain.facts.CaseFacts as JSON): masked values only.
case_facts = sa.Table(
    "case_facts",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("facts", JSONB, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# One row per message: the unique key makes redelivered events harmless (at most one message per event,
# recipient and channel). Rows hold recipient ids and rendered, masked text - never a clear phone number
# or e-mail address; the worker looks addresses up at send time.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),  # queue order  # notification id
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("trigger_event_id", sa.Text, nullable=False),
    sa.Column("trigger_type", sa.Text, nullable=False),
    sa.Column("subscription", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("recipient_kind", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("quiet_hours", sa.Boolean, nullable=False),
    sa.Column("trace_headers", JSONB, nullable=False),  # W3C context of the trigger event
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deferred_reason", sa.Text),  # quiet-hours | circuit-open | retry
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("failed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("trigger_event_id", "recipient", "channel", name="deliveries_once"),
)
sa.Index("deliveries_due", deliveries.c.next_attempt_at, postgresql_where=deliveries.c.status == "pending")
sa.Index("deliveries_by_case", deliveries.c.case_id, deliveries.c.seq)
sa.Index("deliveries_once_per_case", deliveries.c.case_id, deliveries.c.recipient, deliveries.c.template)
