"""Real notification receivers on 127.0.0.1 for delivery tests.

``WebhookReceiver``
    An HTTP server recording every POST (path, headers, JSON body). Answers
    200 unless told otherwise, per path: :meth:`WebhookReceiver.script` queues
    answers for the next requests (two 500s, a 429 with ``Retry-After``),
    :meth:`WebhookReceiver.always` sets the answer after the queue runs out.
    ``json_url()`` gives an apprise ``json://`` URL pointing at it.

``SmtpReceiver``
    An aiosmtpd SMTP server (plain SMTP, AUTH accepted without TLS) recording
    every message, on a fixed port so it can be stopped and started again
    while the apprise ``mailto://`` URL stays the same.

Both are context managers and run in background threads; nothing sleeps.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One POST the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """A scripted HTTP answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class WebhookReceiver:
    """See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, deque[Answer]] = {}
        self._always: dict[str, Answer] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = receiver._record(
                    Received(self.path, {k: v for k, v in self.headers.items()}, body)
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        # A short poll interval only makes shutdown() return quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def _record(self, received: Received) -> Answer:
        path = received.path.partition("?")[0]
        with self._lock:
            self._received.append(received)
            queue = self._scripts.get(path)
            if queue:
                return queue.popleft()
            return self._always.get(path, Answer())

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to ``path`` with ``answers``, in order."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(answers)

    def always(self, path: str, answer: Answer) -> None:
        """Answer requests to ``path`` with ``answer`` once its script is used up."""
        with self._lock:
            self._always[path] = answer

    def received(self, path: str | None = None) -> list[Received]:
        """POSTs so far, all or those to ``path``."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def json_url(self, path: str = "/hook", *, user: str = "", password: str = "") -> str:
        """An apprise ``json://`` URL posting to ``path`` on this receiver."""
        auth = ""
        if user or password:
            auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        return f"json://{auth}{HOST}:{self.port}{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class _Mailbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login = getattr(data, "login", b"") or b""
        password = getattr(data, "password", b"") or b""
        with self.lock:
            self.logins.append((login.decode(), password.decode()))
        return AuthResult(success=True, auth_data=data)


class SmtpReceiver:
    """See the module docstring."""

    def __init__(self) -> None:
        self.port = free_port()
        self._mailbox = _Mailbox()
        self._controller: Controller | None = None
        # aiosmtpd warns about its own deprecated attribute on every AUTH.
        logging.getLogger("mail.log").setLevel(logging.ERROR)

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = Controller(
            self._mailbox,
            hostname=HOST,
            port=self.port,
            server_hostname="localhost",
            authenticator=self._mailbox.authenticate,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self._mailbox.lock:
            return list(self._mailbox.messages)

    @property
    def logins(self) -> list[tuple[str, str]]:
        with self._mailbox.lock:
            return list(self._mailbox.logins)

    def mailto_url(
        self,
        *,
        user: str = "monitor",
        password: str = "smtp-pass-4711",
        sender: str = "monitor@example.com",
        to: str = "buyer@example.com",
    ) -> str:
        """An apprise ``mailto://`` URL for plain SMTP (no TLS) on this server."""
        return (
            f"mailto://{quote(user, safe='')}:{quote(password, safe='')}@{HOST}:{self.port}"
            f"?from={sender}&to={to}&mode=insecure"
        )

    def __enter__(self) -> SmtpReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
