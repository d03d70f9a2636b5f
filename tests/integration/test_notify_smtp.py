"""Notify's SMTP sender against a real SMTP server (aiosmtpd): connections are kept and reused, a kept
connection the server closed is replaced without failing the message, a failed one is never reused, and
concurrent mails share a bounded number of connections."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller

from services.notify.channels import DeliveryError, Outgoing
from services.notify.channels.email import SmtpSender
from tests.conftest import PORT_BASE

SMTP_PORT = PORT_BASE + 613


class Mailbox:
    """Keeps every message; refuses recipients at ``refused.example``."""

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.sessions: set[int] = set()
        self.envelopes: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.endswith("@refused.example"):
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.subjects.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)["Subject"]
        )
        self.sessions.add(id(session))
        self.envelopes.append(envelope)
        return "250 OK"


class Server:
    """The SMTP server on its port; ``restart`` drops every session, as a server restart would."""

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.controller = self._start()

    def _start(self) -> Controller:
        controller = Controller(
            self.box, hostname="127.0.0.1", port=SMTP_PORT, server_hostname="smtp.it.local"
        )
        controller.start()
        return controller

    def restart(self) -> None:
        self.controller.stop()
        self.controller = self._start()


@pytest.fixture
def mailbox():
    box = Mailbox()
    server = Server(box)
    try:
        yield box, server
    finally:
        server.controller.stop()


def outgoing(n: int) -> Outgoing:
    return Outgoing(
        notification_id=f"n-{n}", case_id="C-1", trigger_event_id=f"e-{n}", trigger_type="assigned",
        recipient="department:CGJ", template="assignment_new", title=f"工单{n}", body="正文",
        created_at=datetime.now(UTC),
    )  # fmt: skip


def sender() -> SmtpSender:
    return SmtpSender(host="127.0.0.1", port=SMTP_PORT, sender="gridline@zhangqiu.example", timeout_s=5)


async def test_messages_in_a_row_share_one_connection_and_concurrent_ones_are_all_delivered(mailbox):
    box, _ = mailbox
    smtp = sender()
    for n in range(3):
        await smtp.send(outgoing(n), "cgj@zhangqiu.example", None)
    assert smtp.connections_opened == 1
    assert len(box.sessions) == 1
    await asyncio.gather(*(smtp.send(outgoing(n), "cgj@zhangqiu.example", None) for n in range(3, 9)))
    assert sorted(box.subjects) == sorted(f"工单{n}" for n in range(9))


async def test_the_mail_as_received_reads_back_in_chinese_with_its_envelope_and_ids(mailbox):
    box, _ = mailbox
    smtp = SmtpSender(
        host="127.0.0.1", port=SMTP_PORT, sender="章丘区12345热线 <noreply@zhangqiu.example>", timeout_s=5
    )
    title = "【章丘区12345】工单 GL-20261128-000123 已派发至区住房和城乡建设局，请于 2 个工作日内签收" * 2
    body = "市民反映明水街道某小区楼道灯损坏。\n.以点开头的一行\n工单编号 GL-20261128-000123"
    message = dataclasses.replace(outgoing(7), title=title, body=body, case_id="GL-20261128-000123")
    await smtp.send(message, "cgj@zhangqiu.example", None)
    [envelope] = box.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("noreply@zhangqiu.example", ["cgj@zhangqiu.example"])
    assert envelope.content.isascii()  # 7-bit on the wire: encoded words and base64
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mail["From"].addresses[0].display_name == "章丘区12345热线"
    assert mail["From"].addresses[0].addr_spec == "noreply@zhangqiu.example"
    assert (mail["To"], mail["Subject"]) == ("cgj@zhangqiu.example", title)
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail.get_content() == body
    assert "n-7@gridline.notify" in mail["Message-ID"]
    assert (mail["X-Gridline-Case"], mail["X-Gridline-Notification"]) == ("GL-20261128-000123", "n-7")
    assert mail["Date"].datetime == message.created_at.replace(microsecond=0)


async def test_a_kept_connection_the_server_closed_is_replaced_without_failing_the_message(mailbox):
    box, server = mailbox
    smtp = sender()
    await smtp.send(outgoing(1), "cgj@zhangqiu.example", None)
    server.restart()  # closes every session; the sender still holds its connection
    await smtp.send(outgoing(2), "cgj@zhangqiu.example", None)
    assert box.subjects == ["工单1", "工单2"]
    assert smtp.connections_opened == 2


async def test_a_refused_recipient_fails_the_message_and_its_connection_is_not_kept(mailbox):
    box, _ = mailbox
    smtp = sender()
    await smtp.send(outgoing(1), "cgj@zhangqiu.example", None)
    with pytest.raises(DeliveryError) as refused:
        await smtp.send(outgoing(2), "nobody@refused.example", None)
    assert not refused.value.retryable
    await smtp.send(outgoing(3), "cgj@zhangqiu.example", None)
    assert box.subjects == ["工单1", "工单3"]
    assert smtp.connections_opened == 2


async def test_concurrent_mails_wait_for_a_pooled_connection_instead_of_opening_more(mailbox):
    box, _ = mailbox
    smtp = SmtpSender(
        host="127.0.0.1", port=SMTP_PORT, sender="gridline@zhangqiu.example", timeout_s=5, pool_size=2
    )
    await asyncio.gather(*(smtp.send(outgoing(n), "cgj@zhangqiu.example", None) for n in range(20)))
    assert sorted(box.subjects) == sorted(f"工单{n}" for n in range(20))
    assert smtp.connections_opened == 2
    assert len(box.sessions) == 2
