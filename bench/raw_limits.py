"""Raw limits of the parts Gridline is built from, with Gridline's own event size and producer settings.

- aiokafka produce msg/s (acks=all, idempotent, the outbox relay's settings) and consume msg/s
- asyncpg rows/s into a projection-shaped table: executemany INSERT and COPY
- bare FastAPI/uvicorn JSON POST requests/s (one worker, as each service runs)
- the pipeline Gridline's consumers are: produce (acks=all, idempotent) → consume → asyncpg executemany of
  each fetched batch → offset commit, concurrently, in events/s end to end

Every Gridline figure in the other benchmarks is meant to be read as a ratio to these. Starts its own
Kafka and PostgreSQL on ports 22092/22093/22432 (fresh data) and writes bench/results/raw_limits.json;
``measure()`` runs the same against servers someone else started (bench/e2e.py, in the same run).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from contracts.envelope import encode_event
from contracts.events import CitizenContact
from devtools import infra
from devtools.sample import hotline_order
from runtime import kafka
from services.intake.domain import citizen_ref, mask_name, mask_phone
from tests.factories import case_received

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench"
RESULTS = REPO / "bench" / "results"
N_KAFKA, N_ROWS, N_HTTP = 50_000, 100_000, 5_000


def sample_message(topic: str):
    order = hotline_order(1)
    event = case_received(description=order["content"], address=order["address"])
    phone = order["caller_phone"]
    citizen = CitizenContact(
        name_masked=mask_name("张三"), phone_masked=mask_phone(phone), citizen_ref=citizen_ref(phone, "b")
    )
    event = event.model_copy(update={"citizen": citizen})
    return encode_event(event, source="/gridline/intake", topic=topic)


async def kafka_limits(bootstrap: str) -> dict:
    topic = "bench.raw"
    await kafka.ensure_topics(bootstrap, {topic: 6})
    message = sample_message(topic)
    producer = kafka.create_producer(bootstrap, "bench-producer")
    await producer.start()
    start = time.perf_counter()
    futures = []
    for i in range(N_KAFKA):
        futures.append(
            await producer.send(topic, message.value, key=f"C{i % 5000}".encode(), headers=message.headers)
        )
        if len(futures) >= 2000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    produce_s = time.perf_counter() - start
    await producer.stop()

    consumer = kafka.create_consumer(bootstrap, "bench-consumer", topic)
    await consumer.start()
    seen, start = 0, time.perf_counter()
    while seen < N_KAFKA:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        seen += sum(len(records) for records in batch.values())
    consume_s = time.perf_counter() - start
    await consumer.stop()
    return {
        "event_bytes": len(message.value) + sum(len(k) + len(v) for k, v in message.headers),
        "kafka_produce_msgs_per_s": round(N_KAFKA / produce_s),
        "kafka_consume_msgs_per_s": round(N_KAFKA / consume_s),
    }


async def postgres_limits(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_rows (event_id text PRIMARY KEY, case_id text, event_type text, "
        "occurred_at timestamptz, actor text, source text, data jsonb, log_partition int, log_offset bigint)"
    )
    payload = sample_message("t").value.decode()
    now = datetime.now(UTC)

    def rows(prefix: str):
        return [
            (
                f"{prefix}{i}",
                f"C{i}",
                "gridline.case.received.v1",
                now,
                "hotline",
                "/gridline/intake",
                payload,
                0,
                i,
            )
            for i in range(N_ROWS)
        ]

    insert_rows = rows("i")
    start = time.perf_counter()
    await conn.executemany("INSERT INTO bench_rows VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9)", insert_rows)
    insert_s = time.perf_counter() - start
    copy_rows = rows("c")
    start = time.perf_counter()
    await conn.copy_records_to_table("bench_rows", records=copy_rows)
    copy_s = time.perf_counter() - start
    await conn.close()
    return {
        "pg_executemany_rows_per_s": round(N_ROWS / insert_s),
        "pg_copy_rows_per_s": round(N_ROWS / copy_s),
    }


async def pipeline_limit(bootstrap: str, dsn: str) -> dict:
    """Events/s through produce → consume → executemany (one transaction per fetched batch) → commit."""
    topic = "bench.pipeline"
    await kafka.ensure_topics(bootstrap, {topic: 6})
    message = sample_message(topic)
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_pipeline (event_id text PRIMARY KEY, case_id text, "
        "log_partition int, log_offset bigint, data jsonb)"
    )
    consumer = kafka.create_consumer(bootstrap, "bench-pipeline", topic)
    await consumer.start()
    producer = kafka.create_producer(bootstrap, "bench-pipeline")
    await producer.start()

    async def produce() -> None:
        futures = []
        for i in range(N_KAFKA):
            futures.append(
                await producer.send(
                    topic, message.value, key=f"C{i % 5000}".encode(), headers=message.headers
                )
            )
            if len(futures) >= 2000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)

    async def consume() -> None:
        written = 0
        while written < N_KAFKA:
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=500)).items():
                rows = [(f"{tp.partition}:{r.offset}", r.key.decode(), tp.partition, r.offset,
                         r.value.decode()) for r in records]  # fmt: skip
                async with conn.transaction():
                    await conn.executemany("INSERT INTO bench_pipeline VALUES ($1,$2,$3,$4,$5::jsonb)", rows)
                await consumer.commit({tp: records[-1].offset + 1})
                written += len(rows)

    start = time.perf_counter()
    try:
        await asyncio.gather(produce(), consume())
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
        await consumer.stop()
        await conn.close()
    return {"pipeline_produce_consume_write_events_per_s": round(N_KAFKA / elapsed)}


BARE_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.post("/echo")
async def echo(body: dict) -> dict:
    return {"ok": True, "n": len(body)}
"""


