"""Intake: the outbox notifies the relay when rows are committed.

A busy intake runs its HTTP API in processes of their own (``GRIDLINE_PROCESS_ROLE=http``) beside a worker
that runs the consumer and the outbox relay (``worker``). The HTTP processes cannot wake the worker's
relay in memory, so every statement that inserts outbox rows sends ``NOTIFY gridline_outbox`` at commit
(runtime/outbox.py, ``OutboxRelay.listen``); without it the relay would find the rows at its next poll.

Revision ID: intake_0004
"""

from alembic import op

revision = "intake_0004"
down_revision = "intake_0003"

# Sent on runtime.outbox.NOTIFY_CHANNEL
FUNCTION = """
CREATE OR REPLACE FUNCTION gridline_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridline_outbox', '');
    RETURN NULL;
END $$
"""
TRIGGER = """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT
    EXECUTE FUNCTION gridline_outbox_notify()
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION gridline_outbox_notify()")
