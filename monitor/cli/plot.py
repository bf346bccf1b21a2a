"""Price charts of one item: SKU prices as step lines, stock, changes and alerts.

:func:`render_chart` draws a :class:`ChartInput` into a PNG or SVG file with
matplotlib's Agg renderer (no display, no pyplot state, safe in any thread):

* each SKU's price over time as a step line (a price holds until the next
  poll that saw a new one), or, with more than ``max_lines`` SKUs, the band
  between the lowest and the highest SKU price with both edges drawn;
* total stock of the SKUs on a second axis, when TMAPI reported it;
* a dotted vertical line at every poll that recorded changes, and a red
  triangle on the top edge for every alert raised.

The series are computed by pure functions (:func:`sku_steps`,
:func:`price_band`, :func:`stock_steps`) over ``price_history`` rows.
Prices stay ``Decimal`` in them; they become floats only as pixel positions
inside :func:`render_chart`. Times are UTC.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from monitor.db.queries import PriceRow

__all__ = [
    "CHART_FORMATS",
    "MAX_LINES",
    "ChartInput",
    "ChartSummary",
    "Series",
    "chart_format",
    "price_band",
    "render_chart",
    "sku_steps",
    "stock_steps",
]

#: File extensions and the format written for each.
CHART_FORMATS = {".png": "png", ".svg": "svg"}
#: More SKUs than this are drawn as the min–max band.
MAX_LINES = 8
#: Fonts with CJK glyphs (SKU names are often Chinese), used when installed.
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "SimHei",
    "Arial Unicode MS",
)
_LABEL_MAX = 28


@dataclass(frozen=True, slots=True)
class ChartInput:
    """Everything drawn: the rows of the window ``[start, end]`` and the event times."""

    item_id: int
    title: str
    currency: str
    start: datetime
    end: datetime
    rows: tuple[PriceRow, ...]
    changes: tuple[datetime, ...] = ()
    alerts: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class Series:
    """A step series for ``where="post"`` drawing: ``values[i]`` holds from
    ``times[i]`` to ``times[i + 1]``; ``None`` leaves a gap. The last value
    repeats the one before it, so the final step reaches the last time."""

    label: str
    times: tuple[datetime, ...]
    values: tuple[Decimal | int | None, ...]


@dataclass(frozen=True, slots=True)
class ChartSummary:
    """What was drawn, for the command's message."""

    path: Path
    format: str
    skus: int
    band: bool
    changes: int
    alerts: int


def chart_format(path: Path) -> str:
    """``png`` or ``svg`` from the file extension; ValueError for anything else."""
    fmt = CHART_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path.name}: use a .png or .svg file name")
    return fmt


def _clip(moment: datetime, start: datetime, end: datetime) -> datetime:
    return min(max(moment, start), end)


def _label(row: PriceRow) -> str:
    name = row.sku_name or row.sku_id
    return name if len(name) <= _LABEL_MAX else name[: _LABEL_MAX - 1] + "…"


def sku_steps(rows: Iterable[PriceRow], start: datetime, end: datetime) -> list[Series]:
    """One price series per SKU, in order of first appearance, clipped to ``[start, end]``."""
    by_sku: dict[str, list[PriceRow]] = {}
    for row in sorted(rows, key=lambda r: r.valid_from):
        by_sku.setdefault(row.sku_id, []).append(row)
    series = []
    for sku_rows in by_sku.values():
        times: list[datetime] = []
        values: list[Decimal | int | None] = []
        previous_end: datetime | None = None
        for row in sku_rows:
            begin = _clip(row.valid_from, start, end)
            until = _clip(row.valid_to or end, start, end)
            if previous_end is not None and begin > previous_end:
                times.append(previous_end)  # the SKU was gone in between
                values.append(None)
            times.append(begin)
            values.append(row.price)
            previous_end = until
        if previous_end is not None:
            times.append(previous_end)
            values.append(values[-1])
        series.append(Series(_label(sku_rows[-1]), tuple(times), tuple(values)))
    return series


def _sweep(
    rows: Sequence[PriceRow], start: datetime, end: datetime
) -> Iterable[tuple[datetime, list[PriceRow]]]:
    """Each moment the set of valid rows changes, with the rows valid from then on."""
    moments = sorted(
        {_clip(r.valid_from, start, end) for r in rows}
        | {_clip(r.valid_to, start, end) for r in rows if r.valid_to is not None}
    )
    starts = sorted(rows, key=lambda r: r.valid_from)
    active: dict[int, PriceRow] = {}
    next_start = 0
    for moment in moments:
        if moment >= end:
            break
        while (
            next_start < len(starts) and _clip(starts[next_start].valid_from, start, end) <= moment
        ):
            active[next_start] = starts[next_start]
            next_start += 1
        for key in [
            k for k, r in active.items() if r.valid_to is not None and r.valid_to <= moment
        ]:
            del active[key]
        yield moment, list(active.values())


def price_band(rows: Sequence[PriceRow], start: datetime, end: datetime) -> tuple[Series, Series]:
    """The lowest and the highest SKU price over time (gaps where no SKU was offered)."""
    times: list[datetime] = []
    low: list[Decimal | int | None] = []
    high: list[Decimal | int | None] = []
    for moment, active in _sweep(rows, start, end):
        prices = [r.price for r in active]
        times.append(moment)
        low.append(min(prices) if prices else None)
        high.append(max(prices) if prices else None)
    if times:
        times.append(end)
        low.append(low[-1])
        high.append(high[-1])
    return (
        Series("lowest SKU price", tuple(times), tuple(low)),
        Series("highest SKU price", tuple(times), tuple(high)),
    )


