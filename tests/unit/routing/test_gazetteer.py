from __future__ import annotations

import pytest

from services.routing.domain.gazetteer import name_variants
from services.routing.refdata_files import read_bundle


@pytest.fixture(scope="module")
def gazetteer():
    return read_bundle().reference_data(1).gazetteer


def test_official_names_yield_the_short_forms_citizens_use():
    assert {"明一社区", "明一"} <= name_variants("明一社区居民委员会")
    assert {"朱家峪村", "朱家峪"} <= name_variants("朱家峪村村民委员会")
    assert "明水" in name_variants("明水街道") and "垛庄" in name_variants("垛庄镇")


@pytest.mark.parametrize(
    ("text", "area", "town"),
    [
        ("章丘区明水街道汇泉路", "明水街道", "明水街道"),
        ("刁镇政府门口", "刁镇街道", "刁镇街道"),  # a town until 2020
        ("黄河镇某村", "黄河街道", "黄河街道"),
        ("官庄街道朱家峪村委会", "朱家峪村村民委员会", "官庄街道"),  # the 2022 name
        ("朱家峪村委会东头", "朱家峪村村民委员会", "官庄街道"),
        ("双山大街与经十路路口", "双山街道", "双山街道"),  # 双山 is the town here, not 双山村
        ("绣惠西关村委会", "绣惠街道", "绣惠街道"),  # a village merged away in 2023
    ],
)
def test_addresses_resolve_to_the_most_specific_area(gazetteer, text, area, town):
    match = gazetteer.resolve(text)
    assert match is not None
    assert (match.area.name, match.town.name) == (area, town)


def test_text_naming_no_place_resolves_to_nothing(gazetteer):
    assert gazetteer.resolve("某某路123号") is None
    assert gazetteer.resolve("") is None and gazetteer.resolve(None) is None
