"""Kill it, starve it: nothing a 2xx acknowledged is lost or doubled (issue #9, fault suite).

Modelled on how Kafka tests delivery: seed a known set of uniquely identified cases through intake's
public HTTP API while, at random (seeded) moments, every consumer service and intake are SIGKILLed,
Kafka is hard-restarted and PostgreSQL is stopped; then let the system drain and compare what went in
with what every service recorded (``tests/faults/invariants.py``).

Size and roughness: ``GRIDLINE_FAULT_*`` (tests/faults/conftest.py); ``make test-faults`` runs the CI
size (2,000 cases), ``make test-faults-full`` the full one (100,000).
"""

from __future__ import annotations

import asyncio
import random
import warnings

import asyncpg
import pytest

from tests.faults.clients import Seeder
from tests.faults.conftest import FaultSettings
from tests.faults.injector import CONSUMER_SERVICES, Injector, Supervisor, plan
from tests.faults.run import FaultRun, run_under_faults, say, settled_check, where_of

pytestmark = pytest.mark.faults
SETTINGS = FaultSettings()
POISON_RECORDS = 3


@pytest.fixture(scope="module")
def fault_run(infrastructure, fault_system, sinks, fault_settings) -> FaultRun:
    settings, system, servers = fault_settings, fault_system, infrastructure.servers
    if servers is None:
        reason = infrastructure.server_faults_unsupported
        warnings.warn(f"Kafka restart and PostgreSQL outage skipped: {reason}", stacklevel=2)
    rng = random.Random(settings.seed)
    faults = plan(
        rng, settings.seed_s, kills=settings.kills, server_faults=servers is not None, poison=POISON_RECORDS
    )
    say(f"\nfault run: {settings}; {settings.rate:.1f} cases/s; {len(faults)} faults planned")
    supervisor = Supervisor(system, say).start()
    where = where_of(infrastructure, system)
    return run_under_faults(
        infrastructure=infrastructure,
        system=system,
        sinks=sinks,
        seeder=Seeder([system.url("intake")], settings.cases, settings.seed, settings.rate, settings.clients),
        injector=Injector(system, supervisor, where, servers, rng, settings.pg_outage_s, say),
        supervisor=supervisor,
        faults=faults,
        drain_s=settings.drain_s,
    )


@pytest.mark.timeout(SETTINGS.budget_s)
def test_nothing_acknowledged_is_lost_or_doubled_while_services_kafka_and_postgres_fail(fault_run):
    report, faults = fault_run.report, fault_run.faults
    killed = {name: fault_run.killed(name) for name in CONSUMER_SERVICES}
    assert all(count >= SETTINGS.kills for count in killed.values()), killed
    if fault_run.expected.pg_outage is not None:
        assert sum(f.kind == "kafka-restart" for f in faults) == 1
        down, up = fault_run.expected.pg_outage
        assert up - down >= SETTINGS.pg_outage_s - 1
    assert not fault_run.abandoned, f"submissions never accepted: {fault_run.abandoned[:10]}"
    assert report.figures["accepted"] == SETTINGS.cases
    assert not report.violations, report.summary()


@pytest.mark.timeout(SETTINGS.budget_s)
def test_the_checker_notices_one_projected_case_deleted_behind_the_systems_back(fault_run, sinks):
    """The same gathering and checking, after one accepted case is removed from the read model: it must
    be reported lost, and nothing else."""
    victim = sorted(a.case_id for a in fault_run.observed.appeals)[len(fault_run.observed.appeals) // 2]

    async def delete() -> None:
        conn = await asyncpg.connect(fault_run.where.database_urls["projection"])
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM case_timeline WHERE case_id = $1", victim)
                await conn.execute("DELETE FROM case_summary WHERE case_id = $1", victim)
        finally:
            await conn.close()

    asyncio.run(delete())
    _, report = settled_check(
        fault_run.where, fault_run.expected, fault_run.observed.answers, lambda: list(sinks.receipts), 300
    )

    before = set(fault_run.report.violations)
    assert victim not in fault_run.report.lost
    assert report.lost == fault_run.report.lost | {victim}, report.summary()
    assert {v.subject for v in set(report.violations) - before} == {victim}, report.summary()
    assert report.doubled == fault_run.report.doubled
