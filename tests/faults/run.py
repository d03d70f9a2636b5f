"""One fault run, start to verdict: seed while faults happen, wait for the system to drain, gather what
every service recorded and check it. Shared by the fault suite and the scale-out test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devtools.system import LocalSystem
from runtime.consumer import ignored_type_names
from services.intake import consumer as intake_consumer
from services.notify import consumer as notify_consumer
from services.routing import consumer as routing_consumer
from services.sla import consumer as sla_consumer
from tests.faults import observe
from tests.faults.clients import Seeder, submission
from tests.faults.conftest import delivery_dlq_topic
from tests.faults.injector import CONSUMER_SERVICES, Fault, Injector, Supervisor
from tests.faults.invariants import Answer, Expected, Observed, Receipt, Report, check
from tests.faults.sinks import RecordingSinks

SEND_TIMEOUT_S = 10.0  # notify's default send timeout: how long before a kill a send may have begun
CONSUMER_GROUPS = tuple(f"gridline-{name}" for name in CONSUMER_SERVICES)

# The event types each consumer decodes (None: every type; projection folds them all).
HANDLES = {
    "intake": intake_consumer.HANDLES,
    "routing": routing_consumer.HANDLES,
    "sla": sla_consumer.HANDLES,
    "notify": notify_consumer.HANDLES,
    "projection": None,
}


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class FaultRun:
    where: observe.Where
    expected: Expected
    observed: Observed
    report: Report
    faults: list[Fault]
    phases: dict[str, float]
    abandoned: list[str]
    scaled_in: dict[str, float]  # replica removed mid-run -> events its consumers had taken by then

    def killed(self, service: str) -> int:
        return sum(f.kind == "kill" and f.target == service for f in self.faults)


def where_of(infrastructure, system: LocalSystem) -> observe.Where:
    return observe.Where(
        kafka_bootstrap=infrastructure.kafka_bootstrap,
        case_topic=system.case_events_topic,
        dlq_topics=(f"{system.case_events_topic}.dlq", delivery_dlq_topic(system)),
        consumer_groups=CONSUMER_GROUPS,
        database_urls={name: infrastructure.database_url(system.database_name(name)) for name in HANDLES},
    )


def judges_of(ce_type: str) -> frozenset[str]:
    """The consumer groups that decode (and so must dead-letter) a malformed record claiming ``ce_type``:
    those that handle the type, and all of them for a type nobody knows."""
    return frozenset(
        f"gridline-{name}" for name, handles in HANDLES.items() if ce_type not in ignored_type_names(handles)
    )


def sender_fault_windows(faults: list[Fault]) -> list[tuple[float, float]]:
    """When notify may have handed a message over without being able to record it: a notify process
    ended without draining (SIGKILL, or an exit of its own), or its database was down."""
    windows = []
    for fault in faults:
        notify = fault.target.split("-")[0] == "notify"
        abrupt = fault.kind in ("kill", "unplanned-exit") or (
            fault.kind == "remove-replica" and fault.detail.startswith("SIGKILL")
        )
        if notify and abrupt:
            windows.append((fault.started - SEND_TIMEOUT_S - 5, fault.started + 1))
        elif fault.kind == "pg-outage":
            windows.append((fault.started - SEND_TIMEOUT_S - 5, fault.ended + 15))
    return windows


def run_under_faults(
    *,
    infrastructure,
    system: LocalSystem,
    sinks: RecordingSinks,
    seeder: Seeder,
    injector: Injector,
    supervisor: Supervisor,
    faults: list[Fault],
    drain_s: float,
    sla_clock_offset: timedelta = timedelta(0),
) -> FaultRun:
    """Seed, inject ``faults`` meanwhile, drain, gather, check; prints the faults, phases and figures."""
    where = injector.where
    phases: dict[str, float] = {}
    try:
        t0 = seeder.start().started_at
        injector.run(faults, t0)
        phases["faults_done"] = time.monotonic() - t0
        assert seeder.join(timeout=drain_s + 600), "the clients never finished seeding"
        phases["seeding_done"] = (seeder.finished_at or time.monotonic()) - t0
        observe.wait_until_drained(where, drain_s, say=say)
        phases["drained"] = time.monotonic() - t0
    finally:
        supervisor.stop()
    done = sorted(injector.done + supervisor.exits, key=lambda f: f.started)
    expected = Expected(
        submitted={submission(i, seeder.seed).key for i in range(seeder.submitted)},
        # a poison fault's detail starts with the CloudEvents type its record claimed
        poison={f.target: judges_of(f.detail.split()[0]) for f in done if f.kind == "poison"},
        case_dlq_topic=where.dlq_topics[0],
        delivery_dlq_topic=where.dlq_topics[1],
        pg_outage=injector.pg_outage,
        sender_faults=sender_fault_windows(done),
    )
    observed, report = settled_check(
        where, expected, list(seeder.answers), lambda: list(sinks.receipts), drain_s, sla_clock_offset
    )
    phases["checked"] = time.monotonic() - t0
    say("faults (seconds after seeding began):\n" + "\n".join(f.describe(t0) for f in done))
    say(f"phases: { {k: round(v, 1) for k, v in phases.items()} }")
    say(f"figures: {report.figures}")
    if seeder.abandoned:
        say(f"abandoned submissions: {seeder.abandoned[:20]}")
    say(f"lost: {len(report.lost)}, doubled: {len(report.doubled)}; {report.summary(limit=15)}")
    return FaultRun(
        where, expected, observed, report, done, phases, list(seeder.abandoned), injector.scaled_in
    )


GATHERS = 3


def settled_check(
    where: observe.Where,
    expected: Expected,
    answers: list[Answer],
    receipts: Callable[[], list[Receipt]],
    drain_s: float,
    sla_clock_offset: timedelta = timedelta(0),
) -> tuple[Observed, Report]:
    """Gather and check, and while violations remain, drain again and re-gather (at most ``GATHERS``).

    The services never stop — sla's timers fire whenever a deadline passes — so a gather, which reads one
    database after another, can catch an event between two services (on the log, not yet projected).
    Only what every gather finds is reported: a lost or doubled case stays lost or doubled.
    """
    persistent: set[tuple[str, str]] | None = None
    for attempt in range(1, GATHERS + 1):
        expected.timers_due_by = datetime.now(UTC) + sla_clock_offset - timedelta(minutes=1)
        observed = asyncio.run(observe.gather(where))
        observed.answers, observed.receipts = answers, receipts()
        report = check(observed, expected)
        found = {(v.invariant, v.subject) for v in report.violations}
        persistent = found if persistent is None else persistent & found
        if not persistent or attempt == GATHERS:
            break
        say(f"gather {attempt}: {len(found)} violations; draining again in case they were in flight")
        observe.wait_until_drained(where, drain_s, say=say)
    kept = [v for v in report.violations if (v.invariant, v.subject) in (persistent or set())]
    return observed, Report(kept, report.figures)
