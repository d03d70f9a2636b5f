"""E-mail over SMTP (aiosmtplib): UTF-8 plain text, Message-ID derived from the notification id so that
mail systems and readers can spot a repeat."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from services.notify.channels import DeliveryError, Outgoing


class SmtpSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        timeout_s: float,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._host, self._port, self._sender, self._timeout = host, port, sender, timeout_s
        self._starttls, self._username, self._password = starttls, username, password

    def compose(self, message: Outgoing, address: str) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = address
        mail["Subject"] = message.title
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = make_msgid(idstring=message.notification_id, domain="gridline.notify")
        mail["X-Gridline-Case"] = message.case_id
        mail["X-Gridline-Notification"] = message.notification_id
        mail.set_content(message.body, charset="utf-8")
        return mail

    async def send(self, message: Outgoing, address: str | None, endpoint_name: str | None) -> None:
        if not address:
            raise DeliveryError("no e-mail address for recipient", retryable=False, endpoint_fault=False)
        try:
            await aiosmtplib.send(
                self.compose(message, address),
                hostname=self._host,
                port=self._port,
                timeout=self._timeout,
                start_tls=self._starttls,
                username=self._username,
                password=self._password,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            raise DeliveryError(
                f"SMTP refused recipient ({codes})", retryable=all(c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", retryable=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from None
