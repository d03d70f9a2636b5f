"""The policy table and the timer plan: which limit applies, when cards and escalations fire."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from contracts.events.sla import ClockKind, DeadlineStage
from services.sla.domain.calendar import SHANGHAI, WorkingCalendar
from services.sla.domain.deadlines import (
    TimerKind,
    compute_deadline,
    next_escalation_level,
    plan_cards,
    plan_escalations,
)
from services.sla.domain.policy import StageLimit, load_policy_table

TABLE = load_policy_table()
CAL = WorkingCalendar()
MONDAY = datetime(2025, 3, 3, 8, 30, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("appeal_type", "urgency", "policy", "reply_days"),
    [
        ("complaint", "normal", "complaint-report", 15),
        ("report", None, "complaint-report", 15),
        ("help", "normal", "default", 5),
        (None, None, "default", 5),
        ("complaint", "urgent", "urgent", 24),  # urgency outranks the appeal type
    ],
)
def test_the_first_matching_policy_decides_the_limit(appeal_type, urgency, policy, reply_days) -> None:
    chosen = TABLE.select(appeal_type, urgency, None)
    assert chosen.id == policy
    assert chosen.stages[DeadlineStage.REPLY].amount == reply_days


def test_a_table_without_a_catch_all_is_refused() -> None:
    document = TABLE.model_dump(mode="json")
    document["policies"] = document["policies"][:1]
    with pytest.raises(ValidationError):
        type(TABLE).model_validate(document)


def test_a_working_day_deadline_gets_its_yellow_card_one_working_day_before() -> None:
    limit = StageLimit(clock=ClockKind.WORKING_DAYS, amount=5)
    deadline = compute_deadline(CAL, DeadlineStage.REPLY, MONDAY, limit)
    timers = {t.kind: t.due_at for t in plan_cards(CAL, TABLE, deadline, limit)}
    assert timers[TimerKind.RED] == datetime(2025, 3, 10, 17, 30, tzinfo=SHANGHAI)
    assert timers[TimerKind.YELLOW] == datetime(
        2025, 3, 7, 17, 30, tzinfo=SHANGHAI
    )  # Friday, over the weekend


def test_an_hour_clock_gets_its_yellow_card_at_the_configured_fraction() -> None:
    limit = StageLimit(clock=ClockKind.WORKING_HOURS, amount=4)
    deadline = compute_deadline(CAL, DeadlineStage.SIGN_FOR, MONDAY, limit)
    timers = {t.kind: t.due_at for t in plan_cards(CAL, TABLE, deadline, limit)}
    assert timers[TimerKind.YELLOW] == datetime(2025, 3, 3, 11, 30, tzinfo=SHANGHAI)  # 3 of 4 office hours
    assert timers[TimerKind.RED] == datetime(2025, 3, 3, 14, 0, tzinfo=SHANGHAI)


def test_a_stage_without_cards_plans_no_timers() -> None:
    limit = TABLE.select("help", None, None).stages[DeadlineStage.RETURN_WINDOW]
    deadline = compute_deadline(CAL, DeadlineStage.RETURN_WINDOW, MONDAY, limit)
    assert plan_cards(CAL, TABLE, deadline, limit) == []


def test_the_escalation_ladder_climbs_from_the_first_red_card() -> None:
    breach = datetime(2025, 3, 3, 14, 0, tzinfo=SHANGHAI)
    ladder = {t.kind: t.due_at for t in plan_escalations(CAL, TABLE.escalation, breach)}
    assert ladder == {
        TimerKind.ESCALATE_1: breach,
        TimerKind.ESCALATE_2: datetime(2025, 3, 4, 14, 0, tzinfo=SHANGHAI),
        TimerKind.ESCALATE_3: datetime(2025, 3, 10, 17, 30, tzinfo=SHANGHAI),
    }


@pytest.mark.parametrize(("current", "raised"), [(0, 1), (1, 2), (2, 3), (3, 3)])
def test_a_dissatisfied_citizen_raises_supervision_by_one_level_up_to_three(current, raised) -> None:
    assert next_escalation_level(current) == raised


def test_an_extension_adds_working_days_after_the_original_deadline() -> None:
    limit = StageLimit(clock=ClockKind.WORKING_DAYS, amount=5)
    extended = compute_deadline(
        CAL, DeadlineStage.REPLY, datetime(2025, 9, 22, 9, 0, tzinfo=SHANGHAI), limit, 3
    )
    # 5 days end on the make-up Sunday 28 Sep; 3 more: 29, 30 Sep, then past the holiday to 9 Oct
    assert extended.due_at == datetime(2025, 10, 9, 17, 30, tzinfo=SHANGHAI)
