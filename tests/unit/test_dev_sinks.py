"""The local SMTP sink reads notify's mails as notify writes them (subject and text, in Chinese)."""

from __future__ import annotations

from dataclasses import replace

from devtools.sinks import mail_summary
from services.notify.channels.email import SmtpSender
from tests.unit.notify.test_channels import MESSAGE


def test_the_mail_sink_reads_the_subject_and_text_notify_wrote():
    sender = SmtpSender(host="127.0.0.1", port=25, sender="章丘 <gridline@zhangqiu.example>", timeout_s=5)
    title = "【章丘12345】新派单：路灯不亮 " + "很长的标题" * 12  # folded over several encoded words
    message = replace(MESSAGE, title=title, body="您好，\n请于今日签收。")
    mail = sender.compose(message, "cgj@zhangqiu.example")
    assert b"\xe8" not in mail  # encoded on the wire: the sink has to decode it
    assert mail_summary(mail) == (message.title, message.body)
