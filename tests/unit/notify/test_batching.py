"""Coalesced calls (the worker's group commit, the contact lookups): items that wait for a call go together
into the next one, each with its own result."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.batching import Batcher


async def test_items_submitted_during_a_write_go_together_into_the_next_write() -> None:
    writes: list[list[int]] = []
    first_write_started, release = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        writes.append(list(items))
        if len(writes) == 1:
            first_write_started.set()
            await release.wait()
        return [item * 10 for item in items]

    commit = Batcher(write)
    first = asyncio.create_task(commit.submit(1))
    await first_write_started.wait()
    later = [asyncio.create_task(commit.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *later])  # nobody returns before their write ends
    release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]  # each its own item's result
    assert writes == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_every_item_in_it_and_the_next_write_still_runs() -> None:
    attempts: list[list[str]] = []

    async def write(items: list[str]) -> list[None]:
        attempts.append(list(items))
        if "bad" in items:
            raise ConnectionError("database went away")
        return [None] * len(items)

    commit = Batcher(write)
    together = [asyncio.create_task(commit.submit(item)) for item in ("a", "bad")]
    results = await asyncio.gather(*together, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    await commit.submit("c")
    assert attempts == [["a", "bad"], ["c"]]


async def test_a_cancelled_submitter_does_not_stop_the_write_of_the_others() -> None:
    written: list[str] = []
    gate = asyncio.Event()

    async def write(items: list[str]) -> list[None]:
        await gate.wait()
        written.extend(items)
        return [None] * len(items)

    commit = Batcher(write)
    one, two = (asyncio.create_task(commit.submit(x)) for x in ("one", "two"))
    await asyncio.sleep(0)
    one.cancel()
    with pytest.raises(asyncio.CancelledError):
        await one
    gate.set()
    await two
    assert written == ["one", "two"]


async def test_a_batch_holds_at_most_max_batch_items_and_the_rest_go_in_the_next_calls() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def lookup(items: list[int]) -> list[int]:
        calls.append(list(items))
        await gate.wait()
        return [-item for item in items]

    batcher = Batcher(lookup, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [-1, -2, -3, -4, -5]
    assert calls == [[1, 2], [3, 4], [5]]  # all five were waiting when the first call began


async def test_a_call_returning_the_wrong_number_of_results_fails_its_items_rather_than_mismatching() -> None:
    async def short(items: list[str]) -> list[str]:
        return items[:-1]

    batcher = Batcher(short)
    results = await asyncio.gather(*(batcher.submit(x) for x in "ab"), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
