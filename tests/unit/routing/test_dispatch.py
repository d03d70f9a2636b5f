"""Which departments get which work items, and what a work item may say."""

from __future__ import annotations

import orjson

from services.routing.dispatch import WORK_ITEM_TYPE, encode_work_item
from services.routing.domain import assignment as sm
from services.routing.domain.decision import CaseFacts
from services.routing.handlers import CaseRecord, _work_items, recall_items
from tests.unit.routing.factories import OPERATOR, department, dept_actor, later, reference_data, routed_case

REF = reference_data()
RECEIVED = {
    "description": "噪音扰民，我的电话13805311234，身份证370114199001011234",
    "address": "明水街道",
    "citizen": {"name_masked": "张*", "phone_masked": "138****1234", "citizen_ref": "cz_secret"},
}


def case():
    state, events = routed_case(CaseFacts(category_code="UM-E06028", address="明水街道"), REF)
    return CaseRecord(state, RECEIVED), events


def test_a_new_assignment_gives_the_department_a_masked_assigned_item():
    record, events = case()
    [item] = _work_items(sm.CaseRouting(case_id=record.state.case_id), events, record, REF)
    assert (item.action, item.role, item.department.code) == ("assigned", "primary", "STHJJ")
    assert item.category.name == "噪声扰民"
    assert "13805311234" not in item.description and "370114199001011234" not in item.description
    assert item.citizen == {"name_masked": "张*", "phone_masked": "138****1234"}  # no citizen_ref
    message = encode_work_item(item, source="/gridline/routing", topic="gridline.dispatch.sthjj")
    headers = dict(message.headers)
    assert (
        headers["ce_type"] == WORK_ITEM_TYPE.encode()
        and headers["ce_subject"] == record.state.case_id.encode()
    )
    assert (
        message.key == record.state.case_id
        and orjson.loads(message.value)["work_item_id"] == message.event_id
    )


def test_a_transfer_recalls_the_item_from_the_old_department_and_assigns_the_new_one():
    record, _ = case()
    events = sm.transfer(record.state, dept_actor("STHJJ"), department("ZJJ"), "归住建", later(1))
    items = _work_items(record.state, events, record, REF)
    assert [(i.action, i.department.code) for i in items] == [("recalled", "STHJJ"), ("assigned", "ZJJ")]


def test_co_handlers_get_co_handle_items_and_only_the_new_ones():
    record, _ = case()
    events = sm.co_handle(record.state, OPERATOR, [department("CGJ")], later(1))
    [item] = _work_items(record.state, events, record, REF)
    assert (item.action, item.role, item.department.code, item.actions) == (
        "co-handle",
        "co-handler",
        "CGJ",
        {},
    )
    record.state = sm.fold(record.state, events)
    more = sm.co_handle(record.state, OPERATOR, [department("CGJ"), department("ZJJ")], later(2))
    assert [i.department.code for i in _work_items(record.state, more, record, REF)] == ["ZJJ"]


def test_closing_an_open_case_recalls_it_from_every_department_holding_it():
    record, _ = case()
    record.state = sm.fold(record.state, sm.co_handle(record.state, OPERATOR, [department("CGJ")], later(1)))
    items = recall_items(record, "群众撤诉", later(2))
    assert [(i.action, i.department.code, i.role) for i in items] == [
        ("recalled", "STHJJ", "primary"),
        ("recalled", "CGJ", "co-handler"),
    ]
