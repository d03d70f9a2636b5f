"""Intake benchmark: sustained accepted cases per second, and latency at a fixed offered rate.

Without ``--url`` (``make bench``, ``python -m bench intake``) it starts its own Kafka, PostgreSQL and one
intake process (the other services are not running, so intake has the machine to itself) and writes
bench/results/intake.json (``--output``); ``--replicas N`` starts N intake processes behind the nginx
gateway (its real config, devtools/gateway.py) and measures through the gateway. With ``--url
http://127.0.0.1:8001`` it measures a running intake (``make run``) instead.

Phase 1 sends as fast as ``--concurrency`` Python clients allow (bench/_http.py's keep-alive pool);
phase 2 saturates with wrk (a client in one Python process is itself a bottleneck); phase 3 offers
``--rate`` requests/s open loop (a slow server does not slow the offered load) and reports p50/p99 — the
client shares the cores, so its own delays are in the figure: the results give its CPU per request, and
wrk's in phase 2, beside the servers'. Every request is a new 12345 work order from the workload
generator's stream (devtools/workload): its category codes (85 % coded, so dedupe's locks and searches
run), places, callers and re-reports (重复件, ~6 %, found and linked as in production), each with an
order number of its own. Prints the machine's core count, because numbers mean nothing without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench import _pgstat
from bench._http import ConnectionLost, HttpPool
from bench._stack import Ports, local_stack
from bench._watch import ProcessSampler, cpu_per
from devtools import gateway, infra
from devtools.run import GATEWAY_PORT
from devtools.system import SERVICES, replica_key
from devtools.workload.generator import Workload, WorkloadMix

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-intake"
RESULTS = REPO / "bench" / "results"
PORTS = Ports(kafka=24192, kafka_controller=24193, postgres=24532, service_offset=16100)
KEY = "dev-hotline-key"  # deploy/local/api-keys.dev.yaml (development only)
HEADERS = {"X-API-Key": KEY}
WRK_ORDERS_PER_S = 1500  # orders prepared for the wrk phase, per second of it (more than it sends here)


class Orders:
    """The benchmark's work orders: the workload generator's 12345 stream, in its order (consecutive call
    times, so the duplicate searches meet the district's density, not a burst's)."""

    def __init__(self, run: str) -> None:
        mix = WorkloadMix(sources={"hotline": 1.0})
        self._stream = iter(Workload(seed=7, mix=mix, run=f"bench-{run}"))

    def next(self) -> dict:
        return next(self._stream).body

    def take(self, count: int) -> list[dict]:
        return [self.next() for _ in range(count)]


async def saturate(client: HttpPool, orders: Orders, seconds: float, concurrency: int) -> tuple[int, int]:
    """Closed loop: ``concurrency`` workers post back to back; returns (accepted, refused)."""
    accepted = refused = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal accepted, refused
        while time.perf_counter() < deadline:
            response = await client.post("/v1/intake/hotline", json=orders.next(), headers=HEADERS)
            if response.status_code == 201:
                accepted += 1
            else:
                refused += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, refused


async def fixed_rate(
    client: HttpPool, orders: Orders, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Open loop at ``rate`` requests/s; returns latencies (seconds) of accepted requests, and how many
    requests were not accepted (an error status or a transport error)."""
    latencies: list[float] = []
    failed = 0
    tasks = []

    async def one(order: dict) -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            response = await client.post("/v1/intake/hotline", json=order, headers=HEADERS)
        except ConnectionLost:
            failed += 1
            return
        if response.status_code == 201:
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1

    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(orders.next())))
    await asyncio.gather(*tasks)
    return latencies, failed


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running intake; default: start Kafka, PostgreSQL and intake here")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200, help="offered requests/s in the latency phase")
    parser.add_argument("--wrk-connections", type=int, default=32, help="connections of the wrk phase")
    parser.add_argument(
        "--replicas", type=int, default=1, help="intake processes, behind the gateway when more than one"
    )
    parser.add_argument(
        "--worker",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="intake's consumer and outbox relay in a worker process of their own, the HTTP processes "
        "serving requests only (GRIDLINE_PROCESS_ROLE, the production layout); --no-worker: one process "
        "does everything",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "intake.json", help="results JSON")
    return parser.parse_args(argv)


