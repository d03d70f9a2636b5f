"""The fault suite's checker bites: a healthy record passes, and each way of losing or doubling one case
(or one message) is reported as exactly that. Pure: no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.faults.invariants import (
    APPROACHING,
    ASSIGNED,
    DEADLINE_SET,
    NOTIFICATION_SENT,
    RECEIVED,
    TRIAGE,
    Answer,
    Appeal,
    DeadLetter,
    Deadline,
    DeliveryRow,
    Expected,
    LogRecord,
    Observed,
    Receipt,
    Summary,
    TimelineRow,
    Timer,
    card_identity,
    check,
)

DUE = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
OUTAGE = (100.0, 130.0)
NOTIFY_KILLED = (200.0, 216.0)


def assigned_case(case_id: str, key: str, partition: int) -> tuple[list[LogRecord], list[Deadline], str]:
    """A routed case's log: received, assigned, four deadlines, one notification; and sla's clocks."""
    assignment, e = f"as-{case_id}", f"{case_id}-e"
    log = [
        LogRecord(f"{e}1", case_id, RECEIVED, partition, 0),
        LogRecord(f"{e}2", case_id, ASSIGNED, partition, 3, assignment_id=assignment),
        *(
            LogRecord(f"{e}{3 + i}", case_id, DEADLINE_SET, partition, 5 + i, assignment_id=assignment)
            for i, _ in enumerate(("sign_for", "return_window", "reply"))
        ),
        LogRecord(f"{e}6", case_id, DEADLINE_SET, partition, 8),
        LogRecord(f"{e}7", case_id, NOTIFICATION_SENT, partition, 10, trigger_event_id=f"{e}2",
                  notification_id=f"n-{case_id}"),
        LogRecord(f"{e}8", case_id, APPROACHING, partition, 12, timer=card_identity("sign_for", DUE)),
    ]  # fmt: skip
    clocks = [Deadline(case_id, stage, assignment, DUE) for stage in ("sign_for", "return_window", "reply")]
    return log, [*clocks, Deadline(case_id, "case", None, DUE + timedelta(days=2))], key


def timeline_of(log: list[LogRecord]) -> list[TimelineRow]:
    return [
        TimelineRow(r.event_id, r.case_id, r.type, r.partition, r.offset, r.assignment_id, r.trigger_event_id)
        for r in log
    ]


def healthy() -> tuple[Observed, Expected]:
    """Two cases through a PostgreSQL outage: one assigned and notified, one sent to triage; one poison
    record dead-lettered by both consumers; one message repeated because notify was killed mid-send."""
    log_a, clocks_a, _ = assigned_case("ZQ1", "K1", 0)
    log_b = [
        LogRecord("ZQ2-e1", "ZQ2", RECEIVED, 1, 0),
        LogRecord("ZQ2-e2", "ZQ2", TRIAGE, 1, 1),
        LogRecord("ZQ2-e3", "ZQ2", DEADLINE_SET, 1, 2),
    ]
    republished = log_a[0]._replace(offset=1)  # the relay published CaseReceived twice: same event id
    poison = LogRecord("poison-P1", "P1", RECEIVED, 2, 0)
    observed = Observed(
        answers=[
            Answer("K1", "hotline", 105.0, 106.0, 503, True, None, "database down"),
            Answer("K1", "hotline", 131.0, 131.2, 201, False, "ZQ1", None),
            Answer("K2", "hotline", 140.0, 150.0, None, False, None, "ReadTimeout"),
            Answer("K2", "hotline", 151.0, 151.1, 200, False, "ZQ2", None),
        ],
        appeals=[Appeal("ZQ1", "hotline", "K1"), Appeal("ZQ2", "hotline", "K2")],
        log=[*log_a, republished, *log_b, poison],
        timeline=timeline_of(log_a + log_b),
        summaries=[
            Summary("ZQ1", 8, 1, {c.stage: c.due_at for c in clocks_a}),
            Summary("ZQ2", 3, 0, {"case": DUE}),
        ],
        deadlines=[*clocks_a, Deadline("ZQ2", "case", None, DUE)],
        deliveries=[DeliveryRow("n-ZQ1", "ZQ1", "ZQ1-e2", "department:CGJ", "email", "sent")],
        receipts=[Receipt("n-ZQ1", "email", 210.0), Receipt("n-ZQ1", "email", 275.0)],
        dead_letters=[
            DeadLetter("cases.dlq", "P1", "bad-json", "g1"),
            DeadLetter("cases.dlq", "P1", "bad-json", "g2"),
        ],
        timers=[
            Timer("ZQ1", "sign_for", "yellow", DUE - timedelta(hours=1), DUE, True, False),
            Timer("ZQ1", "sign_for", "red", DUE, DUE, False, False),
        ],
    )
    expected = Expected(
        submitted={"K1", "K2"},
        poison={"P1": frozenset({"g1", "g2"})},
        case_dlq_topic="cases.dlq",
        delivery_dlq_topic="deliveries.dlq",
        pg_outage=OUTAGE,
        sender_faults=[NOTIFY_KILLED],
        timers_due_by=DUE - timedelta(minutes=1),
    )
    return observed, expected


def test_a_healthy_run_passes_every_invariant():
    report = check(*healthy())
    assert report.violations == []
    assert (report.lost, report.doubled) == (set(), set())
    assert report.figures["republished_copies"] == 1 and report.figures["messages_arrived_again"] == 1


def without(records: list, case_id: str) -> list:
    return [r for r in records if r.case_id != case_id]


def test_one_case_missing_from_the_projection_is_reported_lost():
    observed, expected = healthy()
    observed.summaries = without(observed.summaries, "ZQ2")
    observed.timeline = without(observed.timeline, "ZQ2")
    assert check(observed, expected).lost == {"ZQ2"}


def test_an_acknowledged_case_intake_no_longer_holds_is_reported_lost():
    observed, expected = healthy()
    observed.appeals = without(observed.appeals, "ZQ2")
    report = check(observed, expected)
    assert "ZQ2" in report.lost
    assert {v.invariant for v in report.violations} >= {"acknowledged-then-lost", "unknown-case-on-log"}


def test_one_event_missing_from_a_projected_case_is_reported_lost():
    observed, expected = healthy()
    observed.timeline = [r for r in observed.timeline if r.event_id != "ZQ1-e6"]
    report = check(observed, expected)
    assert report.lost == {"ZQ1"}
    assert {v.invariant for v in report.violations} >= {"event-not-projected", "fold-count"}


def test_a_second_case_received_for_one_case_is_reported_doubled():
    observed, expected = healthy()
    observed.log.append(LogRecord("ZQ2-again", "ZQ2", RECEIVED, 1, 7))
    observed.timeline.append(TimelineRow("ZQ2-again", "ZQ2", RECEIVED, 1, 7))
    report = check(observed, expected)
    assert report.doubled == {"ZQ2"}
    assert {v.invariant for v in report.violations} >= {"received-twice", "projected-twice"}


def test_one_order_answered_with_two_case_numbers_is_reported_doubled():
    observed, expected = healthy()
    observed.answers.append(Answer("K1", "hotline", 160.0, 160.1, 201, False, "ZQ9", None))
    assert "K1" in check(observed, expected).doubled


def test_one_case_counted_twice_by_the_fold_is_reported():
    observed, expected = healthy()
    observed.summaries[1] = observed.summaries[1]._replace(events_applied=4)
    assert [v.invariant for v in check(observed, expected).violations] == ["fold-count"]


def test_events_applied_against_the_log_order_are_reported():
    observed, expected = healthy()
    swapped = {"ZQ1-e2": 9, "ZQ1-e3": 3}  # the deadline now precedes the assignment that caused it
    observed.timeline = [r._replace(offset=swapped.get(r.event_id, r.offset)) for r in observed.timeline]
    report = check(observed, expected)
    assert {v.invariant for v in report.violations} == {"out-of-order"}
    assert {v.subject for v in report.violations} == {"ZQ1"}


def test_an_assigned_case_without_its_deadlines_is_reported():
    observed, expected = healthy()
    observed.deadlines = [d for d in observed.deadlines if (d.case_id, d.stage) != ("ZQ1", "reply")]
    assert [(v.invariant, v.subject) for v in check(observed, expected).violations] == [
        ("deadline-missing", "ZQ1")
    ]


def test_a_message_queued_twice_is_reported():
    observed, expected = healthy()
    observed.deliveries.append(observed.deliveries[0]._replace(id="n-other", status="pending"))
    invariants = {v.invariant for v in check(observed, expected).violations}
    assert invariants >= {"queued-twice", "delivery-pending"}


def test_a_message_arriving_twice_without_a_sender_fault_is_reported_sent_twice():
    observed, expected = healthy()
    observed.receipts = [Receipt("n-ZQ1", "email", 300.0), Receipt("n-ZQ1", "email", 301.0)]
    report = check(observed, expected)
    assert report.doubled == {"n-ZQ1"}


def test_a_message_marked_sent_that_never_arrived_is_reported():
    observed, expected = healthy()
    observed.receipts = []
    assert [v.invariant for v in check(observed, expected).violations] == ["sent-not-arrived"]


@pytest.mark.parametrize(
    ("letter", "invariant"),
    [
        (DeadLetter("cases.dlq", "ZQ1", "handler-error", "g1"), "dead-letter-unexplained"),
        (DeadLetter("cases.dlq", "P1", "bad-json", "g3"), "dead-letter-unexplained"),
        (DeadLetter("cases.dlq", "P1", None, "g1"), "dead-letter-without-reason"),
        (DeadLetter("other.dlq", "ZQ1", "bad-json", "g1"), "dead-letter-unexplained"),
        (
            DeadLetter("deliveries.dlq", "ZQ1", "notification-failed", None, "n-ZQ1"),
            "dead-letter-unexplained",
        ),
    ],
)
def test_a_dead_letter_without_a_reason_or_a_deliberate_cause_is_reported(letter, invariant):
    observed, expected = healthy()
    observed.dead_letters.append(letter)
    assert invariant in {v.invariant for v in check(observed, expected).violations}


def test_a_poison_record_some_consumer_did_not_dead_letter_is_reported():
    observed, expected = healthy()
    observed.dead_letters.pop()
    assert [(v.invariant, v.subject) for v in check(observed, expected).violations] == [
        ("poison-not-dead-lettered", "P1")
    ]


@pytest.mark.parametrize(
    ("answer", "invariant"),
    [
        (Answer("K1", "hotline", 110.0, 110.5, 201, False, "ZQ1", None), "answer-during-outage"),
        (Answer("K1", "hotline", 110.0, 110.5, 500, False, None, "Internal Server Error"), "answer-not-503"),
        (Answer("K1", "hotline", 110.0, 110.5, 503, False, None, "<html>"), "answer-not-problem-json"),
    ],
)
def test_intake_must_answer_503_problem_json_while_postgresql_is_down(answer, invariant):
    observed, expected = healthy()
    observed.answers.append(answer)
    assert invariant in {v.invariant for v in check(observed, expected).violations}


def test_an_outage_no_request_saw_cannot_pass_for_one_intake_survived():
    observed, expected = healthy()
    observed.answers = [a for a in observed.answers if not OUTAGE[0] <= a.sent_at <= OUTAGE[1]]
    assert "outage-unobserved" in {v.invariant for v in check(observed, expected).violations}


def test_a_timer_that_fell_due_and_never_fired_is_reported():
    observed, expected = healthy()
    expected.timers_due_by = DUE + timedelta(minutes=1)
    assert [(v.invariant, v.subject) for v in check(observed, expected).violations] == [
        ("timer-not-fired", "ZQ1")
    ]


def test_a_fired_timer_whose_card_never_reached_the_log_is_reported():
    observed, expected = healthy()
    observed.log = [r for r in observed.log if r.type != APPROACHING]
    assert "card-missing" in {v.invariant for v in check(observed, expected).violations}


def test_a_card_fired_twice_is_reported_doubled():
    observed, expected = healthy()
    card = next(r for r in observed.log if r.type == APPROACHING)._replace(event_id="ZQ1-again", offset=13)
    observed.log.append(card)
    observed.timeline.append(TimelineRow(card.event_id, "ZQ1", APPROACHING, 0, 13))
    observed.summaries[0] = observed.summaries[0]._replace(events_applied=9)
    report = check(observed, expected)
    assert [v.invariant for v in report.violations] == ["timer-fired-twice"]
    assert report.doubled == {"ZQ1"}
