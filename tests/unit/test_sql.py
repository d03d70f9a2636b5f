"""runtime.sql.precompiled: an upsert turned into cached text keeps every parameter and its type."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from runtime.sql import keys_in, precompiled

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tags", ARRAY(sa.Text)),
    sa.Column("doc", JSONB),
    sa.Column("n", sa.Integer),
)


def test_every_column_is_a_typed_parameter_even_those_the_dialect_casts():
    stmt = insert(things)
    text = precompiled(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"doc": stmt.excluded.doc}),
        ["id", "tags", "doc"],
    )
    assert set(text._bindparams) == {"id", "tags", "doc"}  # ":tags::TEXT[]" would have lost "tags"
    assert isinstance(text._bindparams["tags"].type, ARRAY)
    assert isinstance(text._bindparams["doc"].type, JSONB)
    assert "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc" in text.text
    assert ":n" not in text.text  # only the named columns are inserted


def test_a_column_the_statement_does_not_take_is_refused():
    with pytest.raises(ValueError, match="nope"):
        precompiled(insert(things), ["id", "nope"])


def test_returning_columns_come_back_typed():
    text = precompiled(insert(things).returning(things.c.id), ["id"], returning=[things.c.id])
    assert [c.name for c in text.selected_columns] == ["id"]


def test_a_statement_built_once_over_expanding_keys_runs_as_the_one_built_for_the_keys():
    from sqlalchemy.dialects import postgresql

    table = sa.table("t", sa.column("case_id", sa.Text))
    once = (
        sa.select(table)
        .where(keys_in(table.c.case_id, "case_ids"))
        .compile(dialect=postgresql.asyncpg.dialect())
    )
    for keys in (["a"], ["a", "b", "c"]):
        each = sa.select(table).where(table.c.case_id.in_(keys)).compile(dialect=postgresql.asyncpg.dialect())
        expanded = once.construct_expanded_state({"case_ids": keys})
        assert expanded.statement == each.construct_expanded_state().statement
        assert [expanded.parameters[name] for name in expanded.positiontup] == keys
