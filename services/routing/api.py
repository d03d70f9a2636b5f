"""Routing's HTTP entrypoints: actions on a case for its assignee and for operators, and a few queries.

Assignees act with their department key (scope ``department:<code>``) or a grid app key (``grid``);
operators (``operator``) assign, decide extensions and arbitrate. A department never sees or acts on
another department's case: it gets 404. Every action accepts an ``Idempotency-Key`` header; a retry with
the same key and body gets the first answer again and records nothing new.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from runtime import idempotency
from runtime.auth import Principal, require
from runtime.problems import Problem
from services.routing import commands
from services.routing.commands import actor_for, case_for, execute, resolve_assignee
from services.routing.domain import assignment as sm
from services.routing.domain.coords import to_wgs84
from services.routing.domain.decision import CaseFacts, decide
from services.routing.handlers import RoutingContext
from services.routing.refdata_store import ReferenceDataMissing, load_rules
from services.routing.schemas import (
    AcceptCase,
    AssignCase,
    CasePublic,
    CoHandleCase,
    DecideExtension,
    DecisionRequest,
    ReplyToCase,
    RequestExtension,
    ReturnCase,
    RuleSetCreate,
    RuleSetLoaded,
    TransferCase,
)
from services.routing.tables import refdata_audit, routing_cases, rule_sets

actions = APIRouter(prefix="/v1/cases", tags=["case actions"])
queries = APIRouter(prefix="/v1/routing", tags=["routing"])

Assignee_ = Annotated[Principal, Depends(require("department:*", "grid"))]
AssigneeOrOperator = Annotated[Principal, Depends(require("department:*", "grid", "operator"))]
Operator = Annotated[Principal, Depends(require("operator"))]
IdempotencyKey = idempotency.IdempotencyKeyHeader
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such case, or not yours"},
    409: {"description": "Not allowed in the case's current status (problem+json names it)"},
}


def _ctx(request: Request) -> RoutingContext:
    return request.app.state.routing


async def _run(
    request: Request,
    case_id: str,
    action: str,
    principal: Principal,
    actor: sm.Actor,
    command: commands.Command,
    body: Any,
    idempotency_key: str | None,
) -> JSONResponse:
    runtime = request.app.state.runtime
    outcome = await execute(
        runtime.engine,
        _ctx(request),
        case_id=case_id,
        action=action,
        principal=principal,
        actor=actor,
        command=command,
        request=body.model_dump(mode="json") if body is not None else {},
        idempotency_key=idempotency_key,
    )
    if outcome.body.get("events") and not outcome.replayed:
        runtime.wake_relay()
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@actions.post("/{case_id}/accept", response_model=CasePublic, responses=RESPONSES)
async def accept_case(
    case_id: str,
    request: Request,
    principal: Assignee_,
    idempotency_key: IdempotencyKey = None,
    body: AcceptCase | None = None,
) -> JSONResponse:
    """签收: the assignee accepts the case (accepting twice is harmless)."""
    actor = actor_for(principal)
    return await _run(
        request,
        case_id,
        "accept",
        principal,
        actor,
        lambda rec, ref, now: sm.accept(rec.state, actor, now),
        body,
        idempotency_key,
    )


@actions.post("/{case_id}/return", response_model=CasePublic, responses=RESPONSES)
async def return_case(
    case_id: str,
    body: ReturnCase,
    request: Request,
    principal: Assignee_,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """退单: the assignee sends the case back with a reason; routing re-routes it or sends it to triage."""
    actor = actor_for(principal)
    window = _ctx(request).return_window

    def command(rec, ref, now):
        reroute = commands.reroute_for(rec.received, ref)
        return sm.return_case(rec.state, actor, body.reason, now, window=window, reroute=reroute)

    return await _run(request, case_id, "return", principal, actor, command, body, idempotency_key)


@actions.post("/{case_id}/transfer", response_model=CasePublic, responses=RESPONSES)
async def transfer_case(
    case_id: str,
    body: TransferCase,
    request: Request,
    principal: AssigneeOrOperator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """转办: the assignee (or an operator) hands the case to another department or grid."""
    actor = actor_for(principal)

    def command(rec, ref, now):
        to = resolve_assignee(ref, body.to.kind, body.to.code)
        return sm.transfer(rec.state, actor, to, body.reason, now)

    return await _run(request, case_id, "transfer", principal, actor, command, body, idempotency_key)


@actions.post("/{case_id}/co-handle", response_model=CasePublic, responses=RESPONSES)
async def co_handle_case(
    case_id: str,
    body: CoHandleCase,
    request: Request,
    principal: AssigneeOrOperator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """协办: add co-handling departments to the current assignment."""
    actor = actor_for(principal)

    def command(rec, ref, now):
        add = [resolve_assignee(ref, "department", code) for code in body.departments]
        return sm.co_handle(rec.state, actor, add, now)

    return await _run(request, case_id, "co-handle", principal, actor, command, body, idempotency_key)


@actions.post("/{case_id}/reply", response_model=CasePublic, responses=RESPONSES)
async def reply_to_case(
    case_id: str,
    body: ReplyToCase,
    request: Request,
    principal: Assignee_,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """答复: the assignee answers the citizen (after accepting)."""
    actor = actor_for(principal)
    return await _run(
        request,
        case_id,
        "reply",
        principal,
        actor,
        lambda rec, ref, now: sm.reply(rec.state, actor, body.reply, body.resolved, now),
        body,
        idempotency_key,
    )


@actions.post("/{case_id}/extension", response_model=CasePublic, responses=RESPONSES)
async def request_extension(
    case_id: str,
    body: RequestExtension,
    request: Request,
    principal: Assignee_,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """延期申请: the assignee asks for more working days."""
    actor = actor_for(principal)
    return await _run(
        request,
        case_id,
        "extension",
        principal,
        actor,
        lambda rec, ref, now: sm.request_extension(rec.state, actor, body.working_days, body.reason, now),
        body,
        idempotency_key,
    )


@actions.post("/{case_id}/extension-decision", response_model=CasePublic, responses=RESPONSES)
async def decide_extension(
    case_id: str,
    body: DecideExtension,
    request: Request,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """延期审批: an operator approves or refuses the pending extension request."""
    actor = actor_for(principal, as_operator=True)
    return await _run(
        request,
        case_id,
        "extension-decision",
        principal,
        actor,
        lambda rec, ref, now: sm.decide_extension(
            rec.state, actor, body.approved, now, working_days=body.working_days, note=body.note
        ),
        body,
        idempotency_key,
    )


@actions.post("/{case_id}/assign", response_model=CasePublic, responses=RESPONSES)
async def assign_case(
    case_id: str,
    body: AssignCase,
    request: Request,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """人工派单 / 仲裁: an operator assigns a case from triage, or overrides its assignment."""
    actor = actor_for(principal, as_operator=True)

    def command(rec, ref, now):
        to = resolve_assignee(ref, body.to.kind, body.to.code)
        return sm.assign(rec.state, actor, to, body.reason, now, rule_set_version=ref.rule_set.version)

    return await _run(request, case_id, "assign", principal, actor, command, body, idempotency_key)


# --- queries -----------------------------------------------------------------------------------------


@queries.get("/cases/{case_id}", response_model=CasePublic, responses={404: RESPONSES[404]})
async def get_routing_case(case_id: str, request: Request, principal: AssigneeOrOperator) -> dict[str, Any]:
    """Routing's view of one case: status, current assignment and its basis, returns."""
    return await case_for(request.app.state.runtime.engine, case_id, actor_for(principal))


