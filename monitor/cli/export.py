"""``monitor export``: every SKU price row, streamed to CSV or JSON lines."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from monitor.cli.history import PRICE_FIELDS, Since, open_store, price_record, write_csv_rows
from monitor.db.queries import PriceRow, count_price_history, iter_price_history, reading

__all__ = ["export"]

#: Rows fetched per round trip, and between two progress bar updates.
BATCH = 1000


@click.command(short_help="Export all price history as CSV or JSON lines.")
@click.option(
    "--since",
    type=Since(),
    default="all",
    show_default=True,
    help="Only rows valid after this: a duration back (30d), a UTC date, or 'all'.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="csv with a header row, or json: one JSON object per line.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (replaced only when complete) instead of stdout.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr. Default: when stderr is a terminal and the rows go elsewhere.",
)
def export(since: datetime | None, fmt: str, output: Path | None, progress: bool | None) -> None:
    """Export the price history of every item (the price_history view).

    One row per SKU state: item_id, sku_id, sku_name, price (an exact decimal
    string), stock, sold_out, valid_from and valid_to (UTC, ISO 8601; empty:
    still current). Rows are streamed from the database, so exports of any
    size use little memory.

    \b
    Examples:
      monitor export -o history.csv
      monitor export --since 90d --format json | jq -r .price
      monitor export --format json -o history.jsonl --no-progress
    """
    if progress is None:
        progress = sys.stderr.isatty() and (output is not None or not sys.stdout.isatty())
    try:
        with open_store() as store, reading(store.engine, "exporting the history") as conn:
            total = count_price_history(conn, since)
            with (
                closing(iter_price_history(conn, since, batch=BATCH)) as rows,
                _destination(output) as out,
                _progress_bar(progress, total) as advance,
            ):
                records = (price_record(row) for row in _counting(rows, advance))
                if fmt == "csv":
                    count = write_csv_rows(out, records, PRICE_FIELDS)
                else:
                    count = _write_json_lines(out, records)
    except BrokenPipeError:
        # The reader went away (``monitor export | head``): stop quietly, like other tools.
        _silence_stdout()
        sys.exit(1)
    if output is not None:
        click.echo(f"{count} rows written to {output}", err=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (e.g. captured by a test runner)
        pass


def _write_json_lines(out: IO[str], records: Iterable[dict[str, Any]]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False))
        out.write("\n")
        count += 1
    return count


def _counting(rows: Iterator[PriceRow], advance: Callable[[int], None]) -> Iterator[PriceRow]:
    """``rows``, reporting progress every :data:`BATCH` rows and at the end."""
    pending = 0
    for row in rows:
        yield row
        pending += 1
        if pending == BATCH:
            advance(pending)
            pending = 0
    advance(pending)


@contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda _n: None
        return
    columns = (
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("export", total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def _destination(output: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file beside ``output`` that replaces it once complete."""
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    folder = output.resolve().parent
    fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
