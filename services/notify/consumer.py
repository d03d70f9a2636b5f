"""Notify's entrypoint on the case event log: hand each batch of events to the Notifier.

The shared consumer loop provides the transaction, inbox dedupe and DLQ; the Notifier only queues
messages (services.notify.handlers), so this consumer never waits on an endpoint.
"""

from __future__ import annotations

from contracts.events import EVENT_CLASSES
from runtime.consumer import UnitOfWorkFactory
from services.notify.handlers import Notifier

# Every case event but notify's own (NotificationSent/Failed): the case facts fold in all the others.
HANDLES = tuple(cls for cls in EVENT_CLASSES if cls.producer != "notify")


def unit_of_work(notifier: Notifier) -> UnitOfWorkFactory:
    """What the consumer loop opens for every batch of case events."""
    return notifier.open_unit
