"""``monitor history``: one item's SKU prices, stock and changes over time.

Also home of what the history commands (``history``, ``export``, ``chart``,
``status``) share: the ``--since`` option, the ``ITEM`` argument, the clock,
opening the store, and the exact text form of rows for CSV and JSON.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from monitor.db.queries import PriceRow, find_items_by_name, item_changes, price_rows, reading
from monitor.db.records import ItemRecord, StoredChange
from monitor.db.store import Store
from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.messages.formatting import describe_change, format_amount, format_money
from monitor.watchlist.fields import to_item_id

__all__ = [
    "CHANGE_FIELDS",
    "PRICE_FIELDS",
    "ItemParam",
    "Since",
    "change_record",
    "history",
    "open_store",
    "price_record",
    "utc_now",
    "write_csv_rows",
]

#: Columns of price rows in CSV and JSON, in order.
PRICE_FIELDS = (
    "item_id",
    "sku_id",
    "sku_name",
    "price",
    "stock",
    "sold_out",
    "valid_from",
    "valid_to",
)
CHANGE_FIELDS = ("detected_at", "kind", "sku_id", "sku_name", "min_qty", "old", "new", "pct")


def utc_now(ctx: click.Context | None = None) -> datetime:
    """The current time; tests pass ``obj={"now": datetime}`` to the command runner."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, Mapping) and isinstance(obj.get("now"), datetime):
        now: datetime = obj["now"]
        return now
    return datetime.now(UTC)


class Since(click.ParamType[datetime | None, Any]):
    """``--since``: a duration back from now (``30d``, ``12h``), a UTC date or time
    (``2025-03-01``, ``2025-03-01T08:00``), or ``all``. Converts to a
    ``datetime`` window start, or ``None`` for all history."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "all":
            return None
        try:
            return utc_now(ctx) - parse_duration(text)
        except ConfigError as exc:
            problem = str(exc)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{problem}; or give a UTC date (2025-03-01) or 'all'", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ItemParam(click.ParamType[int | str, Any]):
    """``ITEM``: an offer id, an offer URL, or the item's name / title in the database."""

    name = "item"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        try:
            return to_item_id(str(value))
        except ConfigError:
            return str(value)


@contextmanager
def open_store() -> Iterator[Store]:
    """The monitor's database (``$MONITOR_DATABASE_URL`` or the default SQLite file)."""
    store = Store.open()
    try:
        yield store
    finally:
        store.close()


def resolve_item(store: Store, ref: int | str) -> ItemRecord:
    """The ``items`` row ``ref`` names; a usage error says why there is none."""
    if isinstance(ref, str):
        with reading(store.engine, "looking up an item") as conn:
            ids = find_items_by_name(conn, ref)
        if not ids:
            raise click.BadParameter(
                f"{ref!r} is not an offer id, an offer URL or the name of a stored item",
                param_hint="ITEM",
            )
        if len(ids) > 1:
            listed = ", ".join(str(i) for i in ids)
            raise click.BadParameter(f"{ref!r} names several items: {listed}", param_hint="ITEM")
        ref = ids[0]
    item = store.item_row(ref)
    if item is None:
        raise click.BadParameter(
            f"item {ref} is not in the database (not polled yet?)", param_hint="ITEM"
        )
    return item


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _amount(value: Decimal | int | None) -> str | int | None:
    if isinstance(value, Decimal):
        return format_amount(value)
    return value


def price_record(row: PriceRow) -> dict[str, Any]:
    """A price row as JSON-ready values: money as exact decimal strings, UTC ISO times."""
    return {
        "item_id": row.item_id,
        "sku_id": row.sku_id,
        "sku_name": row.sku_name,
        "price": format_amount(row.price),
        "stock": row.stock,
        "sold_out": row.sold_out,
        "valid_from": _iso(row.valid_from),
        "valid_to": _iso(row.valid_to),
    }


