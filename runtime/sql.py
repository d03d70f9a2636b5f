"""Hot-path SQL statements, compiled once, and planned for their values where a cached plan would go stale.

SQLAlchemy 2.0 does not cache the compiled form of PostgreSQL's ``INSERT … ON CONFLICT`` (the dialect's
``Insert`` sets ``inherit_cache = False``; the log shows ``[no key]``): every execution compiles the
statement again, which for a 70-column upsert costs more than the round trip. ``precompiled`` compiles
such a statement once, for a fixed set of columns, into a textual statement with the same typed bind
parameters. A textual statement is cached like any other, so each execution only binds values.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from runtime.db import json_text

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


class ArrayInsert:
    """An INSERT of many rows as one statement, each column's values one array parameter (``unnest``).

    executemany runs its statement once per row (asyncpg pipelines them, but PostgreSQL starts, plans and
    ends each one, and fires statement triggers each time): under bench/e2e sla's outbox and stage-clock
    writes, three statements per case each, took ~0.1 ms apiece. Here a batch is one statement and one
    set of parameters. Rows go in in the order given (an identity column numbers them so).

    ``conflict`` is the statement's ``ON CONFLICT`` clause (``do_update`` writes the usual one). Unlike
    executemany, one statement cannot update the same row twice: an upsert's rows need distinct keys.
    JSON and JSONB values are written by the engines' own serialiser (``runtime.db.json_text``), an
    ARRAY column's values in PostgreSQL's array text form (``array_literal``).
    """

    def __init__(self, table: sa.Table, columns: Sequence[str], conflict: str = "") -> None:
        self.columns = tuple(columns)
        quote = _DIALECT.identifier_preparer.quote
        names = ", ".join(quote(name) for name in self.columns)
        arrays, values = [], []
        self._json: list[int] = []
        self._arrays: list[int] = []
        for k, name in enumerate(self.columns):
            kind = table.c[name].type
            sql_type = _DIALECT.type_compiler_instance.process(kind)
            if isinstance(kind, sa.JSON | sa.ARRAY):  # as text: unnest() would flatten an array of arrays
                (self._json if isinstance(kind, sa.JSON) else self._arrays).append(k)
                arrays.append(f"${k + 1}::text[]")
                values.append(f"r.{quote(name)}::{sql_type}")
            else:
                arrays.append(f"${k + 1}::{sql_type}[]")
                values.append(f"r.{quote(name)}")
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({names})"
            f" SELECT {', '.join(values)}"
            f" FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS r({names}, position)"
            f" ORDER BY r.position {conflict}"
        ).rstrip()

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Any], ...]:
        """The statement's parameters: one list per column, JSON values as text."""
        arrays = tuple([row[name] for row in rows] for name in self.columns)
        for k in self._json:
            arrays[k][:] = [None if value is None else json_text(value) for value in arrays[k]]
        for k in self._arrays:
            arrays[k][:] = [None if value is None else array_literal(value) for value in arrays[k]]
        return arrays

    async def execute(self, conn: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (dicts holding at least ``columns``) on a SQLAlchemy AsyncConnection."""
        if rows:
            await conn.exec_driver_sql(self.sql, self.arrays(rows))


def keys_in(column: sa.ColumnElement, name: str) -> sa.ColumnElement[bool]:
    """``column IN (…)`` over the expanding parameter ``name``, so that a hot statement is built once, at
    import, and run with ``{name: keys}``: built for each batch, its expression objects (bind parameters,
    labels, an alias's column proxies) went to the cyclic garbage collector.

    Each number of keys is still a text of its own, prepared on its first run on a connection. Padding
    the keys to a power of two (ten texts in all) was tried and dropped: each text then ran often enough
    for PostgreSQL to cache its generic plan while the tables were small, and sla's case lock and
    projection's worklist delete went from under 0.04 ms of execution a case to 0.3–0.4 (two 20,000-case
    replays, 2026-11-30); see ``custom_plans``."""
    return column.in_(sa.bindparam(name, expanding=True))


def rows_by_key(table: sa.Table, key: sa.Column, name: str, *, lock: bool = False) -> sa.Select:
    """``table``'s rows whose ``key`` is in the list parameter ``name``, read key by key on ``key``'s index
    (``unnest`` joined LATERAL to a subquery PostgreSQL cannot fold into a join: OFFSET, or FOR UPDATE with
    ``lock``, which locks the rows in the order of the keys given: give them sorted). Built once, at
    import; the rows come typed as ``table``'s.

    A list of keys as ``key IN (…)`` is planned for a share of the table: with no statistics yet (a fresh
    district's first minutes, before autovacuum's first ANALYZE) PostgreSQL takes each key for 0.5 % of
    the rows and read sla's whole clock table for a batch of 63 cases (~35 ms at 60,000 clocks,
    auto_explain, 2026-11-30). Key by key the plan is an index probe per key whatever the estimate, as
    long as it is made for the table's current size: a generic plan cached after an ANALYZE of a few
    hundred rows scans the table once per key instead; run it under ``custom_plans``."""
    keys = (
        sa.func.unnest(sa.bindparam(name, type_=postgresql.ARRAY(key.type)))
        .table_valued(sa.Column(key.name, key.type))
        .render_derived(name="k")
    )
    wanted = sa.select(table).where(key == keys.c[key.name])
    found = (wanted.with_for_update() if lock else wanted.offset(0)).lateral("found")
    return sa.select(found).select_from(keys).join(found, sa.true())


def array_literal(values: Sequence[Any]) -> str:
    """PostgreSQL's text form of a one-dimensional array (``{"a","b \\"c\\"",NULL}``): every element
    quoted, with backslashes and double quotes escaped, so any text reads back as it was."""
    quoted = (
        "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    )
    return "{" + ",".join(quoted) + "}"


def do_update(keys: Sequence[str], columns: Sequence[str], **also: str) -> str:
    """``ON CONFLICT (keys) DO UPDATE`` setting every other of ``columns`` to the new row's value, and
    each of ``also`` to its SQL expression (``updated_at="now()"``)."""
    quote = _DIALECT.identifier_preparer.quote
    sets = [f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in keys]
    sets += [f"{quote(name)} = {expression}" for name, expression in also.items()]
    return f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {', '.join(sets)}"


@asynccontextmanager
async def local_settings(conn: Any, *, to_commit: bool = False, **settings: str) -> AsyncIterator[None]:
    """PostgreSQL ``settings`` for the statements run inside (SET LOCAL), back to their defaults after.

    ``conn``: a SQLAlchemy AsyncConnection or an asyncpg connection, in a transaction (SET LOCAL ends with
    it; after an error the rollback resets them, so nothing is run then). ``to_commit``: the block is the
    rest of its transaction, whose end resets them: no round trip to reset them first."""
    run = conn.exec_driver_sql if hasattr(conn, "exec_driver_sql") else conn.execute
    for name, value in settings.items():
        await run(f"SET LOCAL {name} = {value}")
    yield
    if not to_commit:
        for name in settings:
            await run(f"SET LOCAL {name} TO DEFAULT")


def custom_plans(conn: Any, *, to_commit: bool = False) -> AbstractAsyncContextManager[None]:
    """Statements run inside are planned for their values and the tables' current size, every time.

    asyncpg prepares every statement; after five executions PostgreSQL may keep a generic plan, costed
    with the statistics of that moment and kept until the next ANALYZE. On a fresh database (a new
    district, bench/e2e) a queue table grows from empty within seconds, long before autovacuum's first
    ANALYZE, and a plan made for a table of one row (a sequential scan, a hash of every row) goes on
    reading every row: 10–60 ms a call at a few thousand rows (auto_explain, 2026-11-28). A custom plan
    reads the table's size at planning; it costs ~0.1–0.4 ms, so only the statements whose plan depends
    on a growing table's size use it. ``to_commit``: as for ``local_settings``."""
    return local_settings(conn, to_commit=to_commit, plan_cache_mode="force_custom_plan")
