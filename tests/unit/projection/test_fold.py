"""The pure fold over every event type, including out-of-order and unknown-case deliveries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.projection.domain import apply, apply_all
from tests import factories as f

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fold(*events):
    state = None
    for event in events:
        state = apply(state, event, event.occurred_at)
    return state


def received(**overrides):
    return f.case_received(occurred_at=T0, received_at=T0, **overrides)


def test_the_happy_path_walks_received_assigned_accepted_replied_closed():
    case = received()
    cid = case.case_id
    state = fold(case, f.case_assigned(cid, at=at(1)))
    assert (state["status"], state["assignee_code"], state["department_code"]) == ("assigned", "CGJ", "CGJ")
    state = apply(state, f.assignment_accepted(cid, at=at(2)), at(2))
    assert state["status"] == "accepted" and state["accepted_at"] == at(2)
    state = apply(state, f.reply_submitted(cid, at=at(3)), at(3))
    assert state["status"] == "replied" and state["reply"].startswith("已派人维修")
    state = apply(state, f.feedback_received(cid, at=at(4)), at(4))
    state = apply(state, f.case_closed_at(cid, at=at(5)), at(5))
    assert state["status"] == "closed" and state["satisfaction"] == "satisfied"
    assert state["handling_seconds"] == 300 and state["is_open"] is False
    assert state["events_applied"] == 6


def test_triage_returns_and_transfers_move_the_status_and_the_assignee():
    cid = received().case_id
    state = fold(received(case_id=cid), f.case_sent_to_triage(cid, at=at(1)))
    assert state["status"] == "triage"
    state = fold(
        received(case_id=cid),
        f.case_assigned(cid, at=at(1)),
        f.assignment_returned(cid, at=at(2)),
        f.case_assigned(cid, "SWJ", at=at(3), attempt=2),
        f.case_transferred(cid, "SWJ", "ZJJ", at=at(4)),
    )
    assert state["status"] == "transferred"
    assert (state["return_count"], state["transfer_count"]) == (1, 1)
    assert state["assignee_code"] == "ZJJ" and state["handler_departments"] == ["ZJJ"]


def test_deadlines_cards_and_escalation_accumulate_beside_the_status():
    cid = received().case_id
    due = at(60)
    state = fold(
        received(case_id=cid),
        f.case_assigned(cid, at=at(1)),
        f.deadline_set(cid, due, at=at(1)),
        f.deadline_set(cid, at(600), stage="case", at=at(1)),
        f.deadline_approaching(cid, due, at=at(50)),
    )
    assert state["card"] == "yellow" and state["deadlines"]["reply"]["due_at"] == due.isoformat()
    assert state["case_due_at"] == at(600)
    state = fold(
        received(case_id=cid),
        f.deadline_set(cid, due, at=at(1)),
        f.deadline_approaching(cid, due, at=at(50)),
        f.deadline_breached(cid, due, at=at(61)),
        f.deadline_approaching(cid, due, stage="case", at=at(62)),
        f.case_escalated(cid, 2, at=at(63)),
        f.case_escalated(cid, 1, at=at(64)),
    )
    assert state["card"] == "red"  # a later yellow card does not hide the red one
    assert [c["colour"] for c in state["cards"]] == ["yellow", "red", "yellow"]
    assert state["escalation_level"] == 2 and state["on_time"] is False


def test_a_reply_before_its_deadline_is_on_time_and_after_it_is_not():
    cid = received().case_id
    early = fold(received(case_id=cid), f.deadline_set(cid, at(60)), f.reply_submitted(cid, at=at(59)))
    late = fold(received(case_id=cid), f.deadline_set(cid, at(60)), f.reply_submitted(cid, at=at(61)))
    unknown = fold(received(case_id=cid), f.reply_submitted(cid, at=at(61)))
    assert (early["on_time"], late["on_time"], unknown["on_time"]) == (True, False, None)


def test_extension_clock_and_notifications_are_recorded():
    cid = received().case_id
    state = fold(received(case_id=cid), f.extension_requested(cid, at=at(1)), f.clock_paused(cid, at=at(2)))
    assert state["extension_pending"] is True and state["clock_paused"] is True
    state = fold(
        received(case_id=cid),
        f.extension_requested(cid, at=at(1)),
        f.extension_decided(cid, at=at(2), days=4),
        f.clock_resumed(cid, at=at(3)),
        f.notification_sent(cid, at=at(4)),
    )
    assert (state["extension_pending"], state["extension_days"], state["clock_paused"]) == (False, 4, False)
    assert state["notifications_sent"] == 1


def test_reopening_a_closed_case_clears_its_closure_and_counts_the_reopen():
    cid = received().case_id
    state = fold(
        received(case_id=cid),
        f.reply_submitted(cid, at=at(1)),
        f.feedback_received(cid, "dissatisfied", at=at(2)),
        f.case_reopened(cid, at=at(3)),
    )
    assert state["status"] == "reopened" and state["reopen_count"] == 1
    assert state["closed_at"] is None and state["is_open"] is True
    state = apply(state, f.case_assigned(cid, at=at(4), attempt=2), at(4))
    assert state["status"] == "assigned"


def test_withdrawn_and_duplicate_cases_leave_the_open_set():
    cid = received().case_id
    withdrawn = fold(received(case_id=cid), f.appeal_withdrawn(cid, at=at(1)))
    duplicate = fold(received(case_id=cid), f.duplicate_linked(cid, "ZQ-PRIMARY", at=at(1)))
    assert (withdrawn["status"], withdrawn["is_open"]) == ("withdrawn", False)
    assert (duplicate["status"], duplicate["duplicate_of"], duplicate["is_open"]) == (
        "duplicate",
        "ZQ-PRIMARY",
        False,
    )


def test_an_appeal_update_extends_the_searchable_description():
    cid = received().case_id
    state = fold(received(case_id=cid), f.appeal_updated(cid, "周边还有三盏灯也不亮", at=at(1)))
    assert "周边还有三盏灯也不亮" in state["description"] and "三盏灯" in state["search_text"]


def test_an_older_status_event_arriving_late_fills_details_but_keeps_the_newer_status():
    cid = received().case_id
    state = fold(
        f.assignment_accepted(cid, at=at(2)),  # routing's later event overtook the assignment
        f.case_assigned(cid, "CGJ", at=at(1)),
        received(case_id=cid),
    )
    assert state["status"] == "accepted"
    assert state["assigned_at"] == at(1) and state["received_at"] == T0
    assert state["opened_at"] == T0  # once received, the case is listed by its reception time


def test_an_event_for_a_never_seen_case_starts_an_open_placeholder():
    state = fold(f.deadline_breached("UNSEEN-2", at(5), at=at(6)))
    assert state["status"] == "unknown" and state["card"] == "red" and state["is_open"] is True
    assert state["opened_at"] == at(6) and state.get("received_at") is None


def test_the_area_code_of_the_routing_basis_names_town_and_community():
    cid = received().case_id
    state = fold(received(case_id=cid), f.case_assigned(cid, at=at(1), area_code="370114001002"))
    assert (state["town_code"], state["community_code"]) == ("370114001000", "370114001002")


def test_co_handler_departments_share_the_case():
    cid = received().case_id
    co = (f.assignee("STHJJ", name="区生态环境分局"),)
    state = fold(received(case_id=cid), f.case_assigned(cid, "CGJ", at=at(1), co_handlers=co))
    assert state["handler_departments"] == ["CGJ", "STHJJ"]


def test_the_fold_never_mutates_the_summary_it_was_given():
    cid = received().case_id
    before = fold(received(case_id=cid), f.deadline_set(cid, at(60)))
    snapshot = {k: (dict(v) if isinstance(v, dict) else v) for k, v in before.items()}
    apply(before, f.deadline_breached(cid, at(60), at=at(61)), at(61))
    apply(before, f.deadline_set(cid, at(90), stage="case"), at(2))
    assert before["cards"] == [] and before["deadlines"] == snapshot["deadlines"]


def shuffled_lifecycle(cid: str, seed: int) -> list:
    """Every kind of event for one case, some twice, in a random order with random times."""
    rng = random.Random(seed)
    due = at(rng.randrange(60, 600))
    makers = [
        lambda t: f.case_received(cid, occurred_at=t, received_at=t),
        lambda t: f.case_assigned(cid, "CGJ", at=t, area_code=rng.choice(["370114001002", "370114002000"])),
        lambda t: f.case_assigned(cid, "G-7", kind="grid", at=t, co_handlers=(f.assignee("ZJJ"),)),
        lambda t: f.deadline_set(cid, due, at=t, stage=rng.choice(["reply", "case"])),
        lambda t: f.deadline_approaching(cid, due, at=t),
        lambda t: f.deadline_breached(cid, due, at=t),
        lambda t: f.assignment_accepted(cid, at=t),
        lambda t: f.assignment_returned(cid, at=t),
        lambda t: f.case_transferred(cid, at=t),
        lambda t: f.reply_submitted(cid, at=t),
        lambda t: f.feedback_received(cid, at=t),
        lambda t: f.case_escalated(cid, at=t),
        lambda t: f.case_reopened(cid, at=t),
        lambda t: f.appeal_updated(cid, "又坏了", at=t),
        lambda t: f.case_closed_at(cid, at=t),
        lambda t: f.notification_sent(cid, at=t),
    ]
    return [rng.choice(makers)(at(rng.randrange(0, 900))) for _ in range(rng.randrange(1, 25))]


@pytest.mark.parametrize("seed", range(40))
def test_a_run_of_events_folds_to_what_applying_them_one_at_a_time_gives(seed):
    events = shuffled_lifecycle(f.case_id(), seed)
    split = seed % len(events)
    one_at_a_time = fold(*events)
    prefix = fold(*events[:split]) if split else None
    assert apply_all(prefix, [(e, e.occurred_at) for e in events[split:]]) == one_at_a_time
