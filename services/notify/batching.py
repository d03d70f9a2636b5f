"""Coalescing calls: items submitted while a call runs go together into the next one.

The delivery worker records outcomes this way (group commit: one transaction for every outcome that
finished while the previous one ran) and the contact directory asks intake for phone numbers this way (one
request for every lookup that came up while the previous one was answered). Nothing waits to fill a batch:
the first item goes alone at once, and batches grow only as calls take longer than items come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``call`` takes a batch of items and returns one result per item, in order. ``submit`` returns its
    item's result once the call holding it has finished (or raises what that call raised). At most
    ``max_batch`` items go into one call."""

    def __init__(self, call: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 0) -> None:
        self._call = call
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future]] = []
        self._runner: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._waiting:
            cut = self._max_batch or len(self._waiting)
            batch, self._waiting = self._waiting[:cut], self._waiting[cut:]
            try:
                results = await self._call([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)
