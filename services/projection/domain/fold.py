"""Projection's pure fold: a case summary is the events of the case applied in order.

The summary is a plain dict of column values, so the same fold feeds the live projector, the rebuild and
the unit tests. Events may arrive for a case never seen (a placeholder starts) and out of causal order
(a status-changing event older than the current status changes details but not the status).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from contracts.events import CaseEvent
from contracts.events import intake as i
from contracts.events import notify as n
from contracts.events import routing as r
from contracts.events import sla as s
from services.projection.domain.derive import derive, settle

Summary = dict[str, Any]

CARD_RANK = {None: 0, "yellow": 1, "red": 2}


def new_summary(case_id: str, at: datetime) -> Summary:
    """The placeholder summary of a case before any event has been applied."""
    return {
        "case_id": case_id,
        "status": "unknown",
        "status_at": None,
        "events_applied": 0,
        "opened_at": at,
        "last_event_at": at,
        "deadlines": {},
        "cards": [],
        "card": None,
        "escalation_level": 0,
        "return_count": 0,
        "transfer_count": 0,
        "reopen_count": 0,
        "extension_days": 0,
        "extension_pending": False,
        "clock_paused": False,
        "notifications_sent": 0,
        "notifications_failed": 0,
        "handler_departments": [],
    }


def apply(summary: Summary | None, event: CaseEvent, at: datetime) -> Summary:
    """The summary after ``event``. Tolerates events arriving for an unknown case or out of order."""
    return apply_all(summary, [(event, at)])


def apply_all(summary: Summary | None, events: Iterable[tuple[CaseEvent, datetime]]) -> Summary:
    """The summary after ``events`` (one case's, in order, each with its time): the same as ``apply``
    one event at a time, but the columns no event reads are derived once, at the end. Never mutates
    ``summary``; at least one event."""
    state: Summary | None = None
    for event, at in events:
        if state is None:
            state = dict(summary) if summary else new_summary(event.case_id, at)
            state["deadlines"] = dict(state.get("deadlines") or {})
            state["cards"] = list(state.get("cards") or [])
        state["events_applied"] += 1
        state["last_event_at"] = max(at, state["last_event_at"])
        state["opened_at"] = min(at, state["opened_at"]) if state.get("opened_at") else at
        _apply_intake(state, event) or _apply_routing(state, event) or _apply_sla(state, event)
        _apply_notify(state, event)
        settle(state)
    if state is None:
        raise ValueError("apply_all needs at least one event")
    return derive(state)


def _set_status(state: Summary, status: str, at: datetime) -> None:
    """Move to ``status`` unless a later status is already known (out-of-order delivery)."""
    if state.get("status_at") is None or at >= state["status_at"]:
        state["status"], state["status_at"] = status, at


def _assignee(state: Summary, assignee: r.Assignee, assignment_id: str | None) -> None:
    state.update(
        assignee_kind=assignee.kind.value,
        assignee_code=assignee.code,
        assignee_name=assignee.name,
        assignment_id=assignment_id,
    )


def _apply_intake(state: Summary, event: CaseEvent) -> bool:
    match event:
        case i.CaseReceived():
            location = event.location
            state.update(
                source=event.source.value,
                external_id=event.external_id,
                appeal_type=event.appeal_type.value if event.appeal_type else None,
                category_code=_category(event) or state.get("category_code"),
                title=event.title,
                description=event.description,
                address=event.address,
                lat=location.lat if location else None,
                lon=location.lon if location else None,
                urgency=event.urgency.value,
                reply_required=event.reply_required,
                citizen_name_masked=event.citizen.name_masked,
                citizen_phone_masked=event.citizen.phone_masked,
                received_at=event.received_at,
                opened_at=event.received_at,
            )
            for field in ("town_code", "community_code", "grid_code", "duplicate_of"):
                value = getattr(event, field, None)
                if value:
                    state[field] = value
            if state["status"] == "unknown":  # received is only ever the first status
                state["status"], state["status_at"] = "received", event.occurred_at
        case i.DuplicateLinked():
            state["duplicate_of"] = event.primary_case_id
            _set_status(state, "duplicate", event.occurred_at)
        case i.AppealUpdated():
            if event.description_addendum:
                base = state.get("description") or ""
                state["description"] = f"{base}\n【补充】{event.description_addendum}".strip()
        case i.AppealWithdrawn():
            state["withdrawn_at"] = event.occurred_at
            _set_status(state, "withdrawn", event.occurred_at)
        case i.FeedbackReceived():
            state.update(satisfaction=event.satisfaction, feedback_at=event.occurred_at)
        case i.CaseClosed():
            state.update(closed_at=event.occurred_at, close_reason=event.reason)
            _set_status(state, "closed", event.occurred_at)
        case i.CaseReopened():
            state["reopen_count"] = max(state["reopen_count"] + 1, event.reopen_count)
            state.update(closed_at=None, close_reason=None, replied_at=None, satisfaction=None)
            _set_status(state, "reopened", event.occurred_at)
        case _:
            return False
    return True


def _apply_routing(state: Summary, event: CaseEvent) -> bool:
    match event:
        case r.CaseAssigned():
            _assignee(state, event.assignee, event.assignment_id)
            basis = event.basis
            state["grid_code"] = basis.grid_code or state.get("grid_code")
            if basis.area_code:
                state["area_code"] = basis.area_code
            if basis.category_code and not state.get("category_code"):
                state["category_code"] = basis.category_code
            state["co_handler_departments"] = [
                h.code for h in event.co_handlers if h.kind == r.AssigneeKind.DEPARTMENT
            ]
            state.update(assigned_at=event.occurred_at, accepted_at=None)
            _set_status(state, "assigned", event.occurred_at)
        case r.CaseSentToTriage():
            state["triage_reason"] = event.reason
            _set_status(state, "triage", event.occurred_at)
        case r.AssignmentAccepted():
            _assignee(state, event.assignee, event.assignment_id)
            state["accepted_at"] = event.occurred_at
            _set_status(state, "accepted", event.occurred_at)
        case r.AssignmentReturned():
            state["return_count"] = max(state["return_count"] + 1, event.returns_so_far)
            state["last_return_reason"] = event.reason
            _set_status(state, "returned", event.occurred_at)
        case r.CaseTransferred():
            _assignee(state, event.to_assignee, None)
            state["transfer_count"] += 1
            _set_status(state, "transferred", event.occurred_at)
        case r.ReplySubmitted():
            state.update(replied_at=event.occurred_at, reply=event.reply, reply_resolved=event.resolved)
            _set_status(state, "replied", event.occurred_at)
        case r.ExtensionRequested():
            state["extension_pending"] = True
        case r.ExtensionDecided():
            state["extension_pending"] = False
            if event.approved:
                state["extension_days"] += event.working_days
        case _:
            return False
    return True


def _apply_sla(state: Summary, event: CaseEvent) -> bool:
    match event:
        case s.DeadlineSet():
            state["deadlines"][event.stage.value] = {
                "due_at": event.due_at.isoformat(),
                "clock": event.clock.value,
                "amount": event.amount,
                "provisional": event.provisional,
                "policy_id": event.policy_id,
            }
        case s.DeadlineApproaching() | s.DeadlineBreached():
            colour = "yellow" if isinstance(event, s.DeadlineApproaching) else "red"
            state["cards"].append(
                {
                    "colour": colour,
                    "stage": event.stage.value,
                    "due_at": event.due_at.isoformat(),
                    "at": event.occurred_at.isoformat(),
                }
            )
            if CARD_RANK[colour] > CARD_RANK[state.get("card")]:
                state["card"] = colour
        case s.CaseEscalated():
            state["escalation_level"] = max(state["escalation_level"], event.level)
            state["escalation_reason"] = event.reason
        case s.ClockPaused():
            state["clock_paused"] = True
        case s.ClockResumed():
            state["clock_paused"] = False
        case _:
            return False
    return True


def _apply_notify(state: Summary, event: CaseEvent) -> None:
    if isinstance(event, n.NotificationSent):
        state["notifications_sent"] += 1
    elif isinstance(event, n.NotificationFailed):
        state["notifications_failed"] += 1


def _category(event: i.CaseReceived) -> str | None:
    """The unified category if intake sends one (a field added later), else the source's code."""
    for field in ("unified_category_code", "unified_category", "category"):
        value = getattr(event, field, None)
        if isinstance(value, str) and value:
            return value
    return event.category_code
