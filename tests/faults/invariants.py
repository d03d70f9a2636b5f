"""What must hold after any fault, checked over what the system recorded (``Observed``).

Pure functions over plain records gathered from intake's answers, every service's database, the case log
and the dead-letter topics (``tests/faults/observe.py`` gathers them). Each violation names its invariant
and its subject, so a lost or doubled case shows up as exactly that; ``test_invariants.py`` proves each
check fails when one case is dropped or doubled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

RECEIVED = "gridline.case.received.v1"
ASSIGNED = "gridline.case.assigned.v1"
TRIAGE = "gridline.case.sent-to-triage.v1"
DEADLINE_SET = "gridline.case.deadline-set.v1"
NOTIFICATION_SENT = "gridline.case.notification-sent.v1"
NOTIFICATION_FAILED = "gridline.case.notification-failed.v1"
APPROACHING = "gridline.case.deadline-approaching.v1"
BREACHED = "gridline.case.deadline-breached.v1"
ESCALATED = "gridline.case.escalated.v1"
TIMER_EVENTS = {"yellow": APPROACHING, "red": BREACHED}  # escalate-<n>: ESCALATED
ROUTING_OUTCOMES = (ASSIGNED, TRIAGE)
ASSIGNMENT_STAGES = ("sign_for", "return_window", "reply")
ALL_STAGES = (*ASSIGNMENT_STAGES, "case")

# Invariant names; the two figures the issue asks for are counted from them.
LOST = ("acknowledged-then-lost", "not-projected", "event-not-projected", "received-missing")
DOUBLED = (
    "one-order-two-cases",
    "two-orders-one-case",
    "received-twice",
    "projected-twice",
    "sent-twice",
    "timer-fired-twice",
)


class Answer(NamedTuple):
    """What intake said to one attempt (``status`` None: transport error). Times: monotonic seconds."""

    key: str
    feed: str
    sent_at: float
    answered_at: float
    status: int | None
    problem_json: bool
    case_id: str | None
    error: str | None


class Appeal(NamedTuple):
    """A case intake recorded, with the submission key it came from."""

    case_id: str
    feed: str
    key: str


class LogRecord(NamedTuple):
    """One record (copy) of an event on the case log, with the payload fields the checks need."""

    event_id: str
    case_id: str
    type: str
    partition: int
    offset: int
    assignment_id: str | None = None
    trigger_event_id: str | None = None
    notification_id: str | None = None
    timer: str | None = None  # what a card or escalation is about: "<stage>|<due_at>" or "level <n>"


class Timer(NamedTuple):
    """One of sla's durable timers."""

    case_id: str
    stage: str
    kind: str  # yellow | red | escalate-<n>
    due_at: datetime
    deadline_due_at: datetime
    fired: bool
    cancelled: bool

    @property
    def event(self) -> tuple[str, str]:
        """(event type, ``LogRecord.timer``) of the card or escalation this timer fires."""
        if self.kind in TIMER_EVENTS:
            return TIMER_EVENTS[self.kind], card_identity(self.stage, self.deadline_due_at)
        return ESCALATED, f"level {self.kind.rsplit('-', 1)[1]}"


def card_identity(stage: str, due_at: datetime) -> str:
    return f"{stage}|{due_at.astimezone(UTC).isoformat()}"


class TimelineRow(NamedTuple):
    """One event as projection recorded it, with the log position it was applied from."""

    event_id: str
    case_id: str
    type: str
    partition: int
    offset: int
    assignment_id: str | None = None
    trigger_event_id: str | None = None


class Summary(NamedTuple):
    case_id: str
    events_applied: int
    notifications_sent: int
    deadlines: dict[str, datetime]  # stage -> due_at, as projected


class Deadline(NamedTuple):
    case_id: str
    stage: str
    assignment_id: str | None
    due_at: datetime


class DeliveryRow(NamedTuple):
    id: str
    case_id: str
    trigger_event_id: str
    recipient: str
    channel: str
    status: str  # pending | sent | failed


class Receipt(NamedTuple):
    notification_id: str
    channel: str
    at: float


class DeadLetter(NamedTuple):
    topic: str
    key: str | None
    reason: str | None
    consumer: str | None
    notification_id: str | None = None


