"""``make run``: the whole system on this machine, supervised by honcho.

Kafka, PostgreSQL, the nginx gateway and the five services run as honcho processes from a generated
Procfile; a ``demo`` process waits for the gateway, seeds 20 appeals from the workload generator
(devtools.workload: hotline, grid members and Open311), prints the URLs, then keeps a gentle trickle of new
appeals flowing and carries out their follow-ups (签收, 退单, 延期, 答复, 回访) so the system looks alive.
Ctrl-C stops everything.

Sub-commands used inside the Procfile: ``service NAME`` (wait for infrastructure, create the service's
database, then become the service) and ``demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from devtools import gateway, infra
from devtools.system import REPO, SERVICES

RUN_DIR = REPO / ".local" / "run"
# Every port below the kernel's ephemeral range (32768-60999 on Linux): a port in it can be the local end
# of an outgoing connection when its server starts (PostgreSQL on 55432 once failed to bind while the
# services and Kafka were connecting out).
KAFKA_PORT, KAFKA_CONTROLLER_PORT, POSTGRES_PORT, GATEWAY_PORT = 9092, 9093, 15432, 8080
POSTGRES_URL = f"postgresql://gridline@127.0.0.1:{POSTGRES_PORT}"
JAEGER_OTLP_HTTP_PORT, JAEGER_UI_PORT = 4318, 16686  # Jaeger v2 all-in-one defaults


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def write_nginx_conf() -> Path:
    conf = RUN_DIR / "nginx.conf"
    conf.write_text(gateway.render_local(RUN_DIR, _env_int("GRIDLINE_GATEWAY_PORT", GATEWAY_PORT)))
    return conf


def write_procfile() -> Path:
    py = sys.executable
    lines = [
        f"kafka: {py} -m devtools.infra kafka --port {KAFKA_PORT} --controller-port {KAFKA_CONTROLLER_PORT} "
        f"--workdir {RUN_DIR / 'kafka'}",
        f"postgres: {py} -m devtools.infra postgres --port {POSTGRES_PORT} --datadir {RUN_DIR / 'postgres'}",
        f"gateway: {infra.ensure_nginx()} -p {RUN_DIR} -c {write_nginx_conf()} -g 'daemon off;'",
    ]
    if tracing_on():
        lines.append(f"jaeger: {infra.ensure_jaeger()}")
    lines += [f"{name}: {py} -m devtools.run service {name}" for name in SERVICES]
    lines.append(f"sinks: {py} -m devtools.sinks")
    lines.append(f"demo: {py} -m devtools.run demo")
    procfile = RUN_DIR / "Procfile"
    procfile.write_text("\n".join(lines) + "\n")
    return procfile


def tracing_on() -> bool:
    """``GRIDLINE_TRACING=jaeger`` (``make run-traced``) adds Jaeger and points every service's OTLP at it."""
    return os.environ.get("GRIDLINE_TRACING", "") == "jaeger"


def run_all() -> int:
    """Prepare, then hand over to honcho until Ctrl-C."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    infra.fetch()
    procfile = write_procfile()
    env = dict(
        os.environ,
        GRIDLINE_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{KAFKA_PORT}",
        GRIDLINE_POSTGRES_URL=POSTGRES_URL,
    )
    env.setdefault("GRIDLINE_LOG_JSON", "false")
    env.setdefault("GRIDLINE_KAFKA_LOG_LEVEL", "warn")
    env.setdefault("GRIDLINE_NOTIFY_SMTP_PORT", "2525")  # devtools/sinks.py stands in for mail, SMS, grid app
    if tracing_on():
        env.setdefault("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{JAEGER_OTLP_HTTP_PORT}")
    honcho = Path(sys.executable).parent / "honcho"
    supervisor = subprocess.Popen([str(honcho), "start", "-f", str(procfile), "-d", str(REPO)], env=env)
    try:
        return supervisor.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches honcho too; a SIGINT sent to this process alone must as well, and
        # honcho must be left to stop the services before the infrastructure (subprocess.call killed it,
        # which left every process it started running).
        supervisor.send_signal(signal.SIGINT)
        try:
            supervisor.wait(timeout=90)
        except subprocess.TimeoutExpired:
            supervisor.terminate()
            supervisor.wait()
        return 0


def run_service(name: str) -> None:
    """Wait for Kafka and PostgreSQL, make sure the database exists, then exec the service."""
    infra.wait_until_ready(
        kafka=f"127.0.0.1:{KAFKA_PORT}", postgres=f"127.0.0.1:{POSTGRES_PORT}", timeout=180
    )
    infra.create_databases(POSTGRES_PORT, [f"gridline_{name}"])
    os.execv(sys.executable, [sys.executable, "-m", f"services.{name}"])


def run_demo() -> None:
    """Seed a morning's worth of appeals through the gateway, print where to look, then keep them coming."""
    gateway = f"http://127.0.0.1:{_env_int('GRIDLINE_GATEWAY_PORT', GATEWAY_PORT)}"
    for name, port in SERVICES.items():
        _wait_http(f"http://127.0.0.1:{port}/readyz", 240, name)
    _wait_http(f"{gateway}/", 30, "gateway")
    asyncio.run(_demo(gateway))


