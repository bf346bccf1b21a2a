"""A minimal, fast HTTP/1.1 server running its own event loop in a background thread.

It exists for the simulated TMAPI (:mod:`monitor.simulator.server`): it parses
the request line and headers, keeps connections alive, answers requests on
a connection in order, and only sends ``Content-Length`` responses. It does
not do chunked requests, TLS or pipelined bodies beyond ``Content-Length``.
A request is answered by calling ``handler(method, target, headers)``
(headers lower-cased) on the server thread; the handler returns a
:class:`Reply`, which may ask to be sent after a delay or dripped one byte
at a time. ``on_done`` is called once each reply has been sent (or its
connection lost), so the owner can count requests in flight.

Because the loop runs in its own thread, sync code, async tests (on their
own loop) and CLI tools can all use the server the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["Handler", "LoopbackServer", "Reply"]

_MAX_HEAD = 65536


@dataclass(frozen=True)
class Reply:
    """A response: sent at once, after ``delay`` seconds, or (``drip`` > 0) with the
    head at once and the body one byte every ``drip`` seconds."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drip: float = 0.0


Handler = Callable[[str, str, dict[str, str]], Reply]


def _head(status: int, length: int, headers: tuple[tuple[str, str], ...], close: bool) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {length}",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error(status: int) -> Reply:
    return Reply(status, b'{"code":%d,"msg":"malformed request"}' % status)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests on it are answered one after another."""

    def __init__(self, server: LoopbackServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.connections.discard(self)
        if self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._process()

    def _process(self) -> None:
        while not self._closing:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._send(_error(431), close=True)
                return
            lines = self._buffer[:end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            raw_length = headers.get("content-length", "0")
            length = int(raw_length) if raw_length.isdigit() else -1
            if length >= 0 and len(self._buffer) < end + 4 + length:
                return  # wait for the rest of the body
            del self._buffer[: end + 4 + max(length, 0)]
            if length < 0 or len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._send(_error(400), close=True)
                return
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (parts[2] == "HTTP/1.0" and connection != "keep-alive")
            reply = self._server.handler(parts[0], parts[1], headers)
            if reply.delay or reply.drip:
                self._task = asyncio.get_running_loop().create_task(self._slowly(reply, close))
                return
            self._send(reply, close=close)
            self._server.on_done()

    def _send(self, reply: Reply, *, close: bool) -> None:
        assert self._transport is not None
        head = _head(reply.status, len(reply.body), reply.headers, close)
        self._transport.write(head + reply.body)
        if close:
            self._closing = True
            self._transport.close()

    async def _slowly(self, reply: Reply, close: bool) -> None:
        transport = self._transport
        assert transport is not None
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if not reply.drip:
                if not transport.is_closing():
                    self._send(reply, close=close)
            else:
                transport.write(_head(reply.status, len(reply.body), reply.headers, close))
                for index in range(len(reply.body)):
                    if transport.is_closing():
                        return
                    transport.write(reply.body[index : index + 1])
                    await asyncio.sleep(reply.drip)
                if close:
                    self._closing = True
                    transport.close()
        finally:
            self._server.on_done()
            self._task = None
        if not self._closing:
            self._process()


class LoopbackServer:
    """Serve ``handler`` on ``host:port`` (0: any free port) from a background thread."""

    def __init__(
        self,
        handler: Handler,
        *,
        on_done: Callable[[], None] = lambda: None,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "loopback-http",
    ) -> None:
        self.handler = handler
        self.on_done = on_done
        self.host = host
        self.port = port
        self.connections: set[_Connection] = set()
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start the loop thread and listen; ``port`` then holds the real port."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024),
            loop,
        )
        try:
            self._server = future.result(timeout=10)
        except BaseException:
            self._halt()
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop listening, drop every connection, end the thread. Idempotent."""
        loop, server = self._loop, self._server
        if loop is None or loop.is_closed():
            return

        async def shutdown() -> None:
            if server is not None:
                server.close()
            for connection in list(self.connections):
                connection.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        self._halt()

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._server = None
