"""Sla: the outbox relay deletes published rows instead of marking them (runtime.migrations).

Revision ID: sla_0005
"""

from runtime.migrations import outbox_delete_on_publish, outbox_mark_on_publish

revision = "sla_0005"
down_revision = "sla_0004"


def upgrade() -> None:
    outbox_delete_on_publish()


def downgrade() -> None:
    outbox_mark_on_publish()
