from __future__ import annotations

import uuid

import pytest

from services.sla.context import _IDS, event_id


@pytest.mark.parametrize("name", ["BP2025000001|reply|red|1", "BP2025000001|ladder|escalate-2|0", "案件|x"])
def test_an_event_id_is_the_uuid5_of_its_identity(name):
    assert event_id(name) == str(uuid.uuid5(_IDS, name))
