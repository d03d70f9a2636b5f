"""What bench/e2e.py watches while it offers load: the case log, dispatch topics, the projection's
progress, an HTTP sample of GET /v1/cases/{id}, process CPU and memory, and the services' /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import defaultdict
from collections.abc import Callable

import asyncpg
import orjson
import psutil
from aiokafka import AIOKafkaConsumer

from bench._http import ConnectionLost, HttpPool
from devtools.kafka_lag import consumer_lag

RECEIVED_TYPE = b"gridline.case.received.v1"


def _reader(bootstrap: str, *topics: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )


class CaseLog:
    """Where each CaseReceived sits on the case-events topic: case id → (partition, offset, publish time)."""

    def __init__(self, bootstrap: str, topic: str, on_received: Callable[[str, int, int], None]) -> None:
        self.consumer = _reader(bootstrap, topic)
        self.published: dict[str, float] = {}
        self.on_received = on_received
        self.records = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self.consumer.start()
        try:
            while not stop.is_set():
                for records in (await self.consumer.getmany(timeout_ms=100, max_records=5000)).values():
                    self.records += len(records)
                    for r in records:
                        if dict(r.headers or ()).get("ce_type") == RECEIVED_TYPE and r.key:
                            case_id = r.key.decode()
                            if case_id not in self.published:
                                self.published[case_id] = r.timestamp / 1000
                                self.on_received(case_id, r.partition, r.offset)
        finally:
            await self.consumer.stop()


class DispatchLog:
    """First ``assigned`` work item per case on the department topics (record time = routing's publish)."""

    def __init__(
        self, bootstrap: str, topics: list[str], offer: Callable[[dict], None] | None = None
    ) -> None:
        self.consumer = _reader(bootstrap, *topics)
        self.arrived: dict[str, float] = {}
        self.offer = offer

    async def run(self, stop: asyncio.Event) -> None:
        await self.consumer.start()
        try:
            while not stop.is_set():
                for records in (await self.consumer.getmany(timeout_ms=100, max_records=2000)).values():
                    for r in records:
                        item = orjson.loads(r.value)
                        if item.get("action") == "assigned":
                            self.arrived.setdefault(item["case_id"], r.timestamp / 1000)
                        if self.offer is not None:
                            self.offer(item)
        finally:
            await self.consumer.stop()


class ProjectionProgress:
    """Marks a case visible when the projection's database says its CaseReceived is applied.

    The projection's consumer writes each partition's last applied offset to its ``tracking`` table in
    the same transaction as the read model (runtime/consumer.py), so the first poll that sees a
    partition's row at or past a CaseReceived's offset is an upper bound of when GET /v1/cases/{id} began
    answering 200 — late by at most one poll interval. One primary-key read per poll, whatever the load.
    (Not the consumer group's committed Kafka offset: a busy consumer commits that at most once per
    ``GRIDLINE_CONSUMER_COMMIT_INTERVAL_S``, a second by default, which put up to a second of waiting
    for the commit into every latency measured that way.)
    """

    def __init__(self, dsn: str, consumer: str, topic: str, interval_s: float = 0.1) -> None:
        self.dsn, self.consumer, self.topic, self.interval_s = dsn, consumer, topic, interval_s
        self.pending: dict[int, list[tuple[int, str]]] = defaultdict(list)  # partition → heap of (offset, id)
        self.applied: dict[int, int] = {}  # partition → last offset applied
        self.visible: dict[str, float] = {}

    def add(self, case_id: str, partition: int, offset: int) -> None:
        heapq.heappush(self.pending[partition], (offset, case_id))

    async def run(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not stop.is_set():
                try:  # the table not there yet (migrations), a restart: poll again
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn)
                    rows = await conn.fetch(_APPLIED, self.consumer, self.topic)
                except (OSError, asyncpg.PostgresError):
                    rows = []
                now = time.time()
                for partition, last in rows:
                    self.applied[partition] = last
                    heap = self.pending[partition]
                    while heap and heap[0][0] <= last:
                        self.visible.setdefault(heapq.heappop(heap)[1], now)
                await asyncio.sleep(self.interval_s)
        finally:
            if conn is not None:
                await conn.close()


_APPLIED = 'SELECT partition, "offset" FROM tracking WHERE consumer = $1 AND topic = $2'


async def settle(bootstrap: str, topic: str, groups: tuple[str, ...], timeout_s: float) -> float | None:
    """Seconds until every consumer group in ``groups`` has committed the end of ``topic`` on two polls in
    a row (a second apart), or None after ``timeout_s``: a phase measured after a saturated one then starts
    on a drained system instead of behind the earlier backlog."""
    began, calm = time.monotonic(), 0
    while time.monotonic() - began < timeout_s:
        behind = sum((await consumer_lag(bootstrap, topic, groups)).values())
        calm = calm + 1 if behind == 0 else 0
        if calm >= 2:
            return round(time.monotonic() - began, 1)
        await asyncio.sleep(1.0)
    return None


class VisibilityProbe:
    """The HTTP cross-check: a sample of cases polled with GET /v1/cases/{id} until it answers 200."""

    def __init__(self, pool: HttpPool, key: str, every_s: float = 0.2, max_in_flight: int = 8) -> None:
        self.pool, self.key, self.every_s, self.max_in_flight = pool, key, every_s, max_in_flight
        self.visible: dict[str, float] = {}
        self.skipped = 0
        self._tasks: set[asyncio.Task] = set()

    def probe(self, case_id: str, timeout_s: float = 120.0) -> None:
        if len(self._tasks) >= self.max_in_flight:
            self.skipped += 1
            return
        task = asyncio.create_task(self._until_visible(case_id, timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _until_visible(self, case_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ConnectionLost):
                response = await self.pool.get(f"/v1/cases/{case_id}", headers={"X-API-Key": self.key})
                if response.status_code == 200:
                    self.visible[case_id] = time.time()
                    return
            await asyncio.sleep(self.every_s)

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def cpu_per(
    before: dict[str, float],
    after: dict[str, float],
    count: float,
    scale: float = 1000.0,
    digits: int | None = 2,
) -> dict[str, float]:
    """CPU per unit of work of each process between two ``ProcessSampler.cpu_seconds`` samples: seconds
    times ``scale`` (1000: milliseconds) over ``count`` units. Unlike a rate or a latency, it holds on a
    busy machine."""
    return {name: round((after[name] - before[name]) * scale / max(count, 1), digits) for name in after}


Trees = dict[str, list[psutil.Process]]  # a name's process and its descendants


class ProcessSampler:
    """CPU seconds (with reaped children: PostgreSQL's backends) and peak RSS of named process trees.

    The sampler is itself a process on the measured cores, so it samples cheaply: one scan of /proc finds
    every tree's children (psutil's ``children()`` scans all of /proc once per call), and PostgreSQL's
    PSS, which the kernel computes by walking each backend's page tables, is read every ``pss_every_s``
    (peaks at that resolution; shared buffers dominate it and do not spike), when the trees are found
    again too; the other RSS every ``interval_s``. Reading PSS every second with a scan per tree was about
    half of the bench process's CPU in a replay (py-spy, 2026-11-29)."""

    def __init__(self, pids: dict[str, int], interval_s: float = 1.0, pss_every_s: float = 5.0) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval_s = interval_s
        self.pss_every_s = pss_every_s
        self.peak_rss: dict[str, int] = defaultdict(int)
        self.own_only: set[str] = set()  # processes counted without their children (the bench itself)
        self._pss_at = -float("inf")

    def trees(self) -> Trees:
        """Each named process with its descendants (only itself when in ``own_only``), from one scan."""
        children: dict[int, list[psutil.Process]] = defaultdict(list)
        for proc in psutil.process_iter(["ppid"]):
            children[proc.info["ppid"]].append(proc)
        trees = {}
        for name, root in self.procs.items():
            tree, todo = [root], ([] if name in self.own_only else [root.pid])
            while todo:
                kids = children.get(todo.pop(), [])
                tree.extend(kids)
                todo.extend(kid.pid for kid in kids)
            trees[name] = tree
        return trees

    def cpu_seconds(self) -> dict[str, float]:
        result = {}
        for name, tree in self.trees().items():
            total = 0.0
            with contextlib.suppress(psutil.Error):
                t = tree[0].cpu_times()
                total = t.user + t.system
                if name not in self.own_only:
                    total += t.children_user + t.children_system
            for child in tree[1:]:
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
            result[name] = total
        return result

    def rss(self, trees: Trees | None = None, *, pss: bool = True) -> dict[str, int]:
        """Resident memory per tree (``trees``: a recent ``trees()``); PostgreSQL's as PSS (its shared
        buffers count once, not per backend), left out when ``pss`` is false."""
        result = {}
        for name, tree in (trees or self.trees()).items():
            if name != "postgres":
                result[name] = sum(_rss(p) for p in tree)
            elif pss:
                result[name] = sum(_pss(p) for p in tree)
        return result

    def reset_peaks(self) -> None:
        self.peak_rss.clear()
        self._pss_at = -float("inf")

    async def run(self, stop: asyncio.Event) -> None:
        trees: Trees = {}
        while not stop.is_set():
            pss = time.monotonic() - self._pss_at >= self.pss_every_s
            if pss:  # and the trees again: PostgreSQL's backends come and go
                self._pss_at, trees = time.monotonic(), self.trees()
            for name, value in self.rss(trees, pss=pss).items():
                self.peak_rss[name] = max(self.peak_rss[name], value)
            await asyncio.sleep(self.interval_s)


def _rss(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return proc.memory_info().rss
    return 0


def _pss(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return proc.memory_full_info().pss
    return 0


async def _metrics(pool: HttpPool) -> list[str]:
    """A service's /metrics lines ([] if it does not answer)."""
    with contextlib.suppress(ConnectionLost):
        return (await pool.get("/metrics")).content.decode().splitlines()
    return []


async def events_consumed(pools: dict[str, HttpPool]) -> dict[str, float]:
    """Per service: gridline_events_consumed_total summed over consumers, types and outcomes."""
    totals: dict[str, float] = {}
    for service, pool in pools.items():
        totals[service] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in await _metrics(pool)
            if line.startswith("gridline_events_consumed_total{")
        )
    return totals


def gc_histogram(lines: list[str]) -> dict[str, float]:
    """gridline_gc_pause_seconds of one scrape: collections (all generations and full ones), their seconds,
    and the cumulative count per bucket bound ("le:<seconds>", generations added up)."""
    out: dict[str, float] = defaultdict(float)
    for line in lines:
        if not line.startswith("gridline_gc_pause_seconds_"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("gridline_gc_pause_seconds_count{"):
            out["collections"] += float(value)
            if 'generation="2"' in name:
                out["full"] += float(value)
        elif name.startswith("gridline_gc_pause_seconds_sum{"):
            out["seconds"] += float(value)
        elif name.startswith("gridline_gc_pause_seconds_bucket{") and 'le="+Inf"' not in name:
            out["le:" + name.split('le="', 1)[1].split('"', 1)[0]] += float(value)
    return dict(out)


async def gc_pauses(pools: dict[str, HttpPool]) -> dict[str, dict[str, float]]:
    """Per service: its garbage collector's pauses so far (``gc_histogram``)."""
    return {service: gc_histogram(await _metrics(pool)) for service, pool in pools.items()}


def gc_pause_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict:
    """Per service, the collections between two scrapes: how many (full ones apart), their milliseconds in
    total, and the bound of the smallest bucket that holds the longest (None: longer than every bucket)."""
    out: dict[str, dict] = {}
    for service, now in after.items():
        then = before.get(service, {})
        grew = {key: now[key] - then.get(key, 0.0) for key in now}
        collections = round(grew.get("collections", 0.0))
        bounds = sorted((float(key[3:]), count) for key, count in grew.items() if key.startswith("le:"))
        longest = next((bound for bound, count in bounds if count >= collections), None)
        out[service] = {
            "collections": collections,
            "full": round(grew.get("full", 0.0)),
            "pause_ms": round(grew.get("seconds", 0.0) * 1000, 1),
            "longest_ms_at_most": round(longest * 1000, 1) if collections and longest is not None else None,
        }
    return out
