"""Projection benchmark: events/s live and in rebuild, p99 of the case queries over N projected cases.

    .venv/bin/python -m bench.projection --cases 1000000     # starts its own Kafka + PostgreSQL
    .venv/bin/python -m bench.projection --cases 20000 --kafka H:P --postgres-url postgresql://u@h:p

Synthetic cases (about six events each: received, assigned, deadline, accepted, reply or a card, ...) are
published to a fresh topic; then (1) the live consumer loop with projection's handlers folds them a
consumed batch at a time, as the service does (timed on the first ``--live-events`` only),
(2) a rebuild folds all of them from offset 0 and swaps, (3) GET /v1/cases with two filters and
GET /v1/cases/{id} are timed in-process (ASGI, no network) on the rebuilt read models.

Each phase also reports the CPU seconds per 1,000 events of this process and of PostgreSQL (and Kafka, when
started here) with the load average, since on a shared box the wall-clock rates alone say little. Results
go to bench/results/projection.json unless ``--output`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import sqlalchemy as sa
from fastapi import FastAPI

from contracts.envelope import encode_event
from devtools import infra
from runtime import kafka, migrations
from runtime.consumer import EventConsumer
from runtime.problems import install_problem_handlers
from runtime.service import ServiceRuntime
from services.projection.api import ROUTERS
from services.projection.bootstrap import MIGRATIONS
from services.projection.config import ProjectionSettings
from services.projection.projector import project, project_batch
from services.projection.queries import CaseFilter, page_query
from services.projection.rebuild import rebuild
from services.projection.tables import case_timeline
from tests import factories as f

TOWNS = [f"370114{k:03d}000" for k in range(1, 18)]
DEPARTMENTS = ["CGJ", "STHJJ", "ZJJ", "SWJ", "JTJ"]
REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench"
RESULTS = REPO / "bench" / "results"


class CpuMeter:
    """CPU seconds of this process and of named server process trees (reaped children included)."""

    def __init__(self, servers: dict[str, int]) -> None:
        self.servers = {name: psutil.Process(pid) for name, pid in servers.items()}

    def read(self) -> dict[str, float]:
        own = psutil.Process().cpu_times()
        found = {"bench": own.user + own.system + own.children_user + own.children_system}
        for name, root in self.servers.items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                for proc in (root, *root.children(recursive=True)):
                    with contextlib.suppress(psutil.Error):
                        t = proc.cpu_times()
                        total += t.user + t.system + t.children_user + t.children_system
            found[name] = total
        return found

    @contextlib.contextmanager
    def phase(self, into: dict) -> Iterator[None]:
        """Fill ``into`` with the phase's CPU seconds per process and the load average at its end."""
        before, started = self.read(), time.monotonic()
        yield
        after = self.read()
        into["wall_s"] = round(time.monotonic() - started, 2)
        into["cpu_s"] = {name: round(after[name] - before[name], 2) for name in after}
        into["load_average"] = [round(x, 2) for x in os.getloadavg()]


def per_thousand(phase: dict, events: int) -> dict[str, float]:
    return {name: round(s * 1000 / events, 3) for name, s in phase["cpu_s"].items()} if events else {}


def case_events(k: int, rng: random.Random) -> list:
    """The events of the k-th synthetic case."""
    case = f"BZ{k:012d}"
    t0 = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=k * 3 % 500_000)
    town = rng.choice(TOWNS)
    events = [
        f.case_received(case, occurred_at=t0, received_at=t0, description=f"第{k}号诉求：路灯不亮噪音扰民"),
        f.case_assigned(
            case, rng.choice(DEPARTMENTS), at=t0 + timedelta(minutes=5), area_code=town[:9] + "001"
        ),
        f.deadline_set(case, t0 + timedelta(days=5), at=t0 + timedelta(minutes=5)),
        f.assignment_accepted(case, at=t0 + timedelta(hours=1)),
    ]
    if rng.random() < 0.6:
        events += [
            f.reply_submitted(case, at=t0 + timedelta(days=2)),
            f.case_closed_at(case, at=t0 + timedelta(days=3)),
        ]
    else:
        events += [f.deadline_breached(case, t0 + timedelta(days=5), at=t0 + timedelta(days=5))]
    return events


