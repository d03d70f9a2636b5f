from __future__ import annotations

from services.projection.domain import apply
from tests import factories


def test_a_case_is_the_fold_of_its_events():
    received = factories.case_received()
    closed = factories.case_closed(received.case_id)
    state = apply(apply(None, received, received.occurred_at), closed, closed.occurred_at)
    assert state["status"] == "closed"
    assert state["events_applied"] == 2
    assert state["description"] == received.description
    assert state["close_reason"] == "citizen_satisfied"


def test_an_event_for_an_unknown_case_starts_a_placeholder():
    closed = factories.case_closed("UNSEEN-1")
    state = apply(None, closed, closed.occurred_at)
    assert state["case_id"] == "UNSEEN-1" and state["status"] == "closed"


def test_a_late_received_event_does_not_reopen_a_closed_case():
    received = factories.case_received()
    closed = factories.case_closed(received.case_id)
    state = apply(apply(None, closed, closed.occurred_at), received, received.occurred_at)
    assert state["status"] == "closed"
    assert state["last_event_at"] == max(closed.occurred_at, received.occurred_at)