async def run_bench(
    args: argparse.Namespace, url: str, sampler: ProcessSampler | None = None, postgres_url: str | None = None
) -> dict:
    """The three phases against ``url``; with ``postgres_url`` (a server keeping pg_stat_statements), the
    wrk phase's statements as PostgreSQL profiled them."""
    orders = Orders(uuid.uuid4().hex[:6])  # order numbers unique across runs (a reused one is a 409)
    results: dict = {"cores": os.cpu_count(), "target": url, "seconds_per_phase": args.seconds}
    target = urlsplit(url)
    client = HttpPool(target.hostname or "127.0.0.1", target.port or 80, size=max(args.concurrency, 64))
    try:
        print(f"cores: {os.cpu_count()}  target: {url}")
        accepted, refused = await saturate(client, orders, args.seconds, args.concurrency)
        results["closed_loop"] = {
            "clients": args.concurrency,
            "accepted_per_s": round(accepted / args.seconds, 1),
            "refused": refused,
        }
        print(f"sustained: {accepted / args.seconds:.1f} accepted cases/s over {args.seconds:.0f}s "
              f"({args.concurrency} Python clients; {refused} refused)")  # fmt: skip
        cpu_before = sampler.cpu_seconds() if sampler else {}
        sessions = await _pgstat.reset(postgres_url) if postgres_url else {}
        wrk_orders = orders.take(int(args.seconds) * WRK_ORDERS_PER_S)
        saturated = await asyncio.to_thread(
            wrk_saturate, url, wrk_orders, int(args.seconds), args.wrk_connections
        )
        if saturated:
            if postgres_url:
                profile = await _pgstat.top(postgres_url, saturated["requests"], sessions, limit=8)
                saturated["postgres_statements_per_request"] = profile
                print(f"PostgreSQL per request: {profile['calls_per_case']} statements, "
                      f"{profile['exec_ms_per_case']} ms of execution")  # fmt: skip
            if sampler and saturated["requests"]:
                # CPU per request of each process: unlike the rate, it holds on a busy machine.
                cpu_after = sampler.cpu_seconds()
                servers = cpu_per(cpu_before, cpu_after, saturated["requests"])
                saturated["cpu_ms_per_request"] = servers | saturated["cpu_ms_per_request"]
                print(f"CPU ms per request: {saturated['cpu_ms_per_request']}")
            results["wrk_closed_loop"] = saturated
            rate, refused = saturated["requests_per_s"], saturated["non_2xx"]
            print(f"sustained with wrk ({saturated['connections']} connections): {rate} requests/s, "
                  f"{refused} not accepted, p99 {saturated['p99']}")  # fmt: skip
        # Connections idle through the wrk phase have been closed by the server meanwhile: the pool
        # opens new ones.
        cpu_before = sampler.cpu_seconds() if sampler else {}
        latencies, failed = await fixed_rate(client, orders, args.rate, args.seconds)
        cpu_after = sampler.cpu_seconds() if sampler else {}
    finally:
        await client.close()
    latencies.sort()
    if latencies:
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        results["fixed_rate"] = {
            "offered_per_s": args.rate,
            "accepted": len(latencies),
            "offered": int(args.rate * args.seconds),
            "not_accepted": failed,
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
        }
        print(
            f"at {args.rate:.0f}/s offered: {len(latencies)} accepted ({failed} not), "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        if sampler:
            cpu = results["fixed_rate"]["cpu_ms_per_request"] = cpu_per(cpu_before, cpu_after, len(latencies))
            print(f"CPU ms per request at that rate (bench: the client): {cpu}")
    return results


def run_standalone(args: argparse.Namespace) -> dict:
    """Kafka, PostgreSQL and ``--replicas`` intake processes of our own (behind the gateway when more
    than one); the benchmark; everything stopped again."""
    shutil.rmtree(WORK, ignore_errors=True)
    with (
        local_stack(WORK, PORTS, ["intake"], statement_stats=True) as stack,
        contextlib.ExitStack() as running,
    ):
        role = {"GRIDLINE_PROCESS_ROLE": "http"} if args.worker else {}
        replicas = [stack.system.process("intake", n, **role) for n in range(1, args.replicas + 1)]
        workers = [stack.system.worker("intake")] if args.worker else []
        for process in replicas + workers:  # the first applies the migrations; the others wait for it
            process.start()
            process.wait_ready(240)
        pids = {replica_key("intake", r.replica): r.process.pid for r in replicas if r.process}
        for worker in workers:
            if worker.process:
                pids["intake-worker"] = worker.process.pid
        pids |= {"kafka": stack.broker.process.pid, "postgres": stack.postgres.process.pid}
        url = stack.system.url("intake")
        if len(replicas) > 1:
            gateway_process, url = running.enter_context(_gateway([r.url for r in replicas]))
            pids["gateway"] = gateway_process.pid
        sampler = ProcessSampler(pids | {"bench": os.getpid()})
        sampler.own_only.add("bench")  # its children are the servers
        results = asyncio.run(run_bench(args, url, sampler, stack.system.postgres_url))
    return results | {
        "intake_processes": len(replicas),
        "intake_worker_process": args.worker,
        "versions": {"kafka": stack.broker.version, "postgresql": stack.postgres.version},
    }


@contextlib.contextmanager
def _gateway(intake_urls: list[str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """The nginx gateway (its real config) balancing between ``intake_urls``; its process and URL."""
    run_dir = WORK / "gateway"
    run_dir.mkdir(parents=True, exist_ok=True)
    addresses: dict[str, str | list[str]] = {
        name: f"127.0.0.1:{port + PORTS.service_offset}" for name, port in SERVICES.items()
    }
    addresses["intake"] = [u.removeprefix("http://") for u in intake_urls]
    listen = f"127.0.0.1:{PORTS.service_offset + GATEWAY_PORT}"
    conf = run_dir / "nginx.conf"
    conf.write_text(gateway.render(addresses, listen, str(run_dir)))
    nginx = subprocess.Popen(
        [infra.ensure_nginx(), "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        port = PORTS.service_offset + GATEWAY_PORT
        infra.poll_until(f"the gateway ({run_dir / 'nginx-error.log'})", lambda: _listening(port), 30, nginx)
        yield nginx, f"http://{listen}"
    finally:
        nginx.terminate()
        nginx.wait(10)


def _listening(port: int) -> None:
    if not infra.port_in_use(port):
        raise ConnectionRefusedError(f"nothing listens on {port}")


WRK_SCRIPT = """
local n = 0
local run = "%(run)s"
local bodies = {%(bodies)s}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
request = function()
  n = n + 1
  local body = string.gsub(bodies[((n - 1) %% #bodies) + 1], "ORDERNO", "wrk-" .. run .. "-" .. n)
  return wrk.format(nil, "/v1/intake/hotline", nil, body)
end
"""


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wrk_saturate(url: str, orders: list[dict], seconds: int, connections: int) -> dict | None:
    """Accepted cases/s with wrk as the client (a Python client in one process cannot saturate a server),
    and wrk's own CPU per request (``cpu_ms_per_request``).

    wrk sends ``orders`` in turn, each with an order number of its own, so what it measures is new cases,
    not idempotent replays (should it send them all, it starts again: their callers then repeat)."""
    wrk = shutil.which("wrk") or (infra.apt_install("wrk") or shutil.which("wrk"))
    if not wrk:
        return None
    bodies = ",\n".join(
        _lua_string(json.dumps(order | {"order_no": "ORDERNO"}, ensure_ascii=False)) for order in orders
    )
    script = Path(tempfile.mkdtemp()) / "intake.lua"
    run = uuid.uuid4().hex[:8]  # order numbers unique across runs: a reused one with another body is a 409
    script.write_text(WRK_SCRIPT % {"key": KEY, "run": run, "bodies": bodies})
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    cpu_s = sum(getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
    total = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    requests = next((int(line.split()[0]) for line in out.splitlines() if " requests in " in line), 0)
    refused = sum(int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line)
    p99 = next((line.split()[1] for line in out.splitlines() if line.strip().startswith("99%")), "?")
    return {
        "requests_per_s": round(total),
        "requests": requests,
        "non_2xx": refused,
        "p99": p99,
        "connections": connections,
        "cpu_ms_per_request": {"wrk": round(1000 * cpu_s / max(requests, 1), 2)},
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point (also for `make bench`, which passes no arguments: the defaults)."""
    args = parse(argv)
    if args.url:
        asyncio.run(run_bench(args, args.url))
        return
    results = {"loadavg_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()]} | run_standalone(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
