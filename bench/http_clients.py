"""Notify's HTTP client choice: CPU per request and requests/s of httpx and aiohttp against one receiver.

    .venv/bin/python -m bench http_clients
    .venv/bin/python -m bench http_clients -- --requests 5000 --in-flight 32

The receiver (Starlette on uvicorn, as the benches' webhook receivers) runs in its own process and answers
204; the client POSTs a 600-byte JSON body, ``--in-flight`` at a time, after 200 warm-up requests. CPU is
the client process's own (user + system). Each client runs twice, alternating. Writes
bench/results/http_clients.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import time
from pathlib import Path

import aiohttp
import httpx

RESULTS = Path(__file__).resolve().parent / "results"
BODY = b'{"text": "' + "路灯不亮".encode() * 50 + b'"}'


def serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request):
        await request.body()
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(kind: str, url: str, requests: int, in_flight: int) -> dict:
    slots = asyncio.Semaphore(in_flight)
    headers = {"Content-Type": "application/json"}
    if kind == "httpx":
        client = httpx.AsyncClient(timeout=10)

        async def one() -> None:
            async with slots:
                response = await client.post(url, content=BODY, headers=headers)
                assert response.status_code == 204

        close = client.aclose
    else:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

        async def one() -> None:
            async with slots, session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                assert response.status == 204

        close = session.close
    try:
        await asyncio.gather(*(one() for _ in range(200)))
        cpu0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        cpu1, t1 = cpu_s(), time.perf_counter()
    finally:
        await close()
    return {
        "client": kind,
        "cpu_us_per_request": round((cpu1 - cpu0) / requests * 1e6),
        "requests_per_s": round(requests / (t1 - t0), 1),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.http_clients", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--port", type=int, default=23998)
    args = parser.parse_args(argv)
    receiver = multiprocessing.Process(target=serve, args=(args.port,), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{args.port}/hook"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.post(url, content=BODY, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        runs = [
            asyncio.run(measure(kind, url, args.requests, args.in_flight))
            for kind in ("httpx", "aiohttp", "httpx", "aiohttp")
        ]
    finally:
        receiver.terminate()
    results = {
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "requests": args.requests,
        "in_flight": args.in_flight,
        "versions": {"httpx": httpx.__version__, "aiohttp": aiohttp.__version__},
        "runs": runs,
    }
    for run in runs:
        cpu, rate = run["cpu_us_per_request"], run["requests_per_s"]
        print(f"{run['client']:8} {cpu:6} µs CPU/request  {rate:8} req/s")
    print(f"cores {results['cores']}, load average {results['load_average_1m']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "http_clients.json").write_text(json.dumps(results, indent=2) + "\n")
