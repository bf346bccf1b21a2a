"""Tools for the process-level fault scenarios.

``MonitorProcess``
    One real ``python -m monitor run`` subprocess, its stderr in a file.
    :func:`monitors` starts them and kills every one still running, by PID,
    however the test ends.

``TcpProxy``
    A TCP proxy the test controls (asyncio, in its own thread) between the
    daemon and PostgreSQL: :meth:`TcpProxy.cut` drops every connection and
    refuses new ones until :meth:`TcpProxy.restore`. The machine's
    PostgreSQL server itself is never touched.

``HoldingWebhook``
    The webhook receiver of ``tests.receivers``, which can also hold a POST
    it has received without answering, as a service that hangs would.

Plus :func:`wait_for` (poll a condition, fail early if a process died) and
small database readers. Nothing here sleeps to wait for an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.simulator.server import SimulatedTmapi
from tests.receivers import Received, WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: A time long past: writing it as a lease's expiry makes the lease run out now.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


# -- processes ---------------------------------------------------------------------------------


class MonitorProcess:
    """One ``monitor run`` process; stdout to a pipe, stderr (the log) to a file."""

    def __init__(
        self,
        log: Path,
        args: Sequence[str],
        env: dict[str, str],
        *,
        log_level: str = "INFO",
        capture_stdout: bool = False,
    ) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--log-level", log_level, "run", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=self._out,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def owns(self, owner: str | None) -> bool:
        """Is ``owner`` (``host:pid:suffix``) a lease of this process?"""
        return owner is not None and owner.split(":")[-2] == str(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no drain, no final delivery, leases left behind."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, sig: int | None = None, timeout: float = 15) -> int:
        """SIGTERM (or ``sig``) and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM if sig is None else sig)
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot die of SIGKILL late
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._out.close()


@contextmanager
def monitors() -> Iterator[Callable[..., MonitorProcess]]:
    """``start(log, args, env)`` launches a process; all are killed by PID at the end."""
    started: list[MonitorProcess] = []

    def start(log: Path, args: Sequence[str], env: dict[str, str], **kw: Any) -> MonitorProcess:
        process = MonitorProcess(log, args, env, **kw)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


def process_env(db_url: str, sim: SimulatedTmapi, token: str, **extra: str) -> dict[str, str]:
    """The environment of a monitor process: its database, the simulated TMAPI, ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "TMAPI_"))}
    env.update(
        MONITOR_DATABASE_URL=db_url,
        TMAPI_TOKEN=token,
        TMAPI_BASE_URL=sim.base_url,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    procs: Sequence[MonitorProcess] = (),
) -> None:
    """Poll ``check`` every 20 ms until it holds; fail if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        for process in procs:
            if not process.alive():
                code = process.proc.returncode
                pytest.fail(f"monitor exited ({code}) waiting for {what}:\n{process.stderr()}")
        if time.monotonic() > deadline:
            logs = "\n".join(p.stderr()[-3000:] for p in procs)
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs}")
        time.sleep(0.02)


