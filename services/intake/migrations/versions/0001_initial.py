"""Intake: appeals, PII vault, case number sequence, runtime tables.

Revision ID: intake_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from runtime.migrations import create_runtime_tables_v1, drop_runtime_tables_v1

revision = "intake_0001"
down_revision = None


def upgrade() -> None:
    create_runtime_tables_v1()
    op.execute("CREATE SEQUENCE case_number_seq")
    op.create_table(
        "appeals",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("event", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("source", "external_id", name="appeals_source_external_id"),
    )
    op.create_table(
        "pii_vault",
        sa.Column("case_id", sa.Text, sa.ForeignKey("appeals.case_id"), primary_key=True),
        sa.Column("citizen_ref", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("pii_vault")
    op.drop_table("appeals")
    op.execute("DROP SEQUENCE case_number_seq")
    drop_runtime_tables_v1()
