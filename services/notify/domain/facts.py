"""What notify remembers about a case: a fold of the case's events.

Later events don't repeat who the citizen is or who holds the case, so notify keeps just enough (masked
contact, opaque citizen reference, current assignee, deadlines) to address and word its messages.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from contracts.events import CaseEvent
from contracts.events.intake import CaseClosed, CaseReceived, CaseReopened, FeedbackReceived
from contracts.events.routing import (
    Assignee,
    AssignmentAccepted,
    AssignmentReturned,
    CaseAssigned,
    CaseTransferred,
    ReplySubmitted,
)
from contracts.events.sla import CaseEscalated, DeadlineSet


class CaseFacts(BaseModel):
    """Notify's view of one case. Never holds a clear phone number or e-mail address."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    source: str | None = None
    external_id: str | None = None
    received_at: datetime | None = None
    title: str | None = None
    description: str | None = None
    address: str | None = None
    category_code: str | None = None
    urgency: str | None = None
    reply_required: bool = True
    citizen_ref: str | None = None
    citizen_phone_masked: str | None = None
    citizen_name_masked: str | None = None
    assignee: Assignee | None = None
    assignment_id: str | None = None
    last_assignee: Assignee | None = None
    deadlines: dict[str, datetime] = {}
    status: str = "received"
    reopen_count: int = 0
    escalation_level: int = 0


def apply(facts: CaseFacts | None, event: CaseEvent) -> CaseFacts:
    """The facts after ``event`` (unknown event types leave them unchanged)."""
    facts = facts or CaseFacts(case_id=event.case_id)
    match event:
        case CaseReceived():
            return facts.model_copy(
                update=dict(
                    source=event.source.value,
                    external_id=event.external_id,
                    received_at=event.received_at,
                    title=event.title,
                    description=event.description,
                    address=event.address,
                    category_code=event.category_code,
                    urgency=event.urgency.value,
                    reply_required=event.reply_required,
                    citizen_ref=event.citizen.citizen_ref,
                    citizen_phone_masked=event.citizen.phone_masked,
                    citizen_name_masked=event.citizen.name_masked,
                )
            )
        case CaseAssigned():
            return _hold(facts, event.assignee, event.assignment_id, "assigned")
        case CaseTransferred():
            return _hold(facts, event.to_assignee, None, "transferred")
        case AssignmentAccepted():
            return _hold(facts, event.assignee, event.assignment_id, "accepted")
        case AssignmentReturned():
            return facts.model_copy(update=dict(assignee=None, assignment_id=None, status="returned"))
        case DeadlineSet():
            return facts.model_copy(
                update=dict(deadlines={**facts.deadlines, event.stage.value: event.due_at})
            )
        case ReplySubmitted():
            return facts.model_copy(update=dict(status="replied", last_assignee=event.assignee))
        case FeedbackReceived():
            return facts.model_copy(update=dict(status="feedback"))
        case CaseClosed():
            return facts.model_copy(update=dict(status="closed"))
        case CaseReopened():
            return facts.model_copy(update=dict(status="reopened", reopen_count=event.reopen_count))
        case CaseEscalated():
            return facts.model_copy(update=dict(escalation_level=max(facts.escalation_level, event.level)))
    return facts


def _hold(facts: CaseFacts, assignee: Assignee, assignment_id: str | None, status: str) -> CaseFacts:
    return facts.model_copy(
        update=dict(assignee=assignee, assignment_id=assignment_id, last_assignee=assignee, status=status)
    )
