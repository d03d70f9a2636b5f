from __future__ import annotations

from runtime.logging import mask_pii


def test_phone_and_id_numbers_in_free_text_are_masked():
    text = "市民13805311234来电，身份证370114199001011234，订单号12345-2026-0000001"
    masked = mask_pii(text)
    assert "13805311234" not in masked and "138****1234" in masked
    assert "370114199001011234" not in masked and "370114********1234" in masked
    assert "12345-2026-0000001" in masked  # order numbers are not personal data
