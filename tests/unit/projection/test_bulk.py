"""The rebuild's first pass recognises a record met before by its event id, held compactly in memory."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.projection.bulk import event_key


def test_a_canonical_uuid_is_held_as_its_number_and_anything_else_as_itself():
    canonical = str(uuid.uuid4())
    assert event_key(canonical) == uuid.UUID(canonical).int
    for other in (
        canonical.upper(),  # a different id than its lowercase form
        canonical.replace("-", ""),
        "1_" + canonical[2:],  # int() would read the underscore as a separator
        "g" + canonical[1:],
        "hotline:370114:42",
    ):
        assert event_key(other) == other


@given(st.lists(st.uuids(), max_size=10), st.lists(st.text(), max_size=10))
def test_two_different_ids_never_share_a_key(uuids, texts):
    ids = {*texts, *(str(u) for u in uuids), *(str(u).upper() for u in uuids)}
    assert len({event_key(i) for i in ids}) == len(ids)
