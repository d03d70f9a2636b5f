"""Statistics contributions, worklist items and keyword grams derived from a summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.projection.domain import apply, grams, keyword_grams, stat_deltas, worklist_items
from tests import factories as f

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 01:00 on 3 March in Zhangqiu


def fold(*events):
    state = None
    for event in events:
        state = apply(state, event, event.occurred_at)
    return state


def test_a_new_case_adds_one_received_and_one_open_to_its_local_day():
    case = f.case_received(occurred_at=T0, received_at=T0, source="grid")
    deltas = stat_deltas([(None, fold(case))])
    ((day, category, town, department, source), counters) = next(iter(deltas.items()))
    assert (day.isoformat(), source) == ("2026-03-03", "grid")
    assert (counters["received"], counters["open"], counters["closed"]) == (1, 1, 0)


def test_closing_a_case_moves_it_from_open_to_closed_without_counting_it_twice():
    case = f.case_received(occurred_at=T0, received_at=T0)
    before = fold(case)
    after = apply(before, f.case_closed_at(case.case_id, at=T0 + timedelta(hours=2)), T0 + timedelta(hours=2))
    (counters,) = stat_deltas([(before, after)]).values()
    assert counters["received"] == 0 and counters["open"] == -1 and counters["closed"] == 1
    assert counters["handling_seconds"] == 7200 and counters["handled"] == 1


def test_a_reassignment_moves_the_case_between_department_buckets():
    case = f.case_received(occurred_at=T0, received_at=T0)
    first = fold(case, f.case_assigned(case.case_id, "CGJ", at=T0))
    second = apply(first, f.case_transferred(case.case_id, "CGJ", "ZJJ", at=T0), T0)
    deltas = stat_deltas([(first, second)])
    by_department = {key[3]: counters["received"] for key, counters in deltas.items()}
    assert by_department == {"CGJ": -1, "ZJJ": 1}


def test_an_event_that_changes_no_statistic_yields_no_delta():
    case = f.case_received(occurred_at=T0, received_at=T0)
    before = fold(case)
    after = apply(before, f.notification_sent(case.case_id, at=T0), T0)
    assert stat_deltas([(before, after)]) == {}


def test_a_placeholder_contributes_nothing_until_its_case_is_received():
    assert stat_deltas([(None, fold(f.case_escalated("UNSEEN-3", at=T0)))]) == {}


def test_an_open_assigned_case_is_on_its_assignees_and_co_handlers_worklists():
    case = f.case_received(occurred_at=T0, received_at=T0)
    co = (f.assignee("STHJJ"),)
    state = fold(case, f.case_assigned(case.case_id, "100001", kind="grid", at=T0, co_handlers=co))
    owners = {(i["owner_kind"], i["owner_code"], i["role"]) for i in worklist_items(state)}
    assert owners == {("grid", "100001", "assignee"), ("department", "STHJJ", "co_handler")}
    closed = apply(state, f.case_closed_at(case.case_id, at=T0), T0)
    assert worklist_items(closed) == []


def test_one_and_two_character_keywords_are_grams_and_longer_ones_need_all_their_bigrams():
    text = "明水街道路灯不亮"
    assert "灯" in grams(text) and "路灯" in grams(text)
    assert keyword_grams("路灯") == ["路灯"]
    assert keyword_grams(" 路灯 不亮") == sorted({"路灯", "灯不", "不亮"})
    assert set(keyword_grams("路灯不亮")) <= set(grams(text))
    assert not set(keyword_grams("灯路")) <= set(grams(text))
