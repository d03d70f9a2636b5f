"""Pure case rules: duplicates, the citizen's actions, the vault cipher, rate limiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake import domain
from services.intake.limits import RateLimiter
from services.intake.vault import DEVELOPMENT_KEY, VaultCipher, VaultError

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
POLICY = domain.DuplicatePolicy()


def open_case(case_id: str, **overrides) -> domain.OpenCase:
    values = dict(
        case_id=case_id, category="noise", citizen_ref="cz_a", lat=36.71, lon=117.53, received_at=NOW
    )
    return domain.OpenCase(**(values | overrides))


def test_the_same_caller_and_category_within_seven_days_is_a_duplicate_of_the_earliest_case():
    older = open_case("A", received_at=NOW - timedelta(days=6), lat=None, lon=None)
    newer = open_case("B", received_at=NOW - timedelta(days=1), lat=None, lon=None)
    match = domain.find_duplicate("noise", "cz_a", None, None, NOW, [newer, older], POLICY)
    assert match is not None and match.primary_case_id == "A" and match.reason == "same_caller_same_category"


def test_the_same_caller_after_eight_days_or_in_another_category_is_not_a_duplicate():
    stale = open_case("A", received_at=NOW - timedelta(days=8), lat=None, lon=None)
    assert domain.find_duplicate("noise", "cz_a", None, None, NOW, [stale], POLICY) is None
    assert domain.find_duplicate("fees", "cz_a", None, None, NOW, [open_case("B")], POLICY) is None


def test_the_same_category_within_250_m_and_48_h_is_a_duplicate_but_not_at_300_m_or_49_h():
    near = open_case("A", citizen_ref=None, lat=36.71 + 200 / 111_195)
    far = open_case("B", citizen_ref=None, lat=36.71 + 300 / 111_195)
    late = open_case("C", citizen_ref=None, received_at=NOW - timedelta(hours=49))
    assert domain.find_duplicate("noise", None, 36.71, 117.53, NOW, [near], POLICY).primary_case_id == "A"
    assert domain.find_duplicate("noise", None, 36.71, 117.53, NOW, [far, late], POLICY) is None


def test_thresholds_are_configurable():
    wide = domain.DuplicatePolicy(nearby_radius_m=400)
    far = open_case("B", citizen_ref=None, lat=36.71 + 300 / 111_195)
    assert domain.find_duplicate("noise", None, 36.71, 117.53, NOW, [far], wide) is not None


def test_unclassified_appeals_are_never_linked():
    candidates = [open_case("A", category="unclassified")]
    assert domain.find_duplicate("unclassified", "cz_a", 36.71, 117.53, NOW, candidates, POLICY) is None


def test_withdrawing_closes_and_a_second_withdrawal_does_nothing():
    events = domain.withdraw("ZQ1", "open", "已解决", NOW, "hotline")
    assert [type(e).__name__ for e in events] == ["AppealWithdrawn", "CaseClosed"]
    assert events[1].reason == "withdrawn"
    assert domain.withdraw("ZQ1", "withdrawn", None, NOW, "hotline") == []
    with pytest.raises(domain.IllegalTransition):
        domain.withdraw("ZQ1", "closed", None, NOW, "hotline")


@pytest.mark.parametrize(
    ("rating", "then"), [("满意", "CaseClosed"), ("基本满意", "CaseClosed"), ("不满意", "CaseReopened")]
)
def test_feedback_after_a_reply_closes_or_reopens(rating, then):
    events = domain.feedback("ZQ1", "replied", 0, rating, None, "评价", NOW, "hotline")
    assert [type(e).__name__ for e in events] == ["FeedbackReceived", then]


def test_feedback_before_a_reply_is_an_illegal_transition_naming_the_status():
    with pytest.raises(domain.IllegalTransition) as caught:
        domain.feedback("ZQ1", "open", 0, "满意", None, None, NOW, "hotline")
    assert caught.value.status == "open"


def test_the_vault_binds_each_value_to_its_case_and_field():
    cipher = VaultCipher.from_setting(DEVELOPMENT_KEY)
    sealed = cipher.seal("ZQ1", "phone", "+8613805311234")
    assert b"13805311234" not in sealed
    assert cipher.open("ZQ1", "phone", sealed) == "+8613805311234"
    with pytest.raises(VaultError):
        cipher.open("ZQ2", "phone", sealed)
    with pytest.raises(VaultError):
        cipher.open("ZQ1", "name", sealed)


def test_rotated_vault_keys_still_open_old_values():
    old = VaultCipher.from_setting("1:" + DEVELOPMENT_KEY)
    sealed = old.seal("ZQ1", "name", "张三")
    rotated = VaultCipher.from_setting("2:" + "A" * 43 + "=," + "1:" + DEVELOPMENT_KEY)
    assert rotated.open("ZQ1", "name", sealed) == "张三"
    assert rotated.seal("ZQ1", "name", "张三")[0] == 2


def test_the_rate_limiter_allows_a_burst_then_asks_to_retry_and_refills_over_time():
    now = [100.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert [limiter.check("a"), limiter.check("a"), limiter.check("a")] == [0, 0, 1]
    assert limiter.check("b") == 0  # per client key
    now[0] += 1.0
    assert limiter.check("a") == 0
