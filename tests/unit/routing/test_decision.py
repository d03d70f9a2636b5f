"""The pure routing decision on the acceptance fixtures (tiny hand-made reference data)."""

from __future__ import annotations

from dataclasses import replace

from contracts.events.routing import AssigneeKind
from services.routing.domain.decision import CaseFacts, decide
from tests.unit.routing.factories import COMMUNITY_2, GRID_1, GRID_2, TOWN_1, reference_data

REF = reference_data(version=7)


def test_a_point_inside_a_grid_goes_to_that_grid_by_the_grid_level_rule():
    decision = decide(CaseFacts(category_code="UM-E06010", lon=0.5, lat=0.5), REF)
    assert decision.assignee is not None
    assert (decision.assignee.kind, decision.assignee.code) == (AssigneeKind.GRID, GRID_1)
    basis = decision.basis
    assert (basis.rule_id, basis.rule_set_version, basis.method) == ("R-GARBAGE-G", 7, "point-in-polygon")
    assert basis.grid_code == GRID_1 and basis.category_code == "UM-E06010"
    assert "明一社区网格" in basis.reason and "按第7版职责清单规则 R-GARBAGE-G" in basis.reason


def test_a_point_on_the_edge_two_grids_share_goes_to_the_lower_code_whatever_the_load_order():
    facts = CaseFacts(category_code="UM-E06010", lon=1.0, lat=0.5)
    reversed_ref = replace(REF, grids=list(reversed(REF.grids)))
    assert decide(facts, REF).assignee.code == GRID_1
    assert decide(facts, reversed_ref).assignee.code == GRID_1
    assert decide(replace(facts, lon=1.000001), REF).assignee.code == GRID_2


def test_a_point_outside_every_grid_with_no_usable_address_goes_to_triage():
    decision = decide(CaseFacts(category_code="UM-E06010", lon=5.0, lat=5.0, address="某省某市"), REF)
    assert decision.triage
    assert "不在任何网格内" in decision.basis.reason and "人工分拨" in decision.basis.reason
    assert decision.basis.rule_set_version == 7


def test_a_point_outside_every_grid_falls_back_to_the_address_text():
    decision = decide(
        CaseFacts(category_code="UM-E06010", lon=5.0, lat=5.0, address="明水街道明一居委会"), REF
    )
    assert decision.assignee.code == "CGJ"
    assert decision.basis.method == "address-text"


def test_missing_coordinates_and_an_address_with_an_old_name_resolve_by_the_gazetteer():
    decision = decide(CaseFacts(category_code="UM-E06010", address="章丘刁镇朱家峪村委会东头"), REF)
    # the grid-level rule needs a point, so the district rule applies
    assert decision.assignee.code == "CGJ" and decision.basis.rule_id == "R-GARBAGE"
    assert decision.basis.area_code == COMMUNITY_2 and decision.basis.method == "address-text"
    assert "朱家峪村委会" in decision.basis.reason


def test_a_rule_restricted_to_a_town_beats_the_district_rule_there_and_only_there():
    in_diaozhen = decide(CaseFacts(category_code="UM-E06028", address="刁镇"), REF)
    in_mingshui = decide(CaseFacts(category_code="UM-E06028", address="明水街道"), REF)
    assert (in_diaozhen.assignee.code, in_diaozhen.basis.rule_id) == ("ZJJ", "R-NOISE-DZ")
    assert (in_mingshui.assignee.code, in_mingshui.basis.rule_id) == ("STHJJ", "R-NOISE")
    assert in_mingshui.basis.area_code == TOWN_1


def test_an_unknown_category_goes_to_triage_naming_the_code():
    decision = decide(CaseFacts(category_code="ZZ-99999", lon=0.5, lat=0.5), REF)
    assert decision.triage and "ZZ-99999" in decision.basis.reason
    assert decision.basis.grid_code == GRID_1  # where it is still helps the operator


def test_a_source_code_listed_as_an_alias_is_understood():
    assert (
        decide(CaseFacts(category_code="06028", address="明水街道"), REF).basis.category_code == "UM-E06028"
    )


def test_without_a_category_code_the_description_keywords_decide_and_the_reason_says_so():
    decision = decide(CaseFacts(description="楼下广场舞噪音太大", address="明水街道"), REF)
    assert decision.assignee.code == "STHJJ"
    assert "「噪音」" in decision.basis.reason
    assert decide(CaseFacts(description="想咨询一下政策", address="明水街道"), REF).triage


def test_a_category_without_rules_and_a_case_nowhere_both_go_to_triage():
    assert (
        "第7版职责清单中没有规则"
        in decide(CaseFacts(category_code="HL-EMPTY", address="明水街道"), REF).basis.reason
    )
    nowhere = decide(CaseFacts(category_code="UM-E06028"), REF)
    assert nowhere.triage and "无法确定案件位置" in nowhere.basis.reason


def test_excluded_assignees_are_skipped_in_order_and_when_none_is_left_the_case_goes_to_triage():
    facts = CaseFacts(category_code="UM-E06028", address="明水街道")
    second = decide(facts, REF, exclude=frozenset({"department:STHJJ"}))
    assert second.assignee.code == "CGJ" and "已退单" in second.basis.reason
    none_left = decide(
        facts, REF, exclude=frozenset({"department:STHJJ", "department:CGJ", "department:ZJJ"})
    )
    assert none_left.triage and "均已退单" in none_left.basis.reason


def test_what_intake_already_resolved_is_used_when_there_is_no_point():
    by_town = decide(CaseFacts(unified_category="UM-E06028", town_code="370114002000"), REF)
    assert (by_town.assignee.code, by_town.basis.method) == ("ZJJ", "address-text")
    by_grid = decide(CaseFacts(category_code="UM-E06010", grid_code=GRID_2), REF)
    assert (by_grid.assignee.code, by_grid.basis.method) == (GRID_2, "reported-grid")


def test_a_fine_source_code_beats_the_coarse_category_and_prefixes_are_ignored():
    facts = CaseFacts(category_code="event:06028", unified_category="UM-E06010", address="明水街道")
    assert decide(facts, REF).basis.category_code == "UM-E06028"


def test_intake_saying_the_point_is_outside_the_district_means_triage():
    decision = decide(CaseFacts(category_code="UM-E06010", lon=0.5, lat=0.5, outside_jurisdiction=True), REF)
    assert decision.triage and "章丘区外" in decision.basis.reason
