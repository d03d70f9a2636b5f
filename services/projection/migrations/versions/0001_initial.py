"""Projection: case summary and timeline read models, runtime tables.

Revision ID: projection_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from runtime.migrations import create_runtime_tables_v1, drop_runtime_tables_v1

revision = "projection_0001"
down_revision = None


def upgrade() -> None:
    create_runtime_tables_v1()
    op.create_table(
        "case_summary",
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
    op.create_index("case_summary_status_received", "case_summary", ["status", "received_at"])
    op.create_table(
        "case_timeline",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("log_partition", sa.Integer, nullable=False),
        sa.Column("log_offset", sa.BigInteger, nullable=False),
    )
    op.create_index("case_timeline_case", "case_timeline", ["case_id", "occurred_at"])


def downgrade() -> None:
    op.drop_table("case_timeline")
    op.drop_table("case_summary")
    drop_runtime_tables_v1()
