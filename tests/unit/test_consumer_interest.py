"""Which event types a consumer may pass over undecoded (runtime.consumer.ignored_type_names)."""

from __future__ import annotations

from contracts.events import EVENT_TYPES
from contracts.events.intake import CaseReceived
from contracts.events.sla import DeadlineSet
from runtime.consumer import ignored_type_names
from services.notify.consumer import HANDLES as NOTIFY_HANDLES


def test_a_consumer_passes_over_only_known_types_it_does_not_handle():
    ignored = ignored_type_names([CaseReceived])
    assert CaseReceived.type_name() not in ignored
    assert DeadlineSet.type_name() in ignored
    assert ignored == set(EVENT_TYPES) - {CaseReceived.type_name()}
    assert "gridline.case.teleported.v1" not in ignored  # unknown: decoded, so dead-lettered


def test_handling_everything_ignores_nothing():
    assert ignored_type_names(None) == frozenset()


def test_notify_reads_every_event_but_its_own():
    ignored = ignored_type_names(NOTIFY_HANDLES)
    assert ignored and all(EVENT_TYPES[name].producer == "notify" for name in ignored)