async def _demo(gateway: str) -> None:
    """Realistic appeals from all three feeds (devtools.workload), and their follow-ups carried out:
    departments with a development key accept, return, ask for extensions and reply; citizens rate.
    One simulated hour of a case's life takes ``GRIDLINE_DEMO_SECONDS_PER_HOUR`` seconds (default 5)."""
    from devtools.workload import CST, Workload
    from devtools.workload.followups import FollowUpDriver, RoutingPoller, submit

    interval = _env_int("GRIDLINE_DEMO_INTERVAL_S", 30)
    stream = iter(Workload(seed=2026, start=datetime.now(CST), run=f"demo{int(time.time())}"))
    following: set[asyncio.Task] = set()
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        driver = FollowUpDriver(
            routing=client,
            intake=client,
            assignments=RoutingPoller(client, interval_s=2.0),
            seconds_per_hour=float(os.environ.get("GRIDLINE_DEMO_SECONDS_PER_HOUR", "5")),
            max_delay_s=300,
            assignment_timeout_s=900,  # a backlog left in .local/run from an earlier run delays routing
        )

        async def one() -> str | None:
            submission = next(stream).restamped(datetime.now(CST))
            case_id = await submit(client, submission)
            if case_id and submission.plan:
                task = asyncio.create_task(driver.carry_out(case_id, submission.source, submission.plan))
                following.add(task)
                task.add_done_callback(following.discard)
            return case_id

        case_ids = [case_id for _ in range(20) if (case_id := await one())]
        print_banner(gateway, case_ids)
        while True:
            await asyncio.sleep(interval)
            await one()


def print_banner(gateway: str, case_ids: list[str]) -> None:
    rows = [
        ("gateway", f"{gateway}/"),
        ("console (operators)", f"{gateway}/console/   (API key: dev-operator-key)"),
        ("cases API", f"curl -H 'X-API-Key: dev-operator-key' {gateway}/v1/cases"),
        ("one sample case", f"{gateway}/v1/cases/{case_ids[-1]}"),
        (
            "post an appeal",
            f"curl -X POST {gateway}/v1/intake/hotline -H 'X-API-Key: dev-hotline-key' "
            "-H 'content-type: application/json' -d @docs/examples/hotline-order.json",
        ),
        *(
            (name, f"http://127.0.0.1:{port}/docs  (also {gateway}/services/{name}/docs)")
            for name, port in SERVICES.items()
        ),
        ("kafka", f"127.0.0.1:{KAFKA_PORT}"),
    ]
    if tracing_on():
        rows += [
            (
                "traces (Jaeger)",
                f"http://127.0.0.1:{JAEGER_UI_PORT}/search?service=gridline-projection"
                f"&tags=%7B%22gridline.case_id%22%3A%22{case_ids[-1]}%22%7D",
            ),
            ("a case's trace", f"python -m devtools.trace {case_ids[-1]}"),
        ]
    else:
        rows.append(("traces", "off (make run-traced starts Jaeger)"))
    rows.append(("postgresql", POSTGRES_URL))
    width = max(len(label) for label, _ in rows) + 1
    lines = ["", "Gridline is running.", *(f"  {label:<{width}}{value}" for label, value in rows)]
    lines += [
        "  mail, SMS, grid-app webhooks are printed by the `sinks` process below",
        f"  seeded {len(case_ids)} appeals (devtools.workload); more keep coming; Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{what} did not become ready at {url} within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    service = sub.add_parser("service", help="run one service once its infrastructure is up")
    service.add_argument("name", choices=sorted(SERVICES))
    sub.add_parser("demo", help="seed sample cases and keep a trickle flowing")
    args = parser.parse_args()
    if args.command == "service":
        run_service(args.name)
    elif args.command == "demo":
        try:
            run_demo()
        except KeyboardInterrupt:  # Ctrl-C reaches every process of `make run`: stop quietly
            return 130
    else:
        return run_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
