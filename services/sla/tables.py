"""Sla's own state: cases it tracks, stage deadlines, durable timers, policy versions, holiday table."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from runtime.idempotency import answers_table

metadata = sa.MetaData()

policy_sets = sa.Table(
    "sla_policy_sets",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

cases = sa.Table(
    "sla_cases",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("appeal_type", sa.Text),
    sa.Column("urgency", sa.Text),
    sa.Column("category_code", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),  # open | replied | closed
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_breach_at", sa.DateTime(timezone=True)),
    sa.Column("extensions_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# One row per (case, stage): the current clock of that stage. ``generation`` rises each time the clock is
# (re)started or recomputed, and keys the stage's timers, so an old generation's timers can be cancelled.
deadlines = sa.Table(
    "sla_deadlines",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("assignment_id", sa.Text),
    sa.Column("policy_id", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("clock", sa.Text, nullable=False),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("extension_days", sa.Integer, nullable=False, server_default="0"),
    sa.Column("paused_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("paused_at", sa.DateTime(timezone=True)),
    sa.Column("state", sa.Text, nullable=False),  # running | paused | stopped | cancelled
    sa.Column("provisional", sa.Boolean, nullable=False),
    sa.Column("calendar_basis", sa.Text, nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Durable timers. The unique key makes scheduling idempotent and lets a timer fire at most once; it also
# serves lookups by case (its first column).
timers = sa.Table(
    "sla_timers",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # yellow | red | escalate-1..3
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deadline_due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("assignment_id", sa.Text),
    sa.Column("fired_at", sa.DateTime(timezone=True)),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("case_id", "stage", "kind", "generation", name="sla_timers_once"),
)
sa.Index(
    "sla_timers_pending",
    timers.c.due_at,
    postgresql_where=sa.and_(timers.c.fired_at.is_(None), timers.c.cancelled_at.is_(None)),
)

holiday_years = sa.Table(
    "sla_holiday_years",
    metadata,
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

holidays = sa.Table(
    "sla_holidays",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("year", sa.Integer, sa.ForeignKey("sla_holiday_years.year"), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # holiday | workday (调休上班)
    sa.Column("name", sa.Text),
)

# Operator actions already answered, by client and Idempotency-Key: a retry gets the first answer again.
idempotency_keys = answers_table("sla_idempotency_keys", metadata)
