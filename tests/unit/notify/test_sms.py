from __future__ import annotations

from services.notify.domain import sms


def test_seventy_chinese_characters_are_one_sms_and_seventy_one_are_two():
    assert sms.segments("网" * 70) == 1
    assert sms.segments("网" * 71) == 2
    assert sms.segments("网" * 134) == 2
    assert sms.segments("网" * 135) == 3


def test_plain_ascii_text_uses_the_gsm_limits_of_160_and_153():
    assert sms.segments("a" * 160) == 1
    assert sms.segments("a" * 161) == 2
    assert sms.segments("a" * 306) == 2
    assert sms.segments("a" * 160 + "网") == 3  # one Chinese character switches the whole text to UCS-2


def test_a_character_outside_the_basic_plane_costs_two_units():
    assert sms.units("𠀀") == 2
    assert sms.segments("网" * 69 + "𠀀") == 2


def test_split_cuts_long_text_into_67_character_parts():
    parts = sms.split("网" * 140)
    assert [len(p) for p in parts] == [67, 67, 6]
    assert "".join(parts) == "网" * 140


def test_fit_leaves_short_text_alone_and_cuts_long_text_to_the_segment_budget_with_an_ellipsis():
    assert sms.fit("您好", 1) == "您好"
    cut = sms.fit("网" * 200, 2)
    assert cut.endswith(sms.ELLIPSIS)
    assert len(cut) == 134 and sms.segments(cut) == 2
    assert len(sms.fit("网" * 200, 1)) == 70
