"""Events written by routing (the single writer of these types): who handles a case, and their answers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from contracts.events import CaseEvent, Contract


class AssigneeKind(StrEnum):
    GRID = "grid"  # 网格
    DEPARTMENT = "department"  # 职能部门


class Assignee(Contract):
    kind: AssigneeKind
    code: Annotated[str, Field(description="Grid code (CJ/T 349 style) or department code.")]
    name: str


class RoutingBasis(Contract):
    """Why routing decided as it did: enough to explain and to audit the decision."""

    rule_id: str | None = None
    rule_set_version: int | None = None
    grid_code: str | None = None
    area_code: Annotated[str | None, Field(description="12-digit NBS division code of the matched area.")] = (
        None
    )
    category_code: str | None = None
    method: Annotated[str, Field(description="point-in-polygon | address-text | operator | none")] = "none"
    reason: Annotated[str, Field(description="Human-readable explanation (Chinese or English).")] = ""


class CaseAssigned(CaseEvent):
    """The case was assigned (派单) to a grid or a department."""

    name: ClassVar[str] = "assigned"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    assignee: Assignee
    basis: RoutingBasis
    co_handlers: tuple[Assignee, ...] = ()
    attempt: Annotated[int, Field(ge=1, description="1 for the first assignment, +1 per re-route.")] = 1


class CaseSentToTriage(CaseEvent):
    """No rule matched (or returns ran out): a district operator must decide (人工分拨)."""

    name: ClassVar[str] = "sent-to-triage"
    producer: ClassVar[str] = "routing"

    reason: str
    basis: RoutingBasis = RoutingBasis()


class AssignmentAccepted(CaseEvent):
    """The assignee signed for the case (签收)."""

    name: ClassVar[str] = "assignment-accepted"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    assignee: Assignee


class AssignmentReturned(CaseEvent):
    """The assignee sent the case back as not theirs (退单), with a reason."""

    name: ClassVar[str] = "assignment-returned"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    assignee: Assignee
    reason: Annotated[str, Field(min_length=1)]
    returns_so_far: int = 1


class CaseTransferred(CaseEvent):
    """The case moved from one assignee to another (转办)."""

    name: ClassVar[str] = "transferred"
    producer: ClassVar[str] = "routing"

    from_assignment_id: str
    from_assignee: Assignee
    to_assignee: Assignee
    reason: str


class ReplySubmitted(CaseEvent):
    """The assignee answered the citizen (答复/办结反馈)."""

    name: ClassVar[str] = "reply-submitted"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    assignee: Assignee
    reply: Annotated[str, Field(min_length=1)]
    resolved: bool = True


class ExtensionRequested(CaseEvent):
    """The assignee asked for more time (延期申请)."""

    name: ClassVar[str] = "extension-requested"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    assignee: Assignee
    working_days: Annotated[int, Field(ge=1, le=10)]
    reason: str


class ExtensionDecided(CaseEvent):
    """An operator approved or refused an extension (延期审批)."""

    name: ClassVar[str] = "extension-decided"
    producer: ClassVar[str] = "routing"

    assignment_id: str
    approved: bool
    working_days: int = 0
    note: str | None = None
    decided_at: AwareDatetime | None = None


EVENTS: tuple[type[CaseEvent], ...] = (
    CaseAssigned,
    CaseSentToTriage,
    AssignmentAccepted,
    AssignmentReturned,
    CaseTransferred,
    ReplySubmitted,
    ExtensionRequested,
    ExtensionDecided,
)
