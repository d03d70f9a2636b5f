"""Position tokens and page cursors: round trips, and refusal of anything not issued by us."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime.position import decode_position, encode_position
from runtime.problems import Problem
from services.projection.queries import decode_cursor, encode_cursor


def test_a_position_token_names_the_case_and_event_it_was_made_from():
    token = encode_position("ZQ20261126000001", "0b5c1d5e-1c1f-4f57-9d3a-2f1f6f0e7a11")
    assert token.startswith("p1.") and "=" not in token
    assert decode_position(token) == ("ZQ20261126000001", "0b5c1d5e-1c1f-4f57-9d3a-2f1f6f0e7a11")


@pytest.mark.parametrize("token", ["", "p1", "p2.YQ.Yg", "p1.YQ", "p1..Yg", "p1.%%%.Yg"])
def test_anything_else_is_not_a_position_token(token):
    with pytest.raises(ValueError):
        decode_position(token)


def test_a_cursor_resumes_after_the_row_it_was_made_from_and_only_for_its_sort():
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    cursor = encode_cursor("-opened_at", at, "ZQ1")
    assert decode_cursor(cursor, "-opened_at") == (at, "ZQ1")
    with pytest.raises(Problem) as refused:
        decode_cursor(cursor, "last_event_at")
    assert refused.value.status == 400
