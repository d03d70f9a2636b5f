"""Sla: policy versions, tracked cases, stage deadlines, durable timers, operator holiday table.

Revision ID: sla_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "sla_0002"
down_revision = "sla_0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_policy_sets",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("loaded_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "sla_cases",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("appeal_type", sa.Text),
        sa.Column("urgency", sa.Text),
        sa.Column("category_code", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_breach_at", _TS),
        sa.Column("extensions_used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "sla_deadlines",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("assignment_id", sa.Text),
        sa.Column("policy_id", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("clock", sa.Text, nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("extension_days", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paused_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("paused_at", _TS),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("provisional", sa.Boolean, nullable=False),
        sa.Column("calendar_basis", sa.Text, nullable=False),
        sa.Column("stopped_at", _TS),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "sla_deadlines_provisional",
        "sla_deadlines",
        ["case_id"],
        postgresql_where=sa.text("provisional AND state IN ('running', 'paused')"),
    )
    op.create_table(
        "sla_timers",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("deadline_due_at", _TS, nullable=False),
        sa.Column("assignment_id", sa.Text),
        sa.Column("fired_at", _TS),
        sa.Column("cancelled_at", _TS),
        sa.UniqueConstraint("case_id", "stage", "kind", "generation", name="sla_timers_once"),
    )
    op.create_index(
        "sla_timers_pending",
        "sla_timers",
        ["due_at"],
        postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_index("sla_timers_case", "sla_timers", ["case_id"])
    op.create_table(
        "sla_holiday_years",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "sla_holidays",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("year", sa.Integer, sa.ForeignKey("sla_holiday_years.year"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
    )


def downgrade() -> None:
    for table in ("sla_holidays", "sla_holiday_years", "sla_timers", "sla_deadlines", "sla_cases"):
        op.drop_table(table)
    op.drop_table("sla_policy_sets")