@queries.get("/work")
async def list_work(request: Request, principal: Assignee_, limit: int = 100) -> dict[str, Any]:
    """The open cases currently assigned to the caller's department(s)."""
    departments = sorted(principal.departments)
    if not departments:
        raise Problem(403, "forbidden", "Only department keys have a work list.")
    async with request.app.state.runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(routing_cases.c.case_id, routing_cases.c.status, routing_cases.c.assignee_code)
                .where(
                    routing_cases.c.assignee_code.in_(departments),
                    routing_cases.c.status.in_([s.value for s in sm.OPEN_ASSIGNMENT]),
                )
                .order_by(routing_cases.c.updated_at)
                .limit(min(max(limit, 1), 500))
            )
        ).all()
    return {"items": [dict(r._mapping) for r in rows]}


@queries.post("/decisions")
async def dry_run_decision(body: DecisionRequest, request: Request, _: Operator) -> dict[str, Any]:
    """Where would this case go? Runs the decision on the active rule set and records nothing."""
    lon = lat = None
    if body.lat is not None and body.lon is not None:
        lon, lat = to_wgs84(body.lon, body.lat, body.crs)
    facts = CaseFacts(
        category_code=body.category_code,
        unified_category=body.category,
        lon=lon,
        lat=lat,
        address=body.address,
        description=body.description,
    )
    async with request.app.state.runtime.engine.connect() as conn:
        ref = await _ctx(request).refdata.get(conn)
    decision = decide(facts, ref, exclude=frozenset(body.exclude))
    return {
        "assignee": decision.assignee.model_dump(mode="json") if decision.assignee else None,
        "triage": decision.triage,
        "basis": decision.basis.model_dump(mode="json"),
    }


@queries.get("/rule-sets")
async def list_rule_sets(request: Request, _: Operator) -> dict[str, Any]:
    """Rule-set versions and the audit of every load."""
    async with request.app.state.runtime.engine.connect() as conn:
        versions = (
            await conn.execute(
                sa.select(
                    rule_sets.c.version,
                    rule_sets.c.label,
                    rule_sets.c.active,
                    rule_sets.c.loaded_at,
                    rule_sets.c.loaded_by,
                    rule_sets.c.digest,
                ).order_by(rule_sets.c.version)
            )
        ).all()
        audit = (
            await conn.execute(sa.select(refdata_audit).order_by(refdata_audit.c.id.desc()).limit(50))
        ).all()
    return {
        "versions": [dict(r._mapping) for r in versions],
        "audit": [dict(r._mapping) for r in audit],
    }


@queries.post(
    "/rule-sets",
    response_model=RuleSetLoaded,
    status_code=201,
    responses={
        200: {"description": "Same content as the active version: nothing new", "model": RuleSetLoaded},
        409: {"description": "No rule set is loaded yet"},
        422: {"description": "A rule names an unknown category, area or department"},
    },
)
async def load_rule_set(body: RuleSetCreate, request: Request, principal: Operator) -> JSONResponse:
    """Activate a changed responsibility matrix as a new rule-set version (same content, same version)."""
    rows = [rule.model_dump(mode="json") for rule in body.rules]
    async with request.app.state.runtime.engine.begin() as conn:
        try:
            result = await load_rules(conn, rows, body.label, f"api:{principal.client_id}")
        except ReferenceDataMissing as exc:
            raise Problem(409, "no-rule-set", str(exc)) from exc
        except ValueError as exc:
            raise Problem(422, "invalid-rule-set", str(exc)) from exc
        label = (
            await conn.execute(sa.select(rule_sets.c.label).where(rule_sets.c.version == result.version))
        ).scalar_one()
    loaded = RuleSetLoaded(
        version=result.version, created=result.created, label=label, changes=result.changes
    )
    return JSONResponse(loaded.model_dump(mode="json"), status_code=201 if result.created else 200)
