"""PostgreSQL's own profile of a benchmark phase (pg_stat_statements): which statements take its time.

The bench's PostgreSQL is started with the module loaded (``local_stack(statement_stats=True)``);
``reset`` before the phase, ``top`` after it.
"""

from __future__ import annotations

import re

import asyncpg


async def _connect(server_url: str) -> asyncpg.Connection:
    db = await asyncpg.connect(f"{server_url}/postgres")
    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return db


async def reset(server_url: str) -> dict[str, int]:
    """Clear the statement statistics; returns the sessions opened so far per database (for ``top``)."""
    db = await _connect(server_url)
    try:
        await db.execute("SELECT pg_stat_statements_reset()")
        return await _sessions(db)
    finally:
        await db.close()


async def _sessions(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT datname, sessions FROM pg_stat_database WHERE datname IS NOT NULL")
    return {row["datname"]: row["sessions"] for row in rows}


async def top(server_url: str, cases: int, sessions_before: dict[str, int], limit: int = 12) -> dict:
    """Execution time and calls per case in all, the ``limit`` statements that took the most time, and
    the connections each database was opened for since ``reset``."""
    db = await _connect(server_url)
    try:
        sessions = await _sessions(db)
        total = await db.fetchrow(
            "SELECT sum(total_exec_time)::float8 AS ms, sum(calls)::bigint AS calls FROM pg_stat_statements"
            " WHERE query NOT LIKE '%pg_stat_statements%'"
        )
        rows = await db.fetch(
            "SELECT d.datname AS database, s.query, s.calls, s.rows, s.total_exec_time AS ms"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE s.query NOT LIKE '%pg_stat_statements%'"
            " ORDER BY s.total_exec_time DESC LIMIT $1",
            limit,
        )
    finally:
        await db.close()
    per = max(cases, 1)
    return {
        "sessions_opened": {
            name: count - sessions_before.get(name, 0)
            for name, count in sorted(sessions.items())
            if count - sessions_before.get(name, 0) > 0 and name != "postgres"
        },
        "exec_ms_per_case": round((total["ms"] or 0) / per, 2),
        "calls_per_case": round((total["calls"] or 0) / per, 1),
        "top": [
            {
                "database": row["database"],
                "statement": re.sub(r"\s+", " ", row["query"]).strip()[:160],
                "calls_per_case": round(row["calls"] / per, 2),
                "rows_per_call": round(row["rows"] / row["calls"], 1) if row["calls"] else 0,
                "exec_ms_per_case": round(row["ms"] / per, 3),
                "share": round(row["ms"] / total["ms"], 3) if total["ms"] else 0,
            }
            for row in rows
        ],
    }


# Server settings that shape the write path's cost, recorded with every run.
SETTINGS = (
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "wal_compression",
    "synchronous_commit",
    "full_page_writes",
)


async def server_settings(server_url: str) -> dict[str, str]:
    """The values of ``SETTINGS`` as the server reports them (with their units: ``128MB``, ``5min``)."""
    db = await asyncpg.connect(f"{server_url}/postgres")
    try:
        rows = await db.fetch("SELECT n, current_setting(n) FROM unnest($1::text[]) AS n", SETTINGS)
    finally:
        await db.close()
    return dict(rows)


async def database_bytes(server_url: str) -> int:
    """Bytes on disk of every gridline database together (one cheap query: a progress figure)."""
    db = await asyncpg.connect(f"{server_url}/postgres")
    try:
        return await db.fetchval(
            "SELECT coalesce(sum(pg_database_size(datname)), 0)::bigint FROM pg_database"
            " WHERE datname LIKE 'gridline%'"
        )
    finally:
        await db.close()


async def _each_database(server_url: str, query: str) -> list[tuple[str, list[asyncpg.Record]]]:
    """``query``'s rows in every gridline database, with the database's name."""
    db = await asyncpg.connect(f"{server_url}/postgres")
    try:
        names = await db.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'gridline%' ORDER BY 1")
    finally:
        await db.close()
    found = []
    for (name,) in names:
        conn = await asyncpg.connect(f"{server_url}/{name}")
        try:
            found.append((name, await conn.fetch(query)))
        finally:
            await conn.close()
    return found


def _table_key(database: str, row: asyncpg.Record) -> str:
    schema = "" if row["schema"] == "public" else f"{row['schema']}."
    return f"{database}.{schema}{row['name']}"


async def storage(server_url: str) -> dict[str, int]:
    """Bytes on disk (heap, TOAST and indexes) of every table of the gridline databases, by
    ``database.table`` (``database.schema.table`` outside ``public``)."""
    query = (
        "SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid) AS bytes"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%'"
    )
    return {
        _table_key(name, row): row["bytes"]
        for name, rows in await _each_database(server_url, query)
        for row in rows
    }


async def row_writes(server_url: str) -> dict[str, dict[str, int]]:
    """Rows written so far in every table of the gridline databases (pg_stat_user_tables: inserted,
    updated, of those updated in place ("HOT", no new index entries), deleted) and its index count."""
    query = (
        "SELECT t.schemaname AS schema, t.relname AS name, t.n_tup_ins AS inserted, t.n_tup_upd AS updated,"
        " t.n_tup_hot_upd AS hot, t.n_tup_del AS deleted,"
        " (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS indexes"
        " FROM pg_stat_user_tables t"
    )
    fields = ("inserted", "updated", "hot", "deleted", "indexes")
    return {
        _table_key(name, row): {field: row[field] for field in fields}
        for name, rows in await _each_database(server_url, query)
        for row in rows
    }


def row_writes_per_case(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], cases: int, limit: int = 12
) -> list[dict]:
    """Per case, the rows a phase wrote in each table and the index entries that took: every insert
    and every update not made in place adds one to each of the table's indexes (a partial index only
    for rows it covers, a GIN index one per key: an estimate). The ``limit`` tables with the most."""
    found = []
    for table, now in after.items():
        was = before.get(table, {})
        delta = {k: now[k] - was.get(k, 0) for k in ("inserted", "updated", "hot", "deleted")}
        if not any(delta.values()) or not cases:
            continue
        new_versions = delta["inserted"] + delta["updated"] - delta["hot"]
        found.append(
            {
                "table": table,
                **{k: round(v / cases, 2) for k, v in delta.items()},
                "indexes": now["indexes"],
                "index_entries": round(new_versions * now["indexes"] / cases, 1),
            }
        )
    found.sort(key=lambda row: (-row["index_entries"], row["table"]))
    return found[:limit]


