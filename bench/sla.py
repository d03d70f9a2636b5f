"""Sla's durable timers at scale: memory, scheduling time, and firing lag when many fall due at once.

    .venv/bin/python -m bench.sla                          # 1,000,000 timers, 10,000 due in one second
    .venv/bin/python -m bench.sla --timers 200000 --due 10000

1. ``--timers`` pending timers (five per case: sign-for and reply yellow/red, case red, due over the next
   30 days) are stored through ``store.schedule_many`` in transactions of ``--batch`` rows: time, rows/s,
   the size of ``sla_timers`` (heap and indexes) and this process's RSS.
2. ``--due`` more timers (half yellow, half red cards, one per case, with their deadline rows) fall due at
   the same instant. The real ``TimerRunner.run`` loop, with its default batch and idle-poll settings and
   an injected clock (``ScaledClock`` at speed 1 from a fixed virtual origin), fires them. Lag per event =
   commit time of its outbox row (``track_commit_timestamp``: when the relay can first see it) minus the
   due time. The runner starts a few seconds before that instant, so it prepares their events ahead
   (``sla_timer_prepare_ahead_s``) as a running service does. Red cards start the escalation ladder,
   whose level 1 is due at the same instant: those events are reported separately.

CPU seconds of this process and of PostgreSQL (its backends included) are reported per stored and per fired
timer, with the load average, since wall-clock figures on a shared box say little on their own; PostgreSQL's
own profile of the firing (pg_stat_statements: execution time per fired event, the costliest statements).

Starts its own PostgreSQL on port 23432 (fresh data in .local/bench-sla/pg; Kafka is not needed: lag
ends at the outbox) and writes bench/results/sla.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import _pgstat
from bench._watch import ProcessSampler, cpu_per
from devtools import infra
from runtime import migrations
from services.sla import store
from services.sla.bootstrap import MIGRATIONS
from services.sla.clock import ScaledClock
from services.sla.config import SlaSettings
from services.sla.context import SlaContext
from services.sla.domain.calendar import SHANGHAI
from services.sla.tables import cases, deadlines
from services.sla.timers import TimerRunner

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-sla"
RESULTS = REPO / "bench" / "results"
DATABASE = "gridline_sla_bench"
ORIGIN = datetime(2025, 3, 3, 17, 29, 50, tzinfo=SHANGHAI)  # virtual start: ten seconds before closing
HEAD_START_S = 6  # enough to store --due timers on a busy box, before they fall due
STAGE_KINDS = (("sign_for", "yellow"), ("sign_for", "red"), ("reply", "yellow"), ("reply", "red"))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.sla", description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=1_000_000, help="pending timers in the table")
    parser.add_argument("--due", type=int, default=10_000, help="timers falling due in the same second")
    parser.add_argument("--batch", type=int, default=10_000, help="timers per scheduling transaction")
    parser.add_argument("--port", type=int, default=23432, help="port of the bench's own PostgreSQL")
    parser.add_argument("--runner-batch", type=int, help="sla_timer_batch_size (default: the setting's)")
    parser.add_argument("--runner-concurrency", type=int, help="sla_timer_concurrency (default: setting's)")
    return parser.parse_args(argv)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pending_timers(count: int, start: datetime) -> list[store.NewTimer]:
    """``count`` timers of synthetic cases, five per case, due over the 30 days after ``start``."""
    spread = 30 * 24 * 3600
    out = []
    for k in range(count):
        case, slot = divmod(k, 5)
        stage, kind = STAGE_KINDS[slot] if slot < 4 else ("case", "red")
        deadline = start + timedelta(days=1, seconds=(case * 7919) % spread)
        due = deadline - timedelta(hours=4) if kind == "yellow" else deadline
        out.append(store.NewTimer(f"BP{case:09d}", stage, kind, 1, due, deadline, "A1"))
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_us(before: dict[str, float], after: dict[str, float], count: int, what: str) -> dict:
    """CPU microseconds per ``what`` of each process tree between two samples."""
    return {f"cpu_{name}_us_per_{what}": v for name, v in cpu_per(before, after, count, 1e6, None).items()}


async def schedule(engine: AsyncEngine, cpu: ProcessSampler, total: int, batch: int, start: datetime) -> dict:
    cpu_before = cpu.cpu_seconds()
    began = time.perf_counter()
    for first in range(0, total, batch):
        rows = pending_timers(min(batch, total - first), start)
        rows = [
            store.NewTimer(f"{t.case_id}-{first}", t.stage, t.kind, 1, t.due_at, t.deadline_due_at, "A1")
            for t in rows
        ]
        async with engine.begin() as conn:
            await store.schedule_many(conn, rows)
    elapsed = time.perf_counter() - began
    cpu_after = cpu.cpu_seconds()
    async with engine.begin() as conn:
        await conn.execute(sa.text("ANALYZE sla_timers"))
        heap, indexes = (
            await conn.execute(sa.text("SELECT pg_table_size('sla_timers'), pg_indexes_size('sla_timers')"))
        ).one()
    return {
        "timers": total,
        "schedule_s": round(elapsed, 1),
        "schedule_timers_per_s": round(total / elapsed),
        **cpu_us(cpu_before, cpu_after, total, "timer_scheduled"),
        "table_heap_mb": round(heap / 2**20, 1),
        "table_indexes_mb": round(indexes / 2**20, 1),
        "table_bytes_per_timer": round((heap + indexes) / max(total, 1)),
        "process_rss_mb": round(rss_bytes() / 2**20, 1),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def due_together(engine: AsyncEngine, ctx: SlaContext, count: int, due: datetime) -> None:
    """``count`` cases, each with one card timer due at ``due`` (and the deadline and case rows the red
    card's escalation ladder reads)."""
    started = due - timedelta(days=5)
    for first in range(0, count, 2000):
        ids = [f"BD{k:09d}" for k in range(first, min(first + 2000, count))]
        timers, deadline_rows = [], []
        for k, case in enumerate(ids, start=first):
            kind = "red" if k % 2 else "yellow"
            timers.append(store.NewTimer(case, "reply", kind, 1, due, due, "A1"))
            deadline_rows.append(
                {
                    "case_id": case,
                    "stage": "reply",
                    "generation": 1,
                    "assignment_id": "A1",
                    "policy_id": "default",
                    "policy_version": ctx.table.version,
                    "clock": "working_days",
                    "amount": 5,
                    "started_at": started,
                    "due_at": due,
                    "state": "running",
                    "provisional": False,
                    "calendar_basis": "chinese-calendar 1.11.0",
                }
            )
        async with engine.begin() as conn:
            await conn.execute(sa.insert(cases), [{"case_id": case} for case in ids])
            await conn.execute(sa.insert(deadlines), deadline_rows)
            await store.schedule_many(conn, timers)


async def firing_lag(
    engine: AsyncEngine, cpu: ProcessSampler, settings: SlaSettings, count: int, server_url: str
) -> dict:
    anchor = time.time()
    ctx = SlaContext.from_settings(settings)
    ctx.clock = ScaledClock(ORIGIN, anchor, 1.0)
    due = ctx.now() + timedelta(seconds=HEAD_START_S)  # the runner is asleep (idle polling) by then
    await due_together(engine, ctx, count, due)
    async with engine.begin() as conn:  # statistics as a service's would be, its due timers not brand new
        await conn.execute(sa.text("ANALYZE sla_timers, sla_cases, sla_deadlines"))
    due_real = anchor + (due - ORIGIN).total_seconds()
    if time.time() >= due_real:
        raise RuntimeError("preparing the due timers took longer than the head start; lower --due")
    expected = count + count // 2  # every card, plus escalation level 1 of each red card
    runner = TimerRunner(engine, ctx, lambda: None)
    stop = asyncio.Event()
    sessions = await _pgstat.reset(server_url)
    cpu_before = cpu.cpu_seconds()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            async with engine.connect() as conn:
                emitted = (await conn.execute(sa.text("SELECT count(*) FROM outbox"))).scalar_one()
            if emitted >= expected:
                break
    finally:
        stop.set()
        await task
    cpu_after = cpu.cpu_seconds()
    statements = await _pgstat.top(server_url, expected, sessions, limit=6)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT event_type, pg_xact_commit_timestamp(xmin) AS committed FROM outbox")
            )
        ).all()
        claim = (ctx.now(), settings.sla_timer_batch_size)
        plan = [row[0] for row in (await conn.exec_driver_sql("EXPLAIN " + store._FIRE_DUE, claim)).all()]
    cards = sorted(r.committed.timestamp() - due_real for r in rows if ".escalated." not in r.event_type)
    ladder = sorted(r.committed.timestamp() - due_real for r in rows if ".escalated." in r.event_type)
    last = max(cards[-1] if cards else 0.0, ladder[-1] if ladder else 0.0)
    return {
        "due_together": count,
        "cards_emitted": len(cards),
        "lag_first_s": round(cards[0], 3) if cards else None,
        "lag_p50_s": round(_quantile(cards, 0.50), 3),
        "lag_p99_s": round(_quantile(cards, 0.99), 3),
        "lag_max_s": round(cards[-1], 3) if cards else None,
        "escalations_emitted": len(ladder),
        "escalation_lag_p99_s": round(_quantile(ladder, 0.99), 3),
        "events_per_s_until_last": round(len(rows) / last) if last > 0 else None,
        **cpu_us(cpu_before, cpu_after, len(rows), "event_fired"),
        "runner_batch_size": settings.sla_timer_batch_size,
        "runner_concurrency": settings.sla_timer_concurrency,
        "runner_idle_poll_s": settings.sla_timer_idle_poll_s,
        "runner_prepare_ahead_s": settings.sla_timer_prepare_ahead_s,
        "postgres_per_event_fired": statements,
        "claim_plan": next(line for line in plan if "Scan" in line and "sla_timers" in line).strip(" ->"),
    }


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def run(args: argparse.Namespace, server_url: str, postgres_pid: int) -> dict:
    runner = {"sla_timer_batch_size": args.runner_batch, "sla_timer_concurrency": args.runner_concurrency}
    settings = SlaSettings(
        postgres_url=server_url,
        database_name=DATABASE,
        environment="test",
        **{name: value for name, value in runner.items() if value is not None},
    )
    engine = create_async_engine(settings.database_url, pool_size=4)
    cpu = ProcessSampler({"bench": os.getpid(), "postgres": postgres_pid})
    cpu.own_only.add("bench")
    try:
        results = await schedule(engine, cpu, args.timers, args.batch, ORIGIN)
        results |= await firing_lag(engine, cpu, settings, args.due, server_url)
    finally:
        await engine.dispose()
    return results


async def _enable_commit_timestamps(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parse([] if argv is None else argv)
    WORK.mkdir(parents=True, exist_ok=True)
    postgres = infra.start_postgres(WORK / "pg", args.port, fresh=True)
    try:
        # commit timestamps tell when each outbox row became visible; the setting needs a restart
        asyncio.run(_enable_commit_timestamps(postgres.dsn()))
        postgres.stop()
        postgres = infra.start_postgres(WORK / "pg", args.port, fresh=False, statement_stats=True)
        postgres.create_databases([DATABASE])
        url = postgres.dsn(DATABASE).replace("postgresql://", "postgresql+asyncpg://", 1)
        migrations.upgrade(MIGRATIONS, url)
        results = {"cores": os.cpu_count(), "postgres": postgres.version, "loadavg_at_start": loadavg()}
        assert postgres.process is not None
        results |= asyncio.run(run(args, postgres.dsn("").rstrip("/"), postgres.process.pid))
        results["loadavg_at_end"] = loadavg()
    finally:
        postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sla.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
