"""Operators' query API over the read models."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request

from runtime.problems import Problem
from runtime.service import ServiceRuntime
from services.projection.schemas import CaseList, CasePublic, TimelineEntry
from services.projection.tables import case_summary, case_timeline

router = APIRouter(prefix="/v1/cases", tags=["cases"])


def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


@router.get("/{case_id}", response_model=CasePublic)
async def get_case(case_id: str, runtime: RuntimeDep) -> CasePublic:
    """One case with its full timeline."""
    async with runtime.engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(case_summary).where(case_summary.c.case_id == case_id)))
            .mappings()
            .first()
        )
        if row is None:
            raise Problem(
                404, "case-not-found", f"No case {case_id!r} has been projected (yet).", case_id=case_id
            )
        events = (
            await conn.execute(
                sa.select(case_timeline)
                .where(case_timeline.c.case_id == case_id)
                .order_by(case_timeline.c.log_offset, case_timeline.c.occurred_at)
            )
        ).mappings()
        timeline = [TimelineEntry.model_validate(dict(e)) for e in events]
    return CasePublic.model_validate({**row, "timeline": timeline})


@router.get("", response_model=CaseList)
async def list_cases(
    runtime: RuntimeDep,
    status: str | None = None,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = Query(None, description="Opaque cursor from the previous page's next_cursor."),
) -> CaseList:
    """Cases, newest first, with keyset pagination."""
    query = sa.select(case_summary).order_by(
        case_summary.c.last_event_at.desc(), case_summary.c.case_id.desc()
    )
    if status:
        query = query.where(case_summary.c.status == status)
    if source:
        query = query.where(case_summary.c.source == source)
    if cursor:
        at, case_id = _decode_cursor(cursor)
        query = query.where(
            sa.tuple_(case_summary.c.last_event_at, case_summary.c.case_id) < sa.tuple_(at, case_id)
        )
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query.limit(limit + 1))).mappings().all()
    items = [CasePublic.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = _encode_cursor(items[-1].last_event_at, items[-1].case_id) if len(rows) > limit else None
    return CaseList(items=items, next_cursor=next_cursor)


def _encode_cursor(at: datetime, case_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{case_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), case_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "bad-cursor", "The cursor is not one this API issued.") from exc
