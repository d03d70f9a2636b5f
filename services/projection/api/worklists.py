"""GET /v1/worklists/{kind}/{code}: the open cases on one grid's or department's desk."""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from runtime.auth import Principal, require
from runtime.problems import Problem
from services.projection.api.deps import RuntimeDep
from services.projection.schemas import WorklistEntry
from services.projection.tables import worklist_item as wl

router = APIRouter(prefix="/v1/worklists", tags=["worklists"])


@router.get("/{kind}/{code}", response_model=list[WorklistEntry])
async def worklist(
    kind: Literal["grid", "department"],
    code: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("operator", "sre", "grid", "department:*"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[WorklistEntry]:
    """Open cases of one assignee or co-handler, most urgent deadline first."""
    staff = principal.has("operator") or principal.has("sre")
    allowed = (
        staff
        or (kind == "grid" and principal.has("grid"))
        or (kind == "department" and code in principal.departments)
    )
    if not allowed:
        raise Problem(403, "forbidden", f"This key may not read the worklist of {kind} {code}.")
    query = (
        sa.select(wl)
        .where(wl.c.owner_kind == kind, wl.c.owner_code == code)
        .order_by(wl.c.due_at.asc().nulls_last(), wl.c.opened_at, wl.c.case_id)
        .limit(limit)
    )
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [WorklistEntry.model_validate(dict(r)) for r in rows]
