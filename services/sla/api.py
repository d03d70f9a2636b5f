"""Sla's HTTP entrypoints for operators: a case's deadlines, pausing and resuming its clocks, the policy
table, the holiday table.

Pause and resume accept an ``Idempotency-Key`` header: a retry with the same key and body gets the first
answer again (``Idempotent-Replayed: true``) and changes nothing; without a key, pausing paused clocks
(or resuming running ones) is a 409.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from runtime import idempotency
from runtime.auth import Principal, require
from runtime.problems import Problem
from runtime.service import ServiceRuntime
from services.sla import handlers, store
from services.sla.book import ClockBook, SlaCase
from services.sla.context import SlaContext
from services.sla.domain.calendar import PACKAGE_BASIS
from services.sla.schemas import (
    CalendarEntry,
    CalendarYearPublic,
    CalendarYearUpdate,
    CaseDeadlinesPublic,
    ClockActionPublic,
    ClockPause,
    DeadlinePublic,
    TimerPublic,
)
from services.sla.tables import cases, holiday_years, holidays, idempotency_keys

router = APIRouter(prefix="/v1/sla", tags=["sla"])
Operator = Annotated[Principal, Depends(require("operator", "sre"))]
OperatorOnly = Annotated[Principal, Depends(require("operator"))]
IdempotencyKey = idempotency.IdempotencyKeyHeader
CLOCK_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "sla knows no such case"},
    409: {"description": "Already paused, or nothing to pause or resume (problem+json names the clocks)"},
}
Year = Annotated[int, Path(ge=2004, le=2100)]


async def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def get_context(request: Request) -> SlaContext:
    return request.app.state.sla


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
ContextDep = Annotated[SlaContext, Depends(get_context)]


@router.get("/cases/{case_id}/deadlines", response_model=CaseDeadlinesPublic)
async def get_case_deadlines(case_id: str, runtime: RuntimeDep, _: Operator) -> CaseDeadlinesPublic:
    """A case's stage deadlines, their timers and its supervision level."""
    async with runtime.engine.connect() as conn:
        case = (await conn.execute(sa.select(cases).where(cases.c.case_id == case_id))).first()
        if case is None:
            raise Problem(404, "case-not-found", f"sla knows no case {case_id}.", case_id=case_id)
        return await _case_public(conn, case)


