"""The rebuild's first pass recognises a record met before by its event id, held compactly in memory."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from runtime.db import json_text
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


@given(
    lat=st.floats(min_value=36.43, max_value=37.07),
    lon=st.floats(min_value=117.17, max_value=117.74),
    text=st.text(max_size=40),
)
def test_a_timeline_record_carries_the_event_as_the_engines_json_encoder_wrote_it(lat, lon, text):
    """The timeline's data is pydantic's JSON text of the event (live path and rebuild alike): the same
    text the engine's encoder wrote from ``model_dump`` before, so stored rows do not change shape."""
    from contracts.events import Location
    from runtime.consumer import Delivery
    from services.projection.projector import TIMELINE_COLUMNS, timeline_record
    from tests import factories as f

    case = f.case_id()
    events = [
        f.case_received(case, location=Location(lat=lat, lon=lon), description=text or "路灯不亮"),
        f.case_assigned(case, "CGJ", area_code="370114001002", grid_code="G-01"),
        f.deadline_set(case, f._at(None)),
        f.case_escalated(case, 2),
    ]
    for offset, event in enumerate(events):
        delivery = Delivery(decode(f.message(event, "t")), "t", 1, offset)
        envelope = delivery.envelope
        record = dict(zip(TIMELINE_COLUMNS, timeline_record(delivery), strict=True))
        # the same text (PostgreSQL keeps a JSON number's digits as written: 5.0 and 5 differ)
        assert record.pop("data") == json_text(envelope.event.model_dump(mode="json"))
        assert record == {
            "event_id": envelope.id,
            "case_id": case,
            "event_type": envelope.type,
            "occurred_at": envelope.event.occurred_at,
            "actor": envelope.event.actor,
            "source": envelope.source,
            "log_partition": 1,
            "log_offset": offset,
        }


def decode(message):
    from contracts.envelope import decode_message

    return decode_message(message.key.encode(), message.headers, message.value)
