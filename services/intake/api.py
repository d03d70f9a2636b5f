"""Intake's HTTP entrypoints: they only turn requests into handler calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from runtime.auth import Principal, require
from runtime.service import ServiceRuntime
from services.intake import handlers
from services.intake.config import IntakeSettings
from services.intake.schemas import CaseAccepted, HotlineOrderCreate

router = APIRouter(prefix="/v1/intake", tags=["intake"])


def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


@router.post(
    "/hotline",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseAccepted,
    responses={200: {"model": CaseAccepted, "description": "A retry of an earlier submission"}},
)
async def post_hotline_order(
    order: HotlineOrderCreate,
    runtime: RuntimeDep,
    response: Response,
    _: Annotated[Principal, Depends(require("hotline"))],
) -> CaseAccepted:
    """Accept a 12345 hotline work order and open a case for it."""
    settings = runtime.settings
    assert isinstance(settings, IntakeSettings)
    recorded = await handlers.receive_hotline_order(runtime.engine, settings, runtime.source, order)
    if recorded.created:
        runtime.wake_relay()
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/cases/{recorded.case_id}"
    return CaseAccepted(
        case_id=recorded.case_id,
        status="received",
        duplicate_submission=not recorded.created,
        links={"case": f"/v1/cases/{recorded.case_id}"},
    )
