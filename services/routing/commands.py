"""HTTP actions on a case as one transaction: lock the case, replay an Idempotency-Key already answered,
run the pure command, record events and work items through the outbox, remember the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import CaseEvent
from contracts.events.routing import Assignee, AssigneeKind
from runtime import idempotency
from runtime.auth import Principal
from runtime.problems import Problem
from services.routing.domain import assignment as sm
from services.routing.domain.assignment import Actor
from services.routing.domain.decision import ReferenceData, decide
from services.routing.handlers import (
    CaseBook,
    CaseRecord,
    RoutingContext,
    facts_from,
    load_case,
    record_events,
)
from services.routing.tables import idempotency_keys


def actor_for(principal: Principal, *, as_operator: bool = False) -> Actor:
    """The domain actor a key acts as: its departments, else a grid app, else an operator."""
    if as_operator or (principal.has("operator") and not principal.departments):
        return Actor(kind="operator", id=principal.client_id)
    if principal.departments:
        return Actor(kind="department", id=principal.client_id, departments=principal.departments)
    if principal.has("grid"):
        return Actor(kind="grid", id=principal.client_id)
    return Actor(kind="none", id=principal.client_id)


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


Command = Callable[[CaseRecord, ReferenceData, datetime], list[CaseEvent]]


def resolve_assignee(ref: ReferenceData, kind: str, code: str) -> Assignee:
    """A department or grid by code, or 422."""
    if kind == "department" and code in ref.departments:
        return Assignee(kind=AssigneeKind.DEPARTMENT, code=code, name=ref.departments[code].name)
    if kind == "grid" and code in ref.grids_by_code:
        return Assignee(kind=AssigneeKind.GRID, code=code, name=ref.grids_by_code[code].name)
    raise Problem(422, "unknown-assignee", f"No {kind} with code {code!r}.")


def case_view(record: CaseRecord) -> dict[str, Any]:
    """Routing's view of a case, as the actions answer it."""
    state = record.state
    current = state.current if state.status in sm.OPEN_ASSIGNMENT | {sm.Status.REPLIED} else None
    return {
        "case_id": state.case_id,
        "status": state.status.value,
        "assignment": None
        if current is None
        else {
            "assignment_id": current.assignment_id,
            "assignee": current.assignee.model_dump(mode="json"),
            "attempt": current.attempt,
            "assigned_at": current.assigned_at.isoformat(),
            "accepted_at": current.accepted_at.isoformat() if current.accepted_at else None,
            "co_handlers": [c.model_dump(mode="json") for c in current.co_handlers],
            "basis": current.basis.model_dump(mode="json"),
        },
        "returns": state.returns,
        "excluded": list(state.excluded),
        "pending_extension": state.pending_extension.model_dump(mode="json")
        if state.pending_extension
        else None,
    }


def _not_found(case_id: str) -> Problem:
    return Problem(
        404, "case-not-found", f"Case {case_id} is not known to routing or not yours.", case_id=case_id
    )


def _domain_problem(exc: sm.DomainError, record: CaseRecord) -> Problem:
    status = record.state.status.value
    if isinstance(exc, sm.IllegalTransition):
        return Problem(
            409, "illegal-transition", exc.detail, current_status=status, case_id=record.state.case_id
        )
    if isinstance(exc, sm.NotAssignee):
        return _not_found(record.state.case_id)
    if isinstance(exc, sm.NotPermitted):
        return Problem(403, "forbidden", exc.detail)
    return Problem(422, "invalid-command", exc.detail, current_status=status)


async def execute(
    engine: AsyncEngine,
    ctx: RoutingContext,
    *,
    case_id: str,
    action: str,
    principal: Principal,
    actor: Actor,
    command: Command,
    request: dict[str, Any],
    idempotency_key: str | None,
) -> Outcome:
    """Run one action; 200 with the case view, or a problem. Safe to retry with the same key."""
    async with engine.begin() as conn:
        book = CaseBook(conn)
        record = await book.get(case_id)
        if record is None:
            raise _not_found(case_id)
        digest = idempotency.request_hash([action, case_id, request])
        if idempotency_key:
            prior = await idempotency.prior_answer(
                conn, idempotency_keys, principal.client_id, idempotency_key, digest
            )
            if prior is not None:
                return Outcome(prior.status_code, prior.response, replayed=True)
        if not record.state.involves(actor) and not actor.is_operator:
            raise _not_found(case_id)
        ref = await ctx.refdata.get(conn)
        try:
            events = command(record, ref, datetime.now(UTC))
        except sm.DomainError as exc:
            raise _domain_problem(exc, record) from exc
        if events:
            record_events(book, ctx, record, events, ref=ref)
            await book.flush()
        body = case_view(record) | {"events": [e.type_name() for e in events]}
        if idempotency_key:
            await idempotency.remember_answer(
                conn,
                idempotency_keys,
                client_id=principal.client_id,
                key=idempotency_key,
                case_id=case_id,
                action=action,
                digest=digest,
                status_code=200,
                response=body,
            )
    return Outcome(200, body)


def reroute_for(record_received: dict[str, Any] | None, ref: ReferenceData):
    facts = facts_from(record_received or {})
    return lambda exclude: decide(facts, ref, exclude=exclude)


async def case_for(engine: AsyncEngine, case_id: str, actor: Actor) -> dict[str, Any]:
    """Routing's view of one case, for an operator or a department it concerns."""
    async with engine.connect() as conn:
        record = await load_case(conn, case_id)
    if record is None or not record.state.involves(actor):
        raise _not_found(case_id)
    return case_view(record) | {"received_at": (record.received or {}).get("received_at")}
