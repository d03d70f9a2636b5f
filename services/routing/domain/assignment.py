"""The assignment state machine of one case, as pure functions.

State is a fold of events (``evolve``); each command is a function of (state, command data, now) that
returns the events to record, or raises a ``DomainError``. Nothing here touches a database or a broker.

    received ─route─▶ assigned ─accept─▶ accepted ─reply─▶ replied
        │               │  ▲                │                 │ (intake: reopened)
        ▼               │  └──transfer/assign (operator)──────┘──▶ assigned again
      triage ◀─2nd return─┘  return → re-route excluding the returner (first return only)
        └─assign (operator)─▶ assigned
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts.events import CaseEvent
from contracts.events.intake import AppealWithdrawn, CaseClosed, DuplicateLinked
from contracts.events.routing import (
    Assignee,
    AssigneeKind,
    AssignmentAccepted,
    AssignmentReturned,
    CaseAssigned,
    CaseSentToTriage,
    CaseTransferred,
    ExtensionDecided,
    ExtensionRequested,
    ReplySubmitted,
    RoutingBasis,
)
from services.routing.domain.decision import Decision, assignee_key

MAX_RETURNS = 2  # the second return sends the case to district triage (DESIGN §3)


class Status(StrEnum):
    NEW = "new"  # received (or just returned), no assignee yet
    TRIAGE = "triage"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    REPLIED = "replied"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    DUPLICATE = "duplicate"
    RESOLVED_ON_SPOT = "resolved_on_spot"


OPEN_ASSIGNMENT = frozenset({Status.ASSIGNED, Status.ACCEPTED})
FINISHED = frozenset({Status.CLOSED, Status.WITHDRAWN, Status.DUPLICATE, Status.RESOLVED_ON_SPOT})


class DomainError(Exception):
    """A command the case's state does not allow."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class IllegalTransition(DomainError):
    """The command is not allowed in the case's current status (HTTP 409)."""

    def __init__(self, action: str, status: Status, detail: str = "") -> None:
        super().__init__(detail or f"cannot {action} a case whose routing status is {status.value}")
        self.action = action
        self.status = status


class NotAssignee(DomainError):
    """The caller is not the case's current assignee (HTTP 404: cases of others are not disclosed)."""


class NotPermitted(DomainError):
    """The caller's role may not issue this command at all (HTTP 403)."""


class InvalidCommand(DomainError):
    """The command itself is malformed for this case (HTTP 422)."""


class Actor(BaseModel):
    """Who issues a command: a department, a grid app, an operator, or routing itself."""

    model_config = ConfigDict(frozen=True)

    kind: str  # department | grid | operator | system
    id: str  # client id, recorded as the events' actor
    departments: frozenset[str] = frozenset()

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    def holds(self, assignee: Assignee) -> bool:
        if assignee.kind is AssigneeKind.DEPARTMENT:
            return assignee.code in self.departments
        return self.kind == "grid"


SYSTEM = Actor(kind="system", id="routing")


class Current(BaseModel):
    model_config = ConfigDict(frozen=True)

    assignment_id: str
    assignee: Assignee
    attempt: int
    assigned_at: datetime
    basis: RoutingBasis = RoutingBasis()
    accepted_at: datetime | None = None
    co_handlers: tuple[Assignee, ...] = ()


class PendingExtension(BaseModel):
    model_config = ConfigDict(frozen=True)

    working_days: int
    reason: str
    requested_at: datetime


