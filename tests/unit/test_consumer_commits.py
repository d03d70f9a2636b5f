"""Kafka offset commits of the consumer loop: a busy consumer commits at most once per interval, the
first batch after a quiet spell at once, whatever is left on stop; partitions a rebalance took away are
left out; after a failure the consumer goes back to where the database is, not to the older commit."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from runtime.consumer import EventConsumer

P0, P1 = TopicPartition("cases", 0), TopicPartition("cases", 1)


class ScriptedConsumer:
    """Hands out scripted polls (a dict of partition -> offsets, or an exception), then stops the loop."""

    def __init__(self, polls: list, stop: asyncio.Event, assigned=(P0, P1)) -> None:
        self.polls, self.stop = list(polls), stop
        self.assigned = set(assigned)
        self.commits: list[dict[TopicPartition, int]] = []
        self.sought: dict[TopicPartition, int] = {}

    async def getmany(self, timeout_ms: int, max_records: int):
        if not self.polls:
            self.stop.set()
            return {}
        poll = self.polls.pop(0)
        if isinstance(poll, Exception):
            raise poll
        if callable(poll):
            poll = poll(self)
            poll = await poll if asyncio.iscoroutine(poll) else poll
        return {tp: [SimpleNamespace(offset=o) for o in offsets] for tp, offsets in poll.items()}

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        return None

    async def commit(self, offsets):
        self.commits.append(dict(offsets))

    async def committed(self, tp):
        return 0

    def seek(self, tp, offset):
        self.sought[tp] = offset


async def run(polls, interval: float, assigned=(P0, P1), during_batch=None) -> ScriptedConsumer:
    stop = asyncio.Event()
    fake = ScriptedConsumer(polls, stop, assigned)
    consumer = EventConsumer(
        name="c",
        consumer=fake,
        producer=None,
        engine=None,
        handler=_unused,
        commit_interval_s=interval,  # type: ignore[arg-type]
    )

    async def in_database(batches) -> None:  # the batch's transaction, as far as commits care
        if during_batch is not None:
            await during_batch(consumer, fake, batches)

    consumer._process_poll = in_database  # type: ignore[method-assign]
    fake.owner = consumer
    await asyncio.wait_for(consumer.run(stop), timeout=30)
    return fake


async def test_a_busy_consumer_commits_the_first_batch_at_once_and_the_rest_on_stop():
    fake = await run([{P0: [0, 1]}, {P0: [2], P1: [0]}, {}, {P1: [1, 2]}], interval=3600)
    assert fake.commits == [{P0: 2}, {P0: 3, P1: 3}]


async def test_with_no_interval_every_poll_that_brought_events_commits():
    fake = await run([{P0: [0, 1]}, {P0: [2], P1: [0]}, {}, {P1: [1, 2]}], interval=0)
    assert fake.commits == [{P0: 2}, {P0: 3, P1: 1}, {P1: 3}]


async def test_a_partition_taken_away_is_left_out_of_the_commit():
    def revoke_p1(fake: ScriptedConsumer):
        fake.assigned.discard(P1)
        return {}

    fake = await run([{P0: [0]}, {P0: [1], P1: [5]}, revoke_p1], interval=3600)
    assert fake.commits == [{P0: 1}, {P0: 2}]


async def test_after_a_failure_the_consumer_goes_back_to_where_the_database_is():
    fake = await run([{P0: [0]}, {P0: [1, 2]}, KafkaConnectionError()], interval=3600)
    assert fake.sought == {P0: 3, P1: 0}  # P0: its batches are in the database; P1: its last commit
    assert fake.commits == [{P0: 1}, {P0: 3}]


async def test_before_a_rebalance_the_partitions_going_away_are_committed_at_once():
    async def rebalance(fake: ScriptedConsumer):
        await fake.owner.rebalance_listener().on_partitions_revoked({P0, P1})  # as aiokafka does
        fake.assigned = {P1}  # before it rejoins; P1 comes back, P0 goes to another member
        return {P1: [4]}

    fake = await run([{P0: [0]}, {P0: [1, 2], P1: [3]}, rebalance], interval=3600)
    # the first batch at once; then, inside the interval, the revocation commits both partitions'
    # database positions; what P1 brought after it is committed on stop
    assert fake.commits == [{P0: 1}, {P0: 3, P1: 4}, {P1: 5}]


async def test_a_batch_handled_across_a_rebalance_records_no_position():
    async def rebalance_meanwhile(consumer: EventConsumer, fake: ScriptedConsumer, batches) -> None:
        if P0 in batches and batches[P0][0].offset == 5:
            await consumer.rebalance_listener().on_partitions_revoked({P0, P1})
            fake.commits.append({P0: 9})  # P0 was another member's for a while, and comes back

    fake = await run([{P0: [0]}, {P0: [5, 6]}, {}], interval=3600, during_batch=rebalance_meanwhile)
    # without the check, stopping would commit P0: 7, behind the other member's 9
    assert fake.commits == [{P0: 1}, {P0: 9}]


async def _unused(conn, delivery) -> None:
    raise AssertionError("no event reaches a handler here")
