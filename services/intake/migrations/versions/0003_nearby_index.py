"""Intake: the nearby-duplicate search probes map cells instead of scanning the category's window.

``appeals_dedupe`` (category, received_at) made the nearby part of the duplicate search read every appeal
of the category in the 48-hour window and filter by place: ~420 rows and 1.4 ms for each appeal in a
2,000-case replay, a fifth of PostgreSQL's time per case, and growing with the district's volume.
``appeals_nearby`` keys the same rows by (category, 0.01° map cell, received_at), so the search probes the
few cells its box touches (services/intake/handlers.py, ``NEARBY_CELL``).

Revision ID: intake_0003
"""

from alembic import op

revision = "intake_0003"
down_revision = "intake_0002"

CELL = "(floor(lat * 100)::int8 * 100000 + floor(lon * 100)::int8)"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX appeals_nearby ON appeals (category, {CELL}, received_at)"
        " WHERE lat IS NOT NULL AND lon IS NOT NULL"
    )
    op.drop_index("appeals_dedupe", table_name="appeals")


def downgrade() -> None:
    op.create_index("appeals_dedupe", "appeals", ["category", "received_at"])
    op.drop_index("appeals_nearby", table_name="appeals")
