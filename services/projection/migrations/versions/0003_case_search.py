"""Projection: keyword grams move from case_summary to case_search.

A summary changes with nearly every event, and each change is a new row version with an entry in every
index; the GIN index over ~100 search grams per case made that the costliest statement in PostgreSQL
(37 % of its execution time in bench/e2e's replay). The grams now live in their own table, written when a
case's search text changes.

Revision ID: projection_0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "projection_0003"
down_revision = "projection_0002"


def upgrade() -> None:
    op.create_table(
        "case_search",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("grams", ARRAY(sa.Text), nullable=False),
    )
    op.execute("INSERT INTO case_search (case_id, grams) SELECT case_id, search_grams FROM case_summary")
    op.create_index("case_search_grams", "case_search", ["grams"], postgresql_using="gin")
    op.drop_index("case_summary_grams", table_name="case_summary")
    op.drop_column("case_summary", "search_grams")


def downgrade() -> None:
    op.add_column(
        "case_summary",
        sa.Column("search_grams", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    op.execute(
        "UPDATE case_summary s SET search_grams = c.grams FROM case_search c WHERE c.case_id = s.case_id"
    )
    op.create_index("case_summary_grams", "case_summary", ["search_grams"], postgresql_using="gin")
    op.drop_table("case_search")
