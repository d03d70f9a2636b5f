"""Hot-path SQL statements, compiled once.

SQLAlchemy 2.0 does not cache the compiled form of PostgreSQL's ``INSERT … ON CONFLICT`` (the dialect's
``Insert`` sets ``inherit_cache = False``; the log shows ``[no key]``): every execution compiles the
statement again, which for a 70-column upsert costs more than the round trip. ``precompiled`` compiles
such a statement once, for a fixed set of columns, into a textual statement with the same typed bind
parameters. A textual statement is cached like any other, so each execution only binds values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

# Any PostgreSQL dialect with named parameters: only the SQL text and the bind types are taken from it;
# execution goes through the service's asyncpg engine as usual.
_DIALECT = postgresql.psycopg2.dialect(paramstyle="named")


def precompiled(
    statement: sa.Insert,
    columns: Sequence[str],
    *,
    returning: Sequence[sa.ColumnElement] = (),
) -> TextClause | TextualSelect:
    """``statement`` as cached text taking exactly ``columns`` as parameters (one dict, or many).

    Only server-side defaults apply to the other columns (a Python-side column default is not run);
    ``returning`` lists the statement's RETURNING columns so rows come back typed.
    """
    compiled = statement.compile(dialect=_DIALECT, column_keys=list(columns))
    missing = set(columns) - set(compiled.binds)
    if missing:
        raise ValueError(f"columns not bound by the statement: {sorted(missing)}")
    # text() reads ":name::TYPE" as no parameter at all; ":name ::TYPE" is the same SQL and reads right
    sql = re.sub(r"(:\w+)::", r"\1 ::", compiled.string)
    text = sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=bind.type) for name, bind in compiled.binds.items())
    )
    return text.columns(*returning) if returning else text
