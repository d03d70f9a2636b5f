"""Faults at random (seeded) moments: SIGKILL a service, hard-restart Kafka, stop PostgreSQL for a while,
put a malformed record on the case log. A supervisor restarts any service that ends on its own, as
systemd or Kubernetes would, and says so.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from aiokafka.errors import KafkaError

from devtools.system import LocalSystem, replica_key
from tests.conftest import LocalServers
from tests.faults import observe

CONSUMER_SERVICES = ("routing", "sla", "notify", "projection", "intake")
# Poison records claim, in turn, a type most consumers handle and a type no consumer knows.
POISON_TYPES = ("gridline.case.received.v1", "gridline.case.no-such-event.v1")


@dataclass
class Fault:
    """One planned (or, for ``unplanned-exit``, observed) fault; times are monotonic seconds."""

    kind: str  # kill | kafka-restart | pg-outage | poison | remove-replica | add-replica | unplanned-exit
    target: str
    planned_at: float = 0.0  # seconds after the run's start
    started: float = 0.0
    ended: float = 0.0
    detail: str = ""

    def describe(self, t0: float) -> str:
        took = f"{self.ended - self.started:5.1f}s" if self.ended else "     -"
        return f"{self.started - t0:7.1f}s  {self.kind:<14} {self.target:<13} {took}  {self.detail}"


def plan(rng: random.Random, window: float, *, kills: int, server_faults: bool, poison: int) -> list[Fault]:
    """Every fault at a random moment of the seeding window; the outage and restart where load continues."""
    faults = [
        Fault("kill", service, rng.uniform(0.03, 0.9) * window)
        for service in CONSUMER_SERVICES
        for _ in range(kills)
    ]
    faults += [
        Fault("poison", f"POISON-{n}", rng.uniform(0.05, 0.9) * window, detail=POISON_TYPES[n % 2])
        for n in range(poison)
    ]
    if server_faults:  # apart, so that each one's effect can be told from the other's
        faults.append(Fault("pg-outage", "postgresql", rng.uniform(0.15, 0.45) * window))
        faults.append(Fault("kafka-restart", "kafka", rng.uniform(0.55, 0.8) * window))
    return sorted(faults, key=lambda f: f.planned_at)


def scale_plan(rng: random.Random, window: float, replica: int = 2) -> list[Fault]:
    """Every service's extra replica removed (SIGTERM or SIGKILL, at random) and later added back."""
    faults = []
    for service in CONSUMER_SERVICES:
        key = replica_key(service, replica)
        how = rng.choice(("SIGTERM", "SIGKILL"))
        faults.append(Fault("remove-replica", key, rng.uniform(0.15, 0.45) * window, detail=how))
        faults.append(Fault("add-replica", key, rng.uniform(0.55, 0.85) * window))
    return sorted(faults, key=lambda f: f.planned_at)


