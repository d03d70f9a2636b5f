"""SMS length rules: what one text costs in segments, and how to make it fit.

A single SMS holds 160 GSM-7 characters or 70 UCS-2 characters (any Chinese character forces UCS-2).
A concatenated SMS spends part of each segment on the UDH header, leaving 153 and 67. Characters
outside the Basic Multilingual Plane take two UCS-2 code units.
"""

from __future__ import annotations

import math

_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€")  # cost two septets each
ELLIPSIS = "…"


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM 03.38 alphabet (default or extension table)."""
    return all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in text)


def units(text: str) -> int:
    """Length in the encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    if is_gsm7(text):
        return sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def limits(text: str) -> tuple[int, int]:
    """(single-message capacity, per-segment capacity when concatenated) for this text's encoding."""
    return (160, 153) if is_gsm7(text) else (70, 67)


def segments(text: str) -> int:
    """How many SMS segments the text is billed and sent as (the 70/67 rule for Chinese)."""
    single, multi = limits(text)
    n = units(text)
    if n <= single:
        return 1
    return math.ceil(n / multi)


def split(text: str) -> list[str]:
    """The text cut into segment-sized parts (never inside a surrogate pair)."""
    single, multi = limits(text)
    if units(text) <= single:
        return [text]
    parts, current, used = [], "", 0
    for ch in text:
        cost = units(ch)
        if used + cost > multi:
            parts.append(current)
            current, used = "", 0
        current += ch
        used += cost
    if current:
        parts.append(current)
    return parts


def fit(text: str, max_segments: int) -> str:
    """The text unchanged if it fits ``max_segments``, else cut with an ellipsis so that it does."""
    if segments(text) <= max_segments:
        return text
    single, multi = limits(text + ELLIPSIS)
    budget = single if max_segments == 1 else multi * max_segments
    budget -= units(ELLIPSIS)
    kept, used = "", 0
    for ch in text:
        cost = units(ch)
        if used + cost > budget:
            break
        kept += ch
        used += cost
    return kept + ELLIPSIS
