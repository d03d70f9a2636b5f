"""The workload generator: deterministic, mixed as configured, and every payload one intake accepts."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timedelta

import pytest

from devtools.workload import CST, Workload, WorkloadMix
from devtools.workload.places import Places
from devtools.workload.topics import TOPICS
from services.intake.appeals import Normalisation, from_grid, from_hotline
from services.intake.categories import UNCLASSIFIED, classify, locate_address
from services.intake.open311.intake import appeal_from_form
from services.intake.schemas import FeedbackCreate, GridReportCreate, HotlineOrderCreate
from services.routing.schemas import DecideExtension, ReplyToCase, RequestExtension, ReturnCase

WEEK = 12_000  # a little over one simulated week at 1,650 cases a day


def as_json(submissions) -> list[str]:
    return [json.dumps(dataclasses.asdict(s), default=str, ensure_ascii=False) for s in submissions]


@pytest.fixture(scope="module")
def week():
    return Workload(seed=11).take(WEEK)


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    first, again, other = (Workload(seed=s).take(1500) for s in (5, 5, 6))
    assert as_json(first) == as_json(again)
    assert as_json(first) != as_json(other)


def test_a_week_spans_seven_days_at_the_configured_daily_volume(week):
    days = (week[-1].at - week[0].at) / timedelta(days=1)
    assert WEEK / days == pytest.approx(WorkloadMix().cases_per_day, rel=0.05)


def test_sources_follow_the_configured_mix(week):
    counts = Counter(s.source for s in week)
    assert counts["hotline"] / WEEK == pytest.approx(0.70, abs=0.02)
    assert counts["grid"] / WEEK == pytest.approx(0.25, abs=0.02)
    assert counts["open311"] / WEEK == pytest.approx(0.05, abs=0.01)


def test_a_different_source_mix_is_honoured():
    mix = WorkloadMix(sources={"hotline": 0.5, "grid": 0.0, "open311": 0.5})
    counts = Counter(s.source for s in Workload(seed=3, mix=mix).take(WEEK))  # weekdays favour the hotline
    assert counts["grid"] == 0
    assert counts["hotline"] / WEEK == pytest.approx(0.5, abs=0.02)


def test_hotline_calls_peak_in_office_hours_and_grid_members_report_by_day(week):
    hours = {src: Counter(s.at.hour for s in week if s.source == src) for src in ("hotline", "grid")}
    night = sum(hours["hotline"][h] for h in range(0, 5))
    morning = sum(hours["hotline"][h] for h in range(9, 11))
    assert morning > 5 * night
    assert sum(hours["grid"][h] for h in (0, 1, 2, 3, 4, 22, 23)) == 0


def test_weekends_are_quieter_than_weekdays(week):
    per_day = Counter(s.at.date() for s in week if s.at < week[0].at + timedelta(days=7))
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert max(weekend) < min(weekday)


def test_towns_are_drawn_by_population(week):
    shares = Places().town_shares()
    counts = Counter(s.town_code for s in week)
    for town, share in shares.items():
        assert counts[town] / WEEK == pytest.approx(share, abs=0.015)


def test_duplicates_re_report_a_recent_open_appeal_of_the_same_source_and_code(week):
    by_index = {s.index: s for s in week}
    duplicates = [s for s in week if s.duplicate_of is not None]
    assert len(duplicates) / WEEK == pytest.approx(WorkloadMix().duplicate_share, abs=0.015)
    for dup in duplicates:
        original = by_index[dup.duplicate_of]
        assert (original.source, original.category_code) == (dup.source, dup.category_code)
        assert original.plan is not None and dup.plan is None
        assert timedelta(0) < dup.at - original.at < timedelta(hours=48)
        if dup.source == "hotline":
            assert dup.body["caller_phone"] == original.body["caller_phone"]


def test_follow_up_plans_have_the_configured_rates(week):
    mix = WorkloadMix()
    plans = [s.plan for s in week if s.plan is not None]
    assert sum(p.return_reason is not None for p in plans) / len(plans) == pytest.approx(
        mix.return_share, abs=0.015
    )
    assert sum(p.extension is not None for p in plans) / len(plans) == pytest.approx(
        mix.extension_share, abs=0.015
    )
    rated = Counter(p.feedback.satisfaction for p in plans if p.feedback)
    total = sum(rated.values())
    for satisfaction, share in mix.satisfaction.items():
        assert rated[satisfaction] / total == pytest.approx(share, abs=0.02)


def test_grid_members_resolve_about_the_configured_share_on_the_spot(week):
    grid = [s for s in week if s.source == "grid" and s.duplicate_of is None]
    on_spot = sum(s.body["resolved_on_spot"] for s in grid) / len(grid)
    assert on_spot == pytest.approx(WorkloadMix().grid_resolved_on_spot, abs=0.03)
    assert all(s.plan is None for s in grid if s.body["resolved_on_spot"])


def test_every_payload_validates_against_intakes_request_models(week):
    rules = Normalisation()
    for s in week[:4000]:
        if s.source == "hotline":
            appeal = from_hotline(HotlineOrderCreate.model_validate(s.body), rules)
        elif s.source == "grid":
            appeal = from_grid(GridReportCreate.model_validate(s.body), rules)
        else:
            fields = {k: [v] for k, v in s.body.items()}
            appeal, _ = appeal_from_form(fields, f"o311:{s.index}", "open311-demo-client", rules)
        assert appeal.category.category != UNCLASSIFIED or s.category_code is None
        assert not appeal.outside_jurisdiction


def test_every_topic_code_lands_in_intakes_unified_categories():
    for topic in TOPICS:
        for feed, code in (
            ("hotline", topic.hotline_code),
            ("grid", topic.grid_code),
            ("open311", topic.open311_code),
        ):
            if code is not None:
                assert classify(feed, code).category != UNCLASSIFIED, (topic.key, feed, code)


def test_addresses_name_the_town_they_were_drawn_in(week):
    for s in week[:2000]:
        address = s.body.get("address") or s.body.get("address_string")
        if address:
            assert locate_address(address).town_code == s.town_code


def test_follow_up_bodies_validate_against_the_action_models(week):
    for plan in (s.plan for s in week if s.plan is not None):
        if plan.return_reason:
            ReturnCase.model_validate(plan.body("return"))
        if plan.extension:
            RequestExtension.model_validate(plan.body("extension"))
            DecideExtension.model_validate(plan.body("extension-decision"))
        ReplyToCase.model_validate(plan.body("reply"))
        if plan.feedback:
            FeedbackCreate.model_validate(plan.body("feedback"))


def test_restamping_moves_the_payload_time_and_nothing_else(week):
    hotline = next(s for s in week if s.source == "hotline")
    when = datetime(2027, 3, 1, 9, 30, tzinfo=CST)
    moved = hotline.restamped(when)
    assert HotlineOrderCreate.model_validate(moved.body).called_at == when
    assert {k: v for k, v in moved.body.items() if k != "called_at"} == {
        k: v for k, v in hotline.body.items() if k != "called_at"
    }
