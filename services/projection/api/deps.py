"""Dependencies of the query API: the runtime, who reads, and read-your-writes waiting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.auth import Principal, require
from runtime.db import inbox
from runtime.position import decode_position
from runtime.problems import Problem
from runtime.service import ServiceRuntime
from services.projection.tables import case_timeline

CONSISTENCY_HEADER = "X-Gridline-Consistency"
POLL_INTERVAL_S = 0.05

Timeout = Annotated[
    float, Query(alias="timeout", ge=0, le=10, description="Longest wait for a position, in seconds.")
]


async def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


@dataclass(frozen=True)
class Reader:
    """Who reads, and what they may see: every case, or only their departments' cases."""

    principal: Principal
    all_cases: bool
    departments: frozenset[str]
    sees_citizen: bool

    def may_read(self, handler_departments: list[str] | None) -> bool:
        return self.all_cases or bool(self.departments & set(handler_departments or ()))


async def get_reader(
    principal: Annotated[Principal, Depends(require("operator", "sre", "open311", "department:*"))],
) -> Reader:
    """Operators and SREs see everything; Open311 clients see every case without citizen details;
    department keys see the cases they handle (assignee or co-handler) only."""
    staff = principal.has("operator") or principal.has("sre")
    return Reader(
        principal=principal,
        all_cases=staff or principal.has("open311"),
        departments=principal.departments,
        sees_citizen=staff or bool(principal.departments),
    )


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def caught_up(engine: AsyncEngine, consumer: str, token: str) -> bool:
    """Whether the event a position token names is in the read models (or was dead-lettered)."""
    try:
        _case_id, event_id = decode_position(token)
    except ValueError as exc:
        raise Problem(400, "bad-position", f"{exc}.", position=token) from exc
    async with engine.connect() as conn:
        in_timeline = sa.exists().where(case_timeline.c.event_id == event_id)
        in_inbox = sa.exists().where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
        return bool((await conn.execute(sa.select(sa.or_(in_timeline, in_inbox)))).scalar())


async def wait_for_position(engine: AsyncEngine, consumer: str, token: str, timeout_s: float) -> bool:
    """Poll (bounded by ``timeout_s``) until the projection has caught up to ``token``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await caught_up(engine, consumer, token):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
    return True
