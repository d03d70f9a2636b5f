from __future__ import annotations

import random
from datetime import UTC, datetime, time

from services.notify.domain.policy import CircuitBreaker, CircuitState, QuietHours, backoff_delay


def test_backoff_grows_exponentially_with_jitter_inside_half_to_full_ceiling():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40)]:
        delays = [backoff_delay(attempt, base_s=5, cap_s=600, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 150  # jittered, not in step


def test_backoff_is_capped():
    assert backoff_delay(30, base_s=5, cap_s=60, rng=random.Random(1)) <= 60


def test_the_circuit_opens_after_the_threshold_and_refuses_calls_until_the_cooldown():
    breaker = CircuitBreaker(threshold=3, cooldown_s=10)
    for _ in range(2):
        breaker.record_failure(now=0)
    assert breaker.allow(now=0)
    breaker.record_failure(now=1)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow(now=5)
    assert breaker.retry_after(now=5) == 6


def test_after_the_cooldown_one_trial_call_goes_through_and_its_success_closes_the_circuit():
    breaker = CircuitBreaker(threshold=1, cooldown_s=10)
    breaker.record_failure(now=0)
    assert breaker.allow(now=10)
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow(now=10)  # only one trial at a time
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow(now=11)


def test_a_failed_trial_reopens_the_circuit_for_another_cooldown():
    breaker = CircuitBreaker(threshold=5, cooldown_s=10)
    for _ in range(5):
        breaker.record_failure(now=0)
    assert breaker.allow(now=10)
    breaker.record_failure(now=10)
    assert breaker.state is CircuitState.OPEN and not breaker.allow(now=15)


def test_a_success_resets_the_consecutive_failure_count():
    breaker = CircuitBreaker(threshold=2, cooldown_s=10)
    breaker.record_failure(now=0)
    breaker.record_success()
    breaker.record_failure(now=1)
    assert breaker.state is CircuitState.CLOSED


QUIET = QuietHours(time(22, 0), time(8, 0), "Asia/Shanghai")


def test_daytime_messages_go_at_once():
    when = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 10:00 in Zhangqiu
    assert QUIET.next_allowed(when) == when


def test_a_late_evening_sms_waits_until_eight_the_next_morning():
    when = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)  # 22:30 in Zhangqiu
    assert QUIET.next_allowed(when) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def test_an_early_morning_sms_waits_until_eight_the_same_morning():
    when = datetime(2026, 11, 26, 21, 15, tzinfo=UTC)  # 05:15 on the 27th in Zhangqiu
    assert QUIET.next_allowed(when) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def test_the_window_edges_are_start_inclusive_and_end_exclusive():
    assert QUIET.contains(datetime(2026, 11, 26, 14, 0, tzinfo=UTC))  # 22:00
    assert not QUIET.contains(datetime(2026, 11, 27, 0, 0, tzinfo=UTC))  # 08:00
    assert not QuietHours(time(8), time(8)).contains(datetime(2026, 11, 26, 14, 0, tzinfo=UTC))