def consumed_events(url: str) -> float:
    """Events the process's consumers have taken (its own counter, any outcome)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gridline_events_consumed_total{")
    )


def lane(fault: Fault) -> str:
    """Faults in one lane happen one after another; lanes run side by side (a slow restart of one
    service does not postpone the next fault elsewhere)."""
    return fault.target if fault.kind in ("kill", "remove-replica", "add-replica") else fault.kind


@dataclass
class Supervisor:
    """Restarts services whose process ended without being killed on purpose (with a short backoff)."""

    system: LocalSystem
    say: Callable[[str], None] = print
    exits: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.down_on_purpose: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fault-supervisor", daemon=True)
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                for name, service in list(self.system.services.items()):
                    if name in self.down_on_purpose or service.process is None:
                        continue
                    code = service.process.poll()
                    now = time.monotonic()
                    if code is None or now < self._retry_at.get(name, 0.0):
                        continue
                    self.exits.append(Fault("unplanned-exit", name, 0.0, now, now, f"exit code {code}"))
                    self.say(f"supervisor: {name} exited with {code}; restarting")
                    backoff = min(10.0, self._backoff.get(name, 0.5) * 2)
                    self._backoff[name], self._retry_at[name] = backoff, now + backoff
                    self.system.process(service.name, service.replica).start()

    def settled(self, name: str) -> None:
        """The service answered ready: reset its restart backoff."""
        with self.lock:
            self._backoff.pop(name, None)
            self._retry_at.pop(name, None)


@dataclass
class Injector:
    """Carries out a plan against a running system, recording when each fault began and ended."""

    system: LocalSystem
    supervisor: Supervisor
    where: observe.Where
    servers: LocalServers | None
    rng: random.Random
    pg_outage_s: float
    say: Callable[[str], None] = print
    done: list[Fault] = field(default_factory=list)
    pg_outage: tuple[float, float] | None = None  # (stopped, restart began): certainly unreachable
    scaled_in: dict[str, float] = field(default_factory=dict)  # replica -> events it had consumed

    def run(self, faults: list[Fault], t0: float) -> None:
        """Each lane in its own thread, each fault at its planned moment (or when its lane is free)."""
        lanes: dict[str, list[Fault]] = {}
        for fault in faults:
            lanes.setdefault(lane(fault), []).append(fault)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=self._lane, args=(queue, t0, errors), name=f"fault-{name}", daemon=True)
            for name, queue in lanes.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _lane(self, faults: list[Fault], t0: float, errors: list[BaseException]) -> None:
        try:
            for fault in faults:
                wait = t0 + fault.planned_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                fault.started = time.monotonic()
                getattr(self, "_" + fault.kind.replace("-", "_"))(fault)
                fault.ended = fault.ended or time.monotonic()
                self.done.append(fault)
                self.say(f"fault: {fault.describe(t0)}")
        except BaseException as exc:  # reported by run(), in the test's thread
            errors.append(exc)

    def _kill(self, fault: Fault) -> None:
        key = fault.target
        service = self.system.services[key]
        lag = self._lag(f"gridline-{service.name}")
        with self.supervisor.lock:
            self.supervisor.down_on_purpose.add(key)
            fault.started = time.monotonic()
            service.kill()
        time.sleep(self.rng.uniform(0.0, 2.0))  # a supervisor's restart delay
        with self.supervisor.lock:
            self.system.process(service.name, service.replica).start()
            self.supervisor.down_on_purpose.discard(key)
        ready = self.wait_ready(key, timeout=240)
        fault.ended = time.monotonic()
        fault.detail = f"lag at kill {lag}; ready again after {ready:.1f}s"

    def _remove_replica(self, fault: Fault) -> None:
        """Scale in: the replica ends (SIGTERM drains, SIGKILL crashes); the others take over its share."""
        key, how = fault.target, fault.detail or "SIGTERM"
        service = self.system.services[key]
        consumed = consumed_events(service.url)
        with self.supervisor.lock:
            self.supervisor.down_on_purpose.add(key)
        fault.started = time.monotonic()
        if how == "SIGKILL":
            service.kill()
            code = service.process.returncode if service.process else None
        else:
            code = service.stop(timeout=30)
        fault.detail = f"{how}: exit code {code}; it had consumed {consumed:.0f} events"
        self.scaled_in[key] = consumed

    def _add_replica(self, fault: Fault) -> None:
        """Scale out: the replica starts again and joins its service's consumer groups."""
        key = fault.target
        service = self.system.services[key]
        with self.supervisor.lock:
            self.system.process(service.name, service.replica).start()
            self.supervisor.down_on_purpose.discard(key)
        ready = self.wait_ready(key, timeout=240)
        fault.detail = f"ready (partitions assigned) after {ready:.1f}s"

    def _kafka_restart(self, fault: Fault) -> None:
        assert self.servers is not None
        down = self.servers.restart_kafka()
        fault.detail = f"kill -9, same port and log dirs; broker back after {down:.1f}s"

    def _pg_outage(self, fault: Fault) -> None:
        assert self.servers is not None
        self.servers.stop_postgres()
        down = time.monotonic()
        time.sleep(self.pg_outage_s)  # the full outage from the moment it is certainly down
        up = time.monotonic()
        self.servers.start_postgres()
        self.pg_outage = (down, up)
        fault.detail = f"fast shutdown, down {up - fault.started:.1f}s, same data dir; accepting again after "
        fault.detail += f"{time.monotonic() - up:.1f}s"

    def _poison(self, fault: Fault) -> None:
        attempts, give_up = 0, time.monotonic() + 300
        while True:  # the broker may be down (its own fault lane): retry as any producer would
            attempts += 1
            try:
                asyncio.run(
                    observe.produce_poison(
                        self.where.kafka_bootstrap, self.where.case_topic, fault.target, fault.detail
                    )
                )
                break
            except KafkaError:
                if time.monotonic() > give_up:
                    raise
                time.sleep(2)
        fault.detail = f"{fault.detail} with a non-JSON body ({attempts} attempts)"

    def _lag(self, group: str) -> int | str:
        try:
            lag = asyncio.run(
                observe.consumer_lag(self.where.kafka_bootstrap, self.where.case_topic, (group,))
            )
            return lag[group]
        except Exception as exc:  # the broker may be restarting; the figure is only informative
            return f"unknown ({type(exc).__name__})"

    def wait_ready(self, key: str, timeout: float) -> float:
        """Seconds until the service process ``key`` (whichever now runs it) answers /readyz with 200."""
        began = time.monotonic()
        url = f"{self.system.services[key].url}/readyz"
        while time.monotonic() - began < timeout:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    self.supervisor.settled(key)
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{key} not ready {timeout:.0f}s after its restart; see {self.system.log_dir}")
