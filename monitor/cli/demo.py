"""``monitor demo``: the real daemon, on the embedded default, against the simulated TMAPI.

Everything is the production code path (scheduler, polls, diff, SQLite
store, rules, outbox, apprise delivery); only TMAPI is the built-in
simulator on 127.0.0.1 and the one target is ``console://``, which prints
each alert on the terminal as it is delivered. A short script of supplier
moves (a price cut, a quantity-break change, a sell-out, a restock) runs on
top of the simulator's seeded random drift, so every demo shows alerts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
from rich.console import Console

from monitor.cli.chart import draw_item_chart
from monitor.cli.status import print_status
from monitor.daemon.app import Plumbing, open_daemon
from monitor.daemon.reload import WatchlistReloader
from monitor.daemon.runner import RunnerOptions, serve
from monitor.db.queries import reading, status_report
from monitor.db.store import Store
from monitor.domain import PollSource
from monitor.notify.console import register_console_target
from monitor.notify.sender import AppriseSender
from monitor.simulator.server import SimulatedTmapi
from monitor.tmapi.settings import TmapiSettings
from monitor.watchlist.load import load_watchlist

log = logging.getLogger(__name__)

EXAMPLE_ITEM = 652702302959
ITEMS = 5
EXAMPLE_NAME = "Leopard robe"


@dataclass(frozen=True, slots=True)
class DemoResult:
    folder: Path
    chart: Path | None
    alerts_sent: int
    polls: int


def watchlist_text(item_ids: list[int], interval: str) -> str:
    """The demo's watchlist: every item every ``interval``, all alerts to the console."""
    lines = [
        "# The demo's watchlist: written by `monitor demo`; edit it while the demo runs",
        "# and the daemon reloads it within a second.",
        "[settings]",
        "max_concurrency = 4",
        "max_requests_per_second = 20",
        "",
        "[targets]",
        'console = "console://"',
        "",
        "[defaults]",
        f'interval = "{interval}"',
        'notify = ["console"]',
        'alert_on = ["price_drop", "price_rise", "sold_out", "back_in_stock", "tier_change",',
        '            "target_price", "low_stock", "sku_added", "sku_removed",',
        '            "item_unavailable", "item_available", "poll_failing"]',
        "price_drop_pct = 2",
        "price_rise_pct = 5",
        "",
    ]
    for item_id in item_ids:
        lines += ["[[items]]", f"id = {item_id}"]
        if item_id == EXAMPLE_ITEM:
            lines += [f'name = "{EXAMPLE_NAME}"', "target_price = 26"]
        lines.append("")
    return "\n".join(lines)


def supplier_script(sim: SimulatedTmapi) -> list[tuple[float, str, Callable[[], object]]]:
    """Scripted supplier moves at seconds after the start: what the demo is sure to show."""
    ids = sim.item_ids
    robe_skus = sim.sku_ids(EXAMPLE_ITEM)
    other = ids[1] if len(ids) > 1 else EXAMPLE_ITEM
    other_sku = sim.sku_ids(other)[0]

    def cut_robe_prices() -> None:
        sim.set_price(EXAMPLE_ITEM, robe_skus[0], Decimal("25.90"))
        sim.set_tiers(EXAMPLE_ITEM, [(1, "29.89"), (100, "27.00"), (300, "25.90")])

    return [
        (2.0, "the robe supplier cuts a price and a quantity break", cut_robe_prices),
        (3.0, "a SKU of the second item sells out", lambda: sim.sell_out(other, other_sku)),
        (4.5, "the sold-out SKU is restocked", lambda: sim.restock(other, other_sku)),
    ]


async def _drive_supplier(sim: SimulatedTmapi, console: Console, stop: asyncio.Event) -> None:
    started = asyncio.get_running_loop().time()
    script = supplier_script(sim)
    while not stop.is_set():
        elapsed = asyncio.get_running_loop().time() - started
        while script and script[0][0] <= elapsed:
            _at, what, action = script.pop(0)
            console.print(f"[dim]· supplier: {what}[/dim]")
            action()
        if elapsed > 6:
            sim.evolve()
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            continue