def storage_growth(
    before: dict[str, int],
    after: dict[str, int],
    cases: int,
    keep_days: dict[str, float],
    held_cases: int,
    year: int = 600_000,
) -> dict:
    """What a phase of ``cases`` cases added on disk, per case and table, and what a year of ``year``
    cases comes to; a table housekeeping trims (``keep_days`` by table name) holds only its window's.
    Also what the tables hold per case now, ``held_cases`` being every case received so far.

    Growth over a short phase depends on the free space the tables had: fresh tables grow by every
    dead row version too (an outbox row deleted once published, an upserted summary) until autovacuum frees
    them, tables with free space grow less. The held figure includes that bloat, as a disk does."""
    per_case = {
        key: (size - before.get(key, 0)) / max(cases, 1)
        for key, size in after.items()
        if size > before.get(key, 0)
    }
    yearly = {
        key: grown * year * min(1.0, keep_days.get(key.rsplit(".", 1)[1], 365) / 365)
        for key, grown in per_case.items()
    }
    return {
        "bytes_per_case": {
            key: round(grown) for key, grown in sorted(per_case.items(), key=lambda kv: -kv[1])
        },
        "total_bytes_per_case": round(sum(per_case.values())),
        "year_cases": year,
        "year_gb": round(sum(yearly.values()) / 1e9, 2),
        "year_gb_without_housekeeping": round(sum(per_case.values()) * year / 1e9, 2),
        "keep_days": keep_days,
        "held_cases": held_cases,
        "held_bytes_per_case": round(sum(after.values()) / max(held_cases, 1)),
    }


