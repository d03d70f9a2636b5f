"""Notify's delivery throughput: messages/s to a local webhook receiver when 1% of endpoints fail.

    .venv/bin/python -m bench.notify                        # 20,000 assignments over 100 departments
    .venv/bin/python -m bench.notify --messages 5000 --endpoints 200 --failing 0.01

1. ``--messages`` CaseAssigned events, each to one of ``--endpoints`` departments reached by webhook, go
   through notify's real consumer handler (fold, subscription table, templates, queue insert) in
   transactions of 500, as the consumer loop runs them: events/s.
2. The real delivery worker (default policy: 32 in flight, circuit breaker, backoff) sends them to a
   webhook receiver in its own process; ``--failing`` of the endpoints answer 500. Reported: healthy
   messages/s from the first claim until the last healthy message is recorded sent, queue-to-sent latency
   p50/p99 (from when the row was queued or the worker started, whichever is later), and how often the
   failing endpoints were actually called (the circuit breaker at work), and PostgreSQL's statements a
   message while the worker sent (pg_stat_statements): the claim's cost as the queue grows.

Starts its own PostgreSQL on port 23632 (fresh data in .local/bench-notify/pg; Kafka is not needed:
events end in the outbox) and writes bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import _pgstat
from contracts.envelope import decode_message, encode_event
from contracts.events.routing import Assignee, AssigneeKind, CaseAssigned, RoutingBasis
from devtools import infra
from runtime import migrations
from runtime.consumer import Delivery, apply_in_unit
from services.notify import bootstrap
from services.notify.channels.http import new_session
from services.notify.config import NotifySettings
from services.notify.contacts import FakeContactDirectory
from services.notify.domain.directory import Directory, RecipientEntry, Route, WebhookEndpoint
from services.notify.tables import deliveries

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-notify"
RESULTS = REPO / "bench" / "results"
DATABASE = "gridline_notify_bench"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.notify", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="assignments (one webhook message each)")
    parser.add_argument("--endpoints", type=int, default=100, help="departments, one webhook endpoint each")
    parser.add_argument("--failing", type=float, default=0.01, help="share of endpoints answering 500")
    parser.add_argument("--port", type=int, default=23632, help="PostgreSQL port (receiver: port + 1)")
    return parser.parse_args(argv)


def serve_receiver(port: int, failing: list[str]) -> None:
    """The webhook receiver process: 204 for healthy endpoints, 500 for failing ones, calls counted."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route as HttpRoute

    calls: dict[str, int] = {}

    async def hook(request):
        name = request.path_params["name"]
        await request.body()
        calls[name] = calls.get(name, 0) + 1
        return Response(status_code=500 if name in failing else 204)

    async def stats(request):
        return JSONResponse(calls)

    app = Starlette(routes=[HttpRoute("/hooks/{name}", hook, methods=["POST"]), HttpRoute("/stats", stats)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def directory_for(endpoints: int, port: int) -> Directory:
    names = [f"d{i:04d}" for i in range(endpoints)]
    return Directory(
        webhook_endpoints={
            n: WebhookEndpoint(url=f"http://127.0.0.1:{port}/hooks/{n}", secret="bench") for n in names
        },
        recipients={
            f"department:{n.upper()}": RecipientEntry(name=n, routes=[Route(channel="webhook", endpoint=n)])
            for n in names
        },
    )


async def enqueue(engine: AsyncEngine, notifier, args) -> float:
    started = time.perf_counter()
    basis = RoutingBasis()
    for start in range(0, args.messages, 500):
        batch = []
        for i in range(start, min(start + 500, args.messages)):
            code = f"D{i % args.endpoints:04d}"
            event = CaseAssigned(
                case_id=f"ZQB{i:010d}", occurred_at=datetime.now(UTC), actor="bench",
                assignment_id=f"a{i}", basis=basis,
                assignee=Assignee(kind=AssigneeKind.DEPARTMENT, code=code, name=code),
            )  # fmt: skip
            m = encode_event(event, source="/bench", topic="bench")
            batch.append(Delivery(decode_message(m.key.encode(), m.headers, m.value), "bench", 0, i))
        async with engine.begin() as conn:  # one unit of work per batch, as the consumer loop runs it
            await apply_in_unit(notifier.open_unit, conn, batch)
    return time.perf_counter() - started


async def run(args, url: str, server_url: str) -> dict:
    receiver_port = args.port + 1
    failing = [f"d{i:04d}" for i in range(max(1, round(args.endpoints * args.failing)))]
    process = multiprocessing.Process(target=serve_receiver, args=(receiver_port, failing), daemon=True)
    process.start()
    engine = create_async_engine(url, pool_size=10)
    settings = NotifySettings(case_events_topic="bench")
    directory = directory_for(args.endpoints, receiver_port)
    notifier = bootstrap.build_notifier(settings, directory)
    try:
        enqueue_s = await enqueue(engine, notifier, args)
        failing_ids = {f"webhook:{n}" for n in failing}
        healthy = args.messages - sum(
            1 for i in range(args.messages) if f"d{i % args.endpoints:04d}" in failing
        )
        async with new_session(settings.notify_send_timeout_s) as session:
            worker = bootstrap.build_worker(
                settings,
                engine,
                session,
                source="/bench",
                directory=directory,
                contacts=FakeContactDirectory(),
            )
            stop = asyncio.Event()
            sessions = await _pgstat.reset(server_url)
            started, worker_start = time.perf_counter(), datetime.now(UTC)
            task = asyncio.create_task(worker.run(stop))
            async with engine.connect() as conn:
                while await _healthy_pending(conn, sorted(failing_ids)):  # noqa: ASYNC110 (polling the database)
                    await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            stop.set()
            await task
            statements = await _pgstat.top(server_url, healthy, sessions, limit=6)
            async with session.get(f"http://127.0.0.1:{receiver_port}/stats") as response:
                stats = await response.json()
        async with engine.connect() as conn:
            lat = (
                (
                    await conn.execute(
                        sa.select(
                            sa.extract(
                                "epoch",
                                deliveries.c.sent_at
                                - sa.func.greatest(deliveries.c.created_at, worker_start),
                            )
                        ).where(deliveries.c.status == "sent")
                    )
                )
                .scalars()
                .all()
            )
        lat = sorted(float(x) for x in lat)
        return {
            "messages": args.messages,
            "endpoints": args.endpoints,
            "failing_endpoints": len(failing),
            "handler_events_per_s": round(args.messages / enqueue_s, 1),
            "healthy_messages": healthy,
            "delivered_messages_per_s": round(healthy / elapsed, 1),
            "load_average_1m": round(os.getloadavg()[0], 1),
            "queue_to_sent_p50_s": round(statistics.median(lat), 3),
            "queue_to_sent_p99_s": round(lat[int(len(lat) * 0.99) - 1], 3),
            "failing_rows": args.messages - healthy,
            "calls_to_failing_endpoints": sum(stats.get(n, 0) for n in failing),
            "open_circuits": sorted(
                e for e, b in worker.breakers.items() if b.state != "closed" and e in failing_ids
            ),
            "postgres_exec_ms_per_message": statements["exec_ms_per_case"],
            "postgres_top_statements": [
                {k.replace("case", "message"): v for k, v in row.items()} for row in statements["top"]
            ],
        }
    finally:
        await engine.dispose()
        process.terminate()
        process.join(5)


async def _healthy_pending(conn, endpoints: list[str]) -> bool:
    """Whether a message to a healthy endpoint is still pending. Not a count of the sent ones: polled
    every 50 ms, a count over 500,000 rows was the bench's own largest cost (and PostgreSQL's)."""
    query = sa.select(
        sa.exists().where(deliveries.c.status == "pending", deliveries.c.endpoint.not_in(endpoints))
    )
    return (await conn.execute(query)).scalar_one()


def main(argv: list[str] | None = None) -> None:
    args = parse([] if argv is None else argv)
    WORK.mkdir(parents=True, exist_ok=True)
    postgres = infra.start_postgres(WORK / "pg", args.port, fresh=True, statement_stats=True)
    try:
        postgres.create_databases([DATABASE])
        url = postgres.dsn(DATABASE).replace("postgresql://", "postgresql+asyncpg://", 1)
        migrations.upgrade(bootstrap.MIGRATIONS, url)
        results = {"cores": os.cpu_count(), "postgres": postgres.version}
        results |= asyncio.run(run(args, url, postgres.dsn("").removesuffix("/")))
    finally:
        postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "notify.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    width = max(map(len, results))
    for name, value in results.items():
        if name != "postgres_top_statements":
            print(f"{name:<{width}}  {value}")
    print("PostgreSQL while the worker sent, ms a message / calls a message / rows a call:")
    for row in results["postgres_top_statements"]:
        ms, calls, rows = row["exec_ms_per_message"], row["calls_per_message"], row["rows_per_call"]
        print(f"  {ms:>7.3f} {calls:>6.2f} {rows:>6.1f}  {row['statement'][:100]}")


if __name__ == "__main__":
    main(sys.argv[1:])
