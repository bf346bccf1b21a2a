"""``monitor chart``: draw an item's prices, stock, changes and alerts into a PNG or SVG."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from monitor.cli.history import ItemParam, Since, open_store, resolve_item, utc_now
from monitor.cli.plot import ChartInput, ChartSummary, chart_format, render_chart
from monitor.db.queries import alert_marks, item_changes, price_rows, reading
from monitor.db.store import Store

__all__ = ["chart", "draw_item_chart"]


def draw_item_chart(
    store: Store, item_id: int, output: Path, since: datetime | None, now: datetime
) -> ChartSummary:
    """Draw ``item_id``'s history from ``since`` (all if None) up to ``now`` into ``output``.

    ValueError when ``output`` is not ``.png``/``.svg`` or there are no prices.
    """
    chart_format(output)
    record = store.item_row(item_id)
    if record is None:
        raise ValueError(f"item {item_id} is not in the database")
    with reading(store.engine, "reading the history for a chart") as conn:
        rows = price_rows(conn, item_id, since)
        changes = item_changes(conn, item_id, since)
        alerts = alert_marks(conn, item_id, since)
    start = since or min((row.valid_from for row in rows), default=now)
    name = record.name or record.title or str(item_id)
    title = f"{name} ({item_id})"
    if record.title and record.title != name:
        title += f": {record.title}"
    data = ChartInput(
        item_id=item_id,
        title=title,
        currency=record.currency or "CNY",
        start=start,
        end=now,
        rows=tuple(rows),
        changes=tuple(c.detected_at for c in changes),
        alerts=tuple(a.created_at for a in alerts),
    )
    return render_chart(data, output)


@click.command(short_help="Draw an item's price history into a PNG or SVG.")
@click.argument("item", type=ItemParam())
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The image to write, .png or .svg (default: chart-ITEM_ID.png).",
)
@click.option(
    "--since",
    type=Since(),
    default="30d",
    show_default=True,
    help="Window start: a duration back (90d, 12h), a UTC date (2025-03-01), or 'all'.",
)
def chart(item: int | str, output: Path | None, since: datetime | None) -> None:
    """Draw ITEM's price history as an image: PNG or SVG, from the file name.

    Each SKU's price is a step line; with more than 8 SKUs the band
    between the lowest and highest SKU price is drawn instead. Total stock
    is on the right-hand axis, dotted lines mark polls that found changes
    and red triangles mark alerts. ITEM is an offer id, an offer URL or the
    item's name. Prints the path of the file written.

    \b
    Examples:
      monitor chart 652702302959
      monitor chart 652702302959 -o robe.svg --since 90d
      monitor chart "Leopard robe" -o /tmp/robe.png --since all
    """
    now = utc_now()
    if output is not None:
        try:
            chart_format(output)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-o'") from None
    with open_store() as store:
        record = resolve_item(store, item)
        path = output or Path(f"chart-{record.item_id}.png")
        try:
            summary = draw_item_chart(store, record.item_id, path, since, now)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    what = f"{summary.skus} SKUs" + (" as a price band" if summary.band else "")
    click.echo(
        f"{summary.path}  ({summary.format.upper()}: {what}, "
        f"{summary.changes} change(s), {summary.alerts} alert(s))"
    )
