"""Building a daemon: the one wiring that ``monitor run`` and every other caller use.

:func:`open_daemon` puts the pieces together from a store, a watchlist and
TMAPI settings: the adaptive throttle from the watchlist's limits, the
TMAPI client on its aiohttp transport (requests timed for ``/metrics``,
paid calls counted), the daemon with its metrics, and the watchlist
applied (items synced, item settings saved for ``monitor check``). The
demo, the benchmark and the tests build their daemons through it too, so
what they exercise is what runs in production; they only swap the
:class:`Plumbing` (clock, randomness, sleeping, the sender).

Recording needs no wiring: every poll is recorded with its alerts by
:meth:`monitor.db.store.Store.apply_polls`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from monitor.daemon.metrics import Metrics
from monitor.daemon.poller import utc_now
from monitor.daemon.service import Clock, Daemon, DaemonOptions
from monitor.daemon.throttle import AdaptiveThrottle
from monitor.db.store import Store
from monitor.errors import MonitorError
from monitor.notify.sender import AppriseSender
from monitor.tmapi.client import TmapiClient
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.model import Watchlist

__all__ = ["Plumbing", "open_daemon"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Plumbing:
    """The parts of a daemon that are not configuration: where time and chance
    come from, how the client waits between retries, who sends messages, and
    how far the throttle may slow down on 503s and timeouts."""

    clock: Clock = utc_now
    rng: random.Random | None = None
    sleep: Sleep = asyncio.sleep
    sender: AppriseSender | None = None
    min_rate: float = 0.2


@asynccontextmanager
async def open_daemon(
    store: Store,
    watchlist: Watchlist,
    tmapi: TmapiSettings,
    *,
    options: DaemonOptions | None = None,
    plumbing: Plumbing | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Daemon]:
    """A daemon on ``store`` polling ``watchlist`` through TMAPI, applied and ready.

    On leaving the block, polls still in flight are cancelled and this
    process's leases released (:meth:`Daemon.drain` with no grace; a caller
    that wants a graceful stop drains first, as :func:`~monitor.daemon.runner.serve`
    does). The database must already hold polls of ``tmapi.source`` or none
    (:meth:`Store.check_source`).
    """
    parts = plumbing or Plumbing()
    settings = watchlist.settings
    throttle = AdaptiveThrottle(
        settings.max_requests_per_second, settings.max_concurrency, min_rate=parts.min_rate
    )
    metrics = metrics or Metrics()
    async with TmapiClient.with_aiohttp(
        tmapi,
        gate=metrics.timed_gate(throttle.call),
        sleep=parts.sleep,
        rng=parts.rng,
        max_connections=max(100, settings.max_concurrency),
    ) as client:
        metrics.count_calls(lambda: client.calls)
        daemon = Daemon(
            store=store,
            client=client,
            throttle=throttle,
            watchlist=watchlist,
            options=options,
            clock=parts.clock,
            rng=parts.rng,
            sender=parts.sender,
            metrics=metrics,
        )
        await daemon.apply_watchlist(watchlist)
        try:
            yield daemon
        finally:
            try:
                await daemon.drain(grace=0)
            except MonitorError as exc:  # the leases expire by themselves
                log.warning("releasing this process's leases failed: %s", exc)
