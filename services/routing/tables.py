"""Routing's own state: reference data (versioned rule sets, audited), each case's routing state, and
the idempotency record of HTTP actions."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from runtime.idempotency import answers_table

metadata = sa.MetaData()

# One row per loaded rule set. ``bundle`` is the complete reference data of that version (areas,
# departments, categories, grids, rules), so any decision can be replayed against the version it names.
rule_sets = sa.Table(
    "rule_sets",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("loaded_by", sa.Text, nullable=False),
    sa.Column("bundle", JSONB, nullable=False),
)

# The active version's rows, for SQL and for people; the bundle above is what decisions read.
areas = sa.Table(
    "areas",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("parent_code", sa.Text),
    sa.Column("aliases", JSONB, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
)
departments = sa.Table(
    "departments",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name_zh", sa.Text, nullable=False),
    sa.Column("name_en", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # verified | synthetic
    sa.Column("source", sa.Text, nullable=False),
)
categories = sa.Table(
    "categories",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name_zh", sa.Text, nullable=False),
    sa.Column("scheme", sa.Text, nullable=False),
    sa.Column("source_code", sa.Text, nullable=False),
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("aliases", JSONB, nullable=False),
    sa.Column("keywords", JSONB, nullable=False),
)
grids = sa.Table(
    "grids",
    metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("community_code", sa.Text, nullable=False),
    sa.Column("town_code", sa.Text, nullable=False),
    sa.Column("synthetic", sa.Boolean, nullable=False),
    sa.Column("geometry", JSONB, nullable=False),  # GeoJSON, WGS84
)
# Rules of every version (the matrix's history, row by row).
rules = sa.Table(
    "rules",
    metadata,
    sa.Column("rule_set_version", sa.Integer, sa.ForeignKey("rule_sets.version"), primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("area", sa.Text),
    sa.Column("assignees", JSONB, nullable=False),
)
refdata_audit = sa.Table(
    "refdata_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # loaded | unchanged
    sa.Column("rule_set_version", sa.Integer),
    sa.Column("detail", JSONB, nullable=False),
)

# Routing's state of each case: the fold of its events (domain.assignment.CaseRouting) plus the
# CaseReceived payload it was routed from (masked contact data only).
routing_cases = sa.Table(
    "routing_cases",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("assignee_kind", sa.Text),
    sa.Column("assignee_code", sa.Text),
    sa.Column("state", JSONB, nullable=False),
    sa.Column("received", JSONB),
    # Outbox ids of the first routing decision, so a duplicate link arriving before they are published
    # can withdraw them (see handlers.on_duplicate).
    sa.Column("decision_event_ids", JSONB, nullable=False, server_default="[]"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
sa.Index("routing_cases_assignee", routing_cases.c.assignee_code, routing_cases.c.status)

# HTTP actions already answered, by client and Idempotency-Key: a retry gets the same answer.
idempotency_keys = answers_table("idempotency_keys", metadata)
