"""Routing: the outbox relay deletes published rows instead of marking them (runtime.migrations).

Revision ID: routing_0003
"""

from runtime.migrations import outbox_delete_on_publish, outbox_mark_on_publish

revision = "routing_0003"
down_revision = "routing_0002"


def upgrade() -> None:
    outbox_delete_on_publish()


def downgrade() -> None:
    outbox_mark_on_publish()
