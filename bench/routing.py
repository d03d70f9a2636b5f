"""Routing: decisions per second on one core with ≥5,000 grids, and end-to-end latency at a given rate.

    .venv/bin/python -m bench.routing                         # both parts, 200 cases/s for 20 s
    .venv/bin/python -m bench.routing --rate 400 --seconds 30 --skip-decisions

1. Decisions/s: the shipped district outline cut into 9 grids per village/community committee (5,346
   grids, generated here, not stored) with the shipped matrix. Points are uniform inside the district, so
   nearly all take the point-in-polygon path; a second run measures the address-text path.
2. End to end: starts its own Kafka and PostgreSQL (fresh data in .local/bench-routing, ports
   24092/24093/24432) and the routing service as a real process (devtools.system, the service's own
   settings except the ports). Intake is not started: CaseReceived events, encoded by the contracts
   encoder as intake's outbox would, are produced straight to the case-events topic, open loop at
   ``--rate`` for ``--seconds``. A plain aiokafka consumer reads every department's dispatch topic.
   Latency per case = the dispatch record's timestamp (CreateTime, set by routing's relay) minus the
   wall-clock time just before the CaseReceived was handed to the producer. Cases mix the
   point-in-polygon and address-text paths over five categories that all route to departments.

Writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer
from shapely.geometry import shape

from bench import _pgstat
from bench._stack import BENCH_ENV, Ports, local_stack
from bench._watch import ProcessSampler, cpu_per
from contracts.envelope import encode_event
from contracts.events import Location
from devtools.system import SERVICES, LocalSystem
from runtime import kafka
from services.routing.domain.decision import CaseFacts, decide
from services.routing.domain.refdata import Grid
from services.routing.refdata_files import DATA_DIR, department_codes, read_bundle
from services.routing.refdata_gen import build_polygons, district_outline_wgs84
from tests.factories import case_received

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-routing"
RESULTS = REPO / "bench" / "results"
KAFKA_PORT, KAFKA_CONTROLLER_PORT, POSTGRES_PORT = 24092, 24093, 24432
ROUTING_PORT = 24102
GRIDS_PER_COMMITTEE = 9
POINTS = 20_000
ADDRESSES = 5_000
# Categories whose rules all name departments (a grid assignee gets no dispatch topic item).
DEPARTMENT_CATEGORIES = ["06028", "08001", "09006", "01037", "02004"]
WARMUP_CASES, WARMUP_RATE = 100, 50.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.routing", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="cases offered per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the rate is offered")
    parser.add_argument("--skip-decisions", action="store_true", help="only the end-to-end part")
    parser.add_argument("--skip-end-to-end", action="store_true", help="only the decisions/s part")
    return parser.parse_args(argv)


# --- 1. decisions per second --------------------------------------------------------------------------


def decision_throughput() -> dict:
    print(f"cores: {os.cpu_count()} (the decision is single-threaded; one process uses one core)")
    bundle = read_bundle()
    started = time.perf_counter()
    outline = district_outline_wgs84(DATA_DIR / "zhangqiu_boundary_gcj02.geojson")
    areas = [{k: str(v or "") for k, v in a.items() if k != "aliases"} for a in bundle.areas]
    _, features = build_polygons(outline, areas, grids_per_committee=GRIDS_PER_COMMITTEE)
    base = bundle.reference_data(1)
    grids = [
        Grid(f["properties"]["code"], f["properties"]["name"], f["properties"]["community_code"],
             f["properties"]["town_code"], shape(f["geometry"]))
        for f in features
    ]  # fmt: skip
    ref = replace(base, grids=grids)  # re-indexes (STRtree, gazetteer)
    print(f"grids: {len(ref.grids)} (built and indexed in {time.perf_counter() - started:.1f} s)")

    rng = random.Random(7)
    minx, miny, maxx, maxy = outline.bounds
    categories = ["06010", "06028", "08001", "09006", "01037"]
    facts = [
        CaseFacts(
            category_code=rng.choice(categories), lon=rng.uniform(minx, maxx), lat=rng.uniform(miny, maxy)
        )
        for _ in range(POINTS)
    ]
    started = time.perf_counter()
    routed = sum(1 for f in facts if not decide(f, ref).triage)
    point_s = time.perf_counter() - started
    print(
        f"point-in-polygon: {POINTS / point_s:,.0f} decisions/s ({point_s / POINTS * 1e6:.0f} µs each; "
        f"{routed / POINTS:.0%} inside the district and routed, the rest outside → triage)"
    )

    towns = [a["name"] for a in bundle.areas if a["level"] in ("street", "town")]
    texts = [
        CaseFacts(category_code="06028", address=f"章丘区{rng.choice(towns)}某某路{i}号")
        for i in range(ADDRESSES)
    ]
    started = time.perf_counter()
    for f in texts:
        decide(f, ref)
    text_s = time.perf_counter() - started
    print(f"address-text: {ADDRESSES / text_s:,.0f} decisions/s ({text_s / ADDRESSES * 1e6:.0f} µs each)")
    print("for scale: Zhangqiu ≈ 1,650 cases/day; Beijing 12345 ≈ 65,000/day (0.75/s)")
    return {
        "grids": len(ref.grids),
        "point_in_polygon_decisions_per_s": round(POINTS / point_s),
        "address_text_decisions_per_s": round(ADDRESSES / text_s),
    }


# --- 2. end to end: case received → dispatch topic -----------------------------------------------------


class CaseMaker:
    """CaseReceived events that route to departments: half with a point inside a grid, half with only
    an address naming a town."""

    def __init__(self, seed: int = 11) -> None:
        bundle = read_bundle()
        self.rng = random.Random(seed)
        self.points = [shape(g["geometry"]).representative_point() for g in bundle.grids]
        self.towns = [a["name"] for a in bundle.areas if a["level"] in ("street", "town")]

    def __call__(self, case_id: str):
        rng = self.rng
        overrides: dict = {"category_code": rng.choice(DEPARTMENT_CATEGORIES)}
        if rng.random() < 0.5:
            point = rng.choice(self.points)
            overrides["location"] = Location(lat=point.y, lon=point.x)
            overrides["address"] = None
        else:
            overrides["address"] = f"章丘区{rng.choice(self.towns)}某某路{rng.randint(1, 999)}号"
        return case_received(case_id, description="基准测试诉求：夜间噪声、施工扰民等", **overrides)


class DispatchReader:
    """Every department's dispatch topic, read from the start: first `assigned` item per case."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        # Latency is read from the records' own timestamps, so this reader need not be quick: it fetches
        # at most five times a second and spares the broker (~20 department topics in every fetch).
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=200,
        )
        self.arrived: dict[str, float] = {}  # case id → dispatch record timestamp (s)
        self._awaited: set[str] = set()
        self._all_arrived = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await self.consumer.start()
        try:
            while not stop.is_set():
                for records in (await self.consumer.getmany(timeout_ms=200, max_records=2000)).values():
                    for record in records:
                        item = orjson.loads(record.value)
                        if item.get("action") == "assigned":
                            self.arrived.setdefault(item["case_id"], record.timestamp / 1000)
                            self._awaited.discard(item["case_id"])
                if not self._awaited:
                    self._all_arrived.set()
        finally:
            await self.consumer.stop()

    async def wait_for(self, case_ids) -> None:
        """Until every one of ``case_ids`` has a dispatch item (the caller bounds the wait)."""
        self._awaited = {c for c in case_ids if c not in self.arrived}
        self._all_arrived.clear()
        if self._awaited:
            await self._all_arrived.wait()


