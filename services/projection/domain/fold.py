"""Projection's pure fold: a case summary is the events of the case applied in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.events import CaseClosed, CaseEvent, CaseReceived

Summary = dict[str, Any]

# Statuses that later-arriving earlier events must not overwrite.
TERMINAL = {"closed"}


def apply(summary: Summary | None, event: CaseEvent, at: datetime) -> Summary:
    """The summary after ``event``. Tolerates events arriving for an unknown case or out of order."""
    state: Summary = (
        dict(summary) if summary else {"case_id": event.case_id, "status": "unknown", "events_applied": 0}
    )
    state["events_applied"] += 1
    state["last_event_at"] = max(at, state["last_event_at"]) if state.get("last_event_at") else at
    match event:
        case CaseReceived():
            state.update(
                source=event.source.value,
                external_id=event.external_id,
                appeal_type=event.appeal_type.value if event.appeal_type else None,
                category_code=event.category_code,
                title=event.title,
                description=event.description,
                address=event.address,
                lat=event.location.lat if event.location else None,
                lon=event.location.lon if event.location else None,
                urgency=event.urgency.value,
                reply_required=event.reply_required,
                citizen_name_masked=event.citizen.name_masked,
                citizen_phone_masked=event.citizen.phone_masked,
                received_at=event.received_at,
            )
            if state["status"] not in TERMINAL:
                state["status"] = "received"
        case CaseClosed():
            state.update(status="closed", closed_at=event.occurred_at, close_reason=event.reason)
    return state