async def run_demo(
    folder: Path, *, duration: float, interval: str = "2s", seed: int = 7, console: Console
) -> DemoResult:
    """Run the demo for ``duration`` seconds in ``folder``; print alerts, status, chart path."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    register_console_target()
    database = f"sqlite+pysqlite:///{folder / 'monitor.db'}"
    store = await asyncio.to_thread(Store.open, database)
    try:
        with SimulatedTmapi(seed=seed, items=ITEMS) as sim:
            path = folder / "watchlist.toml"
            text = watchlist_text(sim.item_ids, interval)
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
            watchlist = load_watchlist(path)
            tmapi = TmapiSettings(base_url=sim.base_url, timeout=10, source=PollSource.SIMULATED)
            await asyncio.to_thread(store.check_source, tmapi.source, datetime.now(UTC))
            plumbing = Plumbing(rng=random.Random(seed), sender=AppriseSender(min_interval=0))
            async with open_daemon(store, watchlist, tmapi, plumbing=plumbing) as daemon:
                console.print(
                    f"[bold]1688 Monitor demo[/bold]: {len(sim.item_ids)} simulated offers "
                    f"polled every {interval} for {duration:g} s; data in {folder}"
                )
                stop = asyncio.Event()
                supplier = asyncio.create_task(_drive_supplier(sim, console, stop))
                asyncio.get_running_loop().call_later(duration, stop.set)
                sent = 0

                async def deliver() -> None:
                    nonlocal sent
                    sent += (await daemon.deliver()).sent

                options = RunnerOptions(tick=0.25, reload_every=1.0, deliver_every=0.25, grace=3)
                await serve(
                    daemon,
                    WatchlistReloader(path, watchlist),
                    options=options,
                    deliver=deliver,
                    stop=stop,
                )
                await supplier
        now = datetime.now(UTC)
        console.rule("status")
        with reading(store.engine, "reading the status") as conn:
            report = status_report(conn, now)
        print_status(console, report, watchlist)
        chart: Path | None = folder / "chart.png"
        try:
            s = await asyncio.to_thread(
                draw_item_chart, store, EXAMPLE_ITEM, folder / "chart.png", None, now
            )
            console.print(
                f"Chart of {EXAMPLE_NAME} ({EXAMPLE_ITEM}): {s.path} "
                f"({s.skus} SKUs, {s.changes} changes and {s.alerts} alerts marked)"
            )
        except ValueError as exc:
            console.print(f"no chart: {exc}")
            chart = None
        return DemoResult(folder, chart, sent, daemon.polls_done)
    finally:
        await asyncio.to_thread(store.close)


@click.command(short_help="Run the monitor against simulated offers and show its alerts.")
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="Seconds to run.",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the demo's database, watchlist and chart here (default: a temporary folder).",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the simulated offers."
)
def demo(duration: float, folder: Path | None, seed: int) -> None:
    """Run the real daemon on SQLite against the built-in simulated TMAPI.

    Five simulated 1688 offers (one is TMAPI's documented example) are
    polled every two seconds while their suppliers cut prices, change
    quantity breaks, sell out and restock. Each alert is printed as it is
    delivered (a console target stands in for Slack or e-mail). At the end
    the status table is shown and a price chart is written. With --dir the
    folder keeps monitor.db, watchlist.toml and chart.png for `monitor
    status`, `history` and `chart` (set MONITOR_DATABASE_URL to its database).

    \b
    Examples:
      monitor demo
      monitor demo --duration 60 --dir ./demo
    """
    console = Console()
    if folder is not None:
        result = asyncio.run(run_demo(folder, duration=duration, seed=seed, console=console))
    else:
        with tempfile.TemporaryDirectory(prefix="1688-monitor-demo-") as tmp:
            keep = Path(tmp)
            result = asyncio.run(run_demo(keep, duration=duration, seed=seed, console=console))
            console.print("[dim](temporary folder removed; use --dir to keep it)[/dim]")
    console.print(f"{result.polls} polls, {result.alerts_sent} alerts delivered.")
