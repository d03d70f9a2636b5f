"""Notify: the claim's order check reads the case's deliveries (an index led by case_id), so the partial index
of pending deliveries per recipient goes: statistics that took the pending rows for a handful made the
planner probe it, or deliveries_due, as if tiny, and a check read the whole backlog.

Revision ID: notify_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "notify_0003"
down_revision = "notify_0002"


def upgrade() -> None:
    op.drop_index("deliveries_pending_per_recipient", table_name="deliveries")


def downgrade() -> None:
    op.create_index(
        "deliveries_pending_per_recipient",
        "deliveries",
        ["case_id", "recipient", "channel", "seq"],
        postgresql_where=sa.text("status = 'pending'"),
    )
