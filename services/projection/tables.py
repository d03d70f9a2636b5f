"""Read models. Rebuildable from the log at any time; never the source of truth."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

case_summary = sa.Table(
    "case_summary",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("external_id", sa.Text),
    sa.Column("appeal_type", sa.Text),
    sa.Column("category_code", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("lat", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("urgency", sa.Text),
    sa.Column("reply_required", sa.Boolean),
    sa.Column("citizen_name_masked", sa.Text),
    sa.Column("citizen_phone_masked", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("close_reason", sa.Text),
    sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("events_applied", sa.Integer, nullable=False),
)

case_timeline = sa.Table(
    "case_timeline",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("case_id", sa.Text, nullable=False, index=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("log_partition", sa.Integer, nullable=False),
    sa.Column("log_offset", sa.BigInteger, nullable=False),
)
