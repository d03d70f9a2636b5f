"""bench/e2e's test for "notify has sent everything it can now", against notify's real schema: a message in
flight (leased, deferred_reason NULL) is still to send; one held for quiet hours or waiting for a retry is
not. (Its first form let ``NULL IN (...)`` drop every message in flight: a drain "ended" while 13-32 were
still being sent.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import sqlalchemy as sa

from bench import _pgstat
from services.notify.tables import deliveries
from tests.integration.conftest import migrated_engine


def row(n: int, status: str, due_in_s: float, reason: str | None) -> dict:
    return {
        "id": f"n-{n}", "case_id": f"ZQ{n}", "trigger_event_id": f"e-{n}", "trigger_type": "t",
        "subscription": "s", "recipient": "citizen:cz", "recipient_kind": "citizen", "channel": "sms",
        "endpoint": "sms", "template": "citizen_accepted", "title": "t", "body": "b", "payload": {},
        "quiet_hours": True, "trace_headers": {}, "status": status, "deferred_reason": reason,
        "next_attempt_at": datetime.now(UTC) + timedelta(seconds=due_in_s),
    }  # fmt: skip


async def test_messages_in_flight_or_due_are_outstanding_and_held_or_retrying_ones_are_not(infrastructure):
    engine = await migrated_engine(infrastructure, "notify")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(deliveries),
                [
                    row(1, "sent", -60, None),
                    row(2, "failed", -60, None),
                    row(3, "pending", 3600, "quiet-hours"),  # held until 08:00
                    row(4, "pending", 30, "retry"),  # backing off
                ],
            )
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        db = await asyncpg.connect(url)
        try:
            assert await _pgstat.outstanding_deliveries(db, count=True) == 0
            assert await _pgstat.outstanding_deliveries(db, count=False) == 0
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(deliveries),
                    [
                        row(5, "pending", 60, None),  # in flight: leased for a minute
                        row(6, "pending", -1, None),  # due, never tried
                        row(7, "pending", -1, "retry"),  # its retry is due
                        row(8, "pending", 20, "circuit-open"),  # waits for its endpoint's circuit
                    ],
                )
            assert await _pgstat.outstanding_deliveries(db, count=True) == 4
            assert await _pgstat.outstanding_deliveries(db, count=False) == 1
        finally:
            await db.close()
    finally:
        await engine.dispose()
