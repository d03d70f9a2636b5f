"""The delivery worker's group commit: outcomes that wait for a write go together into the next one."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.worker import GroupCommit


async def test_items_submitted_during_a_write_go_together_into_the_next_write() -> None:
    writes: list[list[int]] = []
    first_write_started, release = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> None:
        writes.append(list(items))
        if len(writes) == 1:
            first_write_started.set()
            await release.wait()

    commit = GroupCommit(write)
    first = asyncio.create_task(commit.submit(1))
    await first_write_started.wait()
    later = [asyncio.create_task(commit.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *later])  # nobody returns before their write ends
    release.set()
    await asyncio.gather(first, *later)
    assert writes == [[1], [2, 3, 4]]


async def test_a_failed_write_fails_every_item_in_it_and_the_next_write_still_runs() -> None:
    attempts: list[list[str]] = []

    async def write(items: list[str]) -> None:
        attempts.append(list(items))
        if "bad" in items:
            raise ConnectionError("database went away")

    commit = GroupCommit(write)
    together = [asyncio.create_task(commit.submit(item)) for item in ("a", "bad")]
    results = await asyncio.gather(*together, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    await commit.submit("c")
    assert attempts == [["a", "bad"], ["c"]]


async def test_a_cancelled_submitter_does_not_stop_the_write_of_the_others() -> None:
    written: list[str] = []
    gate = asyncio.Event()

    async def write(items: list[str]) -> None:
        await gate.wait()
        written.extend(items)

    commit = GroupCommit(write)
    one, two = (asyncio.create_task(commit.submit(x)) for x in ("one", "two"))
    await asyncio.sleep(0)
    one.cancel()
    with pytest.raises(asyncio.CancelledError):
        await one
    gate.set()
    await two
    assert written == ["one", "two"]
