"""Schema-level operations of the rebuild: clone the read-model schema empty, index it, checksum, swap.

Tables are cloned from the live ``public`` schema (``LIKE ... INCLUDING ALL`` minus indexes), so the clone
always matches the migrated shape without a second copy of the DDL. Secondary indexes, and the keys of the
tables the bulk load only appends to, are added after it: building an index from a sort is much faster
than maintaining it row by row (a random event id per timeline and inbox row), and independent builds run
side by side on several connections.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

LIVE = "public"
# The order the live consumer touches its tables in (inbox first, tracking last): locking in the same
# order means the swap waits for an in-flight batch instead of deadlocking with it.
LOCK_ORDER = (
    "inbox", "case_timeline", "case_summary", "case_search", "case_stats_daily", "worklist_item", "tracking",
)  # fmt: skip
# The read-model tables compared by checksum, each with the rows it leaves out (statistics rows of zero).
CHECKSUMS = {
    "case_summary": None,
    "case_search": None,
    "case_timeline": None,
    "case_stats_daily": "received <> 0",
    "worklist_item": None,
}
# A table's checksum: its row count and an md5 of the sum of its rows' 64-bit hashes (the first 16 hex
# digits of each row text's md5). An aggregate that streams: no sort, no memory growing with the table
# (an md5 over the string_agg of every row hit PostgreSQL's 1 GB string limit at 5.6 million timeline
# rows), and independent of row order, as a checksum of a set of rows should be.
_ROW_HASH = "('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric"
_CHECKSUM = (
    "SELECT count(*) || ':' || md5(coalesce(sum(" + _ROW_HASH + "), 0)::text) FROM {table} t{condition}"
)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def live_tables(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": LIVE})
    return sorted(r.tablename for r in rows)


async def clone_schema(conn: AsyncConnection, schema: str, *, keys_later: Collection[str] = ()) -> None:
    """Create ``schema`` with every live table, empty, without secondary indexes, and with the primary
    and unique keys except those of the tables in ``keys_later`` (``index_statements`` adds them)."""
    await conn.execute(sa.text(f"CREATE SCHEMA {quoted(schema)}"))
    tables = await live_tables(conn)
    for table in tables:
        await conn.execute(
            sa.text(
                f"CREATE TABLE {quoted(schema)}.{quoted(table)} (LIKE {LIVE}.{quoted(table)} "
                "INCLUDING ALL EXCLUDING INDEXES)"
            )
        )
    for _, statement in await _key_statements(conn, schema, [t for t in tables if t not in keys_later]):
        await conn.execute(sa.text(statement))
    await conn.execute(
        sa.text(f"INSERT INTO {quoted(schema)}.alembic_version SELECT * FROM {LIVE}.alembic_version")
    )


async def index_statements(conn: AsyncConnection, schema: str, *, keys_of: Collection[str]) -> list[str]:
    """The statements that give ``schema`` the live schema's secondary indexes and the keys of the
    tables ``keys_of``: independent of each other, the largest tables' first."""
    rows = await conn.execute(
        sa.text(
            "SELECT i.tablename, i.indexdef FROM pg_indexes i WHERE i.schemaname = :s AND NOT EXISTS ("
            " SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            " WHERE n.nspname = :s AND c.conname = i.indexname) ORDER BY i.indexname"
        ),
        {"s": LIVE},
    )
    found = [
        (table, definition.replace(f" ON {LIVE}.", f" ON {quoted(schema)}.", 1))
        for table, definition in rows.all()
    ]
    found += await _key_statements(conn, schema, keys_of)
    sizes = await conn.execute(
        sa.text(
            "SELECT tablename, pg_relation_size(format('%I.%I', schemaname, tablename)) FROM pg_tables "
            "WHERE schemaname = :s"
        ),
        {"s": schema},
    )
    size = dict(sizes.all())
    return [statement for _, statement in sorted(found, key=lambda f: -size.get(f[0], 0))]


async def _key_statements(
    conn: AsyncConnection, schema: str, tables: Collection[str]
) -> list[tuple[str, str]]:
    """(table, statement) for each primary and unique key the tables' live namesakes have, to give it
    to the table in ``schema``."""
    statements = []
    for table in tables:
        constraints = await conn.execute(
            sa.text(
                "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u') ORDER BY conname"
            ),
            {"t": f"{LIVE}.{quoted(table)}"},
        )
        statements += [
            (
                table,
                f"ALTER TABLE {quoted(schema)}.{quoted(table)} ADD CONSTRAINT {quoted(name)} {definition}",
            )
            for name, definition in constraints.all()
        ]
    return statements


async def checksums(conn: AsyncConnection, schema: str) -> dict[str, str]:
    """A checksum of every read-model table's rows (see ``_CHECKSUM``), per table."""
    found = {}
    for table, where in CHECKSUMS.items():
        condition = f" WHERE {where}" if where else ""
        query = _CHECKSUM.format(table=f"{quoted(schema)}.{quoted(table)}", condition=condition)
        found[table] = str(await conn.scalar(sa.text(query)))
    return found


async def lock_live(conn: AsyncConnection, lock_timeout_s: int = 60) -> None:
    """Stop the live consumer between batches until this transaction ends; readers go on.

    EXCLUSIVE mode conflicts with every row lock and write, and with no plain read: operators' queries
    keep answering from the live tables while the switch catches up and checksums (41 s at 300,000
    cases here). A writer that waited sees the renamed schemas when it gets its lock: a schema rename
    invalidates every cached plan, so its statement is planned again against the new live tables."""
    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'"))
    tables = ", ".join(f"{LIVE}.{quoted(t)}" for t in LOCK_ORDER)
    await conn.execute(sa.text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))


async def swap_in(conn: AsyncConnection, schema: str, retired: str) -> None:
    """Rename live to ``retired`` and ``schema`` to live, in the caller's transaction (atomic on commit)."""
    await conn.execute(sa.text(f"ALTER SCHEMA {LIVE} RENAME TO {quoted(retired)}"))
    await conn.execute(sa.text(f"ALTER SCHEMA {quoted(schema)} RENAME TO {LIVE}"))
