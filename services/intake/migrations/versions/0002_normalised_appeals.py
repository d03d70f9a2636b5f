"""Intake: normalised appeal columns, encrypted PII vault with access audit, idempotency keys,
feedback rounds and appeal updates.

Revision ID: intake_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "intake_0002"
down_revision = "intake_0001"


def upgrade() -> None:
    for column in (
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
    ):
        op.add_column("appeals", column)
    op.execute("UPDATE appeals SET category = 'unclassified', citizen_ref = event->'citizen'->>'citizen_ref'")
    op.create_index("appeals_dedupe", "appeals", ["category", "received_at"])
    op.create_index("appeals_citizen", "appeals", ["citizen_ref", "received_at"])
    op.create_index("appeals_open311", "appeals", ["received_at", "case_id"])

    for name in ("name_enc", "phone_enc", "id_number_enc", "description_enc"):
        op.add_column("pii_vault", sa.Column(name, sa.LargeBinary))
    _encrypt_clear_rows()
    op.drop_column("pii_vault", "name")
    op.drop_column("pii_vault", "phone")

    op.create_table(
        "pii_access_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("fields", JSONB, nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("response", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "feedback",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("reply_round", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "appeal_updates",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def _encrypt_clear_rows() -> None:
    """Rows written by intake_0001 held clear values: encrypt them with the configured vault key."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT case_id, name, phone FROM pii_vault")).all()
    if not rows:
        return
    from services.intake.config import IntakeSettings
    from services.intake.vault import VaultCipher

    cipher = VaultCipher.from_setting(IntakeSettings().pii_vault_keys)
    for row in rows:
        bind.execute(
            sa.text("UPDATE pii_vault SET name_enc = :n, phone_enc = :p WHERE case_id = :c"),
            {"n": cipher.seal(row.case_id, "name", row.name), "p": cipher.seal(row.case_id, "phone", row.phone),
             "c": row.case_id},
        )


def downgrade() -> None:
    op.drop_table("appeal_updates")
    op.drop_table("feedback")
    op.drop_table("idempotency_keys")
    op.drop_table("pii_access_log")
    # Clear values are not restored: downgrading must not decrypt personal data into plain columns.
    op.add_column("pii_vault", sa.Column("name", sa.Text))
    op.add_column("pii_vault", sa.Column("phone", sa.Text))
    for name in ("name_enc", "phone_enc", "id_number_enc", "description_enc"):
        op.drop_column("pii_vault", name)
    for index in ("appeals_open311", "appeals_citizen", "appeals_dedupe"):
        op.drop_index(index, "appeals")
    for name in ("updated_at", "reopen_count", "reply_count", "agency_responsible", "status_notes", "token",
                 "service_code", "duplicate_of", "lon", "lat", "citizen_ref", "category"):
        op.drop_column("appeals", name)