def change_record(stored: StoredChange) -> dict[str, Any]:
    """A stored change as JSON-ready values."""
    change = stored.change
    return {
        "detected_at": _iso(stored.detected_at),
        "kind": str(change.kind),
        "sku_id": change.sku_id,
        "sku_name": change.sku_name,
        "min_qty": change.min_qty,
        "old": _amount(change.old),
        "new": _amount(change.new),
        "pct": _amount(change.pct),
    }


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def write_csv_rows(out: IO[str], records: Iterator[dict[str, Any]], fields: tuple[str, ...]) -> int:
    """Write a header and ``records`` as CSV to ``out``; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    count = 0
    for record in records:
        writer.writerow([_csv_value(record[field]) for field in fields])
        count += 1
    return count


@click.command(short_help="Show an item's SKU prices, stock and changes.")
@click.argument("item", type=ItemParam())
@click.option("--sku", "pattern", metavar="PATTERN", help="Only SKUs whose name or id match.")
@click.option(
    "--since",
    type=Since(),
    default="30d",
    show_default=True,
    help="Window start: a duration back (90d, 12h), a UTC date (2025-03-01), or 'all'.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: for people; csv: the price rows; json: prices and changes.",
)
def history(item: int | str, pattern: str | None, since: datetime | None, fmt: str) -> None:
    """Show ITEM's SKU prices, stock and changes over time.

    ITEM is an offer id, an offer URL or the item's name. Each row is one SKU
    state, valid from one time until the next (an empty "until": still
    current). PATTERN is a shell-style glob matched against SKU names and
    ids ("white*", "*/ L", "5031*"); changes of the whole item are always
    shown.

    \b
    Examples:
      monitor history 652702302959
      monitor history 652702302959 --sku 'white*' --since 90d
      monitor history "Leopard robe" --since all --format csv > robe.csv
    """
    with open_store() as store:
        record = resolve_item(store, item)
        with reading(store.engine) as conn:
            rows = price_rows(conn, record.item_id, since, pattern)
            changes = item_changes(conn, record.item_id, since, pattern)
    if fmt == "csv":
        write_csv_rows(sys.stdout, map(price_record, rows), PRICE_FIELDS)
    elif fmt == "json":
        document = {
            "item_id": record.item_id,
            "name": record.name,
            "title": record.title,
            "currency": record.currency,
            "since": _iso(since),
            "prices": [price_record(row) for row in rows],
            "changes": [change_record(change) for change in changes],
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        _print_tables(Console(), record, rows, changes, since)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def _print_tables(
    console: Console,
    item: ItemRecord,
    rows: list[PriceRow],
    changes: list[StoredChange],
    since: datetime | None,
) -> None:
    currency = item.currency or "CNY"
    label = f"{item.name} — {item.title}" if item.name and item.title else item.name or item.title
    window = f"since {_when(since)} UTC" if since else "all history"
    console.print(f"[bold]{label or item.item_id}[/bold]  ({item.item_id}, {window})")
    if not rows:
        console.print("No SKU prices stored in this window.")
    else:
        table = Table("SKU", "id", "price", "stock", "from (UTC)", "until", title="SKU history")
        previous: PriceRow | None = None
        grouped = len({row.sku_id for row in rows}) < len(rows)
        for index, row in enumerate(rows):
            price = format_money(row.price, currency)
            if previous is not None and previous.sku_id == row.sku_id:
                if row.price < previous.price:
                    price = f"[green]{price}[/green]"
                elif row.price > previous.price:
                    price = f"[red]{price}[/red]"
            stock = "?" if row.stock is None else str(row.stock)
            if row.sold_out:
                stock = f"[red]sold out[/red] ({stock})"
            last = index + 1 == len(rows) or rows[index + 1].sku_id != row.sku_id
            table.add_row(
                row.sku_name,
                row.sku_id,
                price,
                stock,
                _when(row.valid_from),
                _when(row.valid_to) or "now",
                end_section=grouped and last,
            )
            previous = row
        console.print(table)
    if changes:
        table = Table("detected (UTC)", "change", title=f"{len(changes)} change(s)")
        for stored in changes:
            table.add_row(
                _when(stored.detected_at),
                describe_change(stored.change, currency, item.unit or "pcs"),
            )
        console.print(table)
    else:
        console.print("No changes recorded in this window.")
