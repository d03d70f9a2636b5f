"""End to end: the whole system on this machine under stepped offered load, a replay, and the raw limits.

    .venv/bin/python -m bench e2e                           # the short default run (a few minutes)
    .venv/bin/python -m bench.e2e --rates 25,50,100 --step-seconds 30
    # a Zhangqiu year, replayed alone (hours; intake's duplicate windows scaled to the replay's speed)
    .venv/bin/python -m bench.e2e --replay 600000 --skip-steps --skip-raw --time-scale 16000 --output e2e-year

Starts its own Kafka and PostgreSQL (devtools.infra, fresh data in .local/bench-e2e, ports 20092/20093 and
20432, PostgreSQL durable, with the server profile of deploy/postgres/gridline.conf as `make run` has it;
`--postgres-setting` overrides a setting) and the five services as processes (devtools.system, their own
settings except ports 20101–20105, intake's per-client rate limit lifted, notify pointed at this intake).
No gateway: clients talk to each service's port. notify delivers to devtools.sinks (mail on 2525, SMS gateway
and grid-app webhooks on notify's default ports), as under `make run`; the sinks' CPU is reported apart
from Gridline's, like the bench's own. (Before, nothing listened there: every delivery failed, retried
and tripped circuits, and that churn was counted as the cost of a case.)

1. Raw limits first (bench/raw_limits.measure on the same Kafka and PostgreSQL, before the services start).
2. Warm-up (``--warmup-seconds`` at ``--warmup-rate``, with follow-ups; not measured): until 2026-11-29 the
   first steps also paid for a fresh system's first minute (Kafka's JIT compiler, first-time work in the
   services) and counted it as the cost of their cases. Its follow-ups finish and every consumer group
   reads the case log to its end before the first step.
   Stepped load: for each offered rate (cases/s), ``--step-seconds`` of devtools.workload submissions
   (hotline, grid, Open311; restamped to the wall clock) posted open loop — each at its scheduled time,
   over a pool of keep-alive connections (bench/_http.py), so a slow server does not slow the offer — then
   up to ``--drain-seconds`` for the step's cases to be projected. Follow-ups (签收, 退单, 延期, 答复, 回访)
   run for department-assigned cases whose department has a development key, with their delays compressed
   (1 simulated hour = 0.5 s, at most 5 s per step); they overlap the next step. Stepping stops at the
   first saturated step: accepted < 90 % of offered (counted from the first send to the later of the offer's
   end and the last 2xx), or projected < 90 % of offered (counted from the step's first visible case to its
   last), or not every accepted case projected within the drain.
3. Replay: ``--replay`` cases posted as fast as intake takes them (``--replay-concurrency`` connections,
   no follow-ups); wall time until the last one is projected. Every ``--progress-seconds`` it records the
   cases accepted and projected, each process's CPU and the databases' size, reported as intervals: whether
   a long replay slows down as its tables grow, and which process then pays more per case. A replay packs
   days into minutes; ``--time-scale`` divides intake's duplicate windows to match (``time_scaled_env``).
   Then, unless ``--no-notify-drain``, it waits until notify has sent every message due and reports that
   stretch and the cases/s end to end with every citizen and department told.

Notify's quiet hours (citizen SMS wait 22:00-08:00 Shanghai time) are off (``quiet_hours_env``) unless
``--keep-quiet-hours``: they follow the wall clock, not the replay's packed days, so a run's figures
depended on the hour it ran (a year replay that crossed 08:00 met ~250,000 SMS released at once).

How latencies are measured (all from the client's wall clock at the 2xx answer of the POST):
- accept → visible: the projection writes each partition's last applied offset (its ``tracking`` row) in
  the transaction that makes the batch queryable, so a case is visible once that row passes the case's
  CaseReceived record. A plain aiokafka reader of the case log learns each CaseReceived's partition and
  offset; one read of the projection's tracking rows every 100 ms marks every case behind them visible.
  That costs the same at any load and is an upper bound, late by at most the poll interval. (Until
  2026-11-28 this read the consumer group's committed Kafka offsets, which a busy consumer commits at most
  once a second: every visible latency before then includes up to a second of that.) Cross-check: a
  sample of cases (``--probe-per-s``, at most 8 in flight) is polled with GET /v1/cases/{id} every 200 ms
  until it answers 200; both are reported.
- accept → dispatch: the CreateTime of the case's first ``assigned`` work item on gridline.dispatch.<dept>
  (set by routing's relay when it publishes), read by a plain aiokafka consumer. Cases routed to a grid or
  to triage, and duplicates, get no dispatch item.
- accept → case log: the CreateTime of the CaseReceived record (intake's outbox relay).
- HTTP: from the scheduled send time to the answer (client queueing included).
CPU seconds and peak memory come from psutil per process tree (PostgreSQL: postmaster + backends, memory as
PSS); events/s from each service's /metrics (gridline_events_consumed_total). The bench's own process is
reported too: it shares the two cores. CPU milliseconds per accepted case (all processes but the bench)
give a ceiling that depends less on what else the shared machine runs: cores × 1000 / ms per case.

Writes bench/results/e2e.json, e2e.md and e2e.png (latency against offered load; no plot without steps),
or ``<--output>``.*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from importlib import metadata
from pathlib import Path

import asyncpg

from bench import _pgstat, raw_limits
from bench._http import ConnectionLost, HttpPool
from bench._report import plot, ratios, write_markdown
from bench._stack import Ports, local_stack
from bench._watch import (
    CaseLog,
    DispatchLog,
    ProcessSampler,
    ProjectionProgress,
    VisibilityProbe,
    cpu_per,
    events_consumed,
    gc_pause_delta,
    gc_pauses,
    settle,
)
from devtools.system import SERVICES, LocalSystem
from devtools.workload import CST, Workload
from devtools.workload.followups import DispatchFeed, FollowUpDriver
from runtime import housekeeping
from runtime.kafka import dispatch_topic
from services.intake import bootstrap as intake_bootstrap
from services.intake.config import IntakeSettings
from services.notify.config import NotifySettings
from services.projection.config import ProjectionSettings
from services.routing.config import RoutingSettings
from services.routing.refdata_files import department_codes
from services.sla.config import SlaSettings

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-e2e"
RESULTS = REPO / "bench" / "results"
KAFKA_PORT, CONTROLLER_PORT, POSTGRES_PORT, RAW_HTTP_PORT = 20092, 20093, 20432, 20501
SINK_SMTP_PORT = 2525  # devtools.sinks' webhook (9310) and SMS gateway (9320) ports are notify's defaults
SERVICE_PORT_OFFSET = 20101 - SERVICES["intake"]
OPERATOR_KEY = "dev-operator-key"
# The services' consumer groups as deployed (their settings' defaults; the bench does not override them).
PROJECTION_GROUP = ProjectionSettings.model_fields["consumer_group"].default
CONSUMER_GROUPS = tuple(
    settings.model_fields["consumer_group"].default
    for settings in (IntakeSettings, RoutingSettings, SlaSettings, NotifySettings, ProjectionSettings)
)
SETTLE_TIMEOUT_S = 180.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.e2e", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rates", default="2,5,10,25,50,100,200,300,500,750,1000", help="offered cases/s, in order"
    )
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument(
        "--warmup-seconds", type=float, default=30.0, help="unmeasured load before the steps (0: none)"
    )
    parser.add_argument("--warmup-rate", type=float, default=20.0, help="cases/s offered in the warm-up")
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    parser.add_argument("--replay", type=int, default=500, help="cases in the replay (0: none)")
    parser.add_argument("--replay-concurrency", type=int, default=32)
    parser.add_argument(
        "--keep-quiet-hours",
        action="store_true",
        help="keep notify's quiet hours (citizen SMS wait 22:00-08:00 by the wall clock); off by default",
    )
    parser.add_argument(
        "--no-notify-drain",
        action="store_true",
        help="end the replay when every case is projected, not when notify has also sent what was due",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=60.0,
        help="how often the replay records its progress: cases accepted and projected, CPU, database size",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per second: intake's duplicate windows are divided by it (a year replayed "
        "in 40 minutes: ~16000), so an appeal meets as many earlier ones as at the district's own rate",
    )
    parser.add_argument(
        "--output", default="e2e", help="results under bench/results/<output>.{json,md,png} (e.g. e2e-year)"
    )
    parser.add_argument("--probe-per-s", type=float, default=2.0, help="HTTP-sampled cases per second")
    parser.add_argument("--no-follow-ups", action="store_true", help="only new appeals in the steps")
    parser.add_argument("--skip-raw", action="store_true", help="no raw limits (no ratios)")
    parser.add_argument("--skip-steps", action="store_true", help="only the replay")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="GRIDLINE_X=VALUE",
        help="a setting for every service (repeatable), to measure a tuning: "
        "--service-env GRIDLINE_CONSUMER_LINGER_S=0.05",
    )
    parser.add_argument(
        "--postgres-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL server setting (repeatable), to measure a tuning: "
        "--postgres-setting max_wal_size=4GB",
    )
    return parser.parse_args(argv)


def name_values(settings: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` options (``--service-env``, ``--postgres-setting``) as a mapping."""
    return dict(setting.split("=", 1) for setting in settings)