@dataclass
class Observed:
    """Everything the checker looks at, gathered after the system drained."""

    answers: list[Answer]
    appeals: list[Appeal]
    log: list[LogRecord]
    timeline: list[TimelineRow]
    summaries: list[Summary]
    deadlines: list[Deadline]
    deliveries: list[DeliveryRow]
    receipts: list[Receipt]
    dead_letters: list[DeadLetter]
    timers: list[Timer] = field(default_factory=list)


@dataclass
class Expected:
    """What the run did on purpose, which explains some of what was observed."""

    submitted: set[str]  # every submission key the clients sent
    # Deliberately malformed records put on the case log: key -> the consumer groups that must
    # dead-letter it (those that handle the type it claims; an unknown type, all of them).
    poison: dict[str, frozenset[str]]
    case_dlq_topic: str
    delivery_dlq_topic: str
    pg_outage: tuple[float, float] | None = None  # PostgreSQL certainly down: (stopped, restart began)
    # Windows in which notify may have sent a message without recording it (killed, or its database
    # down): a repeat of such a message is the documented at-least-once edge, anything else is a bug.
    sender_faults: list[tuple[float, float]] = field(default_factory=list)
    # sla's (possibly virtual) time when the system had drained: every timer due by then has fired.
    timers_due_by: datetime | None = None


class Violation(NamedTuple):
    invariant: str
    subject: str
    detail: str


@dataclass
class Report:
    violations: list[Violation]
    figures: dict[str, int]

    @property
    def lost(self) -> set[str]:
        return {v.subject for v in self.violations if v.invariant in LOST}

    @property
    def doubled(self) -> set[str]:
        return {v.subject for v in self.violations if v.invariant in DOUBLED}

    def summary(self, limit: int = 40) -> str:
        by_kind = Counter(v.invariant for v in self.violations)
        lines = [f"{len(self.violations)} violations: {dict(by_kind)}"]
        lines += [f"  {v.invariant} {v.subject}: {v.detail}" for v in self.violations[:limit]]
        return "\n".join(lines)


def check(observed: Observed, expected: Expected) -> Report:
    """Every invariant over one run; an empty ``violations`` list means nothing was lost or doubled."""
    violations: list[Violation] = []
    violations += check_answers(observed, expected)
    violations += check_cases(observed, expected)
    violations += check_deadlines(observed)
    violations += check_timers(observed, expected)
    violations += check_notifications(observed, expected)
    violations += check_dead_letters(observed, expected)
    return Report(violations, figures(observed, expected))


# --- intake's answers --------------------------------------------------------------------------------


def check_answers(observed: Observed, expected: Expected) -> Iterable[Violation]:
    """One order, one case; a 2xx is never lost; 503 (problem+json) for outages, never 500."""
    cases_of_key: dict[str, set[str]] = defaultdict(set)
    for answer in observed.answers:
        if answer.case_id is not None:
            cases_of_key[answer.key].add(answer.case_id)
        if answer.status is not None and answer.status >= 500:
            if answer.status != 503:
                yield Violation("answer-not-503", answer.key, f"{answer.status}: {answer.error}")
            elif not answer.problem_json:
                yield Violation("answer-not-problem-json", answer.key, f"503 body: {answer.error}")
    for key, cases in cases_of_key.items():
        if len(cases) > 1:
            yield Violation("one-order-two-cases", key, f"2xx answers named {sorted(cases)}")
    keys_of_case: dict[str, set[str]] = defaultdict(set)
    for key, cases in cases_of_key.items():
        for case_id in cases:
            keys_of_case[case_id].add(key)
    for case_id, keys in keys_of_case.items():
        if len(keys) > 1:
            yield Violation("two-orders-one-case", case_id, f"accepted for {sorted(keys)}")
    recorded = {(a.case_id, a.key) for a in observed.appeals}
    for key, cases in cases_of_key.items():
        for case_id in cases:
            if (case_id, key) not in recorded:
                yield Violation("acknowledged-then-lost", case_id, f"intake answered 2xx for {key}")
    for appeal in observed.appeals:
        if appeal.key not in expected.submitted:
            yield Violation("phantom-case", appeal.case_id, f"no client submitted {appeal.key!r}")
    if expected.pg_outage is not None:
        down, up = expected.pg_outage
        during = [a for a in observed.answers if a.sent_at >= down and a.answered_at <= up]
        if not during:
            yield Violation("outage-unobserved", "postgresql", "no request was answered during the outage")
        for answer in during:
            if answer.status is not None and answer.status != 503:
                yield Violation(
                    "answer-during-outage", answer.key, f"{answer.status} while PostgreSQL was down"
                )


