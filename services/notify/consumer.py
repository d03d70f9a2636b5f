"""Notify's entrypoint on the case event log: hand each event to the Notifier.

The shared consumer loop provides the transaction, inbox dedupe and DLQ; the Notifier only queues
messages (services.notify.handlers), so this consumer never waits on an endpoint.
"""

from __future__ import annotations

from runtime.consumer import Handler
from services.notify.handlers import Notifier


def handler(notifier: Notifier) -> Handler:
    """The consumer handler for ``notifier``."""
    return notifier.handle
