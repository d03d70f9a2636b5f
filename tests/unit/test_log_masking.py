from __future__ import annotations

from runtime.logging import mask_pii


def test_phone_and_id_numbers_in_free_text_are_masked():
    text = "市民13805311234来电，身份证370114199001011234，订单号12345-2026-0000001"
    masked = mask_pii(text)
    assert "13805311234" not in masked and "138****1234" in masked
    assert "370114199001011234" not in masked and "370114********1234" in masked
    assert "12345-2026-0000001" in masked  # order numbers are not personal data


def test_mobile_numbers_with_a_country_code_or_separators_are_masked_too():
    for written in ("+8618975701930", "008618975701930", "8618975701930", "+86 189 7570 1930",
                    "189-7570-1930", "86-18975701930"):  # fmt: skip
        masked = mask_pii(f"[sms] to {written}: 您的诉求已受理")
        assert "7570" not in masked and "189****1930" in masked, masked
    assert mask_pii("工单ZQ20261129000036") == "工单ZQ20261129000036"  # a case number is not a phone