# --- every case: once on the log, projected once, in log order ---------------------------------------


def check_cases(observed: Observed, expected: Expected) -> Iterable[Violation]:
    cases = {a.case_id for a in observed.appeals}
    copies: dict[str, list[LogRecord]] = defaultdict(list)
    for record in observed.log:
        copies[record.case_id].append(record)
    timeline: dict[str, list[TimelineRow]] = defaultdict(list)
    for row in observed.timeline:
        timeline[row.case_id].append(row)
    summaries: dict[str, list[Summary]] = defaultdict(list)
    for summary in observed.summaries:
        summaries[summary.case_id].append(summary)

    for case_id in sorted(set(copies) - cases - set(expected.poison)):
        yield Violation("unknown-case-on-log", case_id, "events for a case intake never recorded")
    for case_id in sorted(set(summaries) - cases):
        yield Violation("unknown-case-projected", case_id, "a summary for a case intake never recorded")
    for case_id in sorted(cases):
        yield from _check_case(case_id, copies[case_id], timeline[case_id], summaries[case_id])


def _check_case(
    case_id: str, copies: list[LogRecord], rows: list[TimelineRow], summaries: list[Summary]
) -> Iterable[Violation]:
    first: dict[str, LogRecord] = {}
    for record in sorted(copies, key=lambda r: r.offset):
        first.setdefault(record.event_id, record)
    received = [r for r in first.values() if r.type == RECEIVED]
    if not received:
        yield Violation("received-missing", case_id, "no CaseReceived on the log")
    elif len(received) > 1:
        yield Violation("received-twice", case_id, f"{len(received)} CaseReceived ids on the log")
    partitions = {r.partition for r in copies}
    if len(partitions) > 1:
        yield Violation("case-split", case_id, f"events on partitions {sorted(partitions)}")

    if not summaries:
        yield Violation("not-projected", case_id, "no case summary")
        return
    if len(summaries) > 1:
        yield Violation("projected-twice", case_id, f"{len(summaries)} summaries")
    projected_received = sum(r.type == RECEIVED for r in rows)
    if projected_received != 1:
        kind = "projected-twice" if projected_received > 1 else "not-projected"
        yield Violation(kind, case_id, f"{projected_received} received events in the timeline")
    ids = Counter(r.event_id for r in rows)
    for event_id in sorted(set(first) - set(ids)):
        yield Violation("event-not-projected", case_id, f"{first[event_id].type} {event_id}")
    for event_id in sorted(set(ids) - set(first)):
        yield Violation("event-not-on-log", case_id, f"projected {event_id}, which the log never held")
    for event_id, count in ids.items():
        if count > 1:
            yield Violation("projected-twice", case_id, f"event {event_id} {count} times")
    if summaries[0].events_applied != len(rows):
        yield Violation(
            "fold-count", case_id, f"events_applied {summaries[0].events_applied}, timeline {len(rows)}"
        )
    yield from _check_order(case_id, first, rows)


def _check_order(case_id: str, first: dict[str, LogRecord], rows: list[TimelineRow]) -> Iterable[Violation]:
    """Per case the log's partition order is the order: each event is applied from its first copy, the
    case starts with CaseReceived, and every event comes after the event that caused it."""
    ordered = sorted(rows, key=lambda r: (r.partition, r.offset))
    for row in ordered:
        on_log = first.get(row.event_id)
        if on_log is not None and (row.partition, row.offset) != (on_log.partition, on_log.offset):
            yield Violation(
                "out-of-order",
                case_id,
                f"{row.type} applied from {row.partition}@{row.offset}, "
                f"first on the log at {on_log.partition}@{on_log.offset}",
            )
    if ordered and ordered[0].type != RECEIVED:
        yield Violation("out-of-order", case_id, f"first projected event is {ordered[0].type}")
    position = {row.event_id: (row.partition, row.offset) for row in ordered}
    assigned_at: dict[str, tuple[int, int]] = {}
    for row in ordered:
        here = (row.partition, row.offset)
        if row.type == ASSIGNED and row.assignment_id:
            assigned_at.setdefault(row.assignment_id, here)
        if row.type == DEADLINE_SET and row.assignment_id:
            cause = assigned_at.get(row.assignment_id)
            if cause is None or cause > here:
                yield Violation(
                    "out-of-order", case_id, f"deadline for {row.assignment_id} before its assignment"
                )
        if row.type in (NOTIFICATION_SENT, NOTIFICATION_FAILED) and row.trigger_event_id:
            cause = position.get(row.trigger_event_id)
            if cause is None or cause > here:
                yield Violation(
                    "out-of-order", case_id, f"notification before its trigger {row.trigger_event_id}"
                )


