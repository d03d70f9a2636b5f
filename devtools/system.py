"""Start the five services as real processes against given Kafka and PostgreSQL endpoints.

Used by the e2e test fixture and by benchmarks; ``make run`` uses honcho with the same commands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES: dict[str, int] = {"intake": 8001, "routing": 8002, "sla": 8003, "notify": 8004, "projection": 8005}
REPO = Path(__file__).resolve().parent.parent
REPLICA_PORT_STEP = 10  # replica n of a service listens on its port + 10 * (n - 1)
WORKER_PORT_STEP = 50  # a service's worker process (GRIDLINE_PROCESS_ROLE=worker) listens on its port + 50
# Services deployed as HTTP processes beside a worker in production (deploy/k8s): intake, whose HTTP
# processes then spend their CPU on requests alone (docs/intake.md, Throughput).
SPLIT_IN_PRODUCTION = ("intake",)


def replica_key(service: str, replica: int = 1) -> str:
    """Key of a process in ``LocalSystem.services``: the service's name, ``<name>-<n>`` for replica n > 1."""
    return service if replica == 1 else f"{service}-{replica}"


@dataclass
class ServiceProcess:
    """One service process with its own log file."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    replica: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, the way a crash looks."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait for a graceful exit (SIGKILL after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {last}; see {self.log_path}")


@dataclass
class LocalSystem:
    """All five services, configured for one set of infrastructure endpoints."""

    kafka_bootstrap: str
    postgres_url: str
    log_dir: Path
    port_offset: int = 0
    topic_suffix: str = ""
    database_suffix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def case_events_topic(self) -> str:
        return f"gridline.case-events{self.topic_suffix}"

    def database_name(self, service: str) -> str:
        return f"gridline_{service}{self.database_suffix}"

    def env_for(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLINE_")}
        env.update(
            GRIDLINE_KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap,
            GRIDLINE_POSTGRES_URL=self.postgres_url,
            GRIDLINE_DATABASE_NAME=self.database_name(service),
            GRIDLINE_HTTP_PORT=str(SERVICES[service] + self.port_offset),
            GRIDLINE_CASE_EVENTS_TOPIC=self.case_events_topic,
            GRIDLINE_ENVIRONMENT="test",
            GRIDLINE_OUTBOX_POLL_INTERVAL_S="0.05",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def process(self, service: str, replica: int = 1, **overrides: str) -> ServiceProcess:
        """A new (not yet started) process of ``service``; replicas > 1 run beside the first one, in the
        same consumer groups and on the same database, on their own port."""
        key = replica_key(service, replica)
        port = SERVICES[service] + self.port_offset + REPLICA_PORT_STEP * (replica - 1)
        env = self.env_for(service)
        env.update(GRIDLINE_HTTP_PORT=str(port), **overrides)
        proc = ServiceProcess(service, port, env, self.log_dir / f"{key}.log", replica=replica)
        self.services[key] = proc
        return proc

    def worker(self, service: str) -> ServiceProcess:
        """A new (not yet started) worker process of ``service``: its consumers, outbox relay and background
        jobs, for HTTP processes started with ``GRIDLINE_PROCESS_ROLE=http``."""
        key = f"{service}-worker"
        port = SERVICES[service] + self.port_offset + WORKER_PORT_STEP
        env = self.env_for(service)
        env.update(GRIDLINE_HTTP_PORT=str(port), GRIDLINE_PROCESS_ROLE="worker")
        proc = ServiceProcess(service, port, env, self.log_dir / f"{key}.log")
        self.services[key] = proc
        return proc

    def start(self, names: list[str] | None = None, timeout: float = 120) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = [self.process(name) for name in (names or list(SERVICES))]
        for proc in started:
            proc.start()
        for proc in started:
            proc.wait_ready(timeout)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{SERVICES[service] + self.port_offset}"

    def stop(self) -> dict[str, int | None]:
        return {name: proc.stop() for name, proc in self.services.items()}
