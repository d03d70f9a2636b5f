"""Intake's own state: appeals accepted (dedupe by source id) and the PII vault."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

case_number_seq = sa.Sequence("case_number_seq", metadata=metadata)

appeals = sa.Table(
    "appeals",
    metadata,
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

# Full personal data stays here, in intake's own database; events carry masked values and citizen_ref.
pii_vault = sa.Table(
    "pii_vault",
    metadata,
    sa.Column("case_id", sa.Text, sa.ForeignKey("appeals.case_id"), primary_key=True),
    sa.Column("citizen_ref", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