# --- sla: every routed case has its deadlines ------------------------------------------------------


def check_deadlines(observed: Observed) -> Iterable[Violation]:
    """An assigned case has all four stage clocks for its current assignment, a case in triage its case
    clock, and what sla holds is what projection shows."""
    latest: dict[str, LogRecord] = {}
    for record in sorted(observed.log, key=lambda r: r.offset):
        if record.type in ROUTING_OUTCOMES:
            latest[record.case_id] = record
    clocks: dict[str, dict[str, Deadline]] = defaultdict(dict)
    for deadline in observed.deadlines:
        clocks[deadline.case_id][deadline.stage] = deadline
    projected = {s.case_id: s.deadlines for s in observed.summaries}
    for case_id, outcome in sorted(latest.items()):
        stages = ALL_STAGES if outcome.type == ASSIGNED else ("case",)
        for stage in stages:
            clock = clocks[case_id].get(stage)
            if clock is None:
                yield Violation("deadline-missing", case_id, f"no {stage} clock after {outcome.type}")
                continue
            if stage in ASSIGNMENT_STAGES and clock.assignment_id != outcome.assignment_id:
                yield Violation(
                    "deadline-stale", case_id, f"{stage} clock for {clock.assignment_id}, case is with "
                    f"{outcome.assignment_id}"
                )  # fmt: skip
            shown = projected.get(case_id, {}).get(stage)
            if shown != clock.due_at:
                yield Violation(
                    "deadline-not-projected", case_id, f"{stage}: sla {clock.due_at}, shown {shown}"
                )


def check_timers(observed: Observed, expected: Expected) -> Iterable[Violation]:
    """Every timer that fell due fired, once: its card or escalation is on the log, with one event id."""
    fired: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for record in observed.log:
        if record.timer is not None:
            fired[(record.case_id, record.type, record.timer)].add(record.event_id)
    for key, event_ids in sorted(fired.items()):
        if len(event_ids) > 1:
            yield Violation("timer-fired-twice", key[0], f"{key[1]} {key[2]}: {len(event_ids)} event ids")
    for timer in observed.timers:
        if timer.fired and (timer.case_id, *timer.event) not in fired:
            yield Violation(
                "card-missing", timer.case_id, f"{timer.kind} {timer.stage} fired, not on the log"
            )
        due = expected.timers_due_by is not None and timer.due_at <= expected.timers_due_by
        if due and not (timer.fired or timer.cancelled):
            yield Violation(
                "timer-not-fired", timer.case_id, f"{timer.kind} {timer.stage} due {timer.due_at}"
            )


# --- notify: each message queued once, sent at most once, none lost ---------------------------------


def check_notifications(observed: Observed, expected: Expected) -> Iterable[Violation]:
    by_key = Counter((d.trigger_event_id, d.recipient, d.channel) for d in observed.deliveries)
    for key, count in by_key.items():
        if count > 1:
            yield Violation("queued-twice", key[0], f"{count} deliveries for {key}")
    deliveries = {d.id: d for d in observed.deliveries}
    for delivery in observed.deliveries:
        if delivery.status == "pending":
            yield Violation("delivery-pending", delivery.case_id, f"{delivery.id} still pending after drain")
    receipts: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in observed.receipts:
        receipts[receipt.notification_id].append(receipt)
    for notification_id, arrived in receipts.items():
        if notification_id not in deliveries:
            yield Violation("unqueued-message", notification_id, "arrived, but notify queued no such message")
        if len(arrived) > 1:
            firsts = sorted(r.at for r in arrived)[:-1]
            unexplained = [t for t in firsts if not _within(t, expected.sender_faults)]
            if unexplained:
                yield Violation(
                    "sent-twice", notification_id, f"{len(arrived)} arrivals, not explained by a sender fault"
                )
    for delivery in observed.deliveries:
        if delivery.status == "sent" and delivery.id not in receipts:
            yield Violation("sent-not-arrived", delivery.case_id, f"{delivery.id} marked sent, never arrived")
    announced: dict[str, set[str]] = defaultdict(set)
    for record in observed.log:
        if record.type == NOTIFICATION_SENT and record.notification_id:
            announced[record.notification_id].add(record.event_id)
    for notification_id, event_ids in announced.items():
        if len(event_ids) > 1:
            yield Violation("sent-twice", notification_id, f"{len(event_ids)} NotificationSent events")
        if deliveries.get(notification_id, DeliveryRow("", "", "", "", "", "?")).status != "sent":
            yield Violation("sent-unrecorded", notification_id, "NotificationSent for a delivery not sent")
    sent_per_case = Counter(d.case_id for d in observed.deliveries if d.status == "sent")
    for summary in observed.summaries:
        if summary.notifications_sent != sent_per_case.get(summary.case_id, 0):
            sent = sent_per_case.get(summary.case_id, 0)
            yield Violation(
                "notifications-not-projected",
                summary.case_id,
                f"projection shows {summary.notifications_sent}, notify sent {sent}",
            )
    told = {d.trigger_event_id for d in observed.deliveries}
    assignments = {r.event_id: r for r in observed.log if r.type == ASSIGNED}
    for event_id, record in sorted(assignments.items()):
        if event_id not in told:
            yield Violation("assignee-not-told", record.case_id, f"no message for assignment {event_id}")


