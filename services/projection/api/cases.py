"""GET /v1/cases and /v1/cases/{id}: operators' (and departments') case queries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from runtime.position import HEADER as POSITION_HEADER
from runtime.problems import Problem
from services.projection.api.deps import (
    CONSISTENCY_HEADER,
    ReaderDep,
    RuntimeDep,
    Timeout,
    wait_for_position,
)
from services.projection.domain.areas import town_name
from services.projection.queries import CaseFilter, encode_cursor, page_query
from services.projection.schemas import CaseList, CasePublic, TimelineEntry
from services.projection.tables import case_summary, case_timeline

router = APIRouter(prefix="/v1/cases", tags=["cases"])

WaitFor = Annotated[
    str | None,
    Query(description=f"Position token from a write ({POSITION_HEADER}); wait until it is projected."),
]


def to_public(row: dict[str, Any], *, sees_citizen: bool, now: datetime) -> CasePublic:
    """A summary row as the API shows it, with derived fields and masking applied."""
    values = dict(row)
    values["town_name"] = town_name(values.get("town_code"))
    due = values.get("case_due_at")
    values["overdue"] = bool(values["is_open"] and ((due and due < now) or values.get("card") == "red"))
    if not sees_citizen:
        values["citizen_name_masked"] = values["citizen_phone_masked"] = None
    return CasePublic.model_validate(values)


@router.get("/{case_id}", response_model=CasePublic, responses={202: {"description": "Not caught up yet"}})
async def get_case(
    case_id: str,
    runtime: RuntimeDep,
    reader: ReaderDep,
    response: Response,
    wait_for: WaitFor = None,
    wait_s: Timeout = 2.0,
) -> Any:
    """One case with its full timeline, deadlines and cards."""
    fresh = True
    if wait_for:
        fresh = await wait_for_position(runtime.engine, runtime.settings.consumer_group, wait_for, wait_s)
    async with runtime.engine.connect() as conn:
        # One snapshot for the summary and its timeline: read committed, a batch committed between the two
        # reads showed a summary that had folded one event and a timeline of two (the crash test saw it).
        # asyncpg opens the transaction with the level (BEGIN ISOLATION LEVEL …): no extra round trip.
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        found = await conn.execute(sa.select(case_summary).where(case_summary.c.case_id == case_id))
        row = found.mappings().first()
        if row is None or not reader.may_read(row["handler_departments"]):
            if not fresh:
                return JSONResponse(
                    {"case_id": case_id, "position": wait_for, "caught_up": False},
                    status_code=202,
                    headers={CONSISTENCY_HEADER: "stale"},
                )
            raise Problem(
                404, "case-not-found", f"No case {case_id!r} has been projected (yet).", case_id=case_id
            )
        events = await conn.execute(
            sa.select(case_timeline)
            .where(case_timeline.c.case_id == case_id)
            .order_by(case_timeline.c.log_partition, case_timeline.c.log_offset, case_timeline.c.occurred_at)
        )
        timeline = [TimelineEntry.model_validate(dict(e)) for e in events.mappings()]
    case = to_public(dict(row), sees_citizen=reader.sees_citizen, now=datetime.now(UTC))
    case.timeline = timeline
    response.headers[CONSISTENCY_HEADER] = "fresh" if fresh else "stale"
    if not fresh:
        response.status_code = 202
    return case


@router.get("", response_model=CaseList)
async def list_cases(
    runtime: RuntimeDep,
    reader: ReaderDep,
    response: Response,
    status: Annotated[str | None, Query(description="One status or several, comma-separated.")] = None,
    town: Annotated[str | None, Query(description="Town/street code (12-digit NBS).")] = None,
    community: str | None = None,
    grid: str | None = None,
    department: str | None = None,
    category: str | None = None,
    source: Annotated[str | None, Query(description="hotline | grid | open311")] = None,
    overdue: bool | None = None,
    card: Annotated[str | None, Query(description="yellow | red | none")] = None,
    escalation_level: Annotated[int | None, Query(ge=0, le=3)] = None,
    received_from: Annotated[date | datetime | None, Query(description="Inclusive; a date is local.")] = None,
    received_to: Annotated[
        date | datetime | None, Query(description="Exclusive instant or inclusive date.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=50, description="Keyword in title, text, address, reply.")
    ] = None,
    sort: Annotated[str, Query(description="opened_at | last_event_at, '-' for descending")] = "-opened_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    wait_for: WaitFor = None,
    wait_s: Timeout = 2.0,
) -> CaseList:
    """Cases matching every given filter, sorted, one keyset page at a time."""
    fresh = True
    if wait_for:
        fresh = await wait_for_position(runtime.engine, runtime.settings.consumer_group, wait_for, wait_s)
    response.headers[CONSISTENCY_HEADER] = "fresh" if fresh else "stale"
    case_filter = CaseFilter(
        status=[s for s in status.split(",") if s] if status else None,
        town=town,
        community=community,
        grid=grid,
        department=department,
        category=category,
        source=source,
        overdue=overdue,
        card=card,
        escalation_level=escalation_level,
        received_from=received_from,
        received_to=received_to,
        q=q,
        departments=None if reader.all_cases else reader.departments,
    )
    now = datetime.now(UTC)
    query = page_query(case_filter.conditions(now), sort, limit, cursor)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [to_public(dict(r), sees_citizen=reader.sees_citizen, now=now) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(sort, last[sort.lstrip("-")], last["case_id"])
    return CaseList(items=items, next_cursor=next_cursor)
