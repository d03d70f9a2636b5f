from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts.events import AppealType, Urgency
from devtools.sample import hotline_order
from services.intake import domain
from services.intake.schemas import HotlineOrderCreate


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("13805311234", "138****1234"), ("0531-83213030", "053*****3030"), ("12345", "*****"), (None, None)],
)
def test_phone_numbers_are_masked_to_prefix_and_last_four(phone, masked):
    assert domain.mask_phone(phone) == masked


def test_names_keep_only_the_surname():
    assert domain.mask_name("张三") == "张*"
    assert domain.mask_name("欧阳修文") == "欧***"


def test_case_numbers_use_the_local_china_date():
    late_utc = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # already 27 Nov in Jinan
    assert domain.case_number("ZQ", late_utc, 42) == "ZQ20261127000042"


def test_citizen_reference_is_stable_keyed_and_free_of_the_number():
    ref = domain.citizen_ref("138 0531 1234", "k1")
    assert ref == domain.citizen_ref("13805311234", "k1")
    assert ref != domain.citizen_ref("13805311234", "k2")
    assert ref.startswith("cz_") and "13805311234" not in ref


def test_hotline_orders_accept_chinese_appeal_types_and_urgency():
    order = HotlineOrderCreate.model_validate(hotline_order(3) | {"appeal_type": "举报", "urgency": "紧急"})
    assert order.appeal_type is AppealType.REPORT
    assert order.urgency is Urgency.URGENT


def test_hotline_orders_refuse_naive_times_and_unknown_fields():
    with pytest.raises(ValidationError) as caught:
        HotlineOrderCreate.model_validate(hotline_order(4) | {"called_at": "2026-11-26T09:30:00", "extra": 1})
    assert {e["loc"][0] for e in caught.value.errors()} == {"called_at", "extra"}


def test_a_retry_has_the_same_fingerprint_and_a_changed_body_does_not():
    body = hotline_order(5)
    assert domain.fingerprint(domain.CaseSource.HOTLINE, body) == domain.fingerprint(
        domain.CaseSource.HOTLINE, dict(reversed(list(body.items())))
    )
    assert domain.fingerprint(domain.CaseSource.HOTLINE, body) != domain.fingerprint(
        domain.CaseSource.HOTLINE, body | {"content": "x"}
    )