async def publish(bootstrap: str, topic: str, cases: int) -> int:
    producer = kafka.create_producer(bootstrap, "bench-projection")
    await producer.start()
    rng, sent, pending = random.Random(7), 0, []
    try:
        for k in range(cases):
            for event in case_events(k, rng):
                m = encode_event(event, source="/gridline/bench", topic=topic)
                pending.append(await producer.send(topic, m.value, key=m.key.encode(), headers=m.headers))
                sent += 1
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def run_live(settings: ProjectionSettings, engine, limit: int) -> float:
    """events/s of the live path (shared consumer loop, one savepoint per event) over ``limit`` events."""
    client = kafka.create_consumer(
        settings.kafka_bootstrap_servers, settings.consumer_group, settings.case_events_topic
    )
    await client.start()
    producer = kafka.create_producer(settings.kafka_bootstrap_servers, "bench-dlq")
    await producer.start()
    consumer = EventConsumer(name=settings.consumer_group, consumer=client, producer=producer, engine=engine,
                             handler=project, batch_handler=project_batch, batch_size=500)  # fmt: skip
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(consumer.run(stop))
    while consumer.status.processed < limit and not task.done():  # noqa: ASYNC110  (polling a counter)
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    processed = consumer.status.processed
    stop.set()
    await task
    await client.stop()
    await producer.stop()
    return processed / elapsed


async def time_queries(settings: ProjectionSettings, engine, cases: int, requests: int) -> dict[str, float]:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = ServiceRuntime(settings=settings, engine=engine)
    for router in ROUTERS:
        app.include_router(router)
    rng = random.Random(11)
    timings: dict[str, list[float]] = {"list_two_filters": [], "get_case": []}
    headers = {"X-API-Key": "dev-operator-key"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://b", headers=headers
    ) as c:
        for _ in range(requests):
            params = {"status": rng.choice(["closed", "accepted"]), "town": rng.choice(TOWNS), "limit": 50}
            started = time.perf_counter()
            (await c.get("/v1/cases", params=params)).raise_for_status()
            timings["list_two_filters"].append(time.perf_counter() - started)
            started = time.perf_counter()
            (await c.get(f"/v1/cases/BZ{rng.randrange(cases):012d}")).raise_for_status()
            timings["get_case"].append(time.perf_counter() - started)
    return {f"{name} p{q}": _quantile(values, q) * 1000 for name, values in timings.items() for q in (50, 99)}


