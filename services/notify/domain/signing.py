"""HMAC-SHA256 signatures of webhook deliveries (how receivers verify them: docs/notify.md).

The signed string is ``<timestamp>.<raw body bytes>``; the timestamp (Unix seconds) travels in
``X-Gridline-Timestamp`` so a receiver can refuse replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Gridline-Signature"
TIMESTAMP_HEADER = "X-Gridline-Timestamp"
DELIVERY_HEADER = "X-Gridline-Delivery"
EVENT_HEADER = "X-Gridline-Event"
SCHEME = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Header value ``sha256=<hex>`` for one delivery."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify(
    secret: str, timestamp: int, body: bytes, presented: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """True when ``presented`` signs this body and timestamp and the timestamp is fresh."""
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), presented)