def http_limit(port: int = 22501, work: Path = WORK) -> dict:
    (work / "bare_app.py").write_text(BARE_APP)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=work,
    )
    try:
        result = asyncio.run(_post_load(port))
        result["fastapi_json_post_per_s_wrk"] = wrk_post_rate(
            f"http://127.0.0.1:{port}/echo", hotline_order(1), work=work
        )
        return result
    finally:
        server.terminate()
        server.wait(10)


def wrk_post_rate(
    url: str, body: dict, seconds: int = 8, connections: int = 32, work: Path = WORK
) -> float | None:
    """Requests/s of a JSON POST measured by wrk (a C load generator: the client is not the limit).

    httpx in one Python process tops out far below what uvicorn serves, so the Python figure is the
    client's limit, not the server's; wrk's is the server's."""
    wrk = shutil.which("wrk") or (infra.apt_install("wrk") or shutil.which("wrk"))
    if not wrk:
        return None
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body, ensure_ascii=False))}\n"
    )
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return round(float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))))


async def _post_load(port: int) -> dict:
    body = hotline_order(1)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(100):
            try:
                await client.post("/echo", json=body)
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        sem = asyncio.Semaphore(32)

        async def one() -> None:
            async with sem:
                (await client.post("/echo", json=body)).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(N_HTTP)))
        elapsed = time.perf_counter() - start
    return {"fastapi_json_post_per_s_httpx_client": round(N_HTTP / elapsed)}


def measure(kafka_bootstrap: str, postgres_dsn: str, http_port: int = 22501, work: Path = WORK) -> dict:
    """Every raw limit against running servers (``postgres_dsn`` names an existing, scratch database)."""
    work.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(kafka_limits(kafka_bootstrap))
    results |= asyncio.run(postgres_limits(postgres_dsn))
    results |= asyncio.run(pipeline_limit(kafka_bootstrap, postgres_dsn))
    results |= http_limit(http_port, work)
    return results


def main(argv: list[str] | None = None) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    broker = infra.start_kafka(WORK / "kafka", 22092, 22093, fresh=True)
    postgres = infra.start_postgres(WORK / "postgres", 22432, fresh=True)
    try:
        postgres.create_databases(["bench"])
        results = {"cores": os.cpu_count(), "kafka": broker.version, "postgres": postgres.version}
        results |= measure(broker.bootstrap_servers, postgres.dsn("bench"))
    finally:
        broker.stop()
        postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "raw_limits.json").write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
