"""Intake's native HTTP entrypoints: they only turn requests into handler calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from runtime.auth import Principal
from services.intake import appeals as feeds
from services.intake import citizen, handlers
from services.intake.deps import PROBLEMS, IdempotencyHeader, IntakeDep, client, idempotency_key, intake_of
from services.intake.schemas import (
    AppealChanged,
    AppealUpdate,
    CaseAccepted,
    ContactField,
    ContactRevealed,
    ContactsRevealed,
    ContactsRevealRequest,
    FeedbackCreate,
    GridReportCreate,
    HotlineOrderCreate,
    WithdrawRequest,
)

router = APIRouter(tags=["intake"], responses=PROBLEMS)
ACCEPTED = {200: {"model": CaseAccepted, "description": "A retry of an earlier submission"}}


def _accepted(request: Request, response: Response, recorded: handlers.Recorded) -> CaseAccepted:
    if recorded.created:
        request.app.state.runtime.wake_relay()
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/cases/{recorded.case_id}"
    links = {"case": f"/v1/cases/{recorded.case_id}"}
    if recorded.duplicate_of:
        links["primary"] = f"/v1/cases/{recorded.duplicate_of}"
    return CaseAccepted(
        case_id=recorded.case_id,
        status=recorded.status,
        duplicate_submission=not recorded.created,
        duplicate_of=recorded.duplicate_of,
        links=links,
    )


@router.post(
    "/v1/intake/hotline", status_code=status.HTTP_201_CREATED, response_model=CaseAccepted, responses=ACCEPTED
)
async def post_hotline_order(
    order: HotlineOrderCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(client("hotline"))],
    idempotency: IdempotencyHeader = None,
) -> CaseAccepted:
    """Accept a 12345 hotline work order and open a case for it."""
    intake = intake_of(request)  # not a dependency: each costs the busiest routes ~15 µs
    appeal = feeds.from_hotline(order, intake.rules)
    recorded = await handlers.record_appeal(
        intake, appeal, order.model_dump(mode="json"), idempotency_key(principal.client_id, idempotency)
    )
    return _accepted(request, response, recorded)


@router.post(
    "/v1/intake/grid", status_code=status.HTTP_201_CREATED, response_model=CaseAccepted, responses=ACCEPTED
)
async def post_grid_report(
    report: GridReportCreate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(client("grid"))],
    idempotency: IdempotencyHeader = None,
) -> CaseAccepted:
    """Accept a grid member's event report; one resolved on the spot (即知即改) is recorded and closed."""
    intake = intake_of(request)
    appeal = feeds.from_grid(report, intake.rules)
    recorded = await handlers.record_appeal(
        intake, appeal, report.model_dump(mode="json"), idempotency_key(principal.client_id, idempotency)
    )
    return _accepted(request, response, recorded)


CITIZEN_SCOPES = ("hotline", "open311", "operator")


def _changed(request: Request, case_id: str, outcome: tuple[str, list[str]]) -> AppealChanged:
    if outcome[1]:
        request.app.state.runtime.wake_relay()
    return AppealChanged(case_id=case_id, status=outcome[0], events=outcome[1])


@router.post("/v1/cases/{case_id}/withdraw", response_model=AppealChanged, tags=["citizen"])
async def withdraw_appeal(
    case_id: str,
    body: WithdrawRequest,
    intake: IntakeDep,
    request: Request,
    principal: Annotated[Principal, Depends(client(*CITIZEN_SCOPES))],
) -> AppealChanged:
    """Withdraw an appeal (撤诉); the case closes. Withdrawing again changes nothing."""
    outcome = await citizen.withdraw(intake, case_id, body.reason, principal.client_id)
    return _changed(request, case_id, outcome)


@router.post("/v1/intake/cases/{case_id}/updates", response_model=AppealChanged, tags=["citizen"])
async def update_appeal(
    case_id: str,
    body: AppealUpdate,
    intake: IntakeDep,
    request: Request,
    principal: Annotated[Principal, Depends(client(*CITIZEN_SCOPES))],
) -> AppealChanged:
    """Add information or photos to an open appeal (补充诉求)."""
    outcome = await citizen.update(
        intake,
        case_id,
        body.description_addendum,
        tuple(str(u) for u in body.attachments),
        principal.client_id,
    )
    return _changed(request, case_id, outcome)


@router.post("/v1/cases/{case_id}/feedback", response_model=AppealChanged, tags=["citizen"])
async def give_feedback(
    case_id: str,
    body: FeedbackCreate,
    intake: IntakeDep,
    request: Request,
    principal: Annotated[Principal, Depends(client(*CITIZEN_SCOPES))],
) -> AppealChanged:
    """Rate the reply (满意/基本满意 close the case; 不满意 reopens it for rework)."""
    outcome = await citizen.rate(
        intake, case_id, body.satisfaction, body.resolved, body.comment, principal.client_id
    )
    return _changed(request, case_id, outcome)


@router.get("/v1/intake/cases/{case_id}/contact", response_model=ContactRevealed, tags=["pii"])
async def reveal_contact(
    case_id: str,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(client("pii:read"))],
    purpose: Annotated[str, Query(min_length=2, max_length=200, description="Why (recorded in the audit).")],
    fields: Annotated[
        list[ContactField] | None,
        Query(description="Only these (repeatable; all when absent): ask for what the task needs."),
    ] = None,
) -> ContactRevealed:
    """Clear name, phone, ID number and original text of one case, for a client holding pii:read; the
    audit records who, why and which fields were revealed. Fields not asked for are null."""
    wanted = fields or citizen.CONTACT_FIELDS
    return ContactRevealed(
        **await citizen.reveal_contact(intake, case_id, principal.client_id, purpose, wanted)
    )


@router.post("/v1/intake/contacts/reveal", response_model=ContactsRevealed, tags=["pii"])
async def reveal_contacts(
    body: ContactsRevealRequest,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(client("pii:read"))],
) -> ContactsRevealed:
    """The same as GET /v1/intake/cases/{case_id}/contact for up to 100 cases at once (notify's SMS):
    each case found is one audit row. A POST because the case numbers go in the body; it changes
    nothing but the audit, and a retry is audited as the second read it is."""
    wanted = body.fields or citizen.CONTACT_FIELDS
    return ContactsRevealed(
        **await citizen.reveal_contacts(intake, body.case_ids, principal.client_id, body.purpose, wanted)
    )
