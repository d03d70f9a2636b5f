"""Intake: indexes for the duplicate search and for closing duplicates with their primary.

``appeals_dedupe`` (category, received_at) made the nearby part of the duplicate search read every appeal
of the category in the 48-hour window and filter by place: ~420 rows and 1.4 ms for each appeal in a
2,000-case replay, a fifth of PostgreSQL's time per case, and growing with the district's volume.
``appeals_nearby`` keys the same rows by (category, 0.01° map cell, received_at), so the search probes the
few cells its box touches (services/intake/handlers.py, ``NEARBY_CELL``).

``appeals_duplicates`` (duplicate_of, only rows that are duplicates): closing a primary case closes its
open duplicates (services/intake/consumer.py), which read the whole appeals table per CaseClosed: ~8 ms
at a few thousand appeals, a sixth of PostgreSQL's time per case in the e2e replay, growing with it.

Revision ID: intake_0003
"""

from alembic import op

revision = "intake_0003"
down_revision = "intake_0002"

# services/intake/tables.NEARBY_CELL as of this revision (a migration does not follow later code)
CELL = "(floor(lat * 100)::int8 * 100000 + floor(lon * 100)::int8)"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX appeals_nearby ON appeals (category, {CELL}, received_at)"
        " WHERE lat IS NOT NULL AND lon IS NOT NULL"
    )
    op.drop_index("appeals_dedupe", table_name="appeals")
    op.execute("CREATE INDEX appeals_duplicates ON appeals (duplicate_of) WHERE duplicate_of IS NOT NULL")


def downgrade() -> None:
    op.drop_index("appeals_duplicates", table_name="appeals")
    op.create_index("appeals_dedupe", "appeals", ["category", "received_at"])
    op.drop_index("appeals_nearby", table_name="appeals")
