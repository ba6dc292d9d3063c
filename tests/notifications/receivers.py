"""Real local receivers for notifications: an HTTP server that checks Standard Webhooks
signatures with the `standardwebhooks` library's own verifier, and an SMTP server
(aiosmtpd). Both listen on 127.0.0.1 on a free port."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    # What the standardwebhooks verifier made of it: the payload, or the error it raised.
    payload: object = None
    verification_error: str = ""

    @property
    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers with `statuses` in turn (then 200), after `delay` seconds each time."""

    secret: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                item = Received(headers, body)
                if receiver.secret:
                    try:
                        item.payload = Webhook(receiver.secret).verify(body, headers)
                    except WebhookVerificationError as exc:
                        item.verification_error = str(exc) or type(exc).__name__
                receiver.received.append(item)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/mssp"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 Message accepted for delivery"


class SmtpReceiver:
    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        # aiosmtpd checks its server by connecting to the port it was given: not 0.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=free)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages

    def stop(self) -> None:
        self.controller.stop()


def parts(message: EmailMessage) -> Iterator[tuple[str, str]]:
    for part in message.walk():
        if part.get_content_maintype() == "text":
            yield part.get_content_type(), part.get_content()
