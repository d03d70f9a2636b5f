"""Routing: reference data (versioned rule sets, audit), case routing state, idempotency keys.

Revision ID: routing_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "routing_0002"
down_revision = "routing_0001"


def upgrade() -> None:
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False, unique=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("loaded_by", sa.Text, nullable=False),
        sa.Column("bundle", JSONB, nullable=False),
    )
    op.create_index("rule_sets_one_active", "rule_sets", ["active"], unique=True, postgresql_where=sa.text("active"))
    op.create_table(
        "areas",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("parent_code", sa.Text),
        sa.Column("aliases", JSONB, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.create_table(
        "departments",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.create_table(
        "categories",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("scheme", sa.Text, nullable=False),
        sa.Column("source_code", sa.Text, nullable=False),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("aliases", JSONB, nullable=False),
        sa.Column("keywords", JSONB, nullable=False),
    )
    op.create_table(
        "grids",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("town_code", sa.Text, nullable=False),
        sa.Column("synthetic", sa.Boolean, nullable=False),
        sa.Column("geometry", JSONB, nullable=False),
    )
    op.create_table(
        "rules",
        sa.Column("rule_set_version", sa.Integer, sa.ForeignKey("rule_sets.version"), primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("area", sa.Text),
        sa.Column("assignees", JSONB, nullable=False),
    )
    op.create_table(
        "refdata_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("rule_set_version", sa.Integer),
        sa.Column("detail", JSONB, nullable=False),
    )
    op.create_table(
        "routing_cases",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("assignee_kind", sa.Text),
        sa.Column("assignee_code", sa.Text),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("received", JSONB),
        sa.Column("decision_event_ids", JSONB, nullable=False, server_default="[]"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("routing_cases_assignee", "routing_cases", ["assignee_code", "status"])
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for name in (
        "idempotency_keys",
        "routing_cases",
        "refdata_audit",
        "rules",
        "grids",
        "categories",
        "departments",
        "areas",
        "rule_sets",
    ):
        op.drop_table(name)
