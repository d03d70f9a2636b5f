"""Intake's own state: appeals (dedupe by source id, status for Open311 and citizen actions), the encrypted
PII vault with its access audit, and idempotency keys."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

case_number_seq = sa.Sequence("case_number_seq", metadata=metadata)

# status: open | replied | closed | withdrawn (kept in step with the case log by consumer.py)
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
    sa.Column("category", sa.Text),
    sa.Column("citizen_ref", sa.Text),
    sa.Column("lat", sa.Float),
    sa.Column("lon", sa.Float),
    sa.Column("duplicate_of", sa.Text),
    sa.Column("service_code", sa.Text),
    sa.Column("token", sa.Text, unique=True),
    sa.Column("status_notes", sa.Text),
    sa.Column("agency_responsible", sa.Text),
    sa.Column("reply_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("source", "external_id", name="appeals_source_external_id"),
)

# Full personal data stays here, encrypted (services/intake/vault.py); events carry masked values and
# citizen_ref. description_enc holds the original text only when numbers in it were masked for events.
pii_vault = sa.Table(
    "pii_vault",
    metadata,
    sa.Column("case_id", sa.Text, sa.ForeignKey("appeals.case_id"), primary_key=True),
    sa.Column("citizen_ref", sa.Text),
    sa.Column("name_enc", sa.LargeBinary),
    sa.Column("phone_enc", sa.LargeBinary),
    sa.Column("id_number_enc", sa.LargeBinary),
    sa.Column("description_enc", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Every read of clear personal data: who, which case, why, which fields (PIPL accountability).
pii_access_log = sa.Table(
    "pii_access_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("fields", JSONB, nullable=False),
    sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Idempotency-Key header: (client, key) -> the answer first given, so a retry gets the same answer.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("response", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# One citizen rating per reply round; a retried rating of the same round is recognised.
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("reply_round", sa.Integer, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Addenda already recorded per case (by content hash), so a retried update is not recorded twice.
appeal_updates = sa.Table(
    "appeal_updates",
    metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The nearby-duplicate search (recording._EARLIER): (category, 0.01° map cell, received_at). The cell key
# is an expression the query must repeat exactly for the index to serve it; migration 0003 keeps its own
# frozen copy.
NEARBY_CELL = "(floor(lat * 100)::int8 * 100000 + floor(lon * 100)::int8)"
sa.Index(
    "appeals_nearby",
    appeals.c.category,
    sa.text(NEARBY_CELL),
    appeals.c.received_at,
    postgresql_where=sa.and_(appeals.c.lat.isnot(None), appeals.c.lon.isnot(None)),
)
sa.Index("appeals_citizen", appeals.c.citizen_ref, appeals.c.received_at)
# A primary's open duplicates, closed with it (consumer._close_duplicates); only duplicates have entries.
sa.Index("appeals_duplicates", appeals.c.duplicate_of, postgresql_where=appeals.c.duplicate_of.isnot(None))
sa.Index("appeals_open311", appeals.c.received_at, appeals.c.case_id)