async def wal(server_url: str) -> dict[str, float]:
    """PostgreSQL's write-ahead log counters so far: records, full-page images, bytes, checkpoints."""
    db = await asyncpg.connect(f"{server_url}/postgres")
    try:
        row = await db.fetchrow(
            "SELECT w.wal_records, w.wal_fpi, w.wal_bytes::float8 AS wal_bytes,"
            " b.checkpoints_timed + b.checkpoints_req AS checkpoints"
            " FROM pg_stat_wal w, pg_stat_bgwriter b"
        )
    finally:
        await db.close()
    return dict(row)


def wal_per_case(before: dict[str, float], after: dict[str, float], cases: int) -> dict[str, float]:
    """The log a phase of ``cases`` cases wrote: records, full-page images and bytes per case, checkpoints."""
    per = max(cases, 1)
    return {
        "records_per_case": round((after["wal_records"] - before["wal_records"]) / per, 1),
        "full_page_images_per_case": round((after["wal_fpi"] - before["wal_fpi"]) / per, 1),
        "bytes_per_case": round((after["wal_bytes"] - before["wal_bytes"]) / per),
        "checkpoints": after["checkpoints"] - before["checkpoints"],
    }


async def count_cases(server_url: str, intake_database: str) -> int:
    """Every case intake has recorded."""
    db = await asyncpg.connect(f"{server_url}/{intake_database}")
    try:
        return await db.fetchval("SELECT count(*) FROM appeals")
    finally:
        await db.close()


async def deliveries(server_url: str, notify_database: str) -> dict[str, float]:
    """Notify's deliveries by where they stand: sent, failed, due but not sent yet (and how long the
    oldest has been due), and pending but not due (quiet hours, a retry's delay, in flight)."""
    db = await asyncpg.connect(f"{server_url}/{notify_database}")
    try:
        row = await db.fetchrow(
            "SELECT count(*) AS total,"
            " count(*) FILTER (WHERE status = 'sent') AS sent,"
            " count(*) FILTER (WHERE status = 'failed') AS failed,"
            " count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,"
            " count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > now()) AS not_due,"
            " count(*) FILTER (WHERE status = 'pending' AND deferred_reason = 'quiet-hours') AS quiet_hours,"
            " coalesce(extract(epoch FROM now() - min(next_attempt_at)"
            "  FILTER (WHERE status = 'pending' AND next_attempt_at <= now())), 0)::float8 AS oldest_due_s"
            " FROM deliveries"
        )
    finally:
        await db.close()
    return dict(row)


# Messages notify still has to send now: pending, unless held for quiet hours or waiting for a retry (a row
# in flight counts: its lease put it in the future, but it is not sent yet; its deferred_reason is NULL,
# hence the coalesce: ``NULL IN (...)`` is NULL, and the first form of this test left every row in flight
# out, so a drain "ended" with up to 32 messages still being sent).
_OUTSTANDING = (
    "FROM deliveries WHERE status = 'pending'"
    " AND NOT (next_attempt_at > now() AND coalesce(deferred_reason, '') IN ('quiet-hours', 'retry'))"
)


async def outstanding_deliveries(db: asyncpg.Connection, *, count: bool) -> int:
    """How many messages notify still has to send now (``count``), or only whether there are any (1 or
    0): polled every half second, a count over a 17,000-message backlog was a quarter of PostgreSQL's
    execution time while notify drained it. ``db``: a connection to notify's database."""
    query = f"SELECT count(*) {_OUTSTANDING}" if count else f"SELECT EXISTS (SELECT 1 {_OUTSTANDING})::int"
    return await db.fetchval(query)


def deliveries_during(before: dict[str, float], after: dict[str, float], cases: int, seconds: float) -> dict:
    """What a phase of ``cases`` cases over ``seconds`` queued and sent, and what it left behind."""
    return {
        "queued_per_case": round((after["total"] - before["total"]) / max(cases, 1), 2),
        "sent": after["sent"] - before["sent"],
        "sent_per_s": round((after["sent"] - before["sent"]) / max(seconds, 1e-9), 1),
        "left_due": after["due"],
        "oldest_due_s": round(after["oldest_due_s"], 1),
        "left_not_due": after["not_due"],
        "left_for_quiet_hours": after["quiet_hours"],
        "failed": after["failed"] - before["failed"],
    }
