"""``monitor run``: APScheduler drives the daemon's units of work on timers.

An ``AsyncIOScheduler`` with its default in-memory job store keeps only this
process's timers (polling, delivery, watchlist reload, housekeeping); which
item is due and who polls it lives in the database, so several processes
can share one PostgreSQL database. SIGTERM and SIGINT stop claiming work,
let polls in flight finish within a grace period (then cancel them) and
return normally, so the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.daemon.reload import WatchlistReloader
from monitor.daemon.service import Daemon
from monitor.db.retention import prune_poll_log
from monitor.errors import MonitorError
from monitor.watchlist.model import Watchlist

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]
#: Told the item ids of every claim round that succeeded (for health and metrics).
RoundObserver = Callable[[Sequence[int]], object]


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    #: Seconds between two claims of due items (more often while a backlog is worked off).
    tick: float = 1.0
    #: Seconds between two looks at the watchlist file (edits apply within this).
    reload_every: float = 1.0
    #: Seconds between two outbox deliveries.
    deliver_every: float = 2.0
    #: Seconds in-flight polls may take to finish at shutdown.
    grace: float = 20.0
    #: Unchanged polls older than this leave the poll log (changes stay forever).
    poll_log_retention: timedelta = timedelta(days=90)


def _guard(name: str, job: Job) -> Callable[[], Awaitable[None]]:
    """A job that logs its failures instead of killing the timer."""

    async def run() -> None:
        try:
            await job()
        except MonitorError as exc:
            log.error("%s: %s", name, exc)
        except Exception:
            log.exception("%s failed unexpectedly", name)

    return run


async def serve(
    daemon: Daemon,
    reloader: WatchlistReloader,
    *,
    options: RunnerOptions | None = None,
    deliver: Job | None = None,
    stop: asyncio.Event | None = None,
    on_round: RoundObserver | None = None,
) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives, then drain.

    ``on_round`` is called with the claimed item ids after every claim round
    that did not fail (an empty round counts: nothing was due), before the
    polls it started run.
    """
    opts = options or RunnerOptions()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # A new watchlist stays pending until it is applied: if the database is
    # unreachable at that moment, the next run tries again (the file does not
    # change again, so the reloader alone would never hand it over twice).
    pending: list[Watchlist] = []

    async def reload() -> None:
        watchlist = await reloader.poll()
        if watchlist is not None:
            pending[:] = [watchlist]
        if pending:
            await daemon.apply_watchlist(pending[0])
            pending.clear()
            log.info("watchlist reloaded from %s", reloader.path)

    # The tick and the refill (a claim as soon as polls have ended while more
    # items are due) take turns, so capacity is never counted twice.
    claiming = asyncio.Lock()

    async def poll_round() -> None:
        async with claiming:
            claimed = await daemon.poll_due()
        if on_round is not None:
            on_round(claimed)

    async def refill() -> None:
        guarded = _guard("polling", poll_round)
        while True:
            await daemon.wait_refill()
            await guarded()

    async def housekeeping() -> None:
        cutoff = daemon.clock() - opts.poll_log_retention
        pruned = await asyncio.to_thread(prune_poll_log, daemon.store.engine, cutoff)
        if pruned:
            log.info("housekeeping: %d unchanged polls older than %s pruned", pruned, cutoff)

    if daemon.applied is not reloader.current:
        await daemon.apply_watchlist(reloader.current)
    scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    now = datetime.now(UTC)
    scheduler.add_job(
        _guard("polling", poll_round),
        "interval",
        seconds=opts.tick,
        id="poll",
        next_run_time=now,
        **common,
    )
    scheduler.add_job(
        _guard("watchlist reload", reload),
        "interval",
        seconds=opts.reload_every,
        id="reload",
        **common,
    )
    if deliver is not None:
        scheduler.add_job(
            _guard("delivery", deliver),
            "interval",
            seconds=opts.deliver_every,
            id="deliver",
            next_run_time=now,
            **common,
        )
    scheduler.add_job(
        _guard("housekeeping", housekeeping), "cron", minute=17, id="housekeeping", **common
    )
    scheduler.start()
    refiller = asyncio.create_task(refill(), name="refill")
    log.info("monitor running as %s: %d items", daemon.options.owner, len(reloader.current.items))
    try:
        await stop.wait()
    finally:
        log.info("stopping: no new polls")
        scheduler.shutdown(wait=False)
        refiller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refiller
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await daemon.drain(opts.grace)
        if deliver is not None:
            await _guard("final delivery", deliver)()
        log.info("stopped")
