"""Read-your-writes position tokens: a writer names the event it just recorded, a reader waits for it.

Format ``p1.<case id>.<event id>``, each part base64url without padding (so ids may hold any character).
The outbox relay publishes after the write commits, so no Kafka offset exists yet when a write answers;
the event id is known, and a projection has caught up to the token once that event is in its inbox.
"""

from __future__ import annotations

import base64

VERSION = "p1"
HEADER = "X-Gridline-Position"


def encode_position(case_id: str, event_id: str) -> str:
    """The token naming ``event_id`` of ``case_id``."""
    return ".".join((VERSION, _b64(case_id), _b64(event_id)))


def decode_position(token: str) -> tuple[str, str]:
    """(case id, event id) of a token; ValueError if it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise ValueError(f"not a {VERSION} position token")
    try:
        case_id, event_id = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode() for p in parts[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("position token is not base64url") from exc
    if not case_id or not event_id:
        raise ValueError("position token names no event")
    return case_id, event_id


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
