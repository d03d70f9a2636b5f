"""Routing's consumer entrypoint: the case log into the service layer's CaseEventHandler."""

from __future__ import annotations

from runtime.consumer import Handler
from services.routing.handlers import CaseEventHandler, RoutingContext


def handler(ctx: RoutingContext) -> Handler:
    """The handler the runtime's consumer loop calls for every case event."""
    return CaseEventHandler(ctx)
