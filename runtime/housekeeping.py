"""Housekeeping: rows a service keeps only for a while, deleted in the background by its worker.

Without it the runtime tables grow with every event for ever: at Zhangqiu's ~600,000 cases a year each
service's inbox gains millions of rows. (The outbox needs none: its relay deletes each row once Kafka has
it, runtime.outbox.) What may go, and when:

- **inbox** rows after ``GRIDLINE_INBOX_KEEP_DAYS`` (30). The inbox only has to recognise an event that
  arrives again: an event published twice (a relay that died between Kafka's ack and deleting the row)
  comes again within minutes, and a consumer re-reads only from its tracked offset, which is seconds old.
- a service's own tables (intake: Idempotency-Key answers, ``GRIDLINE_IDEMPOTENCY_KEEP_HOURS``).

Each pass walks each table once in physical order and deletes at most
``GRIDLINE_HOUSEKEEPING_BATCH_SIZE`` rows per statement, in short transactions, skipping rows another
replica is deleting (``SKIP LOCKED``). Ages are measured on the database's clock, the one that stamped
the rows. No index serves the stamps: the tables stay a few weeks' size once trimmed, and an index would
cost every insert on the hot path.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.consumer import is_infrastructure_error
from runtime.settings import ServiceSettings
from runtime.stopping import sleep_or_stop

log = structlog.get_logger(__name__)

DELETED = Counter(
    "gridline_housekeeping_deleted_rows_total", "Rows deleted by housekeeping, by table", ["table"]
)
LAST_PASS = Gauge(
    "gridline_housekeeping_last_pass_timestamp_seconds", "When the last complete housekeeping pass ended"
)


@dataclass(frozen=True)
class Retention:
    """Rows of ``table`` whose ``stamp`` column is older than ``keep_s`` seconds may be deleted. A row
    whose stamp is NULL is kept."""

    table: str
    stamp: str
    keep_s: float

    @property
    def statement(self) -> str:
        """Delete at most $3 expired rows found after the physical place $1 (a ``tid``), locking them and
        skipping rows locked by others; returns the places deleted.

        A pass walks the table once, in physical order (a TID range scan from the last place deleted):
        restarting each batch from the table's start would read the rows earlier batches deleted (dead
        until vacuum) again and again, and the first pass over a year of rows would never end."""
        return (
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {self.table} WHERE ctid > $1::tid"
            f" AND {self.stamp} < now() - make_interval(secs => $2)"
            " LIMIT $3 FOR UPDATE SKIP LOCKED)) RETURNING ctid"
        )


def runtime_retentions(settings: ServiceSettings) -> list[Retention]:
    """The inbox every service has."""
    return [Retention("inbox", "processed_at", settings.inbox_keep_days * 86400)]


async def sweep(engine: AsyncEngine, retentions: Sequence[Retention], batch_size: int) -> dict[str, int]:
    """One pass: every table's expired rows, a batch per transaction; returns the rows deleted per table."""
    deleted: dict[str, int] = {}
    for retention in retentions:
        total, after = 0, (0, 0)
        while True:
            async with engine.begin() as conn:
                parameters = (after, retention.keep_s, batch_size)
                places = [row[0] for row in await conn.exec_driver_sql(retention.statement, parameters)]
            total += len(places)
            DELETED.labels(retention.table).inc(len(places))
            if len(places) < batch_size:
                break
            after = max(places)
            await asyncio.sleep(0)  # let the service's own work run between batches
        deleted[retention.table] = total
    return deleted


async def run(
    engine: AsyncEngine,
    retentions: Sequence[Retention],
    stop: asyncio.Event,
    *,
    interval_s: float,
    batch_size: int,
    first_delay_s: float | None = None,
) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set. The first pass comes after ``first_delay_s``
    (default: a random part of the interval, so replicas and services do not all sweep at once). A pass
    that meets an outage is logged and tried again at the next interval."""
    delay = random.uniform(0.1, 1.0) * interval_s if first_delay_s is None else first_delay_s
    while not await sleep_or_stop(stop, delay):
        delay = interval_s
        started = time.perf_counter()
        try:
            deleted = await sweep(engine, retentions, batch_size)
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("housekeeping.pass_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        LAST_PASS.set_to_current_time()
        if any(deleted.values()):
            log.info("housekeeping.swept", deleted=deleted, ms=round(1000 * (time.perf_counter() - started)))