@router.post("/cases/{case_id}/pause", response_model=ClockActionPublic, responses=CLOCK_RESPONSES)
async def pause_case_clocks(
    case_id: str,
    body: ClockPause,
    runtime: RuntimeDep,
    ctx: ContextDep,
    principal: OperatorOnly,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Pause the case's running clocks (e.g. waiting for the citizen); their pending cards are cancelled."""
    return await _clock_action(runtime, ctx, principal, case_id, "pause", body, idempotency_key)


@router.post("/cases/{case_id}/resume", response_model=ClockActionPublic, responses=CLOCK_RESPONSES)
async def resume_case_clocks(
    case_id: str,
    runtime: RuntimeDep,
    ctx: ContextDep,
    principal: OperatorOnly,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Resume paused clocks: deadlines move by the paused working time and are set again."""
    return await _clock_action(runtime, ctx, principal, case_id, "resume", None, idempotency_key)


async def _clock_action(
    runtime: ServiceRuntime,
    ctx: SlaContext,
    principal: Principal,
    case_id: str,
    action: str,
    body: ClockPause | None,
    idempotency_key: str | None,
) -> JSONResponse:
    request = {"case_id": case_id, "action": action, "body": body.model_dump() if body else None}
    digest = idempotency.request_hash(request)
    async with runtime.engine.begin() as conn:
        book = await ClockBook.open(conn, [case_id])  # locks the case: concurrent actions (and retries) wait
        case = book.cases.get(case_id)
        if case is None:
            raise Problem(404, "case-not-found", f"sla knows no case {case_id}.", case_id=case_id)
        if idempotency_key is not None:
            prior = await idempotency.prior_answer(
                conn, idempotency_keys, principal.client_id, idempotency_key, digest
            )
            if prior is not None:
                return JSONResponse(
                    prior.response, status_code=prior.status_code, headers={"Idempotent-Replayed": "true"}
                )
        try:
            if action == "pause" and body is not None:
                stages = handlers.pause_clocks(book, ctx, case_id, body.reason)
            else:
                stages = await handlers.resume_clocks(book, ctx, case_id)
        except handlers.ClockConflict as exc:
            clocks = {row.stage: row.state for row in book.clock_rows(case_id).values()}
            raise Problem(409, exc.problem, str(exc), case_id=case_id, clocks=clocks) from exc
        await book.write()
        answer = ClockActionPublic(action=action, stages=stages, case=await _case_public(conn, case))
        response = answer.model_dump(mode="json")
        if idempotency_key is not None:
            await idempotency.remember_answer(
                conn,
                idempotency_keys,
                client_id=principal.client_id,
                key=idempotency_key,
                case_id=case_id,
                action=action,
                digest=digest,
                status_code=200,
                response=response,
            )
    runtime.wake_relay()
    return JSONResponse(response)


async def _case_public(conn: AsyncConnection, case: sa.Row | SlaCase) -> CaseDeadlinesPublic:
    rows = await store.deadline_rows(conn, case.case_id)
    timer_rows = await store.case_timers(conn, case.case_id)
    return CaseDeadlinesPublic(
        case_id=case.case_id,
        status=case.status,
        escalation_level=case.escalation_level,
        deadlines=[DeadlinePublic.model_validate(row, from_attributes=True) for row in rows.values()],
        timers=[TimerPublic.model_validate(row, from_attributes=True) for row in timer_rows],
    )


@router.get("/policies")
async def get_policies(ctx: ContextDep, _: Operator) -> dict[str, Any]:
    """The policy table in force (时限规则), with its version."""
    return ctx.table.model_dump(mode="json")


@router.get("/calendar/{year}", response_model=CalendarYearPublic)
async def get_calendar_year(year: Year, runtime: RuntimeDep, _: Operator) -> CalendarYearPublic:
    """The operator's holiday table for a year, or which basis applies when there is none."""
    async with runtime.engine.connect() as conn:
        return await _year(conn, year)


@router.put("/calendar/{year}", response_model=CalendarYearPublic)
async def put_calendar_year(
    year: Year, body: CalendarYearUpdate, runtime: RuntimeDep, ctx: ContextDep, _: OperatorOnly
) -> CalendarYearPublic:
    """Publish a year's holidays and make-up workdays; provisional deadlines are recomputed."""
    outside = [e.date.isoformat() for e in body.entries if e.date.year != year]
    if outside:
        raise Problem(422, "date-outside-year", f"Entries must fall in {year}.", dates=outside)
    if len({e.date for e in body.entries}) != len(body.entries):
        raise Problem(422, "duplicate-date", "Each date may appear once.")
    async with runtime.engine.begin() as conn:
        current = await _year(conn, year)
        if current.version is not None and _same(current.entries, body.entries):
            return current  # a repeated PUT changes nothing
        entries = [(e.date, e.kind, e.name) for e in body.entries]
        await store.replace_year(conn, year, entries, body.source)
        await ctx.calendars.refresh(conn, force=True)
        recomputed = 0
        book = await ClockBook.open(conn, await store.provisional_case_ids(conn))
        for case_id in sorted(book.clocks):
            for row in book.clock_rows(case_id).values():
                if row.provisional and row.state in store.ACTIVE:
                    handlers.recompute(book, ctx, row)
                    recomputed += 1
        await book.write()
        result = await _year(conn, year)
    runtime.wake_relay()
    return result.model_copy(update={"recomputed_deadlines": recomputed})


def _same(old: list[CalendarEntry], new: list[CalendarEntry]) -> bool:
    return sorted(e.model_dump_json() for e in old) == sorted(e.model_dump_json() for e in new)


async def _year(conn: Any, year: int) -> CalendarYearPublic:
    version = (
        await conn.execute(sa.select(holiday_years.c.version).where(holiday_years.c.year == year))
    ).scalar_one_or_none()
    rows = (
        await conn.execute(sa.select(holidays).where(holidays.c.year == year).order_by(holidays.c.day))
    ).all()
    if version is not None:
        basis = f"operator table {year}-v{version}"
    elif 2004 <= year <= 2026:
        basis = PACKAGE_BASIS
    else:
        basis = "weekends-only (provisional)"
    return CalendarYearPublic(
        year=year,
        version=version,
        basis=basis,
        entries=[CalendarEntry(date=r.day, kind=r.kind, name=r.name) for r in rows],
    )
