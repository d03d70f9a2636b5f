"""The bench's derived figures: storage growth per case and a year with and without housekeeping, the
services' garbage-collector pauses between two scrapes of their /metrics, and a long replay's progress."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bench._pgstat import deliveries_during, row_writes_per_case, storage_growth
from bench._report import _deliveries, _drain, _postgres_settings, _progress, ratios
from bench._watch import gc_histogram, gc_pause_delta
from bench.e2e import progress_intervals, quiet_hours_env, time_scaled_env
from services.intake.config import IntakeSettings


def test_growth_per_case_and_a_year_with_trimmed_tables_holding_only_their_window():
    before = {
        "gridline_sla.inbox": 8_192,
        "gridline_projection.case_summary": 16_384,
        "gridline_sla.tracking": 8_192,
    }
    after = {
        "gridline_sla.inbox": 8_192 + 1_000 * 200,  # 200 bytes a case
        "gridline_projection.case_summary": 16_384 + 1_000 * 1_000,  # 1,000 bytes a case
        "gridline_sla.tracking": 8_192,  # did not grow: not listed
        "gridline_notify.deliveries": 1_000 * 300,  # new since before: 300 bytes a case
    }
    growth = storage_growth(before, after, 1_000, {"inbox": 36.5}, held_cases=2_000, year=100_000)

    assert growth["bytes_per_case"] == {
        "gridline_projection.case_summary": 1_000,
        "gridline_notify.deliveries": 300,
        "gridline_sla.inbox": 200,
    }
    assert growth["total_bytes_per_case"] == 1_500
    assert growth["year_gb_without_housekeeping"] == 0.15  # 1,500 bytes x 100,000 cases
    # the inbox keeps a tenth of the year (36.5 days): 200 x 100,000 / 10 bytes instead of 200 x 100,000
    assert growth["year_gb"] == round((1_300 * 100_000 + 200 * 100_000 / 10) / 1e9, 2)
    # everything the tables hold now, over every case received so far
    assert growth["held_bytes_per_case"] == round(sum(after.values()) / 2_000)


def test_gc_pauses_between_two_scrapes():
    def scrape(young: int, full: int, seconds: float, buckets: dict[str, tuple[int, int]]) -> list[str]:
        lines = [
            f'gridline_gc_pause_seconds_count{{generation="0"}} {young}.0',
            f'gridline_gc_pause_seconds_count{{generation="2"}} {full}.0',
            f'gridline_gc_pause_seconds_sum{{generation="0"}} {seconds / 2}',
            f'gridline_gc_pause_seconds_sum{{generation="2"}} {seconds / 2}',
            f'gridline_gc_pause_seconds_bucket{{generation="0",le="+Inf"}} {young}.0',
            "gridline_http_requests_total 7.0",
        ]
        for le, (gen0, gen2) in buckets.items():
            lines.append(f'gridline_gc_pause_seconds_bucket{{generation="0",le="{le}"}} {gen0}.0')
            lines.append(f'gridline_gc_pause_seconds_bucket{{generation="2",le="{le}"}} {gen2}.0')
        return lines

    before = {"intake": gc_histogram(scrape(10, 1, 0.3, {"0.001": (10, 0), "0.25": (10, 1), "0.5": (10, 1)}))}
    # three young collections (two within 1 ms, one within 250 ms) and one full one within 500 ms
    after = {"intake": gc_histogram(scrape(13, 2, 0.9, {"0.001": (12, 0), "0.25": (13, 1), "0.5": (13, 2)}))}
    assert gc_pause_delta(before, after) == {
        "intake": {"collections": 4, "full": 1, "pause_ms": 600.0, "longest_ms_at_most": 500.0}
    }
    # nothing collected in between: no longest pause to speak of
    assert gc_pause_delta(after, after)["intake"] == {
        "collections": 0,
        "full": 0,
        "pause_ms": 0.0,
        "longest_ms_at_most": None,
    }


def _sample(elapsed: float, accepted: int, projected: int, cpu: dict[str, float], size: int) -> dict:
    return {
        "elapsed_s": elapsed,
        "accepted": accepted,
        "projected": projected,
        "cpu_seconds": cpu,
        "database_bytes": size,
    }


def test_replay_progress_as_intervals_with_their_rates_and_cpu_per_case():
    samples = [
        _sample(0.0, 0, 0, {"intake": 10.0, "postgres": 5.0, "bench": 1.0}, 100),
        _sample(60.0, 6_000, 4_800, {"intake": 40.0, "postgres": 29.0, "bench": 7.0}, 1_000),
        _sample(60.0, 6_000, 4_800, {"intake": 40.0, "postgres": 29.0, "bench": 7.0}, 1_000),  # no time
        _sample(120.0, 9_000, 6_000, {"intake": 52.0, "postgres": 41.0, "bench": 10.0}, 1_900),
    ]
    first, second = progress_intervals(samples)

    assert first["until_s"] == 60.0 and first["accepted"] == 6_000 and first["projected"] == 4_800
    assert first["accepted_per_s"] == 100.0 and first["projected_per_s"] == 80.0
    # 30 s of intake and 24 of PostgreSQL for 4,800 cases; the bench is reported but not Gridline's
    assert first["cpu_ms_per_projected_case"] == {
        "intake": 6.25,
        "postgres": 5.0,
        "bench": 1.25,
        "gridline": 11.2,
    }
    assert first["cores_gridline"] == 0.9 and first["cores_all"] == 1.0
    assert first["database_bytes"] == 1_000
    assert second["projected_per_s"] == 20.0 and second["accepted_per_s"] == 50.0
    assert second["cpu_ms_per_projected_case"]["gridline"] == 20.0  # 24 s for 1,200 cases
    assert second["database_bytes"] == 1_900


def test_replay_progress_with_nothing_projected_has_no_cpu_per_case():
    samples = [_sample(0.0, 0, 0, {"intake": 1.0}, 0), _sample(30.0, 10, 0, {"intake": 2.0}, 0)]
    (interval,) = progress_intervals(samples)
    assert interval["projected_per_s"] == 0.0 and interval["cpu_ms_per_projected_case"] is None


def test_progress_table_keeps_at_most_its_rows_and_always_the_last_interval():
    samples = [
        _sample(60.0 * i, 100 * i, 90 * i, {"intake": 3.0 * i, "bench": 1.0 * i}, 10**9 * i)
        for i in range(51)
    ]
    lines = _progress(progress_intervals(samples), rows=10)
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]

    assert len(rows) == 10
    assert rows[-1].startswith("| 50.0 | 5,000 | 4,500 | 1.7 | 1.5 | 0.05 | 33.3 | 33.33 | 11.11 | 50.00 |")
    assert rows[0].startswith("| 5.0 | 500 | 450 |")  # every fifth of 50, counted back from the last
    assert _progress(progress_intervals(samples[:2])) == []  # one interval: no table


def test_time_scale_divides_intakes_duplicate_windows_and_one_leaves_them(monkeypatch):
    assert time_scaled_env(1.0) == {}
    env = time_scaled_env(4000)
    assert float(env["GRIDLINE_DUPLICATE_NEARBY_HOURS"]) == 48 / 4000
    assert float(env["GRIDLINE_DUPLICATE_SAME_CALLER_DAYS"]) == 7 / 4000
    for name, value in env.items():  # intake reads them from its environment, as any setting
        monkeypatch.setenv(name, value)
    settings = IntakeSettings()
    assert settings.duplicate_nearby_hours * 3600 == pytest.approx(43.2)
    assert settings.duplicate_same_caller_days * 86400 == pytest.approx(151.2)


def test_postgres_settings_line_names_each_setting_and_is_absent_for_runs_that_did_not_record_them():
    (blank, line) = _postgres_settings({"shared_buffers": "128MB", "max_wal_size": "1GB"})
    assert blank == "" and line == "PostgreSQL: shared_buffers 128MB · max_wal_size 1GB"
    assert _postgres_settings(None) == [] and _postgres_settings({}) == []


def test_row_writes_per_case_counts_new_row_versions_into_every_index_and_ranks_the_tables():
    before = {
        "gridline_projection.case_summary": {
            "inserted": 10,
            "updated": 5,
            "hot": 0,
            "deleted": 0,
            "indexes": 14,
        },
        "gridline_sla.outbox": {"inserted": 0, "updated": 0, "hot": 0, "deleted": 0, "indexes": 2},
    }
    after = {
        # 100 cases: 100 inserts, 300 updates of which 100 in place → 300 new versions × 14 indexes
        "gridline_projection.case_summary": {
            "inserted": 110,
            "updated": 305,
            "hot": 100,
            "deleted": 0,
            "indexes": 14,
        },
        "gridline_sla.outbox": {"inserted": 300, "updated": 0, "hot": 0, "deleted": 300, "indexes": 2},
        "gridline_sla.idle": {"inserted": 0, "updated": 0, "hot": 0, "deleted": 0, "indexes": 1},
        "gridline_notify.new_table": {"inserted": 50, "updated": 0, "hot": 0, "deleted": 0, "indexes": 1},
    }
    rows = row_writes_per_case(before, after, cases=100)

    assert [r["table"] for r in rows] == [
        "gridline_projection.case_summary",
        "gridline_sla.outbox",
        "gridline_notify.new_table",  # not there before: counted from nothing
    ]  # a table nothing was written to is left out
    summary, outbox, new = rows
    assert summary["inserted"] == 1.0 and summary["updated"] == 3.0 and summary["hot"] == 1.0
    assert summary["index_entries"] == 42.0
    assert outbox["deleted"] == 3.0 and outbox["index_entries"] == 6.0
    assert new["index_entries"] == 0.5
    assert row_writes_per_case(before, after, cases=100, limit=1) == rows[:1]


def test_the_goal_rates_p99_is_reported_saturated_or_not_and_missing_only_without_its_step():
    def step(offered, accepted, saturated, p99):
        return {
            "offered_per_s": offered,
            "accepted_per_s": accepted,
            "projected_per_s": accepted,
            "saturated": saturated,
            "events_consumed_per_s": {"projection": accepted * 6},
            "latency_ms": {"accept_to_visible": {"p50": p99 / 3, "p95": p99 / 2, "p99": p99}},
        }

    raw = {"kafka_consume_msgs_per_s": 40_000, "fastapi_json_post_per_s_wrk": 5_000}
    key = "p99 accept→visible at 300/s in ms (goal ≤ 500)"

    held = ratios({"raw_limits": raw, "steps": [step(200, 200, False, 300), step(300, 299.5, False, 420)]})
    assert held["goals"][key] == 420
    steps = [step(200, 200, False, 300), step(300, 235.2, True, 2480)]
    saturated = ratios({"raw_limits": raw, "steps": steps})
    assert saturated["goals"][key] == "2,480 (saturated: 235.2 cases/s accepted of 300 offered)"
    stopped = ratios({"raw_limits": raw, "steps": [step(200, 150, True, 5000)]})
    assert stopped["goals"][key] == "not measured: stepping saturated below 300/s"


def test_notifications_left_behind_by_a_replay_are_reported_with_what_was_sent():
    before = {
        "total": 100,
        "sent": 90,
        "failed": 1,
        "due": 0,
        "not_due": 9,
        "quiet_hours": 9,
        "oldest_due_s": 0.0,
    }
    after = {
        "total": 1_500,
        "sent": 690,
        "failed": 3,
        "due": 500,
        "not_due": 307,
        "quiet_hours": 300,
        "oldest_due_s": 42.26,
    }
    figures = deliveries_during(before, after, cases=1_000, seconds=60.0)
    assert figures == {
        "queued_per_case": 1.4,
        "sent": 600,
        "sent_per_s": 10.0,
        "left_due": 500,
        "oldest_due_s": 42.3,
        "left_not_due": 307,
        "left_for_quiet_hours": 300,
        "failed": 2,
    }
    line = _deliveries(figures)
    assert "queued 1.4 a case" in line and "600 while it ran (10.0/s)" in line
    assert "500 were due and not yet sent (the oldest due for 42 s)" in line and "300 of them" in line


def test_notify_drain_reports_told_end_to_end_or_what_was_still_to_send():
    drained = {
        "seconds": 51.5,
        "sent": 17_000,
        "sent_per_s": 330.1,
        "cpu_ms_per_message": {"notify": 1.52, "intake": 0.61, "kafka": 0.01, "postgres": 0.4},
        "left_outstanding": 0,
        "failed": 2,
        "wall_seconds_until_all_notified": 113.2,
        "end_to_end_notified_cases_per_s": 176.7,
    }
    line = _drain(drained)
    assert "17,000 messages sent in 51.5 s (330.1/s, 2 failed)" in line
    assert "notify 1.52, intake 0.61, postgres 0.4;" in line and "kafka" not in line  # below 0.05 left out
    assert "after 113.2 s = 176.7 cases/s end to end" in line
    stalled = drained | {
        "left_outstanding": 900,
        "wall_seconds_until_all_notified": None,
        "end_to_end_notified_cases_per_s": None,
    }
    line = _drain(stalled)
    assert "900 were still to send" in line and "not all notified" in line and "cases/s" not in line


def test_quiet_hours_are_an_empty_window_for_the_bench_unless_kept(monkeypatch):
    from services.notify.config import NotifySettings
    from services.notify.domain.policy import QuietHours

    assert quiet_hours_env(True) == {}
    for name, value in quiet_hours_env(False).items():
        monkeypatch.setenv(name, value)
    settings = NotifySettings()
    quiet = QuietHours(settings.notify_quiet_hours_start, settings.notify_quiet_hours_end)
    night = datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert not quiet.contains(night) and QuietHours().contains(night)