def write_watchlist(
    path: Path,
    items: Sequence[int],
    *,
    hook_url: str | None = None,
    interval: str = "1s",
    concurrency: int = 4,
) -> Path:
    """Items polled every ``interval`` (no jitter); price drops go to ``hook_url``."""
    lines = [
        "[settings]",
        f"max_concurrency = {concurrency}",
        "max_requests_per_second = 50",
        "jitter = 0",
        "",
    ]
    if hook_url is not None:
        lines += ["[targets]", f'hook = "{hook_url}"', ""]
    lines += ["[defaults]", f'interval = "{interval}"']
    if hook_url is not None:
        lines += ['notify = ["hook"]', 'alert_on = ["price_drop"]']
    lines.append("")
    for item_id in items:
        lines += ["[[items]]", f"id = {item_id}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def health(port: int) -> int | None:
    """The status of ``GET /healthz`` (None if nothing answers)."""
    try:
        return httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code
    except httpx.HTTPError:
        return None


# -- the database --------------------------------------------------------------------------------


def scalar(engine: Engine, sql: str, **params: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: object) -> list[sa.Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def lease_owners(engine: Engine) -> dict[int, str]:
    found = rows(engine, "SELECT item_id, lease_owner FROM items WHERE lease_owner IS NOT NULL")
    return {int(r.item_id): str(r.lease_owner) for r in found}


def expire_leases_of(engine: Engine, process: MonitorProcess) -> None:
    """Make the leases a dead process left behind run out now (items and notifications),
    instead of waiting for them (lease takeover has its own tests)."""
    with engine.begin() as conn:
        for table in ("items", "notifications"):
            owners = conn.execute(
                sa.text(f"SELECT DISTINCT lease_owner FROM {table} WHERE lease_owner IS NOT NULL")
            ).scalars()
            mine = [owner for owner in owners if process.owns(owner)]
            for owner in mine:
                conn.execute(
                    sa.text(f"UPDATE {table} SET lease_expires_at = :t WHERE lease_owner = :o"),
                    {"t": LONG_AGO, "o": owner},
                )


def changes_of(engine: Engine, item_id: int) -> list[str]:
    found = rows(engine, "SELECT kind FROM changes WHERE item_id = :i ORDER BY id", i=item_id)
    return [str(r.kind) for r in found]


def notifications_of(engine: Engine, item_id: int) -> list[sa.Row[Any]]:
    return rows(engine, "SELECT * FROM notifications WHERE item_id = :i ORDER BY id", i=item_id)


def assert_nothing_half_written(
    engine: Engine, sim: SimulatedTmapi, items: Sequence[int], *, leases: bool = True
) -> None:
    """Every recorded poll is complete: the counters match the poll log, every item
    polled successfully has exactly its whole current state open, and no change
    or notification points at a poll that does not exist."""
    for item_id in items:
        polls = scalar(engine, "SELECT count(*) FROM polls WHERE item_id = :i", i=item_id)
        total = scalar(
            engine, "SELECT coalesce(max(polls_total), 0) FROM items WHERE item_id = :i", i=item_id
        )
        assert polls == total, f"item {item_id}: {polls} poll rows, polls_total {total}"
        successes = scalar(
            engine,
            "SELECT count(*) FROM polls WHERE item_id = :i"
            " AND outcome IN ('baseline', 'unchanged', 'changed')",
            i=item_id,
        )
        truth = sim.truth(item_id)
        open_rows = {
            table: scalar(
                engine,
                f"SELECT count(*) FROM {table} WHERE item_id = :i AND valid_to IS NULL",
                i=item_id,
            )
            for table in ("item_states", "sku_states", "tier_states")
        }
        expected = {
            "item_states": 1,
            "sku_states": len(truth.skus) or 1,  # a single-spec offer is one "default" SKU
            "tier_states": len(truth.tiers),
        }
        if not successes:
            expected = dict.fromkeys(expected, 0)
        assert open_rows == expected, f"item {item_id}: open rows {open_rows}, expected {expected}"
    orphans = scalar(
        engine,
        "SELECT count(*) FROM changes c LEFT JOIN polls p ON p.id = c.poll_id WHERE p.id IS NULL",
    )
    assert orphans == 0
    unpolled = scalar(
        engine,
        "SELECT count(*) FROM notifications n LEFT JOIN polls p ON p.id = n.poll_id"
        " WHERE n.poll_id IS NOT NULL AND p.id IS NULL",
    )
    assert unpolled == 0
    if leases:
        assert lease_owners(engine) == {}, "leases left behind"


# -- a TCP proxy the test can cut ----------------------------------------------------------------


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.accepted = 0

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update((client_w, upstream_w))
        await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        self._links.difference_update((client_w, upstream_w))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until :meth:`restore`."""
        self._run(self._cut())

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._run(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def through_proxy(url: str, proxy: TcpProxy, password: str | None = None) -> str:
    """``url`` with its host and port replaced by the proxy's (and ``password`` set)."""
    parsed = sa.make_url(url).set(host=HOST, port=proxy.port)
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


# -- a webhook that can hang -------------------------------------------------------------------


class HoldingWebhook(WebhookReceiver):
    """A webhook receiver that, while :meth:`hold` is on, records each POST and then
    keeps the sender waiting for an answer until :meth:`release`."""

    def __init__(self) -> None:
        super().__init__()
        self._open = threading.Event()
        self._open.set()
        self.held = threading.Event()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _record(self, received: Received) -> Any:
        answer = super()._record(received)
        if not self._open.is_set():
            self.held.set()
            self._open.wait(timeout=60)
        return answer

    def messages_about(self, item_id: int) -> list[str]:
        """The ``message`` of every POST that mentions ``item_id``."""
        texts = [str(json.loads(r.body).get("message", "")) for r in self.received()]
        return [text for text in texts if f"/offer/{item_id}.html" in text]

    def __enter__(self) -> HoldingWebhook:
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
        super().__exit__(*exc)
