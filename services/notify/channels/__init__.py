"""Delivery channels: webhook (signed HTTP POST), e-mail (SMTP) and SMS (gateway HTTP API).

Each sender delivers one message or raises ``DeliveryError`` saying whether a retry can help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from runtime.logging import mask_pii


class DeliveryError(Exception):
    """A delivery attempt failed. ``retryable``: a later attempt may succeed. ``endpoint_fault``: the
    failure counts against the endpoint's circuit breaker."""

    def __init__(self, message: str, *, retryable: bool = True, endpoint_fault: bool = True) -> None:
        super().__init__(mask_pii(message)[:500])
        self.retryable = retryable
        self.endpoint_fault = endpoint_fault


@dataclass(frozen=True)
class Outgoing:
    """One message as the worker hands it to a channel."""

    notification_id: str
    case_id: str
    trigger_event_id: str
    trigger_type: str
    recipient: str
    template: str
    title: str
    body: str
    created_at: datetime
    payload: dict = field(default_factory=dict)


class Sender(Protocol):
    """Port of one channel. ``address``: e-mail address or phone number (webhooks resolve their own)."""

    async def send(self, message: Outgoing, address: str | None, endpoint_name: str | None) -> None: ...


def http_error(status: int, who: str) -> DeliveryError:
    """Classify an HTTP answer: 408, 429 and 5xx are worth retrying; other 4xx are not."""
    retryable = status >= 500 or status in (408, 425, 429)
    return DeliveryError(f"HTTP {status} from {who}", retryable=retryable)
