"""``monitor status``: where every watched item stands, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.cli.history import open_store, utc_now
from monitor.cli.validate import WATCHLIST_OPTION_HELP, default_watchlist
from monitor.db.queries import ItemStatus, StatusReport, reading, status_report
from monitor.db.urls import safe_url
from monitor.errors import ConfigError
from monitor.messages.formatting import format_money, format_pct
from monitor.watchlist.load import load_watchlist
from monitor.watchlist.model import Watchlist

__all__ = ["StatusLine", "print_status", "status", "status_lines", "status_table"]

_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One row of the table: an item of the watchlist (or of the database) and what is
    known about it. ``status`` is None for a listed item never written to the database."""

    item_id: int
    name: str | None
    status: ItemStatus | None
    paused: bool
    watched: bool


def status_lines(report: StatusReport, watchlist: Watchlist | None) -> list[StatusLine]:
    """The watchlist's items in file order, or without one every item in the database."""
    if watchlist is None:
        return [
            StatusLine(s.item.item_id, s.item.name, s, paused=False, watched=s.item.watched)
            for s in report.items
        ]
    lines = []
    for item in watchlist.items:
        found = report.item(item.id)
        name = item.name or (found.item.name if found else None)
        lines.append(StatusLine(item.id, name, found, not item.rules.enabled, watched=True))
    return lines


def _span(delta: timedelta) -> str:
    """``2d4h``, ``3h20m``, ``5m``, ``12s``: the two largest units."""
    seconds = max(0, int(delta.total_seconds()))
    parts: list[str] = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count or (unit == "s" and not parts):
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)


def _price(status: ItemStatus) -> str:
    if status.price_min is None or status.price_max is None:
        return "no price yet"
    currency = status.item.currency or "CNY"
    low = format_money(status.price_min, currency)
    if status.price_max == status.price_min:
        return low
    return f"{low}–{format_money(status.price_max, currency)}"


def _change(status: ItemStatus) -> Text:
    pct = status.change_pct
    if pct is None:
        return Text("")
    if not pct:
        return Text("±0%", style="dim")
    return Text(format_pct(pct), style="green" if pct < 0 else "red")


def _last_poll(status: ItemStatus, now: datetime) -> Text:
    item = status.item
    if item.last_polled_at is None:
        return Text("never\npolled", style="dim")
    outcome = status.last_outcome or "?"
    style = ""
    if outcome in ("failed", "unavailable"):
        style = "red"
        if item.last_error_reason and item.last_error_reason != outcome:
            outcome = f"{outcome} ({item.last_error_reason})"
    return Text(f"{_span(now - item.last_polled_at)} ago\n{outcome}", style=style)


def _next_poll(line: StatusLine, now: datetime) -> str:
    status = line.status
    if line.paused or not line.watched or status is None or status.item.next_poll_at is None:
        return "not scheduled"
    due = status.item.next_poll_at
    return "next: due" if due <= now else f"next in {_span(due - now)}"


def _state(line: StatusLine) -> Text:
    status = line.status
    if line.paused:
        return Text("paused", style="yellow")
    if not line.watched:
        return Text("not watched", style="dim")
    if status is None or status.item.last_polled_at is None:
        return Text("not polled", style="dim")
    if not status.item.available:
        return Text("unavailable", style="bold red")
    if status.item.consecutive_failures > 0:
        return Text(f"failing ×{status.item.consecutive_failures}", style="red")
    return Text("ok", style="green")


def _notifications(status: ItemStatus) -> Text:
    pending, dead = status.pending_notifications, status.dead_notifications
    if not (pending or dead):
        return Text("")
    text = Text(f"{pending} pending" if pending else "")
    if dead:
        text.append(f"{chr(10) if pending else ''}{dead} dead", style="bold red")
    return text


def _lines(*parts: Text | str) -> Text:
    return Text("\n").join(Text(part) if isinstance(part, str) else part for part in parts)