async def offer(producer, topic: str, make: CaseMaker, prefix: str, count: int, rate: float) -> dict:
    """Produce ``count`` CaseReceived events open loop at ``rate``/s; case id → wall-clock send time."""
    sent: dict[str, float] = {}
    pending = []
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        event = make(f"{prefix}{i:06d}")
        message = encode_event(event, source="/gridline/intake", topic=topic)
        sent[event.case_id] = time.time()
        pending.append(
            await producer.send(topic, message.value, key=message.key.encode(), headers=message.headers)
        )
    await asyncio.gather(*pending)
    achieved = count / (time.monotonic() - started)
    return {"sent": sent, "achieved_rate": achieved}


async def wait_at_most(awaitable, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await awaitable


def percentile(sorted_values: list[float], q: float) -> float:
    return statistics.quantiles(sorted_values, n=1000, method="inclusive")[round(q * 1000) - 1]


async def drive(system: LocalSystem, rate: float, seconds: float, sampler: ProcessSampler) -> dict:
    case_topic = system.case_events_topic
    dispatch_topics = [f"gridline.dispatch.{code.lower()}" for code in department_codes()]
    reader = DispatchReader(system.kafka_bootstrap, dispatch_topics)
    stop = asyncio.Event()
    reading = asyncio.create_task(reader.run(stop))
    producer = kafka.create_producer(system.kafka_bootstrap, "bench-routing-intake")
    await producer.start()
    make = CaseMaker()
    try:
        warmup = await offer(producer, case_topic, make, "BW", WARMUP_CASES, WARMUP_RATE)
        await wait_at_most(reader.wait_for(warmup["sent"]), 60)
        # A running routing database has planner statistics; a fresh one gets them only when autovacuum
        # first visits it (a minute or more). Without them a statement prepared while the table was tiny
        # keeps a sequential-scan plan, and reading a batch's cases cost 2.7 ms instead of ~0.2.
        db = await asyncpg.connect(f"{system.postgres_url}/{system.database_name('routing')}")
        try:
            await db.execute("ANALYZE")
        finally:
            await db.close()
        count = round(rate * seconds)
        sessions = await _pgstat.reset(system.postgres_url)
        load_before, cpu_before = os.getloadavg(), sampler.cpu_seconds()
        measured = await offer(producer, case_topic, make, "BM", count, rate)
        await wait_at_most(reader.wait_for(measured["sent"]), 60)
        load_after, cpu_after = os.getloadavg(), sampler.cpu_seconds()
        statements = await _pgstat.top(system.postgres_url, count, sessions, limit=6)
    finally:
        stop.set()
        await reading
        await producer.stop()
    sent = measured["sent"]
    latencies = sorted((reader.arrived[c] - t) * 1000 for c, t in sent.items() if c in reader.arrived)
    if len(latencies) < 2:
        raise RuntimeError(f"only {len(latencies)} of {len(sent)} cases reached a dispatch topic")
    return {
        "offered_rate_per_s": rate,
        "achieved_rate_per_s": round(measured["achieved_rate"], 1),
        "seconds": seconds,
        "cases": len(sent),
        "dispatched": len(latencies),
        "warmup_cases": WARMUP_CASES,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(latencies[-1], 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "goal_p99_ms": 200,
        # CPU per case of each process while the measured cases were offered and dispatched: unlike the
        # latencies, not inflated by other work on the machine.
        "cpu_ms_per_case": cpu_per(cpu_before, cpu_after, len(sent)),
        "postgres_statements": statements,
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
    }


def end_to_end(rate: float, seconds: float) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    ports = Ports(KAFKA_PORT, KAFKA_CONTROLLER_PORT, POSTGRES_PORT, ROUTING_PORT - SERVICES["routing"])
    with local_stack(WORK, ports, ["routing"], statement_stats=True) as stack:
        stack.system.log_dir.mkdir(parents=True, exist_ok=True)
        routing = stack.system.process("routing")
        routing.start()
        routing.wait_ready(180)
        sampler = ProcessSampler(
            {
                "routing": routing.process.pid,
                "kafka": stack.broker.process.pid,
                "postgres": stack.postgres.process.pid,
                "bench": os.getpid(),
            }
        )
        sampler.own_only.add("bench")
        result = asyncio.run(drive(stack.system, rate, seconds, sampler))
        return result | {
            "path": "CaseReceived produced to the case-events topic (no intake) → routing process → "
            "dispatch topics",
            "routing_outbox_poll_interval_s": float(BENCH_ENV["GRIDLINE_OUTBOX_POLL_INTERVAL_S"]),
            "kafka": stack.broker.version,
            "postgres": stack.postgres.version,
        }


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    results: dict = {"cores": os.cpu_count(), "loadavg_1_5_15_at_start": list(os.getloadavg())}
    if not args.skip_decisions:
        results["decisions"] = decision_throughput()
    if not args.skip_end_to_end:
        e2e = end_to_end(args.rate, args.seconds)
        results["end_to_end"] = e2e
        lat = e2e["latency_ms"]
        print(
            f"end to end (case received → dispatch topic), {e2e['cases']} cases offered at "
            f"{args.rate:g}/s for {args.seconds:g} s (achieved {e2e['achieved_rate_per_s']}/s), "
            f"{e2e['dispatched']} dispatched:\n"
            f"  p50 {lat['p50']} ms · p95 {lat['p95']} ms · p99 {lat['p99']} ms · max {lat['max']} ms "
            f"(goal p99 ≤ 200 ms) on {os.cpu_count()} cores; load average before/after "
            f"{e2e['loadavg_1_5_15_before']} / {e2e['loadavg_1_5_15_after']}\n"
            f"  CPU ms per case: {e2e['cpu_ms_per_case']}\n"
            f"  PostgreSQL: {json.dumps(e2e['postgres_statements'], ensure_ascii=False, indent=1)}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "routing.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
