"""Sla: drop sla_timers_case; sla_timers_once (case_id, stage, kind, generation) serves lookups by case.

Every timer written (scheduled, fired, a ladder step) paid for one more index entry, and a million pending
timers for its pages, with no query that needs it.

Revision ID: sla_0004
"""

from alembic import op

revision = "sla_0004"
down_revision = "sla_0003"


def upgrade() -> None:
    op.drop_index("sla_timers_case", table_name="sla_timers")


def downgrade() -> None:
    op.create_index("sla_timers_case", "sla_timers", ["case_id"])
