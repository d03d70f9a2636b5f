"""Projection: full case summary, worklists, statistics aggregates, keyword grams.

Rows projected before this revision get defaults for the new columns; run
``python -m services.projection rebuild`` to refill them from the log.

Revision ID: projection_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "projection_0002"
down_revision = "projection_0001"

TZ = sa.DateTime(timezone=True)
COUNTERS = (
    "received", "open", "closed", "timed", "on_time", "returned_cases", "returns", "handled",
    "handling_seconds", "rated", "satisfied", "basically_satisfied", "dissatisfied", "yellow", "red",
    "escalated",
)  # fmt: skip
TEXT_COLUMNS = (
    "town_code", "community_code", "grid_code", "area_code", "assignee_kind", "assignee_code",
    "assignee_name", "assignment_id", "department_code", "reply", "satisfaction", "duplicate_of",
    "triage_reason", "last_return_reason", "card", "escalation_reason",
)  # fmt: skip
TIME_COLUMNS = ("status_at", "assigned_at", "accepted_at", "replied_at", "feedback_at", "withdrawn_at")
INT_COLUMNS = (
    "escalation_level", "return_count", "transfer_count", "reopen_count", "extension_days",
    "notifications_sent", "notifications_failed",
)  # fmt: skip
BOOL_COLUMNS = ("extension_pending", "clock_paused")


def upgrade() -> None:
    add = lambda column: op.add_column("case_summary", column)  # noqa: E731
    add(sa.Column("opened_at", TZ))
    op.execute("UPDATE case_summary SET opened_at = coalesce(received_at, last_event_at)")
    op.alter_column("case_summary", "opened_at", nullable=False)
    for name in TEXT_COLUMNS:
        add(sa.Column(name, sa.Text))
    for name in TIME_COLUMNS:
        add(sa.Column(name, TZ))
    for name in INT_COLUMNS:
        add(sa.Column(name, sa.Integer, nullable=False, server_default="0"))
    for name in BOOL_COLUMNS:
        add(sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false()))
    add(sa.Column("handler_departments", ARRAY(sa.Text), nullable=False, server_default="{}"))
    add(sa.Column("co_handler_departments", ARRAY(sa.Text)))
    add(sa.Column("reply_resolved", sa.Boolean))
    add(sa.Column("deadlines", JSONB, nullable=False, server_default="{}"))
    add(sa.Column("cards", JSONB, nullable=False, server_default="[]"))
    add(sa.Column("case_due_at", TZ))
    add(sa.Column("is_open", sa.Boolean, nullable=False, server_default=sa.true()))
    add(sa.Column("on_time", sa.Boolean))
    add(sa.Column("handling_seconds", sa.Integer))
    add(sa.Column("search_text", sa.Text, nullable=False, server_default=""))
    add(sa.Column("search_grams", ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.execute("UPDATE case_summary SET is_open = status <> 'closed'")

    for name, columns in {
        "case_summary_opened": ["opened_at", "case_id"],
        "case_summary_last_event": ["last_event_at", "case_id"],
        "case_summary_status_opened": ["status", "opened_at", "case_id"],
        "case_summary_town_opened": ["town_code", "opened_at", "case_id"],
        "case_summary_community_opened": ["community_code", "opened_at", "case_id"],
        "case_summary_grid_opened": ["grid_code", "opened_at", "case_id"],
        "case_summary_department_opened": ["department_code", "opened_at", "case_id"],
        "case_summary_category_opened": ["category_code", "opened_at", "case_id"],
    }.items():
        op.create_index(name, "case_summary", columns)
    op.create_index("case_summary_external_id", "case_summary", ["external_id"])
    op.create_index(
        "case_summary_open_due", "case_summary", ["case_due_at"], postgresql_where=sa.text("is_open")
    )
    op.create_index(
        "case_summary_open_grid", "case_summary", ["grid_code"], postgresql_where=sa.text("is_open")
    )
    op.create_index(
        "case_summary_handlers", "case_summary", ["handler_departments"], postgresql_using="gin"
    )
    op.create_index("case_summary_grams", "case_summary", ["search_grams"], postgresql_using="gin")

    op.create_table(
        "case_stats_daily",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("category_code", sa.Text, primary_key=True),
        sa.Column("town_code", sa.Text, primary_key=True),
        sa.Column("department_code", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in COUNTERS),
    )
    op.create_table(
        "worklist_item",
        sa.Column("owner_kind", sa.Text, primary_key=True),
        sa.Column("owner_code", sa.Text, primary_key=True),
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("card", sa.Text),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("due_at", TZ),
        sa.Column("opened_at", TZ, nullable=False),
    )
    op.create_index("worklist_item_case", "worklist_item", ["case_id"])
    op.create_index("worklist_item_owner_due", "worklist_item", ["owner_kind", "owner_code", "due_at"])


def downgrade() -> None:
    op.drop_table("worklist_item")
    op.drop_table("case_stats_daily")
    for name in (
        "case_summary_opened", "case_summary_last_event", "case_summary_status_opened",
        "case_summary_town_opened", "case_summary_community_opened", "case_summary_grid_opened",
        "case_summary_department_opened", "case_summary_category_opened", "case_summary_external_id",
        "case_summary_open_due", "case_summary_open_grid", "case_summary_handlers", "case_summary_grams",
    ):  # fmt: skip
        op.drop_index(name, "case_summary")
    columns = (
        "opened_at", *TEXT_COLUMNS, *TIME_COLUMNS, *INT_COLUMNS, *BOOL_COLUMNS, "handler_departments",
        "co_handler_departments", "reply_resolved", "deadlines", "cards", "case_due_at", "is_open", "on_time",
        "handling_seconds", "search_text", "search_grams",
    )  # fmt: skip
    for name in columns:
        op.drop_column("case_summary", name)
