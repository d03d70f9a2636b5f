"""Intake benchmark: sustained accepted cases per second, and latency at a fixed offered rate.

Runs against a running intake (``make run`` or the e2e system): ``python -m bench.intake --url
http://127.0.0.1:8001 --rate 50 --seconds 20``. Phase 1 sends as fast as ``--concurrency`` clients allow
and reports accepted cases/s; phase 2 offers ``--rate`` requests/s (open loop, so a slow server does not
slow the offered load) and reports p50/p99. Every request is a new, realistic 12345 work order.
Prints the machine's core count, because numbers mean nothing without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from devtools.sample import hotline_order

KEY = "dev-hotline-key"  # deploy/local/api-keys.dev.yaml (development only)


def _order(run: str, index: int) -> dict:
    return hotline_order(index, seed=7) | {"order_no": f"bench-{run}-{index:08d}"}


async def saturate(client: httpx.AsyncClient, run: str, seconds: float, concurrency: int) -> tuple[int, int]:
    """Closed loop: ``concurrency`` workers post back to back; returns (accepted, refused)."""
    accepted = refused = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal accepted, refused
        while time.perf_counter() < deadline:
            response = await client.post("/v1/intake/hotline", json=_order(run, next(counter)))
            if response.status_code == 201:
                accepted += 1
            else:
                refused += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, refused


async def fixed_rate(client: httpx.AsyncClient, run: str, rate: float, seconds: float) -> list[float]:
    """Open loop at ``rate`` requests/s; returns latencies (seconds) of accepted requests."""
    latencies: list[float] = []
    tasks = []

    async def one(index: int) -> None:
        started = time.perf_counter()
        response = await client.post("/v1/intake/hotline", json=_order(run, index))
        if response.status_code == 201:
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(10**8 + index)))
    await asyncio.gather(*tasks)
    return latencies


async def run_bench(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50, help="offered requests/s in the latency phase")
    parser.add_argument("--wrk-connections", type=int, default=32, help="connections of the wrk phase")
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:6]
    limits = httpx.Limits(max_connections=max(args.concurrency, 64))
    async with httpx.AsyncClient(
        base_url=args.url, headers={"X-API-Key": KEY}, timeout=30, limits=limits
    ) as c:
        print(f"cores: {os.cpu_count()}  target: {args.url}")
        accepted, refused = await saturate(c, run, args.seconds, args.concurrency)
        print(f"sustained: {accepted / args.seconds:.1f} accepted cases/s over {args.seconds:.0f}s "
              f"({args.concurrency} clients; {refused} refused)")  # fmt: skip
        saturated = await asyncio.to_thread(wrk_saturate, args.url, int(args.seconds), args.wrk_connections)
        if saturated:
            rate, refused = saturated["requests_per_s"], saturated["non_2xx"]
            print(f"sustained with wrk ({saturated['connections']} connections): {rate} requests/s, "
                  f"{refused} not accepted, p99 {saturated['p99']}")  # fmt: skip
        latencies = sorted(await fixed_rate(c, run, args.rate, args.seconds))
        if latencies:
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            print(
                f"at {args.rate:.0f}/s offered: {len(latencies)} accepted, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )


WRK_SCRIPT = """
local n = 0
local run = "%(run)s"
local bodies = {%(bodies)s}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
request = function()
  n = n + 1
  local body = string.gsub(bodies[(n %% #bodies) + 1], "ORDERNO", "wrk-" .. run .. "-" .. n)
  body = string.gsub(body, "PHONE", string.format("139%%08d", n))
  return wrk.format(nil, "/v1/intake/hotline", nil, body)
end
"""


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wrk_saturate(url: str, seconds: int, connections: int) -> dict | None:
    """Accepted cases/s with wrk as the client (httpx in one process cannot saturate a server).

    wrk cycles through 64 realistic work orders (categories, towns, texts) and gives every request its own
    order number and caller, so what it measures is new cases, not idempotent replays or duplicates."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    orders = [hotline_order(i, seed=7) | {"order_no": "ORDERNO", "caller_phone": "PHONE"} for i in range(64)]
    bodies = ", ".join(_lua_string(json.dumps(order, ensure_ascii=False)) for order in orders)
    script = Path(tempfile.mkdtemp()) / "intake.lua"
    run = uuid.uuid4().hex[:8]  # order numbers unique across runs: a reused one with another body is a 409
    script.write_text(WRK_SCRIPT % {"key": KEY, "run": run, "bodies": bodies})
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    refused = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    p99 = next((line.split()[1] for line in out.splitlines() if line.strip().startswith("99%")), "?")
    return {"requests_per_s": round(total), "non_2xx": refused, "p99": p99, "connections": connections}


def main(argv: list[str] | None = None) -> None:
    """Entry point (also for `make bench`, which passes no arguments: the defaults)."""
    asyncio.run(run_bench(argv))


if __name__ == "__main__":
    main()
