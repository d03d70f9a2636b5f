"""After a failed batch the consumer goes back to its committed offsets; a partition a rebalance took away
in the meantime is left to its new owner instead of crashing the consumer (found by the fault suite's
scale-out run: IllegalStateError from seek() killed both projection replicas)."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from runtime.consumer import EventConsumer

KEPT, REVOKED, FRESH = (TopicPartition("cases", n) for n in range(3))


class RebalancingConsumer:
    """Reports three partitions assigned; REVOKED is gone by the time it is sought."""

    def __init__(self) -> None:
        self.positions: dict[TopicPartition, int | str] = {}

    def assignment(self) -> set[TopicPartition]:
        return {KEPT, REVOKED, FRESH}

    async def committed(self, tp: TopicPartition) -> int | None:
        return None if tp == FRESH else 42

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp == REVOKED:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = "beginning"


async def test_rewinding_skips_a_partition_revoked_meanwhile_and_rewinds_the_others():
    fake = RebalancingConsumer()
    consumer = EventConsumer(name="c", consumer=fake, producer=None, engine=None, handler=_unused)  # type: ignore[arg-type]

    await consumer._rewind()

    assert fake.positions == {KEPT: 42, FRESH: "beginning"}


async def _unused(conn, delivery) -> None:
    raise AssertionError("rewinding handles no event")
