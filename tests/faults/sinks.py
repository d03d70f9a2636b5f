"""The outside world notify talks to, recording every message that reaches it.

An SMTP server (aiosmtpd), the SMS gateway's documented API and the grid app's webhook receiver, all on
loopback ports. Each message is kept as a ``Receipt``: the notification id it carries (Message-ID header
``X-Gridline-Notification``, the gateway's ``message_id``, the webhook's ``X-Gridline-Delivery``) and
when it arrived, so a message sent twice can be told from two messages.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEBHOOK_PATH = "/hooks/gridline"


@dataclass(frozen=True)
class Receipt:
    """One message as it arrived at the outside world (``at``: the test process's monotonic clock)."""

    notification_id: str
    channel: str  # email | sms | webhook
    at: float


@dataclass
class RecordingSinks:
    """SMTP on ``smtp_port``; SMS gateway (``/v1/sms``) and webhook (``/hooks/gridline``) on ``http_port``."""

    smtp_port: int
    http_port: int
    receipts: list[Receipt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._smtp = Controller(_Mailbox(self._record), hostname="127.0.0.1", port=self.smtp_port)
        app = Starlette(
            routes=[
                Route("/v1/sms", self._sms, methods=["POST"]),
                Route(WEBHOOK_PATH, self._webhook, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.http_port, log_level="warning", lifespan="off"
        )
        config.timeout_graceful_shutdown = 1
        self._http = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._http.run, name="fault-sinks", daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> RecordingSinks:
        self._smtp.start()
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._http.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the recording sinks did not start on port {self.http_port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._http.should_exit = True
        self._thread.join(10)
        self._smtp.stop()

    def _record(self, notification_id: str, channel: str) -> None:
        self.receipts.append(Receipt(notification_id, channel, time.monotonic()))  # list.append: thread-safe

    async def _sms(self, request: Request) -> Response:
        message = orjson.loads(await request.body())
        self._record(message["message_id"], "sms")
        return JSONResponse({"message_id": message["message_id"], "status": "accepted"}, status_code=202)

    async def _webhook(self, request: Request) -> Response:
        self._record(request.headers["X-Gridline-Delivery"], "webhook")
        return Response(status_code=204)


class _Mailbox:
    def __init__(self, record) -> None:
        self._record = record

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        headers = BytesHeaderParser().parsebytes(envelope.content)  # compat32: cheap on shared cores
        self._record(str(headers["X-Gridline-Notification"]), "email")
        return "250 OK"
