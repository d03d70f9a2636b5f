"""Routing's consumer entrypoint: the case log into the service layer's CaseEventHandler."""

from __future__ import annotations

from contracts.events.intake import AppealWithdrawn, CaseClosed, CaseReceived, CaseReopened, DuplicateLinked
from runtime.consumer import Handler
from services.routing.handlers import CaseEventHandler, RoutingContext

# The event types CaseEventHandler acts on; the consumer loop passes over the others undecoded.
HANDLES = (CaseReceived, DuplicateLinked, CaseClosed, AppealWithdrawn, CaseReopened)


def handler(ctx: RoutingContext) -> Handler:
    """The handler the runtime's consumer loop calls for every case event."""
    return CaseEventHandler(ctx)
