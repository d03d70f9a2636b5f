"""Hot-path SQL statements, compiled once, and planned for their values where a cached plan would go stale.

SQLAlchemy 2.0 does not cache the compiled form of PostgreSQL's ``INSERT … ON CONFLICT`` (the dialect's
``Insert`` sets ``inherit_cache = False``; the log shows ``[no key]``): every execution compiles the
statement again, which for a 70-column upsert costs more than the round trip. ``precompiled`` compiles
such a statement once, for a fixed set of columns, into a textual statement with the same typed bind
parameters. A textual statement is cached like any other, so each execution only binds values.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

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


@asynccontextmanager
async def local_settings(conn: Any, **settings: str) -> AsyncIterator[None]:
    """PostgreSQL ``settings`` for the statements run inside (SET LOCAL), back to their defaults after.

    ``conn``: a SQLAlchemy AsyncConnection or an asyncpg connection, in a transaction (SET LOCAL ends with
    it; after an error the rollback resets them, so nothing is run then)."""
    run = conn.exec_driver_sql if hasattr(conn, "exec_driver_sql") else conn.execute
    for name, value in settings.items():
        await run(f"SET LOCAL {name} = {value}")
    yield
    for name in settings:
        await run(f"SET LOCAL {name} TO DEFAULT")


def custom_plans(conn: Any) -> AbstractAsyncContextManager[None]:
    """Statements run inside are planned for their values and the tables' current size, every time.

    asyncpg prepares every statement; after five executions PostgreSQL may keep a generic plan, costed
    with the statistics of that moment and kept until the next ANALYZE. On a fresh database (a new
    district, bench/e2e) a queue table grows from empty within seconds, long before autovacuum's first
    ANALYZE, and a plan made for a table of one row (a sequential scan, a hash of every row) goes on
    reading every row: 10–60 ms a call at a few thousand rows (auto_explain, 2026-11-28). A custom plan
    reads the table's size at planning; it costs ~0.1–0.4 ms, so only the statements whose plan depends
    on a growing table's size use it."""
    return local_settings(conn, plan_cache_mode="force_custom_plan")
