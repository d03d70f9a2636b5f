"""The assignment state machine: every path of accept, return, transfer, co-handle, reply, extension."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from contracts.events.intake import CaseClosed
from contracts.events.routing import (
    AssignmentAccepted,
    AssignmentReturned,
    CaseAssigned,
    CaseSentToTriage,
    CaseTransferred,
    ExtensionDecided,
    ExtensionRequested,
    ReplySubmitted,
)
from services.routing.domain import assignment as sm
from services.routing.domain.assignment import (
    IllegalTransition,
    InvalidCommand,
    NotAssignee,
    NotPermitted,
    Status,
)
from services.routing.domain.decision import CaseFacts, decide
from services.routing.domain.refdata import RuleSet, parse_rules
from tests.unit.routing.factories import (
    OPERATOR,
    T0,
    department,
    dept_actor,
    ids,
    later,
    reference_data,
    routed_case,
)

REF = reference_data()
NOISE = CaseFacts(category_code="UM-E06028", address="明水街道")  # STHJJ, then CGJ, then ZJJ
WINDOW = timedelta(hours=24)
STHJJ, CGJ, ZJJ = dept_actor("STHJJ"), dept_actor("CGJ"), dept_actor("ZJJ")


def reroute(exclude: frozenset[str]):
    return decide(NOISE, REF, exclude=exclude)


def assigned():
    state, events = routed_case(NOISE, REF)
    assert [type(e) for e in events] == [CaseAssigned] and state.current.assignee.code == "STHJJ"
    return state


def apply(state, events):
    return sm.fold(state, events)


def return_(state, actor, reason="不属于本单位职责", at=None, new_id=None):
    return sm.return_case(
        state, actor, reason, at or later(1), window=WINDOW, reroute=reroute, new_id=new_id or ids()
    )


# --- accept --------------------------------------------------------------------------------------------


def test_the_assignee_accepts_and_accepting_again_is_a_harmless_no_op():
    state = assigned()
    events = sm.accept(state, STHJJ, later(1))
    assert [type(e) for e in events] == [AssignmentAccepted]
    state = apply(state, events)
    assert state.status is Status.ACCEPTED and state.current.accepted_at == later(1)
    assert sm.accept(state, STHJJ, later(2)) == []


def test_another_department_cannot_act_on_the_case_and_an_operator_cannot_accept_for_it():
    state = assigned()
    with pytest.raises(NotAssignee):
        sm.accept(state, CGJ, later(1))
    with pytest.raises(NotAssignee):
        return_(state, CGJ)
    with pytest.raises(NotPermitted):
        sm.accept(state, OPERATOR, later(1))
    assert not state.involves(CGJ) and state.involves(STHJJ) and state.involves(OPERATOR)


def test_a_case_in_triage_cannot_be_accepted():
    state, _ = routed_case(CaseFacts(category_code="ZZ-1", address="明水街道"), REF)
    assert state.status is Status.TRIAGE
    with pytest.raises(NotAssignee):
        sm.accept(state, STHJJ, later(1))


# --- return --------------------------------------------------------------------------------------------


def test_a_first_return_reroutes_to_the_next_department_excluding_the_returner():
    state = assigned()
    events = return_(state, STHJJ, new_id=lambda: "as_next")
    assert [type(e) for e in events] == [AssignmentReturned, CaseAssigned]
    returned, reassigned = events
    assert returned.reason == "不属于本单位职责" and returned.returns_so_far == 1
    assert (
        reassigned.assignee.code == "CGJ"
        and reassigned.attempt == 2
        and reassigned.assignment_id == "as_next"
    )
    state = apply(state, events)
    assert state.status is Status.ASSIGNED and state.excluded == ("department:STHJJ",) and state.returns == 1


def test_a_second_return_sends_the_case_to_district_triage():
    state = assigned()
    state = apply(state, return_(state, STHJJ))
    events = return_(state, CGJ, reason="应由住建局处理", at=later(2))
    assert [type(e) for e in events] == [AssignmentReturned, CaseSentToTriage]
    assert events[0].returns_so_far == 2 and "已退单2次" in events[1].reason
    state = apply(state, events)
    assert state.status is Status.TRIAGE and state.current is None
    assert set(state.excluded) == {"department:STHJJ", "department:CGJ"}


def test_an_accepted_case_can_still_be_returned_inside_the_window():
    state = assigned()
    state = apply(state, sm.accept(state, STHJJ, later(1)))
    assert [type(e) for e in return_(state, STHJJ, at=later(3))] == [AssignmentReturned, CaseAssigned]


def test_a_return_needs_a_reason_and_must_come_inside_the_window():
    state = assigned()
    with pytest.raises(InvalidCommand):
        return_(state, STHJJ, reason="   ")
    with pytest.raises(IllegalTransition) as late:
        return_(state, STHJJ, at=later(25))
    assert late.value.status is Status.ASSIGNED and "window" in late.value.detail


def test_a_return_when_the_only_candidate_returned_goes_to_triage_at_once():
    state, _ = routed_case(CaseFacts(category_code="UM-E06028", address="刁镇"), REF)  # ZJJ only (town rule)
    assert state.current.assignee.code == "ZJJ"
    events = sm.return_case(
        state,
        ZJJ,
        "不归我们",
        later(1),
        window=WINDOW,
        reroute=lambda ex: decide(CaseFacts(category_code="UM-E06028", address="刁镇"), REF, exclude=ex),
    )
    assert [type(e) for e in events] == [AssignmentReturned, CaseAssigned]  # falls back to the district rule
    assert events[1].assignee.code == "STHJJ"


# --- transfer, assign, co-handle -----------------------------------------------------------------------


def test_the_assignee_transfers_to_another_department_with_a_reason():
    state = assigned()
    events = sm.transfer(
        state, STHJJ, department("ZJJ"), "工地施工噪音归住建", later(1), new_id=lambda: "as_t"
    )
    assert [type(e) for e in events] == [CaseTransferred, CaseAssigned]
    assert events[0].from_assignee.code == "STHJJ" and events[0].to_assignee.code == "ZJJ"
    assert events[1].basis.method == "transfer" and events[1].attempt == 2
    state = apply(state, events)
    assert state.current.assignee.code == "ZJJ" and state.status is Status.ASSIGNED and state.returns == 0
    with pytest.raises(InvalidCommand):
        sm.transfer(state, ZJJ, department("ZJJ"), "自己", later(2))
    with pytest.raises(InvalidCommand):
        sm.transfer(state, ZJJ, department("CGJ"), "", later(2))


def test_an_operator_assigns_a_case_from_triage_and_can_override_an_assignment():
    state, _ = routed_case(CaseFacts(category_code="ZZ-1", address="明水街道"), REF)
    events = sm.assign(state, OPERATOR, department("CGJ"), "经核实属城管", later(1), new_id=lambda: "as_op")
    assert [type(e) for e in events] == [CaseAssigned] and events[0].basis.method == "operator"
    state = apply(state, events)
    assert state.current.assignee.code == "CGJ"
    override = sm.assign(state, OPERATOR, department("ZJJ"), "仲裁", later(2))
    assert [type(e) for e in override] == [CaseTransferred, CaseAssigned]
    assert sm.assign(state, OPERATOR, department("CGJ"), "again", later(2)) == []
    with pytest.raises(NotPermitted):
        sm.assign(state, CGJ, department("ZJJ"), "", later(2))


def test_co_handlers_are_added_to_the_same_assignment_and_may_see_but_not_accept_the_case():
    state = assigned()
    events = sm.co_handle(state, STHJJ, [department("CGJ"), department("STHJJ")], later(1))
    assert len(events) == 1 and isinstance(events[0], CaseAssigned)
    assert events[0].assignment_id == state.current.assignment_id
    assert [c.code for c in events[0].co_handlers] == ["CGJ"]
    state = apply(state, events)
    assert state.status is Status.ASSIGNED and state.involves(CGJ)
    assert sm.co_handle(state, OPERATOR, [department("CGJ")], later(2)) == []
    with pytest.raises(NotAssignee):
        sm.accept(state, CGJ, later(2))


# --- reply, extension ----------------------------------------------------------------------------------


def test_a_reply_needs_an_accepted_case_and_a_second_reply_is_refused():
    state = assigned()
    with pytest.raises(IllegalTransition) as early:
        sm.reply(state, STHJJ, "已处理", True, later(1))
    assert early.value.status is Status.ASSIGNED
    state = apply(state, sm.accept(state, STHJJ, later(1)))
    events = sm.reply(state, STHJJ, "已责令整改", True, later(5))
    assert [type(e) for e in events] == [ReplySubmitted]
    state = apply(state, events)
    assert state.status is Status.REPLIED
    with pytest.raises(IllegalTransition):
        sm.reply(state, STHJJ, "再答复", True, later(6))


def test_an_extension_is_requested_once_and_decided_by_an_operator():
    state = assigned()
    with pytest.raises(IllegalTransition):
        sm.request_extension(state, STHJJ, 3, "需要检测", later(1))
    state = apply(state, sm.accept(state, STHJJ, later(1)))
    events = sm.request_extension(state, STHJJ, 3, "需要第三方检测", later(2))
    assert [type(e) for e in events] == [ExtensionRequested]
    state = apply(state, events)
    with pytest.raises(IllegalTransition):
        sm.request_extension(state, STHJJ, 2, "再延", later(3))
    with pytest.raises(NotPermitted):
        sm.decide_extension(state, STHJJ, True, later(3))
    decided = sm.decide_extension(state, OPERATOR, True, later(3))
    assert [type(e) for e in decided] == [ExtensionDecided] and decided[0].working_days == 3
    state = apply(state, decided)
    assert state.pending_extension is None
    with pytest.raises(IllegalTransition):
        sm.decide_extension(state, OPERATOR, False, later(4))


def test_a_refused_extension_records_zero_days():
    state = assigned()
    state = apply(state, sm.accept(state, STHJJ, later(1)))
    state = apply(state, sm.request_extension(state, STHJJ, 5, "理由", later(2)))
    assert sm.decide_extension(state, OPERATOR, False, later(3), note="理由不足")[0].working_days == 0


# --- the case ending, and coming back ------------------------------------------------------------------


def test_a_closed_case_refuses_actions_and_a_reopened_one_goes_back_to_the_last_assignee():
    state = assigned()
    state = apply(state, sm.accept(state, STHJJ, later(1)))
    state = apply(state, sm.reply(state, STHJJ, "已处理", True, later(2)))
    state = sm.evolve(
        state,
        CaseClosed(case_id=state.case_id, occurred_at=later(3), actor="intake", reason="citizen_satisfied"),
    )
    assert state.status is Status.CLOSED
    with pytest.raises(IllegalTransition):
        sm.accept(state, STHJJ, later(4))
    with pytest.raises(IllegalTransition):
        sm.assign(state, OPERATOR, department("CGJ"), "", later(4))
    events = sm.reopen(state, "群众不满意", later(5), reroute=reroute, new_id=lambda: "as_re")
    assert [type(e) for e in events] == [CaseAssigned]
    assert (
        events[0].assignee.code == "STHJJ" and events[0].basis.method == "reopen" and events[0].attempt == 2
    )


def test_the_fold_of_the_emitted_events_is_the_state_the_commands_see():
    state = assigned()
    history = [*sm.accept(state, STHJJ, T0 + timedelta(minutes=5))]
    replay = sm.fold(sm.CaseRouting(case_id=state.case_id), [*routed_case(NOISE, REF)[1], *history])
    assert replay.status is Status.ACCEPTED and replay.current.assignee.code == "STHJJ"


def test_a_re_route_after_a_rule_change_uses_the_new_version_and_says_which_versions():
    state = assigned()  # under version 7: STHJJ, then CGJ
    assert state.current.basis.rule_set_version == 7
    moved = parse_rules(
        [{"id": "R-NOISE", "category": "UM-E06028", "level": "district", "assignees": ["ZJJ"]}]
    )
    newer = replace(REF, rule_set=RuleSet(8, "noise to ZJJ", moved))

    def reroute_on_newer(exclude: frozenset[str]):
        return decide(NOISE, newer, exclude=exclude)

    _, reassigned = sm.return_case(
        state, STHJJ, "不属于本单位职责", later(1), window=WINDOW, reroute=reroute_on_newer
    )
    assert reassigned.assignee.code == "ZJJ" and reassigned.basis.rule_set_version == 8
    assert reassigned.basis.reason.startswith("职责清单已由第7版更新为第8版")
    assert "按第8版职责清单规则 R-NOISE" in reassigned.basis.reason


def test_a_re_route_under_the_same_rule_set_does_not_claim_a_change():
    _, reassigned = return_(assigned(), STHJJ)
    assert reassigned.basis.rule_set_version == 7 and "更新为" not in reassigned.basis.reason
