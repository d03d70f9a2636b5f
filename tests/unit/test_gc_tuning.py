"""The garbage collector's tuning after start-up and the measure of its pauses (runtime/gc_tuning.py)."""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import REGISTRY

from runtime import gc_tuning


@pytest.fixture
def collector_state():
    """Put the test process's collector back as it was."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def pauses(generation: int) -> float:
    return REGISTRY.get_sample_value("gridline_gc_pause_seconds_count", {"generation": str(generation)})


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_freezes_what_is_alive_and_raises_the_young_threshold(collector_state):
    alive = [[index] for index in range(5_000)]  # container objects alive at start-up
    frozen = gc_tuning.settle(freeze=True, young_threshold=12_345)

    # (the count can fall a little right after: frozen objects freed by their reference count leave it)
    assert frozen >= len(alive) and gc.get_freeze_count() >= len(alive)
    assert gc.get_threshold()[0] == 12_345
    # A collection after start-up walks only what is not frozen: far fewer objects than are tracked.
    assert len(gc.get_objects(generation=2)) < frozen
    # Cycles made after start-up are still collected.
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None


def test_settle_can_leave_the_collector_as_cpython_has_it(collector_state):
    threshold = gc.get_threshold()
    assert gc_tuning.settle(freeze=False, young_threshold=0) == 0
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold


def test_every_collection_is_measured_by_generation():
    gc_tuning.measure_pauses()
    gc_tuning.measure_pauses()  # idempotent: one callback, each collection counted once
    gc.disable()  # only the collections asked for below
    try:
        young, full = pauses(0), pauses(2)
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        assert pauses(0) == young + 1
        assert pauses(2) == full + 2
    finally:
        gc.enable()
    assert REGISTRY.get_sample_value("gridline_gc_pause_seconds_sum", {"generation": "2"}) > 0