def _within(moment: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= moment <= end for start, end in windows)


# --- dead letters ------------------------------------------------------------------------------------


def check_dead_letters(observed: Observed, expected: Expected) -> Iterable[Violation]:
    """Each dead letter has a reason and a cause: a deliberately bad record, or a delivery that failed."""
    failed = {d.id for d in observed.deliveries if d.status == "failed"}
    seen: set[tuple[str | None, str | None]] = set()
    for letter in observed.dead_letters:
        if not letter.reason:
            yield Violation("dead-letter-without-reason", str(letter.key), letter.topic)
        if letter.topic == expected.case_dlq_topic:
            if letter.consumer not in expected.poison.get(str(letter.key), ()):
                yield Violation(
                    "dead-letter-unexplained", str(letter.key), f"{letter.reason} by {letter.consumer}"
                )
            seen.add((letter.key, letter.consumer))
        elif letter.topic == expected.delivery_dlq_topic:
            if letter.notification_id not in failed:
                yield Violation(
                    "dead-letter-unexplained", str(letter.key), f"delivery {letter.notification_id}"
                )
        else:
            yield Violation("dead-letter-unexplained", str(letter.key), f"on {letter.topic}")
    for key, consumers in sorted(expected.poison.items()):
        for consumer in sorted(consumers):
            if (key, consumer) not in seen:
                yield Violation("poison-not-dead-lettered", key, f"{consumer} has no DLQ entry for it")
    for delivery_id in sorted(failed):
        if not any(d.notification_id == delivery_id for d in observed.dead_letters):
            yield Violation("failed-not-dead-lettered", delivery_id, "failed delivery missing from its DLQ")


# --- figures -----------------------------------------------------------------------------------------


def figures(observed: Observed, expected: Expected) -> dict[str, int]:
    answers = observed.answers
    accepted = {(a.key, a.case_id) for a in answers if a.case_id is not None}
    distinct = {r.event_id for r in observed.log}
    arrivals = Counter(r.notification_id for r in observed.receipts)
    during = []
    if expected.pg_outage is not None:
        down, up = expected.pg_outage
        during = [a for a in answers if a.sent_at >= down and a.answered_at <= up]
    return {
        "submitted": len(expected.submitted),
        "accepted": len(accepted),
        "answers": len(answers),
        "transport_errors": sum(a.status is None for a in answers),
        "answers_503": sum(a.status == 503 for a in answers),
        "answers_during_pg_outage": len(during),
        "cases_recorded": len(observed.appeals),
        "events_on_log": len(distinct),
        "log_records": len(observed.log),
        "republished_copies": len(observed.log) - len(distinct),
        "timeline_rows": len(observed.timeline),
        "deadlines": len(observed.deadlines),
        "timers_fired": sum(t.fired for t in observed.timers),
        "deliveries": len(observed.deliveries),
        "deliveries_sent": sum(d.status == "sent" for d in observed.deliveries),
        "deliveries_failed": sum(d.status == "failed" for d in observed.deliveries),
        "messages_arrived": len(observed.receipts),
        "messages_arrived_again": sum(n - 1 for n in arrivals.values()),
        "dead_letters": len(observed.dead_letters),
    }
