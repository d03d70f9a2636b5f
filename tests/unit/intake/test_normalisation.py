"""Normalisation of what sources send: text, phone numbers, coordinates, categories, places."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import CoordinateSystem
from devtools.sample import hotline_order
from services.intake import appeals, categories, domain, geo
from services.intake.normalise import (
    PhoneNumberInvalid,
    e164_by_phonenumbers,
    fold_width,
    mask_e164,
    mask_numbers_in_text,
    normalise_text,
    to_e164,
    to_utc,
)
from services.intake.schemas import HotlineOrderCreate

RULES = appeals.Normalisation()
mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


def test_full_width_letters_digits_and_spaces_fold_but_chinese_punctuation_stays():
    assert normalise_text("ＡＢＣ１２３\u3000号楼，路灯不亮！") == "ABC123 号楼，路灯不亮！"


def test_whitespace_runs_fold_and_line_wraps_inside_chinese_text_disappear():
    assert normalise_text("  明水街道\n\n百脉泉路 \t 路灯  不亮 ") == "明水街道百脉泉路路灯不亮"
    assert normalise_text("LED 路灯") == "LED 路灯"


@given(st.text())
def test_normalising_is_idempotent_and_leaves_no_full_width_ascii_or_double_spaces(text):
    once = normalise_text(text)
    assert normalise_text(once) == once
    assert "  " not in once and once == once.strip()
    assert not any("\uff01" <= ch <= "\uff5e" and ch not in "，！？（）：；～" for ch in once)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13805311234", "+8613805311234"),
        ("138 0531 1234", "+8613805311234"),
        ("+86 138-0531-1234", "+8613805311234"),
        ("008613805311234", "+8613805311234"),
        ("１３８０５３１１２３４", "+8613805311234"),
        ("0531-83213030", "+8653183213030"),
        ("(0531)83213030", "+8653183213030"),
        ("83213030", "+8653183213030"),  # a Jinan number without its area code
        ("010-65132255", "+861065132255"),
    ],
)
def test_phone_numbers_become_e164(raw, e164):
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "abc", "1380531123", "99999999999999"])
def test_impossible_phone_numbers_are_refused(raw):
    with pytest.raises(PhoneNumberInvalid):
        to_e164(raw)


def test_e164_numbers_are_masked_as_people_read_them():
    assert mask_e164("+8613805311234") == "138****1234"
    assert mask_e164("+8653183213030") == "0531****3030"
    assert mask_e164("+861065132255") == "010****2255"


@given(mobiles, st.text(max_size=40), st.text(max_size=40), st.sampled_from(["", " ", "-"]))
def test_a_mobile_number_typed_anywhere_in_free_text_is_masked(number, before, after, sep):
    typed = f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}"
    masked = mask_numbers_in_text(normalise_text(f"{before} 电话{typed} {after}"))
    assert re.sub(r"[ -]", "", typed) not in re.sub(r"[ -]", "", masked) or number in re.sub(
        r"\D", "", before + after
    )


@settings(max_examples=200)
@given(mobiles, st.text(max_size=200), st.text(min_size=1, max_size=10))
def test_no_event_from_any_hotline_payload_carries_the_callers_unmasked_phone(number, content, name):
    order = hotline_order(1) | {
        "caller_phone": number,
        "caller_name": name,
        "content": f"{content}请回电{number}",
    }
    try:
        parsed = HotlineOrderCreate.model_validate(order)
        appeal = appeals.from_hotline(parsed, RULES)
    except (ValueError, domain.InvalidField):
        return  # refused input carries nothing anywhere
    event = domain.case_received(appeal, "ZQ20261126000001", datetime.now(UTC), "secret")
    serialised = event.model_dump_json()
    assert number not in serialised and number[3:] not in serialised
    assert event.citizen.phone_masked == f"{number[:3]}****{number[-4:]}"


def test_id_numbers_in_text_are_masked():
    assert mask_numbers_in_text("身份证370114199001011234") == "身份证370114********1234"


def test_timestamps_become_utc_honouring_the_source_offset():
    local = datetime(2026, 11, 26, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    assert to_utc(local) == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        to_utc(datetime(2026, 11, 26, 9, 30))


@given(st.from_regex(r"(\+86)?1[0-9]{10}", fullmatch=True))
def test_the_mobile_shortcut_answers_as_phonenumbers_does(number):
    # Every 11-digit number starting with 1 (with or without +86): the same E.164, or refused alike.
    try:
        expected = e164_by_phonenumbers(number)
    except PhoneNumberInvalid:
        with pytest.raises(PhoneNumberInvalid):
            to_e164(number)
    else:
        assert to_e164(number) == expected


def test_fold_width_keeps_cjk_characters():
    assert fold_width("章丘区１号") == "章丘区1号"


@given(st.text())
def test_fold_width_is_nfkc_character_by_character_except_chinese_punctuation(text):
    # The translate table must fold exactly as normalising each character would; "，" and "。" stay.
    expected = "".join(
        ch if ch in "，。、：；！？（）《》【】「」『』“”‘’—…·～" else unicodedata.normalize("NFKC", ch)
        for ch in text
    )
    assert fold_width(text) == expected
    assert fold_width(text + "，ＡＢ") == expected + "，AB"


# Coordinates ------------------------------------------------------------------------------------------


def test_tiananmen_gcj02_matches_the_published_offset_of_its_wgs84_position():
    lat, lon = geo.wgs84_to_gcj02(39.908720, 116.397480)
    assert geo.distance_m(lat, lon, 39.910120, 116.403720) < 5  # published GCJ-02 of the same point


@given(st.floats(36.4, 37.1), st.floats(117.1, 117.8))
def test_gcj02_round_trips_to_wgs84_within_centimetres_and_bd09_within_a_metre(lat, lon):
    gcj = geo.wgs84_to_gcj02(lat, lon)
    assert geo.distance_m(*geo.to_wgs84(*gcj, CoordinateSystem.GCJ02), lat, lon) < 0.05
    bd = geo.gcj02_to_bd09(*gcj)
    # Baidu publishes no exact inverse; the usual one is good to about a decimetre.
    assert geo.distance_m(*geo.to_wgs84(*bd, CoordinateSystem.BD09), lat, lon) < 1.0


def test_gcj02_differs_from_wgs84_by_hundreds_of_metres_in_zhangqiu_and_not_at_all_abroad():
    assert 300 < geo.distance_m(*geo.wgs84_to_gcj02(36.71, 117.53), 36.71, 117.53) < 800
    assert geo.wgs84_to_gcj02(48.85, 2.35) == (48.85, 2.35)


def test_the_district_contains_mingshui_but_not_jinan_city_centre_or_the_bbox_corner():
    district = geo.zhangqiu()
    assert district.contains_wgs84(36.711888, 117.534758)
    assert not district.contains_wgs84(36.6512, 117.1201)
    assert not district.contains_wgs84(37.07, 117.19)  # inside the bbox, outside the outline


# Categories and places -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feed", "code", "category"),
    [
        ("grid", "矛盾纠纷/7", "dispute"),
        ("grid", "event:06018", "city_appearance"),
        ("grid", "component:01001", "municipal_facility"),
        ("grid", "01037", "municipal_facility"),
        ("hotline", "900101", "noise"),
        ("hotline", "教育", "education"),
        ("open311", "09006", "street_order"),
    ],
)
def test_each_sources_codes_map_into_the_unified_table(feed, code, category):
    assert categories.classify(feed, code).category == category


@given(st.one_of(st.none(), st.text(max_size=30)))
def test_unknown_codes_are_unclassified_never_an_error(code):
    found = categories.classify("grid", code)
    assert found.category in categories.table().names()


def test_the_category_table_keeps_a_source_reference_on_every_row():
    table = categories.table()
    assert len(table.rows) > 900
    with open(categories.DATA / "categories.csv", encoding="utf-8") as source:
        assert all(line.rstrip().split(",")[-1] for line in source)


def test_addresses_name_their_town_and_community_including_2022_names():
    place = categories.locate_address("章丘区明水街道明一居委会东门")
    assert (place.town_code, place.community_code) == ("370114001000", "370114001001")
    assert categories.locate_address("双山街道某小区").town_code == "370114002000"
    assert categories.locate_address("北京市朝阳区") == categories.Place()