def quantiles(values: list[float]) -> dict[str, float] | None:
    """p50/p95/p99/max in ms of latencies given in seconds (None if there are fewer than two)."""
    if len(values) < 2:
        return None
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "p50": round(cuts[49] * 1000, 1),
        "p95": round(cuts[94] * 1000, 1),
        "p99": round(cuts[98] * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


# Processes that are not Gridline: the load generator and the stand-ins for mail, SMS and webhooks.
OUTSIDE = ("bench", "sinks")


def gridline_cpu(cpu_seconds: dict[str, float]) -> float:
    """The CPU seconds of Gridline's processes (services, Kafka, PostgreSQL) among ``cpu_seconds``."""
    return sum(v for k, v in cpu_seconds.items() if k not in OUTSIDE)


def per_case(cpu_seconds: dict[str, float], cases: int) -> dict[str, float]:
    """CPU milliseconds per accepted case, per process and in total (and the ceiling that implies)."""
    if not cases:
        return {}
    ms = {k: round(v * 1000 / cases, 1) for k, v in cpu_seconds.items()}
    ms["total"] = round(sum(cpu_seconds.values()) * 1000 / cases, 1)
    gridline = gridline_cpu(cpu_seconds) * 1000 / cases
    ms["cases_per_s_if_all_cores_were_gridlines"] = round((os.cpu_count() or 1) * 1000 / gridline, 1)
    return ms


def time_scaled_env(scale: float) -> dict[str, str]:
    """Intake's duplicate windows (48 h nearby, 7 days the same caller) divided by ``scale``. A replay
    posts a year's appeals within hours: with the windows as they are, every appeal would meet all the
    earlier ones in them, thousands of times as many as at the district's rate (the first 20,000 cases of
    a year replay: duplicates 6 % → 10 % of each minute's appeals, the rate 79 → 67 cases/s in four
    minutes). No other window of the services is crossed by a replay of new appeals."""
    if scale == 1:
        return {}
    fields = IntakeSettings.model_fields
    return {
        "GRIDLINE_DUPLICATE_NEARBY_HOURS": f"{fields['duplicate_nearby_hours'].default / scale:.6g}",
        "GRIDLINE_DUPLICATE_SAME_CALLER_DAYS": f"{fields['duplicate_same_caller_days'].default / scale:.6g}",
    }


def quiet_hours_env(keep: bool) -> dict[str, str]:
    """Notify's quiet hours as an empty window (start = end), unless ``keep``."""
    return (
        {}
        if keep
        else {"GRIDLINE_NOTIFY_QUIET_HOURS_START": "00:00", "GRIDLINE_NOTIFY_QUIET_HOURS_END": "00:00"}
    )


def progress_intervals(samples: list[dict]) -> list[dict]:
    """The replay's progress samples as intervals: where it stood at each sample's end, its rates over
    the interval, and CPU milliseconds per case projected in it (per process; the total without the
    bench and the sinks)."""
    intervals = []
    for before, after in zip(samples, samples[1:], strict=False):
        seconds = after["elapsed_s"] - before["elapsed_s"]
        projected = after["projected"] - before["projected"]
        if seconds <= 0:
            continue
        cpu = {k: after["cpu_seconds"].get(k, 0.0) - v for k, v in before["cpu_seconds"].items()}
        gridline = gridline_cpu(cpu)
        intervals.append(
            {
                "until_s": after["elapsed_s"],
                "accepted": after["accepted"],
                "projected": after["projected"],
                "accepted_per_s": round((after["accepted"] - before["accepted"]) / seconds, 1),
                "projected_per_s": round(projected / seconds, 1),
                "cores_gridline": round(gridline / seconds, 2),
                "cores_all": round(sum(cpu.values()) / seconds, 2),
                "cpu_ms_per_projected_case": {k: round(v * 1000 / projected, 2) for k, v in cpu.items()}
                | {"gridline": round(gridline * 1000 / projected, 1)}
                if projected
                else None,
                "database_bytes": after["database_bytes"],
            }
        )
    return intervals


class Bench:
    """The load generator and its watchers, on one running system."""

    def __init__(self, system: LocalSystem, args: argparse.Namespace, pids: dict[str, int]) -> None:
        self.system, self.args = system, args
        self.stream = iter(Workload(seed=args.seed, start=datetime.now(CST), run=f"e2e{int(time.time())}"))
        self.progress = ProjectionProgress(
            f"{system.postgres_url}/{system.database_name('projection')}",
            PROJECTION_GROUP,
            system.case_events_topic,
        )
        self.case_log = CaseLog(system.kafka_bootstrap, system.case_events_topic, self.progress.add)
        self.feed = DispatchFeed()
        topics = [dispatch_topic(code) for code in department_codes()]
        self.dispatch = DispatchLog(system.kafka_bootstrap, topics, self.feed.offer)
        self.sampler = ProcessSampler(pids)
        self.sampler.own_only.add("bench")
        port = {name: SERVICES[name] + SERVICE_PORT_OFFSET for name in SERVICES}
        self.load = HttpPool("127.0.0.1", port["intake"], size=64)
        self.metrics = {name: HttpPool("127.0.0.1", p, size=1) for name, p in port.items()}
        self.probe = VisibilityProbe(HttpPool("127.0.0.1", port["projection"], size=8), OPERATOR_KEY)
        self.driver = FollowUpDriver(
            routing=HttpPool("127.0.0.1", port["routing"], size=16),
            intake=HttpPool("127.0.0.1", port["intake"], size=8),
            assignments=self.feed,
            seconds_per_hour=0.5,
            max_delay_s=5.0,
            assignment_timeout_s=20.0,
        )
        self.accepted: dict[str, float] = {}  # case id → wall time of the 2xx
        self.following: set[asyncio.Task] = set()
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Bench:
        for watcher in (self.progress, self.case_log, self.dispatch, self.sampler):
            self.tasks.append(asyncio.create_task(watcher.run(self.stop)))
        return self

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        await self.probe.drain()
        for task in self.following:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.following, return_exceptions=True)

    # --- one submission ----------------------------------------------------------------------------------

    async def post_one(self, due: float, probe_every: int, follow: bool) -> tuple[int | str, float]:
        submission = next(self.stream).restamped(datetime.now(CST))
        headers = {} if submission.is_form else {"X-API-Key": submission.api_key}
        try:
            if submission.is_form:
                response = await self.load.post(submission.path, data=submission.body)
            else:
                response = await self.load.post(submission.path, json=submission.body, headers=headers)
        except ConnectionLost:
            return "connection-lost", time.monotonic() - due
        answered = time.time()
        if response.status_code not in (200, 201):
            return response.status_code, time.monotonic() - due
        body = response.json()
        case_id = body[0]["service_request_id"] if submission.is_form else body["case_id"]
        self.accepted[case_id] = answered
        if probe_every and len(self.accepted) % probe_every == 0:
            self.probe.probe(case_id)
        if follow and submission.plan is not None:
            task = asyncio.create_task(self.driver.carry_out(case_id, submission.source, submission.plan))
            self.following.add(task)
            task.add_done_callback(self.following.discard)
        return response.status_code, time.monotonic() - due

    # --- stepped load ------------------------------------------------------------------------------------

    async def step(self, rate: float, seconds: float | None = None) -> dict:
        args = self.args
        seconds = seconds or args.step_seconds
        count = max(2, round(rate * seconds))
        probe_every = max(1, round(rate / args.probe_per_s))
        before_cases = set(self.accepted)
        cpu0, consumed0, outcomes0 = (
            self.sampler.cpu_seconds(),
            await events_consumed(self.metrics),
            dict(self.driver.outcomes),
        )
        self.sampler.reset_peaks()
        started, wall_started = time.monotonic(), time.time()
        tasks = []
        for i in range(count):
            due = started + i / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.post_one(due, probe_every, not args.no_follow_ups)))
        sent_s = time.monotonic() - started
        answers = await asyncio.gather(*tasks)
        mine = [c for c in self.accepted if c not in before_cases]
        # Accepted per second over the offer, or until the last 2xx when intake fell behind the offer.
        last_answer = max((self.accepted[c] for c in mine), default=wall_started) - wall_started
        offered_s = max(seconds, sent_s, last_answer)
        await self.wait_visible(mine, args.drain_seconds)
        elapsed = time.monotonic() - started
        cpu1, consumed1 = self.sampler.cpu_seconds(), await events_consumed(self.metrics)
        result = self.summarise(mine, answers, rate, count, offered_s, sent_s)
        result["cpu_seconds"] = cpu_per(cpu0, cpu1, 1, scale=1)
        result["cpu_ms_per_case"] = per_case(result["cpu_seconds"], len(mine))
        result["peak_memory_mb"] = {k: round(v / 2**20) for k, v in self.sampler.peak_rss.items()}
        result["events_consumed_per_s"] = {
            k: round((consumed1[k] - consumed0.get(k, 0)) / elapsed, 1) for k in consumed1
        }
        result["measured_seconds"] = round(elapsed, 1)
        result["follow_ups"] = {
            k: v - outcomes0.get(k, 0) for k, v in self.driver.outcomes.items() if v - outcomes0.get(k, 0)
        }
        return result

    async def finish_follow_ups(self) -> float:
        """Wait (bounded) for the follow-ups under way to finish; returns the seconds waited."""
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                while self.following:  # noqa: ASYNC110  (a set of tasks, not an event)
                    await asyncio.sleep(0.5)
        return round(time.monotonic() - began, 1)

    async def wait_visible(self, cases: list[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(c not in self.progress.visible for c in cases):  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # the watchers fill ``visible``; polling it is simplest

    def summarise(self, cases, answers, rate, count, offered_s, sent_s) -> dict:
        visible, published, dispatched = self.progress.visible, self.case_log.published, self.dispatch.arrived
        accepted = self.accepted
        done = [c for c in cases if c in visible]
        projected_per_s = 0.0
        if len(done) >= 2:  # while the projection works through this step's cases
            span = max(visible[c] for c in done) - min(visible[c] for c in done)
            projected_per_s = len(done) / max(span, 1e-3)
        statuses: dict[str, int] = {}
        for status, _ in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        probe = [self.probe.visible[c] - accepted[c] for c in cases if c in self.probe.visible]
        result = {
            "offered_per_s": rate,
            "offered_achieved_per_s": round((count - 1) / max(sent_s, 1e-3), 1),
            "requests": count,
            "responses": statuses,
            "accepted": len(cases),
            "accepted_per_s": round(len(cases) / offered_s, 1),  # first send → max(offer end, last 2xx)
            "projected": len(done),
            "projected_per_s": round(projected_per_s, 1),
            "latency_ms": {
                "accept_to_visible": quantiles([visible[c] - accepted[c] for c in done]),
                "accept_to_visible_http_sample": quantiles(probe),
                "accept_to_dispatch": quantiles(
                    [dispatched[c] - accepted[c] for c in cases if c in dispatched]
                ),
                "accept_to_case_log": quantiles(
                    [published[c] - accepted[c] for c in cases if c in published]
                ),
                "http_response": quantiles([s for _, s in answers]),
            },
            "http_sample_skipped": self.probe.skipped,
        }
        result["saturated"] = (
            result["accepted_per_s"] < 0.9 * rate or projected_per_s < 0.9 * rate or len(done) < len(cases)
        )
        return result

    # --- replay ------------------------------------------------------------------------------------------

    async def replay(self, count: int, concurrency: int) -> dict:
        before = set(self.accepted)
        storage_before = await _pgstat.storage(self.system.postgres_url)  # (its sessions before the count)
        writes_before = await _pgstat.row_writes(self.system.postgres_url)
        wal_before = await _pgstat.wal(self.system.postgres_url)
        notify_db = self.system.database_name("notify")
        deliveries_before = await _pgstat.deliveries(self.system.postgres_url, notify_db)
        sessions = await _pgstat.reset(self.system.postgres_url)
        started, wall_started = time.monotonic(), time.time()
        cpu0, gc0 = self.sampler.cpu_seconds(), await gc_pauses(self.metrics)
        remaining = iter(range(count))
        statuses: dict[str, int] = {}
        progress: list[dict] = []
        base = (started, len(before), len(self.progress.visible))
        recording = asyncio.create_task(self.record_progress(progress, base))

        async def worker() -> None:
            for _ in remaining:
                status, _s = await self.post_one(time.monotonic(), 0, False)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        posted_s = time.monotonic() - started
        cases = [c for c in self.accepted if c not in before]
        # Wait while the projection keeps making progress (a year at today's speed takes hours).
        last, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < 60:
            done = sum(1 for c in cases if c in self.progress.visible)
            if done == len(cases):
                break
            if done != last:
                last, last_change = done, time.monotonic()
            await asyncio.sleep(0.5)
        projected = [c for c in cases if c in self.progress.visible]
        wall = max(self.progress.visible[c] for c in projected) - wall_started if projected else None
        recording.cancel()
        await asyncio.gather(recording, return_exceptions=True)
        cpu1, gc1 = self.sampler.cpu_seconds(), await gc_pauses(self.metrics)
        progress.append(await self.progress_sample(base, cpu1))
        cpu = cpu_per(cpu0, cpu1, 1, scale=1, digits=1)
        statements = await _pgstat.top(self.system.postgres_url, len(cases), sessions)
        storage_after = await _pgstat.storage(self.system.postgres_url)
        writes_after = await _pgstat.row_writes(self.system.postgres_url)
        wal_after = await _pgstat.wal(self.system.postgres_url)
        deliveries_after = await _pgstat.deliveries(self.system.postgres_url, notify_db)
        drain = None
        if not self.args.no_notify_drain and wall and len(projected) == len(cases):
            drain = await self.drain_notifications(notify_db, deliveries_after, wall_started, len(cases))
        return {
            "cases": count,
            "concurrency": concurrency,
            "responses": statuses,
            "accepted": len(cases),
            "projected": len(projected),
            "posting_seconds": round(posted_s, 1),
            "accepted_per_s": round(len(cases) / posted_s, 1),
            "wall_seconds_until_all_projected": round(wall, 1)
            if wall and len(projected) == len(cases)
            else None,
            "end_to_end_cases_per_s": round(len(projected) / wall, 1) if wall else None,
            "cpu_seconds": cpu,
            "cpu_ms_per_case": per_case(cpu, len(cases)),
            "zhangqiu_year_at_this_rate_hours": round(600_000 / (len(projected) / wall) / 3600, 1)
            if wall
            else None,
            "postgres_statements": statements,
            "storage": _pgstat.storage_growth(
                storage_before,
                storage_after,
                len(cases),
                keep_days(),
                await _pgstat.count_cases(self.system.postgres_url, self.system.database_name("intake")),
            ),
            "wal": _pgstat.wal_per_case(wal_before, wal_after, len(cases)),
            "row_writes": _pgstat.row_writes_per_case(writes_before, writes_after, len(cases)),
            "gc_pauses": gc_pause_delta(gc0, gc1),
            "progress": progress_intervals(progress),
            "deliveries": _pgstat.deliveries_during(
                deliveries_before, deliveries_after, len(cases), wall or posted_s
            ),
            "notify_drain": drain,
        }

    async def drain_notifications(
        self, database: str, before: dict[str, float], wall_started: float, cases: int
    ) -> dict:
        """After the last case is projected: wait until notify has sent every message due (held ones
        aside) and measure that stretch, when the rest of the system is idle. "End to end" then means told,
        not only visible (a 20,000-case replay left ~17,000 messages due when its last case was projected).
        Gives up when the count of messages still to send has not moved for 60 s. ``before``: the
        deliveries as the replay left them (``_pgstat.deliveries``, read once for both)."""
        url = self.system.postgres_url
        sessions = await _pgstat.reset(url)
        began, cpu0 = time.monotonic(), self.sampler.cpu_seconds()
        db = await asyncpg.connect(f"{url}/{database}")  # one connection for every poll
        try:
            last, last_change, stalled = await _pgstat.outstanding_deliveries(db, count=True), began, False
            while await _pgstat.outstanding_deliveries(db, count=False):
                await asyncio.sleep(0.5)
                if time.monotonic() - last_change >= 15:  # still sending? (a count is dearer than a probe)
                    if (now := await _pgstat.outstanding_deliveries(db, count=True)) != last:
                        last, last_change = now, time.monotonic()
                    elif stalled := time.monotonic() - last_change >= 60:
                        break
            seconds, finished = time.monotonic() - began, time.time()
            outstanding = await _pgstat.outstanding_deliveries(db, count=True) if stalled else 0
        finally:
            await db.close()
        cpu1 = self.sampler.cpu_seconds()
        after = await _pgstat.deliveries(url, database)
        sent = after["sent"] - before["sent"]
        statements = await _pgstat.top(url, sent, sessions)
        told_after = finished - wall_started
        return {
            "seconds": round(seconds, 1),
            "sent": sent,
            "sent_per_s": round(sent / max(seconds, 1e-9), 1),
            "cpu_ms_per_message": cpu_per(cpu0, cpu1, sent, digits=2) if sent else {},
            "left_outstanding": outstanding,
            "failed": after["failed"] - before["failed"],
            "postgres_statements": statements,
            "wall_seconds_until_all_notified": None if stalled else round(told_after, 1),
            "end_to_end_notified_cases_per_s": None if stalled else round(cases / told_after, 1),
        }

    async def record_progress(self, samples: list[dict], base: tuple[float, int, int]) -> None:
        """A sample every ``--progress-seconds`` while the replay runs (a year of it takes hours: does it
        slow down as the tables grow, and where does the CPU go then?)."""
        while True:
            samples.append(await self.progress_sample(base, self.sampler.cpu_seconds()))
            await asyncio.sleep(self.args.progress_seconds)

    async def progress_sample(self, base: tuple[float, int, int], cpu: dict[str, float]) -> dict:
        """Where the replay stands: ``base`` is its start (monotonic) and the cases accepted and visible
        before it (the earlier phases' cases are all projected when it starts)."""
        started, accepted_before, visible_before = base
        return {
            "elapsed_s": round(time.monotonic() - started, 1),
            "accepted": len(self.accepted) - accepted_before,
            "projected": len(self.progress.visible) - visible_before,
            "cpu_seconds": cpu,
            "database_bytes": await _pgstat.database_bytes(self.system.postgres_url),
        }


def keep_days() -> dict[str, float]:
    """Days housekeeping keeps each trimmed table's rows, at the default settings."""
    settings = IntakeSettings()
    retentions = [*housekeeping.runtime_retentions(settings), *intake_bootstrap.retentions(settings)]
    return {retention.table: retention.keep_s / 86400 for retention in retentions}


async def drive(system: LocalSystem, args: argparse.Namespace, pids: dict[str, int]) -> dict:
    results: dict = {"steps": []}
    async with Bench(system, args, pids) as bench:
        await asyncio.sleep(2)  # the readers join their topics
        if not args.skip_steps and args.warmup_seconds > 0:
            results["warm_up"] = await warm_up(bench, args)
        if not args.skip_steps:
            for rate in (float(r) for r in args.rates.split(",") if r.strip()):
                print(f"step: {rate:g} cases/s offered for {args.step_seconds:g} s ...", flush=True)
                step = await bench.step(rate)
                results["steps"].append(step)
                print_step(step)
                if step["saturated"]:
                    print(f"saturated at {rate:g} cases/s offered: stepping stops", flush=True)
                    break
            # a replay sharing the box with the steps' citizen actions measured half its rate (54 vs ~120)
            results["follow_ups_finished_after_s"] = await bench.finish_follow_ups()
            results["follow_ups_unfinished"] = len(bench.following)
            results["follow_ups_total"] = dict(bench.driver.outcomes)
        if args.replay:
            if results["steps"]:  # the last step saturated: start the replay once its backlog is consumed
                waited = await settle(
                    system.kafka_bootstrap, system.case_events_topic, CONSUMER_GROUPS, SETTLE_TIMEOUT_S
                )
                results["settled_before_replay_s"] = waited
                print(f"backlog consumed after {waited} s (None: not in {SETTLE_TIMEOUT_S:g} s)", flush=True)
            print(f"replay: {args.replay} cases as fast as intake takes them ...", flush=True)
            results["replay"] = await bench.replay(args.replay, args.replay_concurrency)
            print(f"replay: {json.dumps(results['replay'], ensure_ascii=False)}", flush=True)
        results["peak_memory_mb_whole_run"] = {k: round(v / 2**20) for k, v in bench.sampler.peak_rss.items()}
    return results


async def warm_up(bench: Bench, args: argparse.Namespace) -> dict:
    """Load before the measured steps, not reported as one: a fresh system's first minute pays for
    compiling (Kafka's JIT compiler took 0.34-0.43 of a core through a first 2 cases/s step, 0.20-0.24
    through the 10 cases/s step after it) and for first-time work in the services, which the first steps
    would otherwise count as the cost of their cases. Its follow-ups finish and every consumer group
    reads the case log to its end before the first step starts."""
    rate, seconds = args.warmup_rate, args.warmup_seconds
    print(f"warm-up: {rate:g} cases/s for {seconds:g} s (not measured) ...", flush=True)
    step = await bench.step(rate, seconds)
    follow_ups_s = await bench.finish_follow_ups()
    settled = await settle(
        bench.system.kafka_bootstrap, bench.system.case_events_topic, CONSUMER_GROUPS, SETTLE_TIMEOUT_S
    )
    summary = {
        "rate": rate,
        "seconds": seconds,
        "accepted": step["accepted"],
        "follow_ups_finished_after_s": follow_ups_s,
        "settled_after_s": settled,
    }
    print(f"warm-up done: {summary}", flush=True)
    return summary


def print_step(step: dict) -> None:
    lat = step["latency_ms"]

    def q(name: str) -> str:
        v = lat[name]
        return f"p50 {v['p50']:.0f} / p95 {v['p95']:.0f} / p99 {v['p99']:.0f} ms (n={v['n']})" if v else "n/a"

    print(
        f"  offered {step['offered_per_s']:g}/s (achieved {step['offered_achieved_per_s']}/s): accepted "
        f"{step['accepted_per_s']}/s, projected {step['projected_per_s']}/s "
        f"({step['projected']}/{step['accepted']} within the drain); responses {step['responses']}\n"
        f"  accept→visible {q('accept_to_visible')}\n  accept→visible (HTTP sample) "
        f"{q('accept_to_visible_http_sample')}\n  accept→dispatch {q('accept_to_dispatch')}\n"
        f"  accept→case log {q('accept_to_case_log')}\n  HTTP {q('http_response')}\n"
        f"  CPU s {step['cpu_seconds']}\n  CPU ms per case {step['cpu_ms_per_case']}\n"
        f"  events/s {step['events_consumed_per_s']}\n"
        f"  follow-ups {step['follow_ups']}",
        flush=True,
    )


def versions(broker, postgres) -> dict:
    found = {"python": platform.python_version(), "kafka": broker.version, "postgresql": postgres.version}
    for package in ("aiokafka", "asyncpg", "fastapi", "uvicorn", "sqlalchemy", "pydantic"):
        found[package] = metadata.version(package)
    return found


@contextlib.contextmanager
def sinks(log_dir: Path) -> Iterator[int]:
    """devtools.sinks (mail, SMS gateway, grid-app webhooks) as `make run` has them, so notify delivers
    rather than failing, retrying and tripping circuits; yields its pid."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "sinks.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.sinks"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, GRIDLINE_SINK_SMTP_PORT=str(SINK_SMTP_PORT)),
        )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # "not leader" while new topics settle: noise
    shutil.rmtree(WORK / "logs", ignore_errors=True)  # the services' logs of this run only
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    intake_url = f"http://127.0.0.1:{SERVICES['intake'] + SERVICE_PORT_OFFSET}"
    ports = Ports(KAFKA_PORT, CONTROLLER_PORT, POSTGRES_PORT, SERVICE_PORT_OFFSET)
    with local_stack(
        WORK,
        ports,
        SERVICES,
        extra_databases=["bench_raw"],
        extra_env={
            "GRIDLINE_NOTIFY_INTAKE_URL": intake_url,
            "GRIDLINE_NOTIFY_SMTP_PORT": str(SINK_SMTP_PORT),
        }
        | time_scaled_env(args.time_scale)
        | quiet_hours_env(args.keep_quiet_hours)
        | name_values(args.service_env),
        statement_stats=True,
        postgres_settings=name_values(args.postgres_setting),
    ) as stack:
        broker, postgres, system = stack.broker, stack.postgres, stack.system
        results: dict = {
            "cores": os.cpu_count(),
            "started_at": datetime.now(CST).isoformat(timespec="seconds"),
            "loadavg_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()],
            "versions": versions(broker, postgres),
            "postgres_settings": asyncio.run(_pgstat.server_settings(system.postgres_url)),
            "settings": {k: v for k, v in vars(args).items()},
        }
        print(f"cores: {os.cpu_count()}; versions: {results['versions']}", flush=True)
        if not args.skip_raw:
            print("raw limits (same Kafka and PostgreSQL, before the services start) ...", flush=True)
            results["raw_limits"] = raw_limits.measure(
                broker.bootstrap_servers, postgres.dsn("bench_raw"), RAW_HTTP_PORT, WORK / "raw"
            )
            print(f"raw limits: {results['raw_limits']}", flush=True)
        with sinks(system.log_dir) as sinks_pid:
            system.start(timeout=240)
            pids = {name: proc.process.pid for name, proc in system.services.items() if proc.process}
            pids |= {"kafka": broker.process.pid, "postgres": postgres.process.pid, "bench": os.getpid()}
            results |= asyncio.run(drive(system, args, pids | {"sinks": sinks_pid}))
    results["loadavg_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["total_seconds"] = round(time.time() - started)
    if "raw_limits" in results:
        results["ratios"] = ratios(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.output
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    markdown = write_markdown(results, out.with_suffix(".md"))
    written = [out.with_suffix(".json"), out.with_suffix(".md")]
    if plot(results, out.with_suffix(".png")):
        written.append(out.with_suffix(".png"))
    print("\n" + markdown)
    print("written: " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
