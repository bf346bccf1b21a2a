"""``monitor run``: the daemon."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta
from pathlib import Path

import click

from monitor.alerts.pipeline import record_alerts
from monitor.cli.common import tmapi_settings
from monitor.cli.validate import WATCHLIST_OPTION_HELP, default_watchlist
from monitor.daemon.reload import WatchlistReloader
from monitor.daemon.runner import RunnerOptions, serve
from monitor.daemon.service import Daemon, DaemonOptions
from monitor.daemon.throttle import AdaptiveThrottle
from monitor.db.store import PollOutcome, PollResult, Store
from monitor.errors import ConfigError
from monitor.tmapi.client import TmapiClient
from monitor.watchlist import Watchlist, load_watchlist, watched_items

log = logging.getLogger(__name__)


@click.command()
@click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=WATCHLIST_OPTION_HELP,
)
@click.option("--once", is_flag=True, help="Poll every enabled item once, deliver, and exit.")
@click.option(
    "--migrate", is_flag=True, help="Upgrade a PostgreSQL schema at start (SQLite always is)."
)
@click.option(
    "--lease",
    type=click.IntRange(min=10),
    default=300,
    show_default=True,
    help="Seconds a claim on an item lasts (how soon a dead replica's items are taken over).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Seconds polls in flight may take to finish after SIGTERM/SIGINT.",
)
def run(path: Path | None, once: bool, migrate: bool, lease: int, grace: float) -> None:
    """Poll the watchlist on schedule, store changes, send alerts.

    Edits of the watchlist file apply within seconds; a bad edit is logged
    and the last good version keeps running. SIGTERM or Ctrl-C stops
    cleanly. Several processes may share one PostgreSQL database.

    \b
    Examples:
      monitor run
      monitor run --watchlist /etc/1688-monitor/watchlist.toml --migrate
      monitor run --once          # for cron: poll everything once and exit
    """
    watchlist_path = path or default_watchlist()
    try:
        watchlist = load_watchlist(watchlist_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for warning in watchlist.warnings:
        log.warning("%s", warning)
    lease_td = timedelta(seconds=lease)
    options = DaemonOptions(lease=lease_td, poll_deadline=lease_td * 0.8)
    results = asyncio.run(_run(watchlist, once=once, migrate=migrate, options=options, grace=grace))
    if once:
        _print_once(results)


async def _run(
    watchlist: Watchlist, *, once: bool, migrate: bool, options: DaemonOptions, grace: float
) -> list[PollResult]:
    store = await asyncio.to_thread(Store.open, None, migrate=migrate)
    settings = watchlist.settings
    throttle = AdaptiveThrottle(settings.max_requests_per_second, settings.max_concurrency)
    try:
        with tmapi_settings(item.id for item in watched_items(watchlist)) as tmapi:
            async with TmapiClient(tmapi, gate=throttle.call) as client:
                daemon = Daemon(
                    store=store,
                    client=client,
                    throttle=throttle,
                    watchlist=watchlist,
                    options=options,
                    on_poll=record_alerts,
                )
                if once:
                    await daemon.apply_watchlist(watchlist)
                    results = await daemon.run_once()
                    await daemon.deliver_all()
                    return results
                reloader = WatchlistReloader(watchlist.path, watchlist)
                await serve(
                    daemon, reloader, options=RunnerOptions(grace=grace), deliver=daemon.deliver
                )
                return []
    finally:
        await asyncio.to_thread(store.close)


def _print_once(results: list[PollResult]) -> None:
    failed = [r for r in results if r.outcome in (PollOutcome.FAILED, PollOutcome.UNAVAILABLE)]
    changes = sum(len(r.changes) for r in results)
    click.echo(f"polled {len(results)} items: {changes} changes, {len(failed)} failed")
    for r in failed:
        click.echo(f"  item {r.item_id}: {r.error_message}", err=True)
