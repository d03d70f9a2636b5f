"""Idempotency-Key for operators' and assignees' case actions: a retry with the same key and request
gets the first answer again; the same key with another request is refused (422).

Each service keeps the answers in its own database (``answers_table``); the logic lives here once.
Intake's feeds use their own, stricter variant (per-key locks around case creation).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import Header
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime.problems import Problem

IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description="Makes retries safe.")
]


def answers_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The table of answers already given, by (client, key)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def request_hash(request: Any) -> str:
    """Digest of a request's meaningful content (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def prior_answer(
    conn: AsyncConnection, table: sa.Table, client_id: str, key: str, digest: str
) -> sa.Row | None:
    """The answer recorded for this client's key, or None; 422 if the key was used for another request."""
    row = (
        await conn.execute(sa.select(table).where(table.c.client_id == client_id, table.c.key == key))
    ).first()
    if row is not None and row.request_hash != digest:
        raise Problem(
            422,
            "idempotency-key-reused",
            f"Idempotency-Key {key!r} was used for a different request ({row.action} on {row.case_id}).",
        )
    return row


async def remember_answer(
    conn: AsyncConnection,
    table: sa.Table,
    *,
    client_id: str,
    key: str,
    case_id: str,
    action: str,
    digest: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    """Record the answer in the caller's transaction (a concurrent twin's insert wins; same answer)."""
    await conn.execute(
        insert(table)
        .values(
            client_id=client_id,
            key=key,
            case_id=case_id,
            action=action,
            request_hash=digest,
            status_code=status_code,
            response=response,
        )
        .on_conflict_do_nothing(index_elements=["client_id", "key"])
    )
