"""Read models. Rebuildable from the log at any time; never the source of truth.

Every table here lives in the schema on the connection's search path (``public`` when serving), so the
rebuild can fill the same tables in a fresh schema and swap it in (services/projection/rebuild.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

TZ = sa.DateTime(timezone=True)

case_summary = sa.Table(
    "case_summary",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("status_at", TZ),
    sa.Column("source", sa.Text),
    sa.Column("external_id", sa.Text),
    sa.Column("appeal_type", sa.Text),
    sa.Column("category_code", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("lat", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("urgency", sa.Text),
    sa.Column("reply_required", sa.Boolean),
    sa.Column("citizen_name_masked", sa.Text),
    sa.Column("citizen_phone_masked", sa.Text),
    sa.Column("received_at", TZ),
    sa.Column("closed_at", TZ),
    sa.Column("close_reason", sa.Text),
    sa.Column("last_event_at", TZ, nullable=False),
    sa.Column("events_applied", sa.Integer, nullable=False),
    # projection_0002
    sa.Column("opened_at", TZ, nullable=False),
    sa.Column("town_code", sa.Text),
    sa.Column("community_code", sa.Text),
    sa.Column("grid_code", sa.Text),
    sa.Column("area_code", sa.Text),
    sa.Column("assignee_kind", sa.Text),
    sa.Column("assignee_code", sa.Text),
    sa.Column("assignee_name", sa.Text),
    sa.Column("assignment_id", sa.Text),
    sa.Column("department_code", sa.Text),
    sa.Column("handler_departments", ARRAY(sa.Text), nullable=False),
    sa.Column("co_handler_departments", ARRAY(sa.Text)),
    sa.Column("assigned_at", TZ),
    sa.Column("accepted_at", TZ),
    sa.Column("replied_at", TZ),
    sa.Column("reply", sa.Text),
    sa.Column("reply_resolved", sa.Boolean),
    sa.Column("satisfaction", sa.Text),
    sa.Column("feedback_at", TZ),
    sa.Column("withdrawn_at", TZ),
    sa.Column("duplicate_of", sa.Text),
    sa.Column("triage_reason", sa.Text),
    sa.Column("last_return_reason", sa.Text),
    sa.Column("deadlines", JSONB, nullable=False),
    sa.Column("case_due_at", TZ),
    sa.Column("cards", JSONB, nullable=False),
    sa.Column("card", sa.Text),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("escalation_reason", sa.Text),
    sa.Column("return_count", sa.Integer, nullable=False),
    sa.Column("transfer_count", sa.Integer, nullable=False),
    sa.Column("reopen_count", sa.Integer, nullable=False),
    sa.Column("extension_days", sa.Integer, nullable=False),
    sa.Column("extension_pending", sa.Boolean, nullable=False),
    sa.Column("clock_paused", sa.Boolean, nullable=False),
    sa.Column("notifications_sent", sa.Integer, nullable=False),
    sa.Column("notifications_failed", sa.Integer, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),
    sa.Column("on_time", sa.Boolean),
    sa.Column("handling_seconds", sa.Integer),
    sa.Column("search_text", sa.Text, nullable=False),
)

# The keyword index of each case: the grams of its search text, apart from case_summary so that a status
# change (a non-HOT update, a new entry in every index of the row) does not insert ~100 GIN keys again.
# Written when a case's search text changes.
case_search = sa.Table(
    "case_search",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("grams", ARRAY(sa.Text), nullable=False),
)

case_timeline = sa.Table(
    "case_timeline",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("case_id", sa.Text, nullable=False, index=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("log_partition", sa.Integer, nullable=False),
    sa.Column("log_offset", sa.BigInteger, nullable=False),
)

STAT_DIMENSIONS = ("day", "category_code", "town_code", "department_code", "source")

# Counters per received day (Asia/Shanghai), category, town, department and source; '' stands for unknown.
case_stats_daily = sa.Table(
    "case_stats_daily",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("category_code", sa.Text, primary_key=True),
    sa.Column("town_code", sa.Text, primary_key=True),
    sa.Column("department_code", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, primary_key=True),
    *(
        sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
        for name in (
            "received",
            "open",
            "closed",
            "timed",
            "on_time",
            "returned_cases",
            "returns",
            "handled",
            "handling_seconds",
            "rated",
            "satisfied",
            "basically_satisfied",
            "dissatisfied",
            "yellow",
            "red",
            "escalated",
        )
    ),  # fmt: skip
)

# The open cases on each grid's and department's desk.
worklist_item = sa.Table(
    "worklist_item",
    metadata,
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

READ_MODEL_TABLES = (case_summary, case_timeline, case_stats_daily, worklist_item)