def stock_steps(rows: Sequence[PriceRow], start: datetime, end: datetime) -> Series | None:
    """Total stock of the SKUs over time; ``None`` when no SKU ever reported stock.

    SKUs without a stock figure are left out of the sum at that moment.
    """
    if all(r.stock is None for r in rows):
        return None
    times: list[datetime] = []
    totals: list[Decimal | int | None] = []
    for moment, active in _sweep(rows, start, end):
        known = [r.stock for r in active if r.stock is not None]
        times.append(moment)
        totals.append(sum(known) if known else None)
    if times:
        times.append(end)
        totals.append(totals[-1])
    return Series("stock (all SKUs)", tuple(times), tuple(totals))


def _floats(values: Iterable[Decimal | int | None]) -> list[float]:
    """Pixel positions: the one place money turns into floats."""
    return [float("nan") if v is None else float(v) for v in values]


_CJK = re.compile("[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _drawable_title(title: str, item_id: int) -> str:
    """The title up to its first CJK character (for machines without a CJK font)."""
    match = _CJK.search(title)
    if match is None:
        return title
    return title[: match.start()].rstrip(" :：") or f"1688 offer {item_id}"


def _fonts() -> list[str]:
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in _CJK_FONTS if name in installed)]


def render_chart(data: ChartInput, path: Path, *, max_lines: int = MAX_LINES) -> ChartSummary:
    """Draw ``data`` into ``path`` (``.png`` or ``.svg``) and say what was drawn.

    ValueError when the extension is not supported or there are no rows.
    """
    fmt = chart_format(path)
    if not data.rows:
        raise ValueError(f"item {data.item_id}: no prices to draw")
    import matplotlib
    from matplotlib.figure import Figure

    steps = sku_steps(data.rows, data.start, data.end)
    band = len(steps) > max_lines
    changes = sorted({t for t in data.changes if data.start <= t <= data.end})
    alerts = sorted(t for t in data.alerts if data.start <= t <= data.end)
    fonts = _fonts()
    if len(fonts) == 1:  # no CJK font installed: no Chinese title drawn as empty boxes
        data = replace(data, title=_drawable_title(data.title, data.item_id))
    style = {"font.family": fonts, "svg.hashsalt": "1688-monitor"}
    with matplotlib.rc_context(style), warnings.catch_warnings():  # type: ignore[arg-type]
        warnings.filterwarnings("ignore", message=r".*Glyph .* missing from font")
        fig = Figure(figsize=(10, 5.6), dpi=120, layout="constrained")
        # Typed loosely: matplotlib's stubs do not admit datetime sequences as x values.
        ax: Any = fig.add_subplot()
        if band:
            _draw_band(ax, data, len(steps))
        else:
            for series in steps:
                ax.step(
                    series.times, _floats(series.values), where="post", lw=1.6, label=series.label
                )
        _draw_stock(ax, stock_steps(data.rows, data.start, data.end))
        _draw_events(ax, changes, alerts)
        _decorate(fig, ax, data)
        metadata = {"Date": None} if fmt == "svg" else {"Software": "1688-monitor"}
        fig.savefig(path, format=fmt, metadata=metadata)
    return ChartSummary(path, fmt, len(steps), band, len(changes), len(alerts))


def _draw_band(ax: Any, data: ChartInput, skus: int) -> None:
    low, high = price_band(data.rows, data.start, data.end)
    lows, highs = _floats(low.values), _floats(high.values)
    ax.fill_between(
        low.times,
        lows,
        highs,
        step="post",
        alpha=0.25,
        color="tab:blue",
        label=f"SKU price range ({skus} SKUs)",
    )
    ax.step(low.times, lows, where="post", color="tab:blue", lw=1.4)
    ax.step(high.times, highs, where="post", color="tab:blue", lw=0.8)


def _draw_stock(ax: Any, stock: Series | None) -> None:
    if stock is None:
        return
    ax2 = ax.twinx()
    ax2.step(
        stock.times,
        _floats(stock.values),
        where="post",
        color="0.45",
        lw=1.0,
        ls="--",
        label=stock.label,
    )
    ax2.set_ylabel("stock (units)")
    ax2.set_ylim(bottom=0)


def _draw_events(ax: Any, changes: list[datetime], alerts: list[datetime]) -> None:
    """Dotted lines at changes, red triangles on the top edge at alerts."""
    on_x = ax.get_xaxis_transform()  # x in data, y from 0 (bottom) to 1 (top)
    if changes:
        ax.vlines(
            changes,
            0,
            1,
            transform=on_x,
            colors="0.6",
            linestyles=":",
            lw=0.9,
            label=f"changes ({len(changes)})",
        )
    if alerts:
        ax.scatter(
            alerts,
            [1.0] * len(alerts),
            transform=on_x,
            marker="v",
            s=60,
            color="tab:red",
            clip_on=False,
            zorder=5,
            label=f"alerts ({len(alerts)})",
        )


def _decorate(fig: Any, ax: Any, data: ChartInput) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import StrMethodFormatter

    ax.set_xlim(data.start, data.end)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"price ({data.currency or 'CNY'})")
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:.2f}"))
    ax.grid(True, alpha=0.3)
    ax.set_title(data.title, loc="left", fontsize="medium")
    handles, labels = [], []
    for axes in fig.axes:
        more_handles, more_labels = axes.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(4, max(1, len(labels))),
        fontsize="small",
        frameon=False,
    )
