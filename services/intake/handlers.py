"""Intake's service layer: what the handlers need, and recording an appeal, its encrypted PII and its
events in one transaction (``services.intake.recording``).

A 2xx answer means the appeal row, the vault row and the outbox rows are committed together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import OutboundMessage, encode_event
from contracts.events import CaseEvent
from runtime.db import DirectPool
from runtime.outbox import current_trace_headers, enqueue
from services.intake import domain
from services.intake.appeals import Normalisation
from services.intake.config import IntakeSettings
from services.intake.recording import IdempotencyKey, Recorded, Recorder
from services.intake.vault import VaultCipher

__all__ = ["CaseNumbers", "IdempotencyKey", "Intake", "Recorded", "record_appeal"]


class CaseNumbers:
    """Case-number sequence values, taken from PostgreSQL a block at a time (one round trip per block, not
    per case). A restart or a second replica leaves gaps, never repeats: each block is a fresh ``nextval``."""

    BLOCK = 32

    def __init__(self) -> None:
        self._ready: list[int] = []
        self._lock = asyncio.Lock()

    async def next(self, db: asyncpg.Connection) -> int:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    values = await db.fetch(
                        "SELECT nextval('case_number_seq') AS n FROM generate_series(1, $1)", self.BLOCK
                    )
                    self._ready = sorted((r["n"] for r in values), reverse=True)
        return self._ready.pop()


@dataclass(frozen=True)
class Intake:
    """What the handlers need: the database (SQLAlchemy, and an asyncpg pool for recording appeals and
    revealing contacts), settings, the vault cipher, the CloudEvents source and the process's recorder of
    appeals."""

    engine: AsyncEngine
    settings: IntakeSettings
    cipher: VaultCipher
    recording: DirectPool
    source: str = "/gridline/intake"
    case_numbers: CaseNumbers = field(default_factory=CaseNumbers)
    recorder: Recorder = field(default_factory=Recorder)

    @classmethod
    def build(cls, engine: AsyncEngine, settings: IntakeSettings, source: str) -> Intake:
        cipher = VaultCipher.from_setting(settings.pii_vault_keys)
        # One more than the recorder's batches: a contact reveal (one statement) never waits behind them.
        pool = DirectPool(settings.database_url, settings.recording_connections + 1)
        recorder = Recorder(settings.recording_max_batch, settings.recording_connections)
        return cls(engine, settings, cipher, pool, source, recorder=recorder)

    async def close(self) -> None:
        await self.recording.close()

    @cached_property
    def rules(self) -> Normalisation:
        return Normalisation(self.settings.default_area_code, self.settings.max_attachments)

    @cached_property
    def duplicate_policy(self) -> domain.DuplicatePolicy:
        s = self.settings
        return domain.DuplicatePolicy(
            timedelta(days=s.duplicate_same_caller_days),
            s.duplicate_radius_m,
            timedelta(hours=s.duplicate_nearby_hours),
        )

    def encode(self, events: list[CaseEvent], trace: dict[str, str] | None = None) -> list[OutboundMessage]:
        """The events as Kafka messages for the case-events topic, carrying ``trace`` (by default the
        current trace)."""
        trace = current_trace_headers() if trace is None else trace
        topic = self.settings.case_events_topic
        return [encode_event(e, source=self.source, topic=topic, trace_headers=trace) for e in events]

    async def emit(self, conn: AsyncConnection, events: list[CaseEvent]) -> None:
        """Put events in the outbox inside the caller's transaction."""
        await enqueue(conn, self.encode(events))


async def record_appeal(
    intake: Intake,
    appeal: domain.Appeal,
    submission: dict,
    idempotency: IdempotencyKey | None = None,
) -> Recorded:
    """Record the appeal with its encrypted PII and its events, atomically; a retry of the same submission
    returns the same case.

    Retries are recognised by (source, external id) and, when given, by the client's Idempotency-Key;
    a concurrent retry that loses the race reads the winner's answer. The appeal is written in a batch
    with those arriving meanwhile (``services.intake.recording``); the answer comes after its commit.
    """
    return await intake.recorder.record(intake, appeal, submission, idempotency)