class CaseRouting(BaseModel):
    """Routing's state of one case (a fold of the case's events)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    status: Status = Status.NEW
    current: Current | None = None
    attempts: int = 0
    returns: int = 0
    excluded: tuple[str, ...] = ()
    last_assignee: Assignee | None = None
    pending_extension: PendingExtension | None = None

    def involves(self, actor: Actor) -> bool:
        """Whether the actor may see the case: operators always, assignees while it is theirs."""
        if actor.is_operator:
            return True
        if self.current is None:
            return False
        return actor.holds(self.current.assignee) or any(actor.holds(c) for c in self.current.co_handlers)


# --- the fold ----------------------------------------------------------------------------------------


def evolve(state: CaseRouting, event: CaseEvent) -> CaseRouting:
    """The state after ``event`` (events that do not concern routing leave it unchanged)."""
    match event:
        case CaseAssigned() if state.current and state.current.assignment_id == event.assignment_id:
            return state.model_copy(
                update={"current": state.current.model_copy(update={"co_handlers": event.co_handlers})}
            )
        case CaseAssigned():
            current = Current(
                assignment_id=event.assignment_id,
                assignee=event.assignee,
                attempt=event.attempt,
                assigned_at=event.occurred_at,
                basis=event.basis,
                co_handlers=event.co_handlers,
            )
            return state.model_copy(
                update={
                    "status": Status.ASSIGNED,
                    "current": current,
                    "attempts": max(state.attempts, event.attempt),
                    "last_assignee": event.assignee,
                    "pending_extension": None,
                }
            )
        case CaseSentToTriage():
            return state.model_copy(
                update={"status": Status.TRIAGE, "current": None, "pending_extension": None}
            )
        case AssignmentAccepted() if state.current:
            current = state.current.model_copy(update={"accepted_at": event.occurred_at})
            return state.model_copy(update={"status": Status.ACCEPTED, "current": current})
        case AssignmentReturned():
            excluded = tuple(dict.fromkeys((*state.excluded, assignee_key(event.assignee))))
            return state.model_copy(
                update={
                    "status": Status.NEW,
                    "current": None,
                    "returns": event.returns_so_far,
                    "excluded": excluded,
                    "pending_extension": None,
                }
            )
        case CaseTransferred():
            return state.model_copy(update={"status": Status.NEW, "current": None, "pending_extension": None})
        case ReplySubmitted():
            return state.model_copy(update={"status": Status.REPLIED, "pending_extension": None})
        case ExtensionRequested():
            pending = PendingExtension(
                working_days=event.working_days, reason=event.reason, requested_at=event.occurred_at
            )
            return state.model_copy(update={"pending_extension": pending})
        case ExtensionDecided():
            return state.model_copy(update={"pending_extension": None})
        case DuplicateLinked():
            return state.model_copy(update={"status": Status.DUPLICATE})
        case AppealWithdrawn():
            return state.model_copy(update={"status": Status.WITHDRAWN})
        case CaseClosed() if state.status is not Status.DUPLICATE:
            return state.model_copy(update={"status": Status.CLOSED})
    return state


def fold(state: CaseRouting, events: Sequence[CaseEvent]) -> CaseRouting:
    for event in events:
        state = evolve(state, event)
    return state


# --- commands ----------------------------------------------------------------------------------------

NewId = Callable[[], str]
Reroute = Callable[[frozenset[str]], Decision]


def new_assignment_id() -> str:
    return "as_" + uuid.uuid4().hex[:20]


def route(
    state: CaseRouting,
    decision: Decision,
    now: datetime,
    *,
    actor: Actor = SYSTEM,
    new_id: NewId = new_assignment_id,
) -> list[CaseEvent]:
    """Record a routing decision: an assignment, or triage."""
    if decision.assignee is None:
        return [
            CaseSentToTriage(
                case_id=state.case_id,
                occurred_at=now,
                actor=actor.id,
                reason=decision.basis.reason,
                basis=decision.basis,
            )
        ]
    return [
        CaseAssigned(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=new_id(),
            assignee=decision.assignee,
            basis=decision.basis,
            attempt=state.attempts + 1,
        )
    ]


def _current_for(state: CaseRouting, actor: Actor, action: str, *, operator_may: bool = False) -> Current:
    """The open assignment the actor may act on, or the right error."""
    if not actor.is_operator and not state.involves(actor):
        raise NotAssignee(f"case {state.case_id} is not assigned to you")
    if actor.is_operator and not operator_may:
        raise NotPermitted(f"only the assignee can {action} case {state.case_id}")
    if state.status not in OPEN_ASSIGNMENT or state.current is None:
        raise IllegalTransition(action, state.status)
    if not actor.is_operator and not actor.holds(state.current.assignee):
        raise NotAssignee(f"co-handlers cannot {action} case {state.case_id}; its assignee can")
    return state.current


def accept(state: CaseRouting, actor: Actor, now: datetime) -> list[CaseEvent]:
    """签收. Accepting an assignment you already accepted changes nothing (a safe retry)."""
    current = _current_for(state, actor, "accept")
    if state.status is Status.ACCEPTED:
        return []
    return [
        AssignmentAccepted(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=current.assignment_id,
            assignee=current.assignee,
        )
    ]


def return_case(
    state: CaseRouting,
    actor: Actor,
    reason: str,
    now: datetime,
    *,
    window: timedelta,
    reroute: Reroute,
    new_id: NewId = new_assignment_id,
) -> list[CaseEvent]:
    """退单: back with a reason, inside the window; re-routed without the returner, or to triage."""
    current = _current_for(state, actor, "return")
    reason = reason.strip()
    if not reason:
        raise InvalidCommand("a return needs a reason")
    if now - current.assigned_at > window:
        hours = window.total_seconds() / 3600
        raise IllegalTransition(
            "return",
            state.status,
            f"the return window ({hours:g} h after assignment) has closed; ask an operator to reassign",
        )
    returns = state.returns + 1
    returned = AssignmentReturned(
        case_id=state.case_id,
        occurred_at=now,
        actor=actor.id,
        assignment_id=current.assignment_id,
        assignee=current.assignee,
        reason=reason,
        returns_so_far=returns,
    )
    after = evolve(state, returned)
    if returns >= MAX_RETURNS:
        triage = CaseSentToTriage(
            case_id=state.case_id,
            occurred_at=now,
            actor=SYSTEM.id,
            reason=f"已退单{returns}次（最近一次：{current.assignee.name}，理由：{reason}），转区级人工分拨",
            basis=RoutingBasis(
                method="none",
                category_code=current.basis.category_code,
                area_code=current.basis.area_code,
                grid_code=current.basis.grid_code,
                rule_set_version=current.basis.rule_set_version,
                reason=f"退单{returns}次",
            ),
        )
        return [returned, triage]
    decision = _noting_rule_change(reroute(frozenset(after.excluded)), current.basis.rule_set_version)
    return [returned, *route(after, decision, now, new_id=new_id)]


def _noting_rule_change(decision: Decision, previous_version: int | None) -> Decision:
    """A re-route decided on a newer rule set than the assignment it replaces says so first."""
    version = decision.basis.rule_set_version
    if previous_version is None or version is None or version == previous_version:
        return decision
    note = f"职责清单已由第{previous_version}版更新为第{version}版，按新版重新派单"
    basis = decision.basis.model_copy(update={"reason": f"{note}；{decision.basis.reason}"})
    return replace(decision, basis=basis)


def transfer(
    state: CaseRouting,
    actor: Actor,
    to: Assignee,
    reason: str,
    now: datetime,
    *,
    new_id: NewId = new_assignment_id,
) -> list[CaseEvent]:
    """转办: the assignee (or an operator) hands the case to another assignee."""
    current = _current_for(state, actor, "transfer", operator_may=True)
    if assignee_key(to) == assignee_key(current.assignee):
        raise InvalidCommand(f"the case is already with {to.name}")
    reason = reason.strip()
    if not reason:
        raise InvalidCommand("a transfer needs a reason")
    return _reassign(state, current, actor, to, now, new_id, method="transfer", reason=reason)


def assign(
    state: CaseRouting,
    actor: Actor,
    to: Assignee,
    reason: str,
    now: datetime,
    *,
    rule_set_version: int | None = None,
    new_id: NewId = new_assignment_id,
) -> list[CaseEvent]:
    """人工派单 / 仲裁: an operator assigns a case in triage, or overrides a current assignment."""
    if not actor.is_operator:
        raise NotPermitted("only operators assign cases")
    if state.status in FINISHED or state.status is Status.REPLIED:
        raise IllegalTransition("assign", state.status)
    reason = reason.strip() or "人工派单"
    current = state.current if state.status in OPEN_ASSIGNMENT else None
    if current is not None:
        if assignee_key(to) == assignee_key(current.assignee):
            return []
        return _reassign(state, current, actor, to, now, new_id, method="operator", reason=reason)
    basis = RoutingBasis(method="operator", reason=f"人工派单：{reason}", rule_set_version=rule_set_version)
    return [
        CaseAssigned(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=new_id(),
            assignee=to,
            basis=basis,
            attempt=state.attempts + 1,
        )
    ]


def _reassign(
    state: CaseRouting,
    current: Current,
    actor: Actor,
    to: Assignee,
    now: datetime,
    new_id: NewId,
    *,
    method: str,
    reason: str,
) -> list[CaseEvent]:
    label = "转办" if method == "transfer" else "人工改派"
    return [
        CaseTransferred(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            from_assignment_id=current.assignment_id,
            from_assignee=current.assignee,
            to_assignee=to,
            reason=reason,
        ),
        CaseAssigned(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=new_id(),
            assignee=to,
            basis=current.basis.model_copy(
                update={
                    "method": method,
                    "reason": f"{label}：由{current.assignee.name}转至{to.name}，{reason}",
                }
            ),
            attempt=state.attempts + 1,
        ),
    ]


def co_handle(state: CaseRouting, actor: Actor, add: Sequence[Assignee], now: datetime) -> list[CaseEvent]:
    """协办: add co-handling departments. Restates the assignment (same id) with the larger list."""
    current = _current_for(state, actor, "add co-handlers to", operator_may=True)
    known = {assignee_key(current.assignee), *(assignee_key(c) for c in current.co_handlers)}
    new = [a for a in dict.fromkeys(add) if assignee_key(a) not in known]
    if not add:
        raise InvalidCommand("name at least one co-handler")
    if not new:
        return []
    names = "、".join(a.name for a in new)
    return [
        CaseAssigned(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=current.assignment_id,
            assignee=current.assignee,
            basis=current.basis.model_copy(
                update={"reason": f"{current.basis.reason}；增加协办单位：{names}"}
            ),
            co_handlers=(*current.co_handlers, *new),
            attempt=current.attempt,
        )
    ]


def reply(state: CaseRouting, actor: Actor, text: str, resolved: bool, now: datetime) -> list[CaseEvent]:
    """答复: only after accepting."""
    current = _current_for(state, actor, "reply to")
    if state.status is not Status.ACCEPTED:
        raise IllegalTransition("reply to", state.status, "accept the case before replying")
    if not text.strip():
        raise InvalidCommand("a reply needs text")
    return [
        ReplySubmitted(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=current.assignment_id,
            assignee=current.assignee,
            reply=text.strip(),
            resolved=resolved,
        )
    ]


def request_extension(
    state: CaseRouting, actor: Actor, working_days: int, reason: str, now: datetime
) -> list[CaseEvent]:
    """延期申请: by the assignee of an accepted case, one pending request at a time."""
    current = _current_for(state, actor, "request an extension for")
    if state.status is not Status.ACCEPTED:
        raise IllegalTransition("request an extension for", state.status, "accept the case first")
    if state.pending_extension is not None:
        raise IllegalTransition(
            "request an extension for", state.status, "an extension request is already awaiting a decision"
        )
    if not reason.strip():
        raise InvalidCommand("an extension request needs a reason")
    return [
        ExtensionRequested(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=current.assignment_id,
            assignee=current.assignee,
            working_days=working_days,
            reason=reason.strip(),
        )
    ]


def decide_extension(
    state: CaseRouting,
    actor: Actor,
    approved: bool,
    now: datetime,
    *,
    working_days: int | None = None,
    note: str | None = None,
) -> list[CaseEvent]:
    """延期审批: an operator decides the pending request."""
    if not actor.is_operator:
        raise NotPermitted("only operators decide extensions")
    pending = state.pending_extension
    if pending is None or state.current is None:
        raise IllegalTransition("decide an extension for", state.status, "no extension request is pending")
    days = (working_days or pending.working_days) if approved else 0
    return [
        ExtensionDecided(
            case_id=state.case_id,
            occurred_at=now,
            actor=actor.id,
            assignment_id=state.current.assignment_id,
            approved=approved,
            working_days=days,
            note=note,
            decided_at=now,
        )
    ]


def reopen(
    state: CaseRouting, reason: str, now: datetime, *, reroute: Reroute, new_id: NewId = new_assignment_id
) -> list[CaseEvent]:
    """重办 (intake reopened the case): back to the assignee that replied, else route afresh."""
    if state.status in (Status.ASSIGNED, Status.ACCEPTED, Status.TRIAGE):
        return []  # already being handled
    if state.last_assignee is None:
        return route(state, reroute(frozenset(state.excluded)), now, new_id=new_id)
    basis = (state.current.basis if state.current else RoutingBasis()).model_copy(
        update={
            "method": "reopen",
            "reason": f"群众不满意重办，退回原承办单位{state.last_assignee.name}：{reason}",
        }
    )
    return [
        CaseAssigned(
            case_id=state.case_id,
            occurred_at=now,
            actor=SYSTEM.id,
            assignment_id=new_id(),
            assignee=state.last_assignee,
            basis=basis,
            attempt=state.attempts + 1,
        )
    ]
