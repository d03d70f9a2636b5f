"""SREs' view: every service exposes its metrics, and no log line carries a citizen's phone number."""

from __future__ import annotations

import json
import re
import time

import httpx

from devtools.sample import hotline_order
from devtools.system import SERVICES
from tests.e2e.test_walking_skeleton import wait_for_case

# Series every service has once it has consumed an event.
SERIES = {
    "gridline_events_consumed_total",
    "gridline_consumer_lag",
    "gridline_outbox_backlog",
    "gridline_outbox_oldest_age_seconds",
}


def scrape(system, service: str) -> dict[str, float]:
    """Sum of every sample per metric name (labels folded)."""
    totals: dict[str, float] = {}
    for line in httpx.get(f"{system.url(service)}/metrics", timeout=5).text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def test_every_service_exposes_the_named_series_and_they_move(system, intake, cases):
    before = {name: scrape(system, name) for name in SERVICES}
    case_id = intake.post("/v1/intake/hotline", json=hotline_order(1, seed=505)).json()["case_id"]
    wait_for_case(cases, case_id)
    cases.get(f"/v1/cases/{case_id}")
    after = {name: scrape(system, name) for name in SERVICES}

    for name in SERVICES:
        assert SERIES - {
            "gridline_http_request_duration_seconds_bucket",
            "gridline_http_requests_total",
        } <= set(after[name]), name
        assert after[name]["gridline_events_consumed_total"] > before[name].get(
            "gridline_events_consumed_total", 0
        )
    assert after["intake"]["gridline_http_requests_total"] > before["intake"].get(
        "gridline_http_requests_total", 0
    )
    assert "gridline_http_request_duration_seconds_bucket" in after["projection"]
    assert after["intake"]["gridline_outbox_published_total"] >= 1
    # service-specific series: routing decisions by rule, sla's active timers
    assert after["routing"]["gridline_routing_decisions_total"] > before["routing"].get(
        "gridline_routing_decisions_total", 0
    )
    assert "gridline_sla_active_timers" in after["sla"]
    assert "gridline_sla_timer_lag_seconds_bucket" in after["sla"]


def test_no_service_log_line_carries_a_full_phone_number(system, intake, cases):
    orders = [hotline_order(i, seed=606) for i in range(10)]
    ids = [intake.post("/v1/intake/hotline", json=order).json()["case_id"] for order in orders]
    for case_id in ids:
        wait_for_case(cases, case_id)
    phones = {order["caller_phone"] for order in orders}

    lines = [line for path in system.log_dir.glob("*.log") for line in path.read_text().splitlines()]
    assert len(lines) > 50  # the services did log
    leaked = [line for line in lines if any(phone in line for phone in phones)]
    assert leaked == []
    structured = [json.loads(line) for line in lines if line.startswith("{")]
    assert structured and all("service" in entry and "level" in entry for entry in structured)


def test_every_service_runs_housekeeping_passes(system):
    """The e2e services sweep every 2 s (E2E_EXTRA_ENV): each worker has finished a pass, recently."""
    waiting = set(SERVICES)
    deadline = time.monotonic() + 20
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            last_pass = scrape(system, name).get("gridline_housekeeping_last_pass_timestamp_seconds", 0.0)
            if time.time() - last_pass < 10:
                waiting.discard(name)
        time.sleep(0.5)
    assert not waiting, f"no recent housekeeping pass in {sorted(waiting)}"


def test_every_service_settles_its_garbage_collector_once_started(system):
    """runtime/gc_tuning.py: one full collection at start-up, measured; then the frozen heap and the
    raised young threshold, in the log line that says so."""
    for name in SERVICES:
        metrics = httpx.get(f"{system.url(name)}/metrics", timeout=5).text
        full = re.search(r'^gridline_gc_pause_seconds_count\{generation="2"\} (\S+)$', metrics, re.M)
        assert full and float(full.group(1)) >= 1, name
        settled = [
            json.loads(line)
            for line in system.services[name].log_path.read_text().splitlines()
            if '"service.gc_settled"' in line
        ]
        assert settled, name
        assert settled[-1]["frozen_objects"] > 10_000, (name, settled[-1])
        assert settled[-1]["threshold"][0] == 10_000, (name, settled[-1])
