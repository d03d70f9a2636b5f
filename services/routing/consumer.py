"""Routing's consumer entrypoint: the case log into the service layer's CaseEvents unit of work."""

from __future__ import annotations

from contracts.events.intake import AppealWithdrawn, CaseClosed, CaseReceived, CaseReopened, DuplicateLinked
from runtime.consumer import UnitOfWorkFactory
from services.routing.handlers import CaseEvents, RoutingContext

# The event types CaseEvents acts on; the consumer loop passes over the others undecoded.
HANDLES = (CaseReceived, DuplicateLinked, CaseClosed, AppealWithdrawn, CaseReopened)


def unit_of_work(ctx: RoutingContext) -> UnitOfWorkFactory:
    """What the runtime's consumer loop opens for every batch of case events."""
    return CaseEvents.factory(ctx)
