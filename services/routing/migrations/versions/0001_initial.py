"""Routing: runtime tables (outbox, inbox, tracking).

Revision ID: routing_0001
"""

from runtime.migrations import create_runtime_tables_v1, drop_runtime_tables_v1

revision = "routing_0001"
down_revision = None


def upgrade() -> None:
    create_runtime_tables_v1()


def downgrade() -> None:
    drop_runtime_tables_v1()
