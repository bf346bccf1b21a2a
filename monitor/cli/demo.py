"""``monitor demo``: see the monitor work in a few seconds, no account needed."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click
from rich.console import Console

from monitor.demo import run_demo


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
