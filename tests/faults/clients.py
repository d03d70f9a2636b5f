"""The clients that seed the fault suite: a 12345 hotline, grid members' app and an Open311 client.

Each submission is uniquely identified (order number, report id, Idempotency-Key). A client retries the
same submission until intake accepts it, as a real hotline does, and every answer it gets is recorded
with the time it was sent and answered, so the checker can see what intake said during an outage.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from devtools.sample import hotline_order
from tests.faults.invariants import Answer

HOTLINE_KEY, GRID_KEY, OPEN311_KEY = "dev-hotline-key", "dev-grid-key", "dev-open311-key"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Submission:
    """One appeal as a client sends it; ``key`` is its unique id in the source system."""

    feed: str  # hotline | grid | open311
    key: str
    path: str
    headers: dict[str, str]
    json: dict | None = None
    form: dict[str, str] | None = None


def submission(index: int, seed: int) -> Submission:
    """The ``index``-th submission of a run: mostly hotline orders, every tenth a grid report or Open311."""
    if index % 10 == 7:
        return grid_report(index, seed)
    if index % 10 == 9:
        return open311_request(index, seed)
    order = hotline_order(index, seed=seed)
    return Submission("hotline", order["order_no"], "/v1/intake/hotline", {"X-API-Key": HOTLINE_KEY}, order)


def grid_report(index: int, seed: int) -> Submission:
    """A grid member's report near 双山街道; about a third fixed on the spot (即知即改)."""
    rng = random.Random(seed * 7_919 + index)
    report_id = f"GR-{seed}-{index:07d}"
    report = {
        "report_id": report_id,
        "grid_code": "370114002003-02",
        "member_id": f"WGY-0203-{rng.randint(1, 9):02d}",
        "event_class_code": "event:09006",
        "coordinates": {"lat": 36.7170 + rng.uniform(-0.01, 0.01), "lon": 117.5290 + rng.uniform(-0.01, 0.01),
                        "crs": "GCJ02"},
        "address": "章丘区双山街道山泉路与汇泉路交叉口",
        "description": f"流动摊贩占道经营（{index}）",
        "found_at": (datetime.now(UTC) - timedelta(minutes=rng.randint(1, 60))).isoformat(),
        "resolved_on_spot": rng.random() < 0.3,
    }  # fmt: skip
    return Submission("grid", report_id, "/v1/intake/grid", {"X-API-Key": GRID_KEY}, report)


def open311_request(index: int, seed: int) -> Submission:
    """An Open311 POST; the Idempotency-Key header makes its retries one request."""
    key = f"o311-{seed}-{index:07d}"
    form = {
        "api_key": OPEN311_KEY,
        "service_code": "06010",
        "address_string": f"章丘区明水街道汇泉路{index % 200 + 1}号",
        "description": f"垃圾堆放无人清运（{index}）",
    }
    return Submission("open311", key, "/open311/v2/requests.json", {"Idempotency-Key": key}, form=form)


def case_id_of(sub: Submission, response: httpx.Response) -> str:
    body = response.json()
    return body[0]["service_request_id"] if sub.feed == "open311" else body["case_id"]


@dataclass
class Seeder:
    """Posts ``count`` submissions through ``clients`` threads at ``rate`` per second, each retried until
    accepted (or abandoned after ``give_up_s``). With several intake ``urls`` (replicas), each attempt
    goes to one at random, as behind a load balancer."""

    urls: list[str]
    count: int
    seed: int
    rate: float
    clients: int = 4
    give_up_s: float = 300.0
    answers: list[Answer] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    make: Callable[[int, int], Submission] = submission

    def __post_init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.finished_at: float | None = None

    def start(self) -> Seeder:
        self.started_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), name=f"seeder-{n}", daemon=True)
            for n in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self.finished_at is None:
            self.finished_at = max((a.answered_at for a in self.answers), default=time.monotonic())
        return done

    @property
    def submitted(self) -> int:
        return self._next

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.count:
                return None
            index, self._next = self._next, self._next + 1
            return index

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 31 + number)
        with httpx.Client(timeout=10) as http:
            while (index := self._take()) is not None:
                pause = self.started_at + index / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self._until_accepted(http, self.make(index, self.seed), rng)

    def _until_accepted(self, http: httpx.Client, sub: Submission, rng: random.Random) -> None:
        give_up = time.monotonic() + self.give_up_s
        attempt = 0
        while True:
            attempt += 1
            url = rng.choice(self.urls) + sub.path
            sent = time.monotonic()
            try:
                response = http.post(url, json=sub.json, data=sub.form, headers=sub.headers)
            except httpx.TransportError as exc:
                self.answers.append(Answer(sub.key, sub.feed, sent, time.monotonic(), None, False, None,
                                           type(exc).__name__))  # fmt: skip
                retry_after = None
            else:
                accepted = response.status_code in (200, 201)
                self.answers.append(
                    Answer(
                        sub.key,
                        sub.feed,
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("content-type", "").startswith(PROBLEM_JSON),
                        case_id_of(sub, response) if accepted else None,
                        None if accepted else response.text[:300],
                    )
                )
                if accepted:
                    return
                if response.status_code != 429 and response.status_code < 500:
                    # A refusal a hotline would not retry: the seeding itself is wrong.
                    self.abandoned.append(f"{sub.key}: {response.status_code} {response.text[:300]}")
                    return
                retry_after = response.headers.get("retry-after")
            if time.monotonic() > give_up:
                self.abandoned.append(f"{sub.key}: not accepted after {attempt} attempts")
                return
            backoff = min(2.0, 0.2 * 2 ** min(attempt, 4)) * rng.uniform(0.5, 1.0)
            time.sleep(min(float(retry_after), 2.0) if retry_after else backoff)
