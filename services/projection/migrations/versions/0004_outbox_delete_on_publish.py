"""Projection: the outbox relay deletes published rows instead of marking them (runtime.migrations).

Revision ID: projection_0004
"""

from runtime.migrations import outbox_delete_on_publish, outbox_mark_on_publish

revision = "projection_0004"
down_revision = "projection_0003"


def upgrade() -> None:
    outbox_delete_on_publish()


def downgrade() -> None:
    outbox_mark_on_publish()