def status_table(report: StatusReport, watchlist: Watchlist | None) -> Table:
    """The status table of every item (see :func:`status_lines`)."""
    table = Table(
        title=f"1688 Monitor status at {report.now:%Y-%m-%d %H:%M} UTC",
        show_lines=True,
    )
    table.add_column("item", overflow="ellipsis", min_width=12)
    table.add_column("price\nvs first seen", justify="right", no_wrap=True)
    table.add_column("stock\nsold-out SKUs", justify="right", no_wrap=True)
    table.add_column("last poll\noutcome\nnext poll", no_wrap=True)
    table.add_column("state\nalerts", no_wrap=True)
    for line in status_lines(report, watchlist):
        label = Text(line.name or (line.status.item.title if line.status else None) or "")
        label.append(f"\n{line.item_id}", style="dim")
        status = line.status
        if status is None:
            never = Text("never\npolled", style="dim")
            table.add_row(
                label, "—", "—", _lines(never, _next_poll(line, report.now)), _state(line)
            )
            continue
        stock = "?" if status.stock is None else f"{status.stock:,}"
        sold = f"{status.sold_out_skus}/{status.skus} sold out" if status.skus else "no SKUs"
        if status.sold_out:
            sold = "all sold out"
        if status.price_min is None:  # never fetched successfully
            stock, sold = "—", ""
        sold_text = Text(sold, style="red" if status.sold_out_skus or status.sold_out else "")
        table.add_row(
            label,
            _lines(_price(status), _change(status)),
            _lines(stock, sold_text),
            _lines(_last_poll(status, report.now), _next_poll(line, report.now)),
            _lines(_state(line), _notifications(status)),
        )
    return table


def print_status(console: Console, report: StatusReport, watchlist: Watchlist | None) -> None:
    """The table, then TMAPI calls today and the notification totals."""
    console.print(status_table(report, watchlist))
    console.print(f"TMAPI calls today (polls since 00:00 UTC): {report.calls_today}")
    line = f"Notifications waiting: {report.pending_notifications}"
    if report.dead_notifications:
        line += (
            f", [bold red]{report.dead_notifications} dead[/bold red] "
            "(see `monitor notify list --state dead`)"
        )
    console.print(line)
    if watchlist is None:
        console.print("[dim]No watchlist: showing every item in the database.[/dim]")
    else:
        listed = {item.id for item in watchlist.items}
        others = [s for s in report.items if s.item.watched and s.item.item_id not in listed]
        if others:
            console.print(
                f"[dim]{len(others)} item(s) still watched in the database are not in "
                f"{watchlist.path} (the daemon stops polling them at its next reload).[/dim]"
            )


def _watchlist(path: Path | None) -> Watchlist | None:
    """The watchlist given (errors are fatal), or the default one if it exists and is
    valid (otherwise a note on stderr and None)."""
    if path is not None:
        return load_watchlist(path)
    default = default_watchlist()
    if not default.exists():
        return None
    try:
        return load_watchlist(default)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        click.echo(f"note: not using {default}, it is invalid: {first}", err=True)
        return None


@click.command(short_help="Show where every watched item stands.")
@click.option(
    "--watchlist",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=WATCHLIST_OPTION_HELP + " Without one, every item in the database is shown.",
)
def status(path: Path | None) -> None:
    """Show every watched item: price, stock, polls, state and notifications.

    Per item: its current lowest–highest SKU price and the change of the
    lowest price since it was first seen, total stock, sold-out SKUs, the
    last poll and how it ended, when it is polled next, whether it is
    failing, unavailable (likely delisted) or paused, and its notifications
    still pending or dead. Below: TMAPI calls spent today (UTC) and the
    totals of waiting and dead notifications.

    \b
    Examples:
      monitor status
      monitor status --watchlist /etc/1688-monitor/watchlist.toml
    """
    now = utc_now()
    watchlist = _watchlist(path)
    with open_store() as store, reading(store.engine, "reading the status") as conn:
        report = status_report(conn, now)
        where = safe_url(store.engine.url)
    console = Console()
    print_status(console, report, watchlist)
    console.print(f"[dim]Database: {where}[/dim]")
