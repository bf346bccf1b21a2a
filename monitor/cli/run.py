"""``monitor run``: the daemon, and optionally its ``/healthz`` + ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import click

from monitor.cli.common import SIMULATE_HELP, answered_polls, tmapi_settings
from monitor.cli.validate import WATCHLIST_OPTION_HELP, default_watchlist
from monitor.daemon import runtime
from monitor.daemon.app import open_daemon
from monitor.daemon.health import Health, MetricsServer, probe_database
from monitor.daemon.metrics import Metrics, watch_loop_lag
from monitor.daemon.poller import utc_now
from monitor.daemon.reload import WatchlistReloader
from monitor.daemon.runner import RoundObserver, RunnerOptions, serve
from monitor.daemon.service import DaemonOptions
from monitor.db.store import PollOutcome, PollResult, Store
from monitor.errors import ConfigError
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist, watched_items

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to serve ``/healthz`` and ``/metrics``, and when to call polling stalled."""

    host: str
    port: int
    stall_after: float


@click.command()
@click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=WATCHLIST_OPTION_HELP,
)
@click.option("--once", is_flag=True, help="Poll every enabled item once, deliver, and exit.")
@click.option("--simulate", is_flag=True, help=SIMULATE_HELP)
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
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve /healthz and /metrics (Prometheus) on this port. Off unless given.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics endpoint binds (0.0.0.0 to expose it beyond this host).",
)
@click.option(
    "--stall-after",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="/healthz fails when no claim round succeeded, or the database did not answer, "
    "for this many seconds.",
)
def run(  # noqa: PLR0917 (click passes every option by position)
    path: Path | None,
    once: bool,
    simulate: bool,
    migrate: bool,
    lease: int,
    grace: float,
    metrics_port: int | None,
    metrics_host: str,
    stall_after: float,
) -> None:
    """Poll the watchlist on schedule, store changes, send alerts.

    Edits of the watchlist file apply within seconds; a bad edit is logged
    and the last good version keeps running. SIGTERM or Ctrl-C stops
    cleanly. Several processes may share one PostgreSQL database.

    With --metrics-port, GET /healthz answers 200 while polling goes on and
    the database answers (503 and the reason otherwise), and GET /metrics
    gives Prometheus metrics: polls and failures by reason, changes by kind,
    notifications by state, TMAPI calls, poll latency, event-loop lag.

    Needs TMAPI_TOKEN (or TMAPI_TOKEN_FILE); --simulate polls the built-in
    simulated TMAPI instead, whose suppliers move by themselves.

    \b
    Examples:
      monitor run
      monitor run --watchlist /etc/1688-monitor/watchlist.toml --migrate
      monitor run --metrics-port 9688        # /healthz and /metrics on 127.0.0.1:9688
      monitor run --once          # for cron: poll everything once and exit
      monitor run --simulate      # try it without an account
    """
    if once and metrics_port is not None:
        raise click.UsageError("--metrics-port serves a running daemon; it has no use with --once")
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
    endpoint = None
    if metrics_port is not None:
        endpoint = Endpoint(metrics_host, metrics_port, stall_after)
    watched = [item.id for item in watched_items(watchlist)]
    answered = answered_polls(watched, migrate=migrate) if simulate else None
    with tmapi_settings(watched, simulate=simulate, answered=answered) as tmapi:
        results = runtime.run(
            _run(
                watchlist,
                tmapi,
                once=once,
                migrate=migrate,
                options=options,
                grace=grace,
                endpoint=endpoint,
            )
        )
    if once:
        _print_once(results)


async def _run(
    watchlist: Watchlist,
    tmapi: TmapiSettings,
    *,
    once: bool,
    migrate: bool,
    options: DaemonOptions,
    grace: float,
    endpoint: Endpoint | None = None,
) -> list[PollResult]:
    store = await asyncio.to_thread(Store.open, None, migrate=migrate)
    try:
        await asyncio.to_thread(store.check_source, tmapi.source, utc_now())
        async with open_daemon(store, watchlist, tmapi, options=options) as daemon:
            runtime.settle_gc()
            if once:
                results = await daemon.run_once()
                await daemon.deliver_all()
                return results
            reloader = WatchlistReloader(watchlist.path, watchlist)
            runner = RunnerOptions(grace=grace)
            if endpoint is None:
                await serve(daemon, reloader, options=runner, deliver=daemon.deliver)
                return []
            async with _observed(store, daemon.metrics, endpoint) as health:
                await serve(
                    daemon,
                    reloader,
                    options=runner,
                    deliver=daemon.deliver,
                    on_round=_round_observer(health, daemon.metrics),
                )
            return []
    finally:
        await asyncio.to_thread(store.close)


@asynccontextmanager
async def _observed(store: Store, metrics: Metrics, endpoint: Endpoint) -> AsyncIterator[Health]:
    """Serve the endpoint and run the loop-lag and database probes while the block runs."""
    health = Health(endpoint.stall_after)
    server = await asyncio.to_thread(
        MetricsServer, metrics, health, host=endpoint.host, port=endpoint.port
    )
    server.start()
    probe_every = min(5.0, max(0.5, endpoint.stall_after / 4))
    tasks = [
        asyncio.create_task(watch_loop_lag(metrics), name="loop-lag"),
        asyncio.create_task(
            probe_database(
                store.engine,
                health,
                metrics,
                every=probe_every,
                answer_within=endpoint.stall_after,
            ),
            name="database-probe",
        ),
    ]
    try:
        yield health
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(server.stop)


def _round_observer(health: Health, metrics: Metrics) -> RoundObserver:
    def round_done(item_ids: Sequence[int]) -> None:
        health.round_done()
        metrics.round_done(item_ids)

    return round_done


def _print_once(results: list[PollResult]) -> None:
    failed = [r for r in results if r.outcome in (PollOutcome.FAILED, PollOutcome.UNAVAILABLE)]
    changes = sum(len(r.changes) for r in results)
    click.echo(f"polled {len(results)} items: {changes} changes, {len(failed)} failed")
    for r in failed:
        click.echo(f"  item {r.item_id}: {r.error_message}", err=True)
