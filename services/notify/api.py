"""Notify's HTTP entrypoints: the delivery log of a case."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request

from runtime.auth import Principal, require
from runtime.problems import Problem
from runtime.service import ServiceRuntime
from services.notify.schemas import CaseNotifications, NotificationPublic
from services.notify.tables import case_facts, deliveries

router = APIRouter(prefix="/v1/cases", tags=["notifications"])


async def get_runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


@router.get("/{case_id}/notifications", response_model=CaseNotifications)
async def get_case_notifications(
    case_id: str, runtime: RuntimeDep, _: Annotated[Principal, Depends(require("operator", "sre"))]
) -> CaseNotifications:
    """Every message notify queued, sent or gave up on for one case, oldest first."""
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(deliveries).where(deliveries.c.case_id == case_id).order_by(deliveries.c.seq)
            )
        ).all()
        if not rows:
            known = (
                await conn.execute(sa.select(case_facts.c.case_id).where(case_facts.c.case_id == case_id))
            ).first()
            if known is None:
                raise Problem(
                    404, "case-not-found", f"Notify has seen no event of case {case_id}.", case_id=case_id
                )
    return CaseNotifications(
        case_id=case_id,
        notifications=[
            NotificationPublic(
                notification_id=row.id,
                **{k: getattr(row, k) for k in NotificationPublic.model_fields if k != "notification_id"},
            )
            for row in rows
        ],
    )
