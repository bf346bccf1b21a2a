"""``/healthz`` and ``/metrics`` over HTTP, for ``monitor run --metrics-port``.

:class:`Health` answers one question: is this process doing its job? It is
healthy while

* a claim round (the scheduler's "claim due items and start polling them")
  succeeded within the last ``stall_after`` seconds: a stuck event loop, a
  dead scheduler or a database that refuses every claim all stop the rounds;
* the last database probe answered, and it is not older than ``stall_after``.

:func:`probe_database` is the probe: a background task that counts the
outbox by state every few seconds (which also feeds the
``monitor_notifications`` gauge). The HTTP handler only reads the recorded
state, so a health check never waits for the database and never blocks.

:class:`MetricsServer` serves, from a daemon thread:

* ``GET /healthz``: 200 or 503 with a small JSON body saying why;
* ``GET /metrics``: the Prometheus text format (see :mod:`monitor.daemon.metrics`);
* anything else: 404.

It binds 127.0.0.1 unless told otherwise. Nothing it returns carries a URL
or a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from monitor.daemon.metrics import Metrics
from monitor.db.outbox import OutboxState
from monitor.db.outbox_list import count_by_state
from monitor.errors import ConfigError, MonitorError

__all__ = ["Health", "HealthReport", "MetricsServer", "probe_database"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of ``/healthz``: ``ok`` and the facts behind it."""

    ok: bool
    problems: tuple[str, ...] = ()
    last_round_age: float = 0.0
    database: str = "unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "problems": list(self.problems),
            "last_claim_round_seconds_ago": round(self.last_round_age, 3),
            "database": self.database,
        }


class Health:
    """What ``/healthz`` reports; see the module docstring.

    ``clock`` gives monotonic seconds. The process counts as having just
    claimed when the object is made, so a fresh process gets ``stall_after``
    seconds to start.
    """

    def __init__(self, stall_after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_after <= 0:
            raise ValueError("stall_after must be positive")
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._round_at = clock()
        self._db_ok: bool | None = None
        self._db_at = self._round_at
        self._db_error = ""

    def round_done(self) -> None:
        """A claim round succeeded."""
        with self._lock:
            self._round_at = self._clock()

    def database_checked(self, ok: bool, error: str = "") -> None:
        """The database answered the probe (``ok``) or not (``error`` says why, secret-free)."""
        with self._lock:
            self._db_ok = ok
            self._db_at = self._clock()
            self._db_error = "" if ok else error

    def report(self) -> HealthReport:
        with self._lock:
            now = self._clock()
            round_age = now - self._round_at
            db_age = now - self._db_at
            db_ok, db_error = self._db_ok, self._db_error
        problems: list[str] = []
        if round_age > self.stall_after:
            problems.append(
                f"polling has stalled: no claim round succeeded for {round_age:.0f} s "
                f"(limit {self.stall_after:g} s)"
            )
        if db_ok is False:
            problems.append(f"database unreachable: {db_error}" if db_error else "database down")
            database = "unreachable"
        elif db_age > self.stall_after:
            problems.append(f"database not checked for {db_age:.0f} s")
            database = "unknown"
        else:
            database = "ok" if db_ok else "unknown"
        return HealthReport(not problems, tuple(problems), round_age, database)


async def probe_database(
    engine: Engine,
    health: Health,
    metrics: Metrics,
    *,
    every: float = 5.0,
    answer_within: float = 10.0,
    sleep: Callable[[float], Any] = asyncio.sleep,
    count: Callable[[Engine], dict[OutboxState, int]] = count_by_state,
) -> None:
    """Forever: count the outbox by state (in a worker thread) and record whether it worked.

    A probe that does not answer within ``answer_within`` seconds counts as a
    failure. Its thread cannot be cancelled (the driver's connect timeout ends
    it); until it ends no second probe is started, the next rounds wait on the
    same one, so a hanging database never ties up more than one worker thread.
    ``count`` is the query (replaceable in tests).
    """
    probe: asyncio.Future[dict[OutboxState, int]] | None = None
    try:
        while True:
            if probe is None or probe.done():
                probe = asyncio.ensure_future(asyncio.to_thread(count, engine))
            try:
                counts = await asyncio.wait_for(asyncio.shield(probe), answer_within)
            except MonitorError as exc:
                health.database_checked(False, str(exc)[:300])
                metrics.database_up.set(0)
            except TimeoutError:
                health.database_checked(False, f"no answer within {answer_within:g} s")
                metrics.database_up.set(0)
            else:
                health.database_checked(True)
                metrics.database_up.set(1)
                metrics.set_notification_counts(counts)
            await sleep(every)
    finally:
        if probe is not None and not probe.done():
            # Nobody will wait for it any more: its outcome must not be reported as lost.
            probe.add_done_callback(_forget)


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class MetricsServer:
    """``/healthz`` and ``/metrics`` on ``host:port`` (port 0: any free port), in a thread."""

    def __init__(self, metrics: Metrics, health: Health, *, host: str, port: int) -> None:
        handler = _handler(metrics, health)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or type(exc).__name__}"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="metrics-http",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        log.info("serving /healthz and /metrics at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "1688-monitor"

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/healthz":
                report = health.report()
                body = json.dumps(report.to_json()).encode()
                self._send(200 if report.ok else 503, "application/json", body)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            else:
                self._send(
                    404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"
                )

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics endpoint: %s", format % args)

    return Handler
