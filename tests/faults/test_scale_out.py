"""Scale-out (issue #9, part 2): two replicas of every service at once; mid-run each service's second
replica is removed (SIGTERM or SIGKILL, at random) and later added back. Consumer groups rebalance,
outbox relays, sla's timer runners and notify's delivery workers share their work through
``FOR UPDATE SKIP LOCKED`` — and the fault suite's invariants hold.

sla runs on a clock 30 days ahead, so every timer it schedules is already due: the two timer runners
really compete for cards and escalations while replicas come and go.

Size: ``GRIDLINE_FAULT_SCALE_CASES`` (default 300) over ``GRIDLINE_FAULT_SCALE_SEED_S`` (default 120).
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from devtools.system import SERVICES
from tests.faults.clients import Seeder
from tests.faults.injector import CONSUMER_SERVICES, Injector, Supervisor, scale_plan
from tests.faults.run import FaultRun, run_under_faults, say, where_of

pytestmark = pytest.mark.faults
CASES = int(os.environ.get("GRIDLINE_FAULT_SCALE_CASES", "300"))
SEED_S = float(os.environ.get("GRIDLINE_FAULT_SCALE_SEED_S", "120"))
DRAIN_S = float(os.environ.get("GRIDLINE_FAULT_DRAIN_S", "1200"))
SLA_AHEAD = timedelta(days=30)
REPLICA = 2


@pytest.fixture(scope="module")
def service_env() -> dict[str, str]:
    """sla's clock 30 days ahead (fixed origin and anchor, so every sla process agrees on the time)."""
    return {
        "GRIDLINE_SLA_CLOCK_ORIGIN": (datetime.now(UTC) + SLA_AHEAD).isoformat(),
        "GRIDLINE_SLA_CLOCK_ANCHOR": str(time.time()),
    }


@pytest.fixture(scope="module")
def scaled_run(infrastructure, fault_system, sinks, fault_settings) -> FaultRun:
    system = fault_system
    extra = [system.process(name, REPLICA) for name in SERVICES]
    for process in extra:
        process.start()
    for process in extra:
        process.wait_ready(240)
    rng = random.Random(fault_settings.seed + 1)
    faults = scale_plan(rng, SEED_S, REPLICA)
    say(
        f"\nscale-out run: {CASES} cases over {SEED_S:.0f}s, two replicas each; {len(faults)} changes planned"
    )
    supervisor = Supervisor(system, say).start()
    where = where_of(infrastructure, system)
    injector = Injector(system, supervisor, where, None, rng, 0.0, say)
    seeder = Seeder(
        [system.url("intake"), extra[0].url],
        CASES,
        fault_settings.seed + 1,
        CASES / SEED_S,
        fault_settings.clients,
    )
    return run_under_faults(
        infrastructure=infrastructure,
        system=system,
        sinks=sinks,
        seeder=seeder,
        injector=injector,
        supervisor=supervisor,
        faults=faults,
        drain_s=DRAIN_S,
        sla_clock_offset=SLA_AHEAD,
    )


@pytest.mark.timeout(SEED_S * 2 + DRAIN_S + 900)
def test_two_replicas_of_every_service_with_one_removed_and_added_back_lose_and_double_nothing(scaled_run):
    changes = {(f.kind, f.target) for f in scaled_run.faults}
    for name in CONSUMER_SERVICES:
        key = f"{name}-{REPLICA}"
        assert {("remove-replica", key), ("add-replica", key)} <= changes, key
        # The replica really shared the work before it went: its consumers had taken events.
        assert scaled_run.scaled_in.get(key, 0) > 0, (key, scaled_run.scaled_in)
    report = scaled_run.report
    assert not scaled_run.abandoned, f"submissions never accepted: {scaled_run.abandoned[:10]}"
    assert report.figures["accepted"] == CASES
    assert report.figures["timers_fired"] > 0, "sla's timer runners had nothing to share"
    assert not report.violations, report.summary()
