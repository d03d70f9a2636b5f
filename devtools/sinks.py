"""Local stand-ins for the outside world notify talks to, so `make run` delivers every message somewhere:
an SMTP server (aiosmtpd), the grid app's webhook receiver and an SMS gateway speaking notify's
documented API (docs/notify.md). Each message is printed on one line, phone numbers masked.

Development only: nothing here authenticates strongly or stores anything.
"""

from __future__ import annotations

import asyncio
import email
import email.header
import os

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request

from runtime.logging import mask_pii

SMTP_PORT, WEBHOOK_PORT, SMS_PORT = 2525, 9310, 9320


def _say(channel: str, text: str) -> None:
    print(f"[{channel}] {mask_pii(text)}", flush=True)


def mail_summary(content: bytes) -> tuple[str, str]:
    """A mail's subject and plain text. The compat32 parser: policy.default's header objects made a
    notify mail cost 1.8 ms to read here, 0.14 ms this way (the sink shares the bench's cores)."""
    message = email.message_from_bytes(content)
    subject = str(email.header.make_header(email.header.decode_header(message.get("Subject", ""))))
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            return subject, payload.decode(part.get_content_charset() or "utf-8", "replace")
    return subject, ""


class _MailSink:
    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        subject, text = mail_summary(envelope.content)
        text = text.strip().replace("\n", " ")
        _say("email", f"to {','.join(envelope.rcpt_tos)}: {subject} — {text[:160]}")
        return "250 OK"


def webhook_app() -> FastAPI:
    app = FastAPI(title="grid app webhook sink")

    @app.post("/hooks/gridline")
    async def hook(request: Request) -> dict:
        body = await request.json()
        _say("webhook", f"grid app: {str(body)[:200]}")
        return {"ok": True}

    return app


def sms_app() -> FastAPI:
    app = FastAPI(title="SMS gateway sink")

    @app.post("/v1/sms", status_code=202)
    async def sms(request: Request) -> dict:
        body = await request.json()
        _say("sms", f"to {body.get('to')}: {body.get('text')}")
        return {"message_id": body.get("message_id"), "status": "accepted"}

    return app


async def _serve() -> None:
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        for app, port in ((webhook_app(), WEBHOOK_PORT), (sms_app(), SMS_PORT))
    ]
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    smtp = Controller(
        _MailSink(), hostname="127.0.0.1", port=int(os.environ.get("GRIDLINE_SINK_SMTP_PORT", SMTP_PORT))
    )
    smtp.start()
    print(f"sinks: SMTP 127.0.0.1:{smtp.port}, webhook :{WEBHOOK_PORT}, SMS gateway :{SMS_PORT}", flush=True)
    try:
        asyncio.run(_serve())
    finally:
        smtp.stop()


if __name__ == "__main__":
    main()