async def query_plans(engine) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the two timed queries as the API issues them (one town, one status, page 1)."""
    listed = page_query(
        CaseFilter(status=["closed"], town=TOWNS[3]).conditions(datetime.now(UTC)), "-opened_at", 50, None
    )
    timeline = sa.select(case_timeline).where(case_timeline.c.case_id == "BZ000000000007").order_by(
        case_timeline.c.log_partition, case_timeline.c.log_offset, case_timeline.c.occurred_at
    )  # fmt: skip
    plans = {}
    async with engine.connect() as conn:
        for name, query in (("list_two_filters", listed), ("get_case_timeline", timeline)):
            sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            rows = await conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
            plans[name] = [r[0] for r in rows]
    return plans


def _quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run(args: argparse.Namespace, bootstrap: str, postgres_url: str, meter: CpuMeter) -> dict:
    run = uuid.uuid4().hex[:8]
    database, topic = f"bench_projection_{run}", f"bench.case-events.{run}"
    infra.create_databases_at(postgres_url, [database])
    settings = ProjectionSettings(
        kafka_bootstrap_servers=bootstrap,
        postgres_url=postgres_url,
        database_name=database,
        case_events_topic=topic,
        consumer_group="bench-projection",
        db_pool_size=4,
    )
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, settings.database_url)
    await kafka.ensure_topics(bootstrap, {topic: 6, kafka.dlq_topic(topic): 1})
    results: dict = {
        "cases": args.cases,
        "cores": os.cpu_count(),
        "batch_size": args.batch_size,
        "rebuild_workers": args.workers,
    }
    started = time.monotonic()
    events = await publish(bootstrap, topic, args.cases)
    results["events"] = events
    print(f"published {events:,} events of {args.cases:,} cases in {time.monotonic() - started:.0f}s")
    runtime = ServiceRuntime.build(settings)
    live_events = min(args.live_events, events)
    results["live"] = {"events": live_events}
    with meter.phase(results["live"]):
        live = await run_live(settings, runtime.engine, live_events)
    results["live"] |= {
        "events_per_s": round(live),
        "cpu_s_per_1000_events": per_thousand(results["live"], live_events),
    }
    print(f"live projection: {live:,.0f} events/s (first {live_events:,} events) {_cpu(results['live'])}")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results["rebuild"] = {}
    with meter.phase(results["rebuild"]):
        report = await rebuild(settings, batch_size=args.batch_size, workers=args.workers, progress=True)
    rate = report.events_per_second
    results["rebuild"] |= {
        "events": report.events,
        "seconds": round(report.seconds, 2),
        "events_per_s": round(rate),
        # the checksums only compare like with like when the live phase projected every event
        "identical": report.identical if live_events == events else "not compared: live saw a prefix",
        "reloaded_summaries": report.reloaded,
        "phases_s": report.phases,
        "first_pass_events_per_s": round(report.events / report.phases["load"])
        if report.phases.get("load")
        else None,
        "cpu_s_per_1000_events": per_thousand(results["rebuild"], report.events),
        "first_pass_processes": report.processes,
        "first_pass_peak_rss_mb": report.peak_rss_mb,
        "bench_peak_rss_mb_before": round(rss_before / 1024),
        "bench_peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"rebuild: {report.events:,} events in {report.seconds:.0f}s = {rate:,.0f} events/s, "
          f"phases {report.phases} (checksums identical: {report.identical})")  # fmt: skip
    print(f"rebuild {_cpu(results['rebuild'])}")
    async with runtime.engine.connect() as conn:
        results["case_summary_rows"] = await conn.scalar(
            sa.select(sa.func.count()).select_from(sa.text("case_summary"))
        )
    results["queries_ms"] = {}
    for name, ms in (await time_queries(settings, runtime.engine, args.cases, args.requests)).items():
        results["queries_ms"][name] = round(ms, 2)
        print(f"{name}: {ms:.1f} ms")
    results["queries_load_average"] = [round(x, 2) for x in os.getloadavg()]
    results["query_plans"] = await query_plans(runtime.engine)
    await runtime.engine.dispose()
    return results


def _cpu(phase: dict) -> str:
    cpu = ", ".join(f"{name} {s:.1f}" for name, s in phase["cpu_s"].items())
    return f"[CPU s: {cpu}; load {phase['load_average']}]"


def main(argv: list[str] | None = None) -> None:
    """Run it (``make bench`` passes no arguments: GRIDLINE_BENCH_PROJECTION_CASES cases, default 20,000)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_cases = int(os.environ.get("GRIDLINE_BENCH_PROJECTION_CASES", "20000"))
    parser.add_argument("--cases", type=int, default=default_cases)
    parser.add_argument("--live-events", type=int, default=50_000, help="events timed on the live path")
    parser.add_argument("--batch-size", type=int, default=5000, help="rebuild events per transaction")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes of the rebuild's first pass"
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per timed query")
    parser.add_argument("--kafka", help="bootstrap servers of a running Kafka (else one is started)")
    parser.add_argument("--postgres-url", help="server URL of a running PostgreSQL (else one is started)")
    parser.add_argument("--port-base", type=int, default=20500, help="ports of the started servers")
    parser.add_argument("--output", type=Path, default=RESULTS / "projection.json", help="results JSON")
    args = parser.parse_args(argv or [])
    if args.kafka and args.postgres_url:
        results = asyncio.run(run(args, args.kafka, args.postgres_url, CpuMeter({})))
    else:
        started_kafka = infra.start_kafka(
            WORK / "kafka", args.port_base + 92, args.port_base + 93, fresh=True
        )
        started_pg = infra.start_postgres(WORK / "postgres", args.port_base + 432, fresh=True)
        try:
            assert started_kafka.process and started_pg.process
            meter = CpuMeter({"postgres": started_pg.process.pid, "kafka": started_kafka.process.pid})
            url = started_pg.dsn("").rstrip("/")
            results = asyncio.run(run(args, started_kafka.bootstrap_servers, url, meter))
            results["postgres"] = started_pg.version
        finally:
            started_kafka.stop()
            started_pg.stop()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"results: {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
