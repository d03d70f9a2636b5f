"""Idle benchmark: what the whole system costs with no traffic (a district's night, most of the day).

    .venv/bin/python -m bench idle            # starts its own Kafka, PostgreSQL and the five services

Kafka, PostgreSQL and all five services start fresh (port base 21000, nothing seeded, no appeals); after
``--settle`` seconds each process's CPU is sampled over ``--seconds`` and reported as a share of one core,
with resident memory and PostgreSQL's statements per second in that window (pg_stat_statements: which
statements the services' polling runs). Results go to bench/results/idle.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from bench import _pgstat
from bench._stack import Ports, local_stack
from bench._watch import ProcessSampler
from devtools.system import SERVICES

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-idle"
RESULTS = REPO / "bench" / "results"
PORTS = Ports(kafka=21092, kafka_controller=21093, postgres=21432, service_offset=21101 - SERVICES["intake"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="the sampled idle window")
    parser.add_argument("--settle", type=float, default=20, help="seconds after start before sampling")
    parser.add_argument("--output", type=Path, default=RESULTS / "idle.json", help="results JSON")
    args = parser.parse_args(argv or [])
    shutil.rmtree(WORK, ignore_errors=True)
    with local_stack(WORK, PORTS, list(SERVICES), statement_stats=True) as stack:
        stack.system.start(timeout=240)
        pids = {name: proc.process.pid for name, proc in stack.system.services.items() if proc.process}
        pids |= {"kafka": stack.broker.process.pid, "postgres": stack.postgres.process.pid}
        sampler = ProcessSampler(pids)
        time.sleep(args.settle)
        sessions = asyncio.run(_pgstat.reset(stack.system.postgres_url))
        before = sampler.cpu_seconds()
        time.sleep(args.seconds)
        after = sampler.cpu_seconds()
        statements = asyncio.run(_pgstat.top(stack.system.postgres_url, int(args.seconds), sessions, 8))
        memory = sampler.rss()
    core_percent = {name: round(100 * (after[name] - before[name]) / args.seconds, 2) for name in after}
    results = {
        "cores": os.cpu_count(),
        "seconds": args.seconds,
        "core_percent": core_percent,
        "core_percent_total": round(sum(core_percent.values()), 1),
        "rss_mb": {name: round(value / 2**20) for name, value in memory.items()},
        # _pgstat reports "per case"; with the window's seconds as the count, that reads per second
        "postgres_statements_per_s": statements["calls_per_case"],
        "postgres_exec_ms_per_s": statements["exec_ms_per_case"],
        "postgres_top": [
            {"database": s["database"], "statement": s["statement"], "calls_per_s": s["calls_per_case"]}
            for s in statements["top"]
        ],
    }
    print(f"cores: {os.cpu_count()}; idle for {args.seconds:.0f}s after {args.settle:.0f}s to settle")
    print(f"share of one core: {core_percent} (total {results['core_percent_total']} %)")
    print(f"resident memory MB: {results['rss_mb']}")
    print(f"PostgreSQL: {results['postgres_statements_per_s']} statements/s, "
          f"{results['postgres_exec_ms_per_s']} ms of execution per second")  # fmt: skip
    for row in results["postgres_top"]:
        print(f"  {row['calls_per_s']:>7}/s  {row['database']}: {row['statement'][:100]}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
