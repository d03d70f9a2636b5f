"""The bench's storage figures: growth per case, and a year with and without housekeeping."""

from __future__ import annotations

from bench._pgstat import storage_growth


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
