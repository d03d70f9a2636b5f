"""Factories for events and records, so tests don't repeat literals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from contracts.envelope import OutboundMessage, encode_event
from contracts.events import CaseClosed, CaseReceived, CaseSource, CitizenContact

_counter = itertools.count(1)


def case_id() -> str:
    return f"TC{next(_counter):010d}"


def case_received(case: str | None = None, **overrides) -> CaseReceived:
    now = datetime.now(UTC)
    values = dict(
        case_id=case or case_id(),
        occurred_at=now,
        actor="hotline",
        source=CaseSource.HOTLINE,
        external_id=f"ext-{next(_counter)}",
        received_at=now,
        appeal_type="complaint",
        description="明水街道百脉泉路路灯不亮",
        address="章丘区明水街道百脉泉路",
        citizen=CitizenContact(name_masked="张*", phone_masked="138****1234", citizen_ref="cz_test"),
    )
    values.update(overrides)
    return CaseReceived(**values)


def case_closed(case: str, reason: str = "citizen_satisfied") -> CaseClosed:
    return CaseClosed(case_id=case, occurred_at=datetime.now(UTC), actor="intake", reason=reason)


def message(event, topic: str) -> OutboundMessage:
    return encode_event(event, source="/gridline/tests", topic=topic)


# --- projection: one factory per routing/sla/notify/intake event the read models fold -------------------


def _at(at: datetime | None) -> datetime:
    return at or datetime.now(UTC)


def assignee(code: str = "CGJ", kind: str = "department", name: str = "区城管局"):
    from contracts.events.routing import Assignee

    return Assignee(kind=kind, code=code, name=name)


def case_assigned(
    case: str,
    code: str = "CGJ",
    *,
    kind: str = "department",
    at=None,
    area_code=None,
    grid_code=None,
    attempt: int = 1,
    co_handlers: tuple = (),
):
    from contracts.events.routing import CaseAssigned, RoutingBasis

    return CaseAssigned(
        case_id=case,
        occurred_at=_at(at),
        actor="routing",
        assignment_id=f"as-{case}-{attempt}",
        assignee=assignee(code, kind),
        basis=RoutingBasis(area_code=area_code, grid_code=grid_code, method="point-in-polygon"),
        co_handlers=co_handlers,
        attempt=attempt,
    )


def case_sent_to_triage(case: str, *, at=None):
    from contracts.events.routing import CaseSentToTriage

    return CaseSentToTriage(case_id=case, occurred_at=_at(at), actor="routing", reason="no rule matched")


def assignment_accepted(case: str, code: str = "CGJ", *, at=None, attempt: int = 1):
    from contracts.events.routing import AssignmentAccepted

    return AssignmentAccepted(
        case_id=case,
        occurred_at=_at(at),
        actor=code,
        assignment_id=f"as-{case}-{attempt}",
        assignee=assignee(code),
    )


def assignment_returned(case: str, code: str = "CGJ", *, at=None, returns_so_far: int = 1):
    from contracts.events.routing import AssignmentReturned

    return AssignmentReturned(
        case_id=case,
        occurred_at=_at(at),
        actor=code,
        assignment_id=f"as-{case}-1",
        assignee=assignee(code),
        reason="不属于本单位职责",
        returns_so_far=returns_so_far,
    )


def case_transferred(case: str, from_code: str = "CGJ", to_code: str = "ZJJ", *, at=None):
    from contracts.events.routing import CaseTransferred

    return CaseTransferred(
        case_id=case,
        occurred_at=_at(at),
        actor="operator",
        from_assignment_id=f"as-{case}-1",
        from_assignee=assignee(from_code),
        to_assignee=assignee(to_code, name="区住建局"),
        reason="职责调整",
    )


def reply_submitted(case: str, code: str = "CGJ", *, at=None, reply: str = "已派人维修，路灯恢复正常。"):
    from contracts.events.routing import ReplySubmitted

    return ReplySubmitted(
        case_id=case,
        occurred_at=_at(at),
        actor=code,
        assignment_id=f"as-{case}-1",
        assignee=assignee(code),
        reply=reply,
    )


def extension_requested(case: str, *, at=None, days: int = 3):
    from contracts.events.routing import ExtensionRequested

    return ExtensionRequested(
        case_id=case,
        occurred_at=_at(at),
        actor="CGJ",
        assignment_id=f"as-{case}-1",
        assignee=assignee(),
        working_days=days,
        reason="需协调多部门",
    )


def extension_decided(case: str, *, at=None, approved: bool = True, days: int = 3):
    from contracts.events.routing import ExtensionDecided

    return ExtensionDecided(
        case_id=case,
        occurred_at=_at(at),
        actor="operator",
        assignment_id=f"as-{case}-1",
        approved=approved,
        working_days=days if approved else 0,
    )


def deadline_set(case: str, due_at: datetime, *, stage: str = "reply", at=None):
    from contracts.events.sla import DeadlineSet

    return DeadlineSet(
        case_id=case,
        occurred_at=_at(at),
        actor="sla",
        stage=stage,
        due_at=due_at,
        clock="working_days",
        amount=5,
        policy_id="default",
        policy_version=1,
        calendar_basis="chinese-calendar 1.11.0",
    )


def deadline_approaching(case: str, due_at: datetime, *, stage: str = "reply", at=None):
    from contracts.events.sla import DeadlineApproaching

    return DeadlineApproaching(case_id=case, occurred_at=_at(at), actor="sla", stage=stage, due_at=due_at)


def deadline_breached(case: str, due_at: datetime, *, stage: str = "reply", at=None):
    from contracts.events.sla import DeadlineBreached

    return DeadlineBreached(case_id=case, occurred_at=_at(at), actor="sla", stage=stage, due_at=due_at)


def case_escalated(case: str, level: int = 1, *, at=None):
    from contracts.events.sla import CaseEscalated

    return CaseEscalated(case_id=case, occurred_at=_at(at), actor="sla", level=level, reason="超期未办结")


def clock_paused(case: str, *, at=None):
    from contracts.events.sla import ClockPaused

    return ClockPaused(case_id=case, occurred_at=_at(at), actor="sla", stage="reply", reason="延期")


def clock_resumed(case: str, *, at=None):
    from contracts.events.sla import ClockResumed

    return ClockResumed(case_id=case, occurred_at=_at(at), actor="sla", stage="reply", paused_seconds=3600)


def feedback_received(case: str, satisfaction: str = "satisfied", *, at=None):
    from contracts.events.intake import FeedbackReceived

    return FeedbackReceived(case_id=case, occurred_at=_at(at), actor="intake", satisfaction=satisfaction)


def case_reopened(case: str, *, at=None, reopen_count: int = 1):
    from contracts.events.intake import CaseReopened

    return CaseReopened(
        case_id=case, occurred_at=_at(at), actor="intake", reason="市民不满意", reopen_count=reopen_count
    )


def appeal_withdrawn(case: str, *, at=None):
    from contracts.events.intake import AppealWithdrawn

    return AppealWithdrawn(case_id=case, occurred_at=_at(at), actor="intake", reason="问题已自行解决")


def appeal_updated(case: str, addendum: str, *, at=None):
    from contracts.events.intake import AppealUpdated

    return AppealUpdated(case_id=case, occurred_at=_at(at), actor="intake", description_addendum=addendum)


def duplicate_linked(case: str, primary: str, *, at=None):
    from contracts.events.intake import DuplicateLinked

    return DuplicateLinked(
        case_id=case,
        occurred_at=_at(at),
        actor="intake",
        primary_case_id=primary,
        similarity=0.93,
        reason="同一地点同一诉求",
    )


def notification_sent(case: str, *, at=None):
    from contracts.events.notify import NotificationSent

    return NotificationSent(
        case_id=case,
        occurred_at=_at(at),
        actor="notify",
        notification_id=f"n-{next(_counter)}",
        trigger_event_id="e-1",
        recipient="dept:CGJ",
        channel="webhook",
        template="assigned",
    )


def case_closed_at(case: str, reason: str = "citizen_satisfied", *, at=None) -> CaseClosed:
    return CaseClosed(case_id=case, occurred_at=_at(at), actor="intake", reason=reason)
