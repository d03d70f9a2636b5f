"""Normalising what sources send: Chinese text, phone numbers, times. Pure functions.

Sources mix full-width and half-width characters (ＡＢＣ１２３, full-width spaces and punctuation typed
by IME users), wrap lines arbitrarily and write phone numbers every way (0531-8321 3030, +86 138…,
(0531)83213030). Everything that compares, dedupes or masks works on the normalised forms.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

import phonenumbers

from runtime.logging import mask_pii

# Characters NFKC would fold but that Chinese text keeps full-width: the typographic punctuation is part
# of the written language (，。：；！？（）), while full-width Latin letters, digits and spaces are IME noise.
_KEEP_FULL_WIDTH = frozenset("，。、：；！？（）《》【】「」『』“”‘’—…·～")
_WHITESPACE = re.compile(r"\s+")
# Whitespace between two CJK characters is an artefact of line wrapping, not a word break.
_CJK = r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]"
_CJK_GAP = re.compile(rf"(?<={_CJK}) (?={_CJK})")
_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f\u200b-\u200f\u2028\u2029\ufeff]")


class PhoneNumberInvalid(ValueError):
    """A phone number that is not a possible Chinese (or international) number."""


class _WidthFolding(dict):
    """``str.translate`` table: each character's NFKC form (CJK punctuation kept), worked out the first
    time the character is met. Bounded: past ``LIMIT`` characters a new one is folded but not kept."""

    LIMIT = 65_536

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = ch if ch in _KEEP_FULL_WIDTH else unicodedata.normalize("NFKC", ch)
        if len(self) < self.LIMIT:
            self[code] = folded
        return folded


_FOLDING = _WidthFolding()


def fold_width(text: str) -> str:
    """Full-width Latin letters, digits, spaces and ASCII symbols become half-width; CJK punctuation stays.

    Character by character, as NFKC folds each (a table lookup per character, not a normalisation)."""
    return text.translate(_FOLDING)


def normalise_text(text: str) -> str:
    """Fold widths, drop control and zero-width characters, collapse whitespace runs, trim."""
    folded = _CONTROL.sub("", fold_width(text))
    collapsed = _WHITESPACE.sub(" ", folded).strip()
    return _CJK_GAP.sub("", collapsed)


def normalise_optional(text: str | None) -> str | None:
    """normalise_text for optional fields; an all-blank value becomes None."""
    if text is None:
        return None
    return normalise_text(text) or None


# The common case, a Chinese mobile number (11 digits, perhaps after +86), is valid exactly when it matches
# the CN mobile pattern of phonenumbers' own metadata (a number of any valid type is valid), so that one
# test answers it: phonenumbers' general parse and validation cost a request ~20 µs.
_CN_MOBILE = re.compile(phonenumbers.PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern)
_MOBILE_SHAPE = re.compile(r"(?:\+86)?(1\d{10})")


def to_e164(raw: str, default_area_code: str = "531") -> str:
    """A Chinese phone number in E.164 (+8613805311234, +8653183213030).

    A bare 7–8 digit local number is taken to be in ``default_area_code`` (Jinan: 0531), because the
    12345 operators of one city usually drop their own area code.
    """
    digits = re.sub(r"[^\d+]", "", fold_width(raw))
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"\d{7,8}", digits):
        digits = "0" + default_area_code + digits
    mobile = _MOBILE_SHAPE.fullmatch(digits)
    if mobile and _CN_MOBILE.fullmatch(mobile[1]):
        return "+86" + mobile[1]
    return e164_by_phonenumbers(digits)


def e164_by_phonenumbers(digits: str) -> str:
    """``digits`` (a number as dialled in China, or with + and a country code) parsed and validated by
    phonenumbers, in E.164."""
    try:
        parsed = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException as exc:
        raise PhoneNumberInvalid(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneNumberInvalid("not a valid phone number for its region")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_e164(e164: str | None) -> str | None:
    """Masked form of an E.164 number as people read it: 138****1234, 0531****3030."""
    if not e164:
        return None
    national = e164[3:] if e164.startswith("+86") else e164.lstrip("+")
    if national.startswith("1") and len(national) == 11:
        return f"{national[:3]}****{national[-4:]}"
    if not e164.startswith("+86"):
        return f"+{national[:2]}{'*' * max(0, len(national) - 6)}{national[-4:]}"
    area_len = 2 if national[:2] in {"10", "20"} or national[:1] == "2" else 3
    return f"0{national[:area_len]}****{national[-4:]}"


# Numbers typed into free text: mobiles (with optional separators), landlines with an area code, and
# 18-character resident ID numbers. Separators inside a number are spaces or hyphens.
_TEXT_LANDLINE = re.compile(r"(?<!\d)(\(?0\d{2,3}\)?)[ -]?\d{3,4}[ -]?(\d{4})(?!\d)")


def mask_numbers_in_text(text: str) -> str:
    """Mask ID, mobile and landline numbers a citizen typed into free text (诉求内容): the logs' masking of
    IDs and mobiles, then landlines."""
    return _TEXT_LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", mask_pii(text))


def mask_id_number(id_number: str | None) -> str | None:
    """370114********123X: region prefix and last four of a resident ID number."""
    if not id_number:
        return None
    value = fold_width(id_number).strip().upper()
    if len(value) < 10:
        return "*" * len(value)
    return f"{value[:6]}{'*' * (len(value) - 10)}{value[-4:]}"


def to_utc(moment: datetime) -> datetime:
    """An aware timestamp in UTC (the source's offset is honoured, never assumed)."""
    if moment.tzinfo is None:
        raise ValueError("timestamp without time zone")
    return moment.astimezone(UTC)
