"""One case's life as contract events, shared by notify's unit and integration tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from contracts.events import CaseEvent, CitizenContact
from contracts.events.intake import CaseClosed, CaseReceived, CaseReopened, FeedbackReceived
from contracts.events.routing import (
    Assignee,
    AssigneeKind,
    AssignmentAccepted,
    AssignmentReturned,
    CaseAssigned,
    CaseTransferred,
    ReplySubmitted,
    RoutingBasis,
)
from contracts.events.sla import (
    CaseEscalated,
    ClockKind,
    DeadlineApproaching,
    DeadlineBreached,
    DeadlineSet,
    DeadlineStage,
)

CLEAR_PHONE = "13812341234"
MASKED_PHONE = "138****1234"
GRID = Assignee(kind=AssigneeKind.GRID, code="370114001001", name="明水街道百脉泉社区第一网格")
CGJ = Assignee(kind=AssigneeKind.DEPARTMENT, code="CGJ", name="区综合行政执法局")
SWJ = Assignee(kind=AssigneeKind.DEPARTMENT, code="SWJ", name="区水务局")
REPLY_DUE = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)  # 17:30 in Zhangqiu
_numbers = itertools.count(1)


def new_case_id() -> str:
    return f"ZQ20261126{next(_numbers):06d}"


def received(case_id: str, **overrides) -> CaseReceived:
    now = datetime.now(UTC)
    values = dict(
        case_id=case_id,
        occurred_at=now,
        actor="hotline",
        source="hotline",
        external_id=f"12345-{case_id}",
        received_at=now,
        appeal_type="complaint",
        title="路灯不亮",
        description="明水街道百脉泉路路灯连续三晚不亮，夜间行人不便",
        address="章丘区明水街道百脉泉路",
        citizen=CitizenContact(name_masked="张*", phone_masked=MASKED_PHONE, citizen_ref=f"cz_{case_id}"),
    )
    values.update(overrides)
    return CaseReceived(**values)


def life(case_id: str) -> list[CaseEvent]:
    """Received, grid assignment and return, department assignment, cards, escalation, transfer, reply,
    dissatisfaction, reopen, second reply, satisfaction, closure."""
    t = datetime.now(UTC)

    def at(minutes: int) -> dict:
        return {"case_id": case_id, "occurred_at": t + timedelta(minutes=minutes), "actor": "test"}

    def deadline(minutes: int) -> DeadlineSet:
        return DeadlineSet(
            **at(minutes),
            stage=DeadlineStage.REPLY,
            due_at=REPLY_DUE,
            clock=ClockKind.WORKING_DAYS,
            amount=3,
            policy_id="default",
            policy_version=1,
            calendar_basis="chinese-calendar 1.11.0",
        )

    basis = RoutingBasis(method="point-in-polygon", reason="坐标落在网格内")
    return [
        received(case_id),
        CaseAssigned(**at(1), assignment_id="a1", assignee=GRID, basis=basis),
        AssignmentReturned(**at(2), assignment_id="a1", assignee=GRID, reason="非网格职责，需执法处置"),
        CaseAssigned(**at(3), assignment_id="a2", assignee=CGJ, basis=basis, attempt=2),
        deadline(4),
        AssignmentAccepted(**at(5), assignment_id="a2", assignee=CGJ),
        DeadlineApproaching(**at(6), stage=DeadlineStage.REPLY, due_at=REPLY_DUE, assignment_id="a2"),
        DeadlineBreached(**at(7), stage=DeadlineStage.REPLY, due_at=REPLY_DUE, assignment_id="a2"),
        CaseEscalated(**at(8), level=1, reason="答复超时"),
        CaseTransferred(
            **at(9), from_assignment_id="a2", from_assignee=CGJ, to_assignee=SWJ, reason="涉及供水管线"
        ),
        ReplySubmitted(**at(10), assignment_id="a3", assignee=SWJ, reply="已更换线路，路灯恢复"),
        FeedbackReceived(**at(11), satisfaction="dissatisfied", comment="仍有一盏不亮"),
        CaseReopened(**at(12), reason="仍有一盏不亮"),
        deadline(13),
        ReplySubmitted(**at(14), assignment_id="a3", assignee=SWJ, reply="剩余路灯已修复"),
        FeedbackReceived(**at(15), satisfaction="satisfied"),
        CaseClosed(**at(16), reason="citizen_satisfied"),
    ]


# (recipient, channel, template) of every message the life above causes, in order.
EXPECTED = [
    ("grid:370114001001", "webhook", "grid_task"),
    ("grid:370114001001", "webhook", "assignment_returned"),
    ("department:CGJ", "email", "assignment_new"),
    ("citizen:cz_{case}", "sms", "citizen_accepted"),
    ("supervisor:street-office", "email", "deadline_yellow"),
    ("supervisor:street-office", "email", "deadline_red"),
    ("supervisor:district-office", "email", "deadline_red"),
    ("supervisor:street-office", "email", "case_escalated"),
    ("department:SWJ", "email", "assignment_transferred_in"),
    ("citizen:cz_{case}", "sms", "citizen_replied"),
    ("department:SWJ", "email", "case_reopened"),
    ("citizen:cz_{case}", "sms", "citizen_replied"),
    ("citizen:cz_{case}", "sms", "citizen_closed"),
]


def expected(case_id: str) -> list[tuple[str, str, str]]:
    return [(r.format(case=case_id), c, t) for r, c, t in EXPECTED]
